"""Every stream shape real providers send, from wire bytes to the assembled answer.

The fixtures in ``tests/fixtures/streams/`` are raw SSE wire text written for this kit from
the shapes described in issue 14 (field names, where each provider puts what); the ids,
texts and numbers are made up. Each one goes

1. through :class:`SSEParser` under every chunking -- whole, 1-byte pieces, every 2-way
   split, random cuts, cuts inside every multibyte character -- with LF, CRLF and CR line
   ends, and must give the data strings a plain ``split(b"\\n\\n")`` gives;
2. through :func:`assemble`, compared with the values written down below (exact text,
   reasoning, refusal, tool calls, finish reasons, usage), with a plain accumulation, and
   with the official openai SDK's ``ChatCompletionStreamState`` where it accepts the shape;
3. over a real HTTP connection with :func:`iter_sse`, cut into small pieces.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import warnings
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests

from lesson_helpers.chunks import ChatResult, ChunkAssembler, assemble
from lesson_helpers.sse import SSEParser, iter_sse

FIXTURES = Path(__file__).parent / "fixtures" / "streams"


@dataclass
class Want:
    """What one choice must assemble to."""

    content: str = ""
    reasoning: str = ""
    refusal: str = ""
    finish_reason: str | None = "stop"
    tool_calls: list[tuple[int, str, str, str]] = field(default_factory=list)


@dataclass
class Expected:
    id: str
    model: str
    created: int
    usage: dict | None
    choices: list[Want]
    system_fingerprint: str | None = None
    # Shapes the openai SDK's public models reject, and why (None: it accepts them).
    openai_rejects: str | None = None
    # Where the SDK's snapshot differs from the kit: it does not know x_groq.usage; it
    # concatenates every string it gets, so a "role" sent in every delta (xAI, OpenRouter)
    # becomes "assistantassistant...".
    openai_usage_differs: bool = False
    openai_role_repeats: bool = False


GROQ_USAGE = {
    "queue_time": 0.021,
    "prompt_tokens": 14,
    "prompt_time": 0.002,
    "completion_tokens": 19,
    "completion_time": 0.047,
    "total_tokens": 33,
    "total_time": 0.049,
}
OPENAI_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

EXPECTED: dict[str, Expected] = {
    # Groq: the thinking in delta.reasoning, usage only in x_groq.usage of the last chunk.
    "groq_reasoning": Expected(
        id="chatcmpl-fake-groq-0001",
        model="qwen/qwen3-32b",
        created=1750000001,
        system_fingerprint="fp_fake_groq",
        usage=GROQ_USAGE,
        choices=[
            Want(content="你好！很高兴见到你。", reasoning="用户说“你好”，我应该友好地回应。")
        ],
        openai_usage_differs=True,  # the SDK does not know x_groq
    ),
    # Groq: two whole tool calls in one delta.
    "groq_tool_calls": Expected(
        id="chatcmpl-fake-groq-0002",
        model="llama-3.3-70b-versatile",
        created=1750000001,
        system_fingerprint="fp_fake_groq",
        usage={
            "queue_time": 0.03,
            "prompt_tokens": 210,
            "prompt_time": 0.01,
            "completion_tokens": 40,
            "completion_time": 0.08,
            "total_tokens": 250,
            "total_time": 0.09,
        },
        choices=[
            Want(
                finish_reason="tool_calls",
                tool_calls=[
                    (0, "call_fake_g1", "get_weather", '{"city":"北京"}'),
                    (1, "call_fake_g2", "get_time", '{"tz":"Asia/Shanghai"}'),
                ],
            )
        ],
        openai_usage_differs=True,
    ),
    # xAI: "role" in every delta, reasoning_content, one whole tool call, no finish_reason
    # key until the last chunk.
    "xai_tool_call": Expected(
        id="fake-xai-0001",
        model="grok-3-mini",
        created=1750000003,
        system_fingerprint="fp_fake_xai",
        usage={
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {
                "text_tokens": 120,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": 0,
            },
            "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0},
            "num_sources_used": 0,
        },
        choices=[
            Want(
                reasoning="Need the time.",
                finish_reason="tool_calls",
                tool_calls=[(0, "call_fake_x1", "get_time", '{"tz":"Asia/Tokyo"}')],
            )
        ],
        openai_role_repeats=True,
    ),
    # Mistral: content as a list of parts; thinking parts hold a list of text parts; a
    # "reference" part (unknown here) is ignored; a later delta has a plain string.
    "mistral_content_parts": Expected(
        id="fake-mistral-0001",
        model="magistral-small-2509",
        created=1750000004,
        usage={"prompt_tokens": 9, "total_tokens": 61, "completion_tokens": 52},
        choices=[
            Want(
                content="你好！有什么可以帮你？",
                reasoning="Okay, the user greets me in Chinese. 我用中文回答。",
            )
        ],
        openai_rejects="delta.content must be a string in its ChatCompletionChunk model",
    ),
    # Mistral: tool-call fragments without index; one without id continues the newest call.
    "mistral_tool_calls": Expected(
        id="fake-mistral-0002",
        model="mistral-large-latest",
        created=1750000004,
        usage={"prompt_tokens": 140, "total_tokens": 185, "completion_tokens": 45},
        choices=[
            Want(
                finish_reason="tool_calls",
                tool_calls=[
                    (0, "fakeCall01", "get_weather", '{"city": "巴黎"}'),
                    (1, "fakeCall02", "get_time", '{"tz": "Europe/Paris"}'),
                    (2, "fakeCall03", "get_news", "{}"),
                ],
            )
        ],
        openai_rejects="ChoiceDeltaToolCall.index is a required field in its models",
    ),
    # DashScope (Qwen): later fragments of a call say "id": "", include_usage chunk.
    "dashscope_tool_calls": Expected(
        id="chatcmpl-fake-dashscope-01",
        model="qwen-plus",
        created=1750000006,
        usage={
            "prompt_tokens": 260,
            "completion_tokens": 37,
            "total_tokens": 297,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        choices=[
            Want(
                finish_reason="tool_calls",
                tool_calls=[
                    (0, "call_fake_d1", "get_current_weather", '{"location": "杭州市"}'),
                    (1, "call_fake_d2", "get_current_time", "{}"),
                ],
            )
        ],
    ),
    # Azure: a first prompt-filter chunk (empty id/model, "created": 0, "object": ""),
    # "role": null and "tool_calls": null in every delta, content_filter_results, matched_stop.
    "azure_nulls": Expected(
        id="chatcmpl-fake-azure-01",
        model="gpt-4o-2024-11-20",
        created=1750000007,
        system_fingerprint="fp_fake_az",
        usage=None,
        choices=[Want(content="流式输出就是边生成边发送。")],
    ),
    # OpenAI: a refusal, logprobs for it, obfuscation padding, include_usage last chunk.
    "openai_refusal": Expected(
        id="chatcmpl-fake-openai-01",
        model="gpt-4o-2024-08-06",
        created=1750000008,
        system_fingerprint="fp_fake_oai",
        usage={"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30, **OPENAI_DETAILS},
        choices=[Want(refusal="I'm sorry, I can't help with that.")],
    ),
    # OpenAI: content with logprobs and obfuscation, include_usage.
    "openai_logprobs": Expected(
        id="chatcmpl-fake-openai-02",
        model="gpt-4o-mini-2024-07-18",
        created=1750000008,
        system_fingerprint="fp_fake_oai",
        usage={"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15, **OPENAI_DETAILS},
        choices=[Want(content="你好！我能帮你什么？")],
    ),
    # DeepSeek: "content": null while reasoning, "usage": null until the last chunk.
    "deepseek_reasoning": Expected(
        id="fake-deepseek-0001",
        model="deepseek-reasoner",
        created=1750000010,
        system_fingerprint="fp_fake_ds_prod0425",
        usage={
            "prompt_tokens": 6,
            "completion_tokens": 58,
            "total_tokens": 64,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 44},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 6,
        },
        choices=[
            Want(
                content="你好！有什么我可以帮你的吗？",
                reasoning="嗯，用户在打招呼。我应该热情地回应。",
            )
        ],
    ),
    # n = 3: one choice per chunk, interleaved, finishing in another order.
    "n3_interleaved": Expected(
        id="chatcmpl-fake-n3",
        model="gpt-4o-mini-2024-07-18",
        created=1750000011,
        system_fingerprint="fp_fake_oai",
        usage={"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 18},
        choices=[
            Want(content="甲一号"),
            Want(content="乙二号"),
            Want(content="丙三号完", finish_reason="length"),
        ],
    ),
    # OpenRouter: "reasoning" (plus reasoning_details), ": OPENROUTER PROCESSING" comments,
    # a usage-only chunk that still has a choice with an empty delta.
    "openrouter_reasoning": Expected(
        id="gen-fake-openrouter-01",
        model="deepseek/deepseek-r1",
        created=1750000012,
        usage={
            "prompt_tokens": 7,
            "completion_tokens": 20,
            "total_tokens": 27,
            "cost": 0.0000512,
            "is_byok": False,
        },
        choices=[Want(content="好的，答案是 42。", reasoning="先想一想。")],
        openai_role_repeats=True,
    ),
    # A vLLM release that fills both "reasoning" and "reasoning_content" with the same
    # text: counted once. stop_reason is ignored.
    "vllm_both_reasoning_fields": Expected(
        id="chatcmpl-fake-vllm-01",
        model="Qwen/Qwen3-8B",
        created=1750000013,
        usage=None,
        choices=[Want(content="Hello!", reasoning="Greeting detected.")],
    ),
}
NAMES = sorted(EXPECTED)


def wire(name: str) -> bytes:
    return (FIXTURES / f"{name}.txt").read_bytes()


def plain_events(blob: bytes) -> list[str]:
    """The data strings the simplest possible reading gives (enough for these files)."""
    blocks = blob.split(b"\n\n")
    assert blocks.pop() == b"", "every fixture ends with a blank line"
    return [b[len(b"data: ") :].decode() for b in blocks if not b.startswith(b":")]


def chunks_of(name: str) -> list[dict]:
    return [json.loads(data) for data in plain_events(wire(name)) if data != "[DONE]"]


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.txt")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_wire_text(name: str) -> None:
    blob = wire(name)
    assert b"\r" not in blob
    assert blob.endswith(b"data: [DONE]\n\n")
    for block in blob.split(b"\n\n")[:-1]:
        assert b"\n" not in block, "one line per event: compact JSON, like a server sends"
        assert block.startswith((b"data: ", b": "))


# --------------------------------------------------------------------------------------------
# 1. The parser, under every chunking and line end
# --------------------------------------------------------------------------------------------


def cut(blob: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted(points), len(blob)]
    return [blob[a:b] for a, b in pairwise(edges)]


def datas(pieces: list[bytes]) -> list[str]:
    parser = SSEParser()
    return [event.data for piece in pieces for event in parser.feed(piece)]


def chunkings(blob: bytes, seed: str) -> dict[str, list[list[bytes]]]:
    rng = random.Random(seed)
    inside = [i for i in range(len(blob)) if blob[i] & 0xC0 == 0x80]  # continuation bytes
    return {
        "whole": [[blob]],
        "1-byte": [[blob[i : i + 1] for i in range(len(blob))]],
        "every 2-way split": [cut(blob, [i]) for i in range(len(blob) + 1)],
        "random cuts": [
            cut(blob, [rng.randrange(len(blob) + 1) for _ in range(rng.randrange(1, 40))])
            for _ in range(40)
        ],
        "inside every multibyte character at once": [cut(blob, inside)],
        "inside one multibyte character": [cut(blob, [i]) for i in inside],
    }


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("name", NAMES)
def test_parser_under_every_chunking(name: str, line_end: bytes) -> None:
    expected = plain_events(wire(name))
    blob = wire(name).replace(b"\n", line_end)
    for how, all_pieces in chunkings(blob, name).items():
        for pieces in all_pieces:
            assert datas(pieces) == expected, f"{how}: {[len(p) for p in pieces]}"


# --------------------------------------------------------------------------------------------
# 2. The assembler
# --------------------------------------------------------------------------------------------


def check(result: ChatResult, want: Expected) -> None:
    assert (result.id, result.model, result.created) == (want.id, want.model, want.created)
    assert result.system_fingerprint == want.system_fingerprint
    assert result.usage == want.usage
    assert [c.index for c in result.choices] == list(range(len(want.choices)))
    for choice, wanted in zip(result.choices, want.choices, strict=True):
        assert choice.role == "assistant"
        assert choice.content == wanted.content
        assert choice.reasoning_content == wanted.reasoning
        assert choice.refusal == wanted.refusal
        assert choice.finish_reason == wanted.finish_reason
        calls = [(c.index, c.id, c.name, c.arguments) for c in choice.tool_calls]
        assert calls == wanted.tool_calls
        assert all(c.type == "function" for c in choice.tool_calls)
        for call in choice.tool_calls:
            json.loads(call.arguments)  # complete JSON once the stream is done


@pytest.mark.parametrize("name", NAMES)
def test_assembles_to_the_expected_values(name: str) -> None:
    check(assemble(chunks_of(name)), EXPECTED[name])


@pytest.mark.parametrize("name", NAMES)
def test_through_the_parser_in_one_byte_pieces(name: str) -> None:
    blob, parser = wire(name), SSEParser()
    events = [e for i in range(len(blob)) for e in parser.feed(blob[i : i + 1])]
    chunks = [e.json() for e in events if e.data != "[DONE]"]
    check(assemble(chunks), EXPECTED[name])


EMPTY = ("content", "reasoning", "refusal")


@pytest.mark.parametrize("name", NAMES)
def test_deltas_and_live_readers_follow_the_stream(name: str) -> None:
    assembler = ChunkAssembler()
    shown: dict[int, dict[str, str]] = {}
    for chunk in chunks_of(name):
        for delta in assembler.add(chunk):
            seen = shown.setdefault(delta.index, dict.fromkeys(EMPTY, ""))
            seen["content"] += delta.content
            seen["reasoning"] += delta.reasoning_content
            seen["refusal"] += delta.refusal
        snapshot = assembler.result()
        for choice in snapshot.choices:
            i = choice.index
            seen = shown.get(i, dict.fromkeys(EMPTY, ""))
            assert assembler.content(i) == choice.content == seen["content"]
            assert assembler.reasoning(i) == choice.reasoning_content == seen["reasoning"]
            assert assembler.refusal(i) == choice.refusal == seen["refusal"]
            assert assembler.finish_reason(i) == choice.finish_reason
            assert assembler.tool_calls(i) == choice.tool_calls
        assert assembler.usage == snapshot.usage
    check(assembler.result(), EXPECTED[name])


def plain_accumulation(chunks: list[dict]) -> dict[int, dict[str, Any]]:
    """The obvious loop a student would write for these shapes, as an independent check."""
    out: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            acc = out.setdefault(
                choice["index"], {"content": "", "reasoning": "", "refusal": "", "calls": []}
            )
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            if isinstance(content, list):
                for part in content:
                    if part["type"] == "text":
                        acc["content"] += part["text"]
                    elif part["type"] == "thinking":
                        acc["reasoning"] += "".join(p["text"] for p in part["thinking"])
            else:
                acc["content"] += content
            acc["reasoning"] += delta.get("reasoning_content") or delta.get("reasoning") or ""
            acc["refusal"] += delta.get("refusal") or ""
            for fragment in delta.get("tool_calls") or []:
                calls = acc["calls"]
                if "index" in fragment:
                    while len(calls) <= fragment["index"]:
                        calls.append({"id": "", "name": "", "arguments": ""})
                    call = calls[fragment["index"]]
                elif fragment.get("id"):
                    calls.append({"id": "", "name": "", "arguments": ""})
                    call = calls[-1]
                else:
                    call = calls[-1]
                call["id"] = call["id"] or fragment.get("id") or ""
                call["name"] += (fragment.get("function") or {}).get("name") or ""
                call["arguments"] += (fragment.get("function") or {}).get("arguments") or ""
    return out


@pytest.mark.parametrize("name", NAMES)
def test_agrees_with_a_plain_accumulation(name: str) -> None:
    result = assemble(chunks_of(name))
    plain = plain_accumulation(chunks_of(name))
    assert sorted(plain) == [c.index for c in result.choices]
    for choice in result.choices:
        mine = plain[choice.index]
        assert (choice.content, choice.reasoning_content, choice.refusal) == (
            mine["content"],
            mine["reasoning"],
            mine["refusal"],
        )
        assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [
            (c["id"], c["name"], c["arguments"]) for c in mine["calls"]
        ]


# --------------------------------------------------------------------------------------------
# The official openai SDK's accumulator, where it accepts the shape
# --------------------------------------------------------------------------------------------


def openai_snapshot(chunks: list[dict]) -> Any:
    """Feed the chunks to openai's ChatCompletionStreamState, as ``openai.Stream`` would.

    Like the SDK's own ChatCompletionStream, chunks whose ``object`` is not
    ``chat.completion.chunk`` (Azure's prompt-filter chunk) are skipped.
    """
    streaming = pytest.importorskip("openai.lib.streaming.chat")
    chat_types = pytest.importorskip("openai.types.chat")
    state = streaming.ChatCompletionStreamState()
    for chunk in chunks:
        if chunk.get("object") == "chat.completion.chunk":
            state.handle_chunk(chat_types.ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot


ACCEPTED = [n for n in NAMES if EXPECTED[n].openai_rejects is None]
REJECTED = [n for n in NAMES if EXPECTED[n].openai_rejects is not None]


@pytest.mark.parametrize("name", ACCEPTED)
def test_agrees_with_the_openai_sdk(name: str) -> None:
    ours = assemble(chunks_of(name))
    theirs = openai_snapshot(chunks_of(name))
    assert [c.index for c in theirs.choices] == [c.index for c in ours.choices]
    for mine, other in zip(ours.choices, theirs.choices, strict=True):
        message = other.message.to_dict()
        assert mine.content == (message.get("content") or "")
        assert mine.refusal == (message.get("refusal") or "")
        # The SDK keeps every string field it does not know, summed as it comes: a delta
        # with both names is in both (the kit counts it once).
        their_reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        assert mine.reasoning_content == their_reasoning
        if EXPECTED[name].openai_role_repeats:
            assert other.message.role == "assistant" * len(chunks_of(name))
        else:
            assert mine.role == other.message.role
        assert mine.finish_reason == other.finish_reason
        assert [(t.id, t.type, t.name, t.arguments) for t in mine.tool_calls] == [
            (t.id, t.type, t.function.name, t.function.arguments)
            for t in other.message.tool_calls or []
        ]
    assert (ours.id, ours.model, ours.created) == (theirs.id, theirs.model, theirs.created)
    if EXPECTED[name].openai_usage_differs:
        assert theirs.usage is None and ours.usage is not None
    else:
        assert ours.usage == (theirs.usage.to_dict() if theirs.usage else None)


@pytest.mark.parametrize("name", REJECTED)
def test_shapes_the_openai_sdk_rejects(name: str) -> None:
    pydantic = pytest.importorskip("pydantic")
    with pytest.raises(pydantic.ValidationError):
        openai_snapshot(chunks_of(name))
    check(assemble(chunks_of(name)), EXPECTED[name])  # while the kit gets them right


def test_openai_sdk_stream_path_loses_mistral_text() -> None:
    # openai.Stream builds chunks without validation (openai._models.construct_type). On
    # Mistral's content parts its accumulator then keeps only the last plain-string piece:
    # "你好！" and all the thinking are lost. Pinned so that this comment stays true.
    models = pytest.importorskip("openai._models")
    streaming = pytest.importorskip("openai.lib.streaming.chat")
    chat_types = pytest.importorskip("openai.types.chat")
    state = streaming.ChatCompletionStreamState()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic's "Expected `str`" serializer warnings
        for chunk in chunks_of("mistral_content_parts"):
            built = models.construct_type(type_=chat_types.ChatCompletionChunk, value=chunk)
            state.handle_chunk(built)
    assert state.current_completion_snapshot.choices[0].message.content == "有什么可以帮你？"
    assert assemble(chunks_of("mistral_content_parts")).content == "你好！有什么可以帮你？"


# --------------------------------------------------------------------------------------------
# 3. Over a real HTTP connection
# --------------------------------------------------------------------------------------------


def serve_once(body: bytes, piece: int) -> tuple[str, threading.Thread]:
    """A one-connection HTTP server sending ``body`` chunked, ``piece`` bytes per write."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for start in range(0, len(body), piece):
                    part = body[start : start + piece]
                    conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                conn.sendall(b"0\r\n\r\n")
                conn.shutdown(socket.SHUT_WR)  # a clean end of the body, not a reset

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions", thread


@pytest.mark.parametrize("name", NAMES)
def test_over_http_with_iter_sse(name: str) -> None:
    url, thread = serve_once(wire(name), piece=7)
    with requests.Session() as session:
        session.trust_env = False
        with session.get(url, stream=True, timeout=5) as response:  # no request body
            events = list(iter_sse(response, piece_size=5))
    thread.join(5)
    assert events[-1].data == "[DONE]"
    check(assemble(e.json() for e in events[:-1]), EXPECTED[name])
