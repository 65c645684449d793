"""The models the local server offers, and how the ordinary ones stream their replies.

Every model is a :class:`ModelSpec`: an id, a one-line description (shown by
``GET /v1/models``) and a handler that writes the response through an
:class:`~lesson_helpers.local_server.exchange.Exchange`. Fault scenarios register more
models the same way (ids starting with ``fault-``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exchange import ChunkBuilder, Exchange
from .replies import prompt_tokens, reasoning_pieces, reply_pieces, tokenize

__all__ = ["MODELS", "ModelSpec", "completion_body", "register", "stream_reply"]

Handler = Callable[[Exchange], None]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    description: str
    handler: Handler
    owned_by: str = "lesson-helpers"


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.id] = spec
    return spec


@dataclass
class _Plan:
    """What each choice will say: reasoning pieces, content pieces, and why it stops."""

    reasoning: list[str]
    content: list[str]
    finish_reason: str


def _plans(ex: Exchange, reasoning: bool) -> list[_Plan]:
    n = int(ex.body.get("n") or 1)
    limit = ex.body.get("max_tokens") or ex.body.get("max_completion_tokens")
    plans = []
    for i in range(n):
        think = reasoning_pieces(ex.messages) if reasoning else []
        say = reply_pieces(ex.messages)
        if i:
            say = tokenize(f"（候选 {i + 1}）") + say
        finish = "stop"
        if limit is not None and len(think) + len(say) > limit:
            think, say = think[:limit], say[: max(0, limit - len(think))]
            finish = "length"
        plans.append(_Plan(think, say, finish))
    return plans


def completion_body(ex: Exchange, plans: list[_Plan], style: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` response."""
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    builder.completion_tokens = sum(len(p.reasoning) + len(p.content) for p in plans)
    choices = []
    for index, plan in enumerate(plans):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content)}
        if style == "siliconflow":
            message["reasoning_content"] = "".join(plan.reasoning) if plan.reasoning else None
        choices.append({"index": index, "message": message, "finish_reason": plan.finish_reason})
    return {
        "id": builder.id,
        "object": "chat.completion",
        "created": builder.created,
        "model": builder.model,
        "choices": choices,
        "system_fingerprint": "",
        "usage": builder.usage(),
    }


def _deltas(plan: _Plan, style: str) -> list[tuple[dict[str, Any], str | None, int]]:
    """(delta, finish_reason, tokens it adds) for every chunk of one choice, in order."""
    if style == "siliconflow":
        first = {"content": "", "reasoning_content": None, "role": "assistant"}
        out = [(first, None, 0)]
        out += [({"content": None, "reasoning_content": p}, None, 1) for p in plan.reasoning]
        out += [({"content": p, "reasoning_content": None}, None, 1) for p in plan.content]
        out.append(({"content": "", "reasoning_content": None}, plan.finish_reason, 0))
    else:  # openai
        out = [({"role": "assistant", "content": "", "refusal": None}, None, 0)]
        out += [({"content": p}, None, 1) for p in plan.content]
        out.append(({}, plan.finish_reason, 0))
    return out


def stream_reply(ex: Exchange, plans: list[_Plan], style: str) -> None:
    """Stream the planned reply as SSE, one chunk per token, at the server's pace."""
    include_usage = bool((ex.body.get("stream_options") or {}).get("include_usage"))
    if style == "siliconflow":
        usage_mode = "every"
    else:
        usage_mode = "null" if include_usage else "absent"
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages), usage_mode)
    per_choice = [_deltas(plan, style) for plan in plans]
    ex.start_stream()
    # n > 1: the choices' chunks take turns, each chunk carrying one choice.
    for step, items in enumerate(itertools.zip_longest(*per_choice)):
        for index, item in enumerate(items):
            if item is None:
                continue
            delta, finish_reason, tokens = item
            if step and tokens and not ex.sleep():
                ex.cut()
                return
            builder.completion_tokens += tokens
            ex.send_event(builder.chunk(delta, finish_reason, index))
    if include_usage:
        ex.send_event(builder.usage_chunk())
    ex.send_done()
    ex.end_stream()


def scripted(style: str = "siliconflow", reasoning: bool = False) -> Handler:
    def handle(ex: Exchange) -> None:
        plans = _plans(ex, reasoning)
        if ex.stream:
            stream_reply(ex, plans, style)
        else:
            ex.send_json(200, completion_body(ex, plans, style))

    return handle


for _spec in (
    ModelSpec(
        "Qwen/Qwen2.5-7B-Instruct",
        "对话模型（本地模拟，SiliconFlow 格式）：对“你好”的回答与作业示例流逐块一致。",
        scripted(),
    ),
    ModelSpec(
        "deepseek-ai/DeepSeek-R1",
        "推理模型（本地模拟，SiliconFlow 格式）：先流式输出 reasoning_content，再输出回答。",
        scripted(reasoning=True),
    ),
    ModelSpec("deepseek-chat", "对话模型（本地模拟，DeepSeek 的默认模型名）。", scripted()),
    ModelSpec(
        "deepseek-reasoner",
        "推理模型（本地模拟，DeepSeek 的推理模型名）：先输出 reasoning_content。",
        scripted(reasoning=True),
    ),
    ModelSpec(
        "gpt-4o-mini",
        "对话模型（本地模拟，OpenAI 格式）："
        "没有 reasoning_content；usage 只在 include_usage 时给出。",
        scripted(style="openai"),
    ),
):
    register(_spec)
