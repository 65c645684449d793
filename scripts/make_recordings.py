"""Write the recordings the kit ships (lesson_helpers/data/recordings/*.jsonl).

    python scripts/make_recordings.py            # (re)write them
    python scripts/make_recordings.py --check    # exit 1 if any file differs from this script

Nothing real can be reached from where the kit is built, so each one is *reconstructed*: the
bytes are what the provider's public documentation shows (or, for the seed, the real stream
the original assignment came with), the timing is typical of that provider -- a first-token
delay, uneven gaps between tokens, a pause -- drawn from a fixed random seed so the files
never change between runs. Each header says so (``"source": "reconstructed"``) and what it
is ``based_on``. A teacher's own recordings (``python -m lesson_helpers record``) replace
them with the real thing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lesson_helpers import seed  # noqa: E402
from lesson_helpers.recording import Piece, Recording, dumps  # noqa: E402

OUT = ROOT / "lesson_helpers" / "data" / "recordings"
ERRORS = ROOT / "tests" / "fixtures" / "provider_errors"
SSE = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
HOSTS = {
    "siliconflow": ("https://api.siliconflow.cn", "/v1"),
    "deepseek": ("https://api.deepseek.com", "/v1"),
    "openai": ("https://api.openai.com", "/v1"),
    "openrouter": ("https://openrouter.ai", "/api/v1"),
}
MODELS = {
    "siliconflow": "Qwen/Qwen2.5-7B-Instruct",
    "deepseek": "deepseek-chat",
    "openai": "gpt-4o-mini",
}
DOCS = {
    "siliconflow": "https://docs.siliconflow.cn/cn/api-reference/chat-completions/chat-completions",
    "deepseek": "https://api-docs.deepseek.com/guides/reasoning_model",
    "openai": "https://platform.openai.com/docs/api-reference/chat-streaming",
    "openrouter": "https://openrouter.ai/docs/api-reference/streaming",
}


def compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def event(obj: Any) -> bytes:
    return f"data: {compact(obj)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


@dataclass
class Clock:
    """Arrival times: a first-token delay, then uneven gaps (seeded: the same every run)."""

    seed: str
    now: float = 0.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def after(self, low: float, high: float) -> float:
        self.now = round(self.now + self.rng.uniform(low, high), 3)
        return self.now


def timed(clock: Clock, parts: list[bytes], low: float, high: float) -> Iterator[Piece]:
    for data in parts:
        yield Piece(clock.after(low, high), data)


def chat_request(provider: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "path": HOSTS[provider][1] + "/chat/completions", "body": body}


def stream_recording(
    name: str,
    provider: str,
    body: dict[str, Any],
    pieces: list[Piece],
    *,
    head_at: float,
    description: str,
    based_on: str,
    note: str = "",
) -> Recording:
    end = round(pieces[-1].t + 0.002, 3)
    return Recording(
        api="chat",
        request=chat_request(provider, body),
        status=200,
        headers=dict(SSE),
        pieces=tuple(pieces),
        end=end,
        description=description,
        head_at=head_at,
        source="reconstructed",
        based_on=based_on,
        provider=provider,
        host=HOSTS[provider][0],
        note=note,
        name=name,
    )


# -- the seed -------------------------------------------------------------------------------------
def siliconflow_seed() -> Recording:
    events = [part + b"\n\n" for part in seed.stream_bytes().split(b"\n\n") if part]
    clock = Clock("siliconflow_seed", 0.284)
    pieces = [Piece(clock.after(0.09, 0.16), events[0])]
    pieces += list(timed(clock, events[1:-2], 0.03, 0.07))
    pieces.append(Piece(clock.after(0.03, 0.06), events[-2] + events[-1]))  # the last two at once
    body = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "messages": [{"role": "user", "content": seed.PROMPT}],
        "stream": True,
    }
    return stream_recording(
        "siliconflow_seed",
        "siliconflow",
        body,
        pieces,
        head_at=0.284,
        description="作业示例流：硅基流动 Qwen/Qwen2.5-7B-Instruct 对“你好”的真实流式回答",
        based_on="原作业说明里附的硅基流动真实流式回答（lesson_helpers.seed，"
        "data/siliconflow_seed_stream.txt）：字节原样照搬；时间是按常见的首字延迟和"
        "逐字间隔补上的（原作业没有记录时间）",
    )


# -- DeepSeek's reasoner: keep-alive comments, then reasoning with content null -------------------
def deepseek_reasoner() -> Recording:
    model = "deepseek-reasoner"
    ident = "5f1c0e0e-0000-4000-8000-00000000d5e1"
    head = {"id": ident, "object": "chat.completion.chunk", "created": 1750000000, "model": model}
    fingerprint = "fp_0000000000_prod0425fp8"
    thinking = ["嗯", "，", "用户", "问", "“", "1", "加", "1", "等于", "几", "”", "。"]
    thinking += [
        "这是",
        "最",
        "基础",
        "的",
        "算术",
        "：",
        "一个",
        "加",
        "一个",
        "，",
        "就是",
        "两个",
        "。",
        "直接",
        "回答",
        "就",
        "好",
        "。",
    ]
    answer = ["1", " +", " 1", " =", " 2", "。"]

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return event({**head, "system_fingerprint": fingerprint, "choices": [choice], **extra})

    clock = Clock("deepseek_reasoner", 0.312)
    keepalive = b": keep-alive\n\n"
    pieces = [Piece(clock.after(0.001, 0.003), keepalive), Piece(clock.after(0.9, 1.0), keepalive)]
    first = {"role": "assistant", "content": None, "reasoning_content": ""}
    pieces.append(Piece(clock.after(0.25, 0.35), chunk(first)))
    pieces += timed(
        clock, [chunk({"content": None, "reasoning_content": t}) for t in thinking], 0.02, 0.06
    )
    pieces += timed(
        clock, [chunk({"content": t, "reasoning_content": None}) for t in answer], 0.02, 0.05
    )
    usage = {
        "prompt_tokens": 13,
        "completion_tokens": len(thinking) + len(answer),
        "total_tokens": 13 + len(thinking) + len(answer),
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": len(thinking)},
        "prompt_cache_hit_tokens": 0,
        "prompt_cache_miss_tokens": 13,
    }
    last = chunk({"content": "", "reasoning_content": None}, "stop", usage=usage)
    pieces.append(Piece(clock.after(0.03, 0.05), last + DONE))
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "1+1 等于几？"}],
        "stream": True,
    }
    return stream_recording(
        "deepseek_reasoner",
        "deepseek",
        body,
        pieces,
        head_at=0.312,
        description="DeepSeek deepseek-reasoner：先发 : keep-alive，思考时 content 为 null，"
        "最后一块带 usage",
        based_on=f"{DOCS['deepseek']}（reasoning_content 与 content 的流式示例）；"
        "https://api-docs.deepseek.com/faq（排队时流式请求持续收到 : keep-alive 注释）",
        note="思考过程和回答是为课程写的；id 和 system_fingerprint 是假的。",
    )


# -- OpenRouter: processing comments, a pause, a character split between two pieces ---------------
def openrouter_processing() -> Recording:
    model = "openai/gpt-4o-mini"
    head = {
        "id": "gen-1750000000-FakeFakeFake0000",
        "provider": "OpenAI",
        "model": model,
        "object": "chat.completion.chunk",
        "created": 1750000000,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": delta,
            "finish_reason": finish,
            "native_finish_reason": finish,
            "logprobs": None,
        }
        return event({**head, "choices": [choice]})

    words = ["流式", "输出", "就是", "一边", "生成", "一边", "发送", "：", "你", "不用", "等"]
    words += ["整个", "回答", "写完", "，", "第一个", "字", "一", "出来", "就", "能", "看到", "。"]
    clock = Clock("openrouter_processing", 0.198)
    processing = b": OPENROUTER PROCESSING\n\n"
    pieces = [Piece(clock.after(0.001, 0.002), processing)]
    pieces.append(Piece(clock.after(0.45, 0.55), processing))
    pieces.append(Piece(clock.after(0.3, 0.4), chunk({"role": "assistant", "content": ""})))
    texts = [chunk({"role": "assistant", "content": w}) for w in words]
    pieces += timed(clock, texts[:11], 0.02, 0.06)
    pieces.append(Piece(clock.after(0.75, 0.85), processing))  # the upstream model paused
    split = texts[11]  # "整个": cut inside 个, as TCP may cut it
    cut = split.index("个".encode()) + 1
    pieces.append(Piece(clock.after(0.05, 0.08), split[:cut]))
    pieces.append(Piece(clock.after(0.002, 0.006), split[cut:]))
    pieces += timed(clock, texts[12:], 0.02, 0.06)
    finish = chunk({"role": "assistant", "content": ""}, "stop")
    pieces.append(Piece(clock.after(0.02, 0.04), finish))
    pieces.append(Piece(clock.after(0.005, 0.01), DONE))
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "用一句话解释什么是流式输出。"}],
        "stream": True,
    }
    return stream_recording(
        "openrouter_processing",
        "openrouter",
        body,
        pieces,
        head_at=0.198,
        description="OpenRouter openai/gpt-4o-mini：: OPENROUTER PROCESSING 注释、中途停顿、"
        "一个汉字被切在两段里",
        based_on=f"{DOCS['openrouter']}（SSE 注释 : OPENROUTER PROCESSING）；"
        "https://openrouter.ai/docs/api-reference/overview（chunk 里的 provider、"
        "native_finish_reason）",
        note="回答是为课程写的，id 是假的；“整个”的“个”被切成两段，那两段用 base64 记录。",
    )


# -- OpenAI: include_usage, a tool call -----------------------------------------------------------
OPENAI_HEAD = {
    "id": "chatcmpl-FakeFakeFakeFakeFake0000",
    "object": "chat.completion.chunk",
    "created": 1750000000,
    "model": "gpt-4o-mini-2024-07-18",
    "service_tier": "default",
    "system_fingerprint": "fp_0000000000",
}


def openai_chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return event({**OPENAI_HEAD, "choices": [choice], "usage": usage})


def openai_include_usage() -> Recording:
    words = ["你好", "！", "有什么", "我", "可以", "帮", "你", "的", "吗", "？"]
    clock = Clock("openai_include_usage", 0.361)
    pieces = [
        Piece(
            clock.after(0.12, 0.2),
            openai_chunk({"role": "assistant", "content": "", "refusal": None}),
        )
    ]
    pieces += timed(clock, [openai_chunk({"content": w}) for w in words], 0.015, 0.045)
    pieces.append(Piece(clock.after(0.02, 0.04), openai_chunk({}, "stop")))
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": len(words),
        "total_tokens": 9 + len(words),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    usage_chunk = event({**OPENAI_HEAD, "choices": [], "usage": usage})
    pieces.append(Piece(clock.after(0.01, 0.03), usage_chunk + DONE))
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "你好"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return stream_recording(
        "openai_include_usage",
        "openai",
        body,
        pieces,
        head_at=0.361,
        description="OpenAI gpt-4o-mini，include_usage：每块 usage 为 null，"
        "最后多一块 choices 为空、只有 usage",
        based_on=f"{DOCS['openai']}（chat.completion.chunk 的字段；stream_options.include_usage："
        "最后一块的 choices 是空列表，其他块的 usage 是 null）",
        note="id 和 system_fingerprint 是假的。",
    )


def openai_tool_call() -> Recording:
    call = {
        "index": 0,
        "id": "call_FakeFakeFake0000",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    first = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    arguments = ['{"', "city", '":"', "北京", '"}']
    fragments = [
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
        for part in arguments
    ]
    clock = Clock("openai_tool_call", 0.402)
    pieces = [Piece(clock.after(0.2, 0.3), openai_chunk(first))]
    pieces += timed(clock, fragments, 0.015, 0.04)
    pieces.append(Piece(clock.after(0.02, 0.04), openai_chunk({}, "tool_calls") + DONE))
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "查询一个城市现在的天气",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "城市名，例如 北京"}},
                "required": ["city"],
            },
        },
    }
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "北京现在天气怎么样？"}],
        "tools": [tool],
        "stream": True,
    }
    return stream_recording(
        "openai_tool_call",
        "openai",
        body,
        pieces,
        head_at=0.402,
        description="OpenAI gpt-4o-mini 调用工具 get_weather：arguments 分五段发来，"
        "finish_reason 是 tool_calls",
        based_on=f"{DOCS['openai']}；https://platform.openai.com/docs/guides/function-calling"
        "（流式工具调用：delta.tool_calls 按 index 分段，finish_reason tool_calls）",
        note="id 和 system_fingerprint 是假的。",
    )


# -- SiliconFlow: cut at max_tokens ---------------------------------------------------------------
def siliconflow_length() -> Recording:
    model = "Qwen/Qwen2.5-7B-Instruct"
    ident = "019a8fdb00000000000000000000f00d"
    words = ["流式", "输出", "是指", "模型", "一边", "生成", "一边"]
    prompt = 33

    def chunk(delta: dict[str, Any], finish: str | None, used: int) -> bytes:
        return event(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": 1750000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "system_fingerprint": "",
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": used,
                    "total_tokens": prompt + used,
                },
            }
        )

    clock = Clock("siliconflow_length", 0.297)
    first = {"content": "", "reasoning_content": None, "role": "assistant"}
    pieces = [Piece(clock.after(0.09, 0.15), chunk(first, None, 0))]
    texts = [
        chunk({"content": w, "reasoning_content": None}, None, i) for i, w in enumerate(words, 1)
    ]
    pieces += timed(clock, texts, 0.03, 0.07)
    last = chunk({"content": "", "reasoning_content": None}, "length", len(words))
    pieces.append(Piece(clock.after(0.03, 0.05), last + DONE))
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "什么是流式输出？"}],
        "stream": True,
        "max_tokens": len(words),
    }
    return stream_recording(
        "siliconflow_length",
        "siliconflow",
        body,
        pieces,
        head_at=0.297,
        description=f"硅基流动 {model}，max_tokens={len(words)}：回答停在半句话上，"
        "finish_reason 是 length",
        based_on=f"{DOCS['siliconflow']}（finish_reason 取值 length；每块带累计的 usage）；"
        "chunk 的字段和顺序照作业示例流（lesson_helpers.seed）",
        note="回答是为课程写的，id 是假的。",
    )


# -- the error bodies: tests/fixtures/provider_errors ---------------------------------------------
CASES = {
    "wrong_key": "密钥错误",
    "insufficient_balance": "余额不足",
    "rate_limit": "限流",
}
LABELS = {"siliconflow": "硅基流动", "deepseek": "DeepSeek", "openai": "OpenAI"}


def error_recording(fixture: Path) -> Recording:
    facts = json.loads(fixture.read_text("utf-8"))
    provider, case = facts["provider"], facts["case"]
    clock = Clock(fixture.stem, 0.0)
    head_at = clock.after(0.18, 0.32)
    body = {
        "model": MODELS[provider],
        "messages": [{"role": "user", "content": "你好"}],
        "stream": True,
    }
    return Recording(
        api="chat",
        request=chat_request(provider, body),
        status=facts["status"],
        headers=dict(facts["headers"]),
        pieces=(Piece(round(head_at + 0.001, 3), facts["body"].encode("utf-8")),),
        end=round(head_at + 0.002, 3),
        description=f"{LABELS[provider]}的错误响应：{CASES[case]}（HTTP {facts['status']}，"
        f"{LABELS[provider]}自己的错误格式）",
        head_at=head_at,
        transfer="length",
        source="reconstructed",
        based_on=f"{facts['reconstructed_from']}；{facts['note']}"
        f"（与 tests/fixtures/provider_errors/{fixture.name} 相同）",
        provider=provider,
        host=HOSTS[provider][0],
        name=f"{provider}_{case}",
    )


def recordings() -> list[Recording]:
    made = [
        siliconflow_seed(),
        deepseek_reasoner(),
        openrouter_processing(),
        openai_include_usage(),
        openai_tool_call(),
        siliconflow_length(),
    ]
    made += [error_recording(path) for path in sorted(ERRORS.glob("*.json"))]
    return made


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for recording in recordings():
        path = OUT / f"{recording.name}.jsonl"
        text = dumps(recording)
        if args.check:
            if not path.is_file() or path.read_text("utf-8") != text:
                stale.append(path.name)
            continue
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run python scripts/make_recordings.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
