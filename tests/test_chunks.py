"""Tests for lesson_helpers.chunks.

Recorded and hand-written provider streams, malformed input, hypothesis properties, and a
comparison with the accumulator of the official ``openai`` package.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lesson_helpers import seed
from lesson_helpers.chunks import (
    ChatResult,
    Choice,
    ChoiceDelta,
    ChunkAssembler,
    ChunkError,
    ToolCall,
    ToolCallDelta,
    assemble,
    completion_to_chunk,
    from_completion,
)

# The seed's SiliconFlow stream (Qwen/Qwen2.5-7B-Instruct, prompt "你好"), keys in the order
# it sent them: usage is cumulative in every chunk, "reasoning_content" is null in every
# delta, and the first and last deltas have empty content.
SILICONFLOW_SSE = seed.stream_bytes().decode("utf-8")


def sse_chunks(text: str) -> list[dict]:
    """The JSON chunks of an SSE body (enough for these tests: one data line per event)."""
    lines = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data:")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


SEED = sse_chunks(SILICONFLOW_SSE)
SEED_ANSWER = "你好！有什么问题或者需要帮助的吗？"


def chunk(*choices: dict, usage: dict | None = None, **top: Any) -> dict:
    """An OpenAI-style chunk holding the given choices."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000}
    return {**base, "model": "gpt-4o-mini", "choices": list(choices), "usage": usage, **top}


def choice(index: int = 0, finish_reason: str | None = None, **delta: Any) -> dict:
    """One entry of ``chunk["choices"]``; keyword arguments become the delta."""
    return {"index": index, "delta": delta, "finish_reason": finish_reason}


def tool(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict:
    """One tool call fragment of a delta."""
    fragment: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return fragment


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}

# OpenAI with stream_options={"include_usage": True}: usage null, then a usage-only chunk.
OPENAI_INCLUDE_USAGE = [
    chunk(choice(role="assistant", content=""), system_fingerprint="fp_1"),
    chunk(choice(content="Hello")),
    chunk(choice(content=" there")),
    chunk(choice(finish_reason="stop")),
    chunk(usage=USAGE),
]

# Two tool calls whose argument fragments arrive interleaved.
TOOL_CALL_STREAM = [
    chunk(
        choice(role="assistant", content=None, tool_calls=[tool(0, "", "call_a", "get_weather")])
    ),
    chunk(choice(tool_calls=[tool(1, "", "call_b", "get_time")])),
    chunk(choice(tool_calls=[tool(0, '{"city"')])),
    chunk(choice(tool_calls=[tool(1, '{"tz": "Europe/Paris"}')])),
    chunk(choice(tool_calls=[tool(0, ': "Paris"}')])),
    chunk(choice(finish_reason="tool_calls")),
    chunk(usage=USAGE),
]

# n=2, interleaved; choice 0 shows up first (the openai accumulator needs that).
TWO_CHOICES = [
    chunk(choice(0, role="assistant", content=""), choice(1, role="assistant", content="")),
    chunk(choice(1, content="Bonjour")),
    chunk(choice(0, content="Hello")),
    chunk(choice(0, content=" world")),
    chunk(choice(1, content=" le monde"), choice(0, finish_reason="stop")),
    chunk(choice(1, finish_reason="length")),
    chunk(usage=USAGE),
]

# DeepSeek-R1 style: reasoning first (content null), then content (reasoning null).
REASONING_STREAM = [
    chunk(choice(role="assistant", content=None, reasoning_content="")),
    chunk(choice(content=None, reasoning_content="The user greets me.")),
    chunk(choice(content=None, reasoning_content=" I greet back.")),
    chunk(choice(content="Hi", reasoning_content=None)),
    chunk(choice(content="!", reasoning_content=None)),
    chunk(choice(content="", reasoning_content=None, finish_reason="stop"), usage=USAGE),
]


# --- the recorded SiliconFlow stream ----------------------------------------------------


def test_seed_stream_is_parsed_as_twelve_chunks() -> None:
    assert len(SEED) == 12
    keys = ["id", "object", "created", "model", "choices", "system_fingerprint", "usage"]
    assert all(list(c) == keys for c in SEED)
    assert [c["usage"]["completion_tokens"] for c in SEED] == [0, *range(1, 11), 10]


def test_seed_module() -> None:
    assert seed.PROMPT == "你好"
    assert seed.ANSWER == "".join(seed.PIECES) == SEED_ANSWER
    assert [c["choices"][0]["delta"]["content"] for c in SEED] == ["", *seed.PIECES, ""]
    assert seed.stream_bytes() == seed.STREAM_FILE.read_bytes()
    assert seed.stream_bytes().endswith(b"data: [DONE]\n\n")
    reference = seed.reference_text()
    assert reference == seed.REFERENCE_FILE.read_text(encoding="utf-8")
    assert "# 逻辑上的完成" in reference  # the seed's own comment, kept as it showed it
    assert reference.count('"content": "') == len(seed.PIECES) + 2


def test_seed_stream_assembles() -> None:
    result = assemble(SEED)
    assert result.content == SEED_ANSWER
    assert result.role == "assistant"
    assert result.finish_reason == "stop"
    assert result.reasoning_content == ""
    assert result.tool_calls == []
    assert result.usage == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    assert result.id == "019a8fdafd091c809cf14705cced6e75"
    assert result.model == "Qwen/Qwen2.5-7B-Instruct"
    assert result.created == 1763350084
    assert result.system_fingerprint is None  # only "" was sent
    assert result.choices == [
        Choice(index=0, role="assistant", content=SEED_ANSWER, finish_reason="stop")
    ]
    assert result.to_message() == {"role": "assistant", "content": SEED_ANSWER}


def test_seed_stream_choice_deltas() -> None:
    assembler = ChunkAssembler()
    outputs = [assembler.add(c) for c in SEED]
    assert outputs[0] == []  # role only, empty content: nothing to display
    pieces = ["你好", "！", "有什么", "问题", "或者", "需要", "帮助", "的", "吗", "？"]
    assert outputs[1:11] == [[ChoiceDelta(index=0, content=p)] for p in pieces]
    assert outputs[11] == [ChoiceDelta(index=0, finish_reason="stop")]
    assert assembler.chunk_count == 12


def test_partial_result_mid_stream() -> None:
    assembler = ChunkAssembler()
    assert assembler.result() == ChatResult()
    for c in SEED[:4]:
        assembler.add(c)
    partial = assembler.result()
    assert partial.content == "你好！有什么"
    assert partial.finish_reason is None
    assert partial.usage == {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}
    assert assembler.result() == partial  # safe to call repeatedly
    # The snapshot is a copy: changing it changes nothing inside the assembler.
    partial.choices[0].content = "changed"
    partial.usage["completion_tokens"] = 99
    partial.choices.clear()
    assert assembler.result().content == "你好！有什么"
    assert assembler.result().usage["completion_tokens"] == 3
    for c in SEED[4:]:
        assembler.add(c)
    assert assembler.result().content == SEED_ANSWER
    assert partial.content == ""  # an old snapshot does not follow the stream


# --- other providers and features -------------------------------------------------------


@pytest.mark.parametrize("drop_choices_key", [False, True])
def test_openai_include_usage(drop_choices_key: bool) -> None:
    chunks = [dict(c) for c in OPENAI_INCLUDE_USAGE]
    if drop_choices_key:
        del chunks[-1]["choices"]  # a missing "choices" counts as []
    assembler = ChunkAssembler()
    for c in chunks[:-1]:
        assembler.add(c)
    assert assembler.result().usage is None  # "usage": null until the last chunk
    assert assembler.result().finish_reason == "stop"
    assert assembler.add(chunks[-1]) == []  # the usage-only chunk has no choice to show
    result = assembler.result()
    assert result.content == "Hello there"
    assert result.finish_reason == "stop"
    assert result.usage == USAGE
    assert result.system_fingerprint == "fp_1"
    assert len(result.choices) == 1


def test_usage_is_the_latest_non_null() -> None:
    first = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    result = assemble([chunk(choice(content="a"), usage=first), chunk(usage=USAGE), chunk()])
    assert result.usage == USAGE
    assert assemble([chunk(choice(content="a"))]).usage is None


def test_reasoning_model() -> None:
    assembler = ChunkAssembler()
    outputs = [assembler.add(c) for c in REASONING_STREAM]
    assert outputs == [
        [],
        [ChoiceDelta(index=0, reasoning_content="The user greets me.")],
        [ChoiceDelta(index=0, reasoning_content=" I greet back.")],
        [ChoiceDelta(index=0, content="Hi")],
        [ChoiceDelta(index=0, content="!")],
        [ChoiceDelta(index=0, finish_reason="stop")],
    ]
    result = assembler.result()
    assert result.reasoning_content == "The user greets me. I greet back."
    assert result.content == "Hi!"
    assert result.to_message() == {"role": "assistant", "content": "Hi!"}  # no reasoning


def test_two_interleaved_tool_calls() -> None:
    assembler = ChunkAssembler()
    outputs = [assembler.add(c) for c in TOOL_CALL_STREAM]
    # No text to display, but each chunk says what it added to which call.
    assert outputs[:5] == [
        [ChoiceDelta(index=0, tool_calls=[ToolCallDelta(0, "call_a", "get_weather", "")])],
        [ChoiceDelta(index=0, tool_calls=[ToolCallDelta(1, "call_b", "get_time", "")])],
        [ChoiceDelta(index=0, tool_calls=[ToolCallDelta(0, None, "", '{"city"')])],
        [ChoiceDelta(index=0, tool_calls=[ToolCallDelta(1, None, "", '{"tz": "Europe/Paris"}')])],
        [ChoiceDelta(index=0, tool_calls=[ToolCallDelta(0, None, "", ': "Paris"}')])],
    ]
    assert all(not d.content for out in outputs for d in out)
    result = assembler.result()
    assert result.content == ""
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        ToolCall(index=0, id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(index=1, id="call_b", name="get_time", arguments='{"tz": "Europe/Paris"}'),
    ]
    assert json.loads(result.tool_calls[0].arguments) == {"city": "Paris"}
    assert result.to_message() == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
            },
        ],
    }


def test_tool_call_fragments_out_of_order_and_split_names() -> None:
    result = assemble(
        [
            chunk(choice(tool_calls=[{"index": 2, "id": "call_z", "function": {"name": "lo"}}])),
            chunk(
                choice(tool_calls=[{"index": 2, "id": "call_other", "function": {"name": "ok"}}])
            ),
            chunk(choice(tool_calls=[{"index": 0, "function": {"name": "get", "arguments": "{"}}])),
            chunk(choice(tool_calls=[{"index": 0, "function": {"arguments": "}"}}])),
        ]
    )
    assert result.tool_calls == [
        ToolCall(index=0, id=None, name="get", arguments="{}"),
        ToolCall(index=2, id="call_z", name="look", arguments=""),  # the first id is kept
    ]
    assert result.role is None
    assert result.to_message()["role"] == "assistant"


def test_two_choices_interleaved_out_of_order() -> None:
    chunks = [
        chunk(choice(1, role="assistant", content="B")),
        chunk(choice(0, role="assistant", content="A")),
        chunk(choice(1, content="b", finish_reason="stop"), choice(0, content="a")),
        chunk(choice(0, finish_reason="length")),
    ]
    assembler = ChunkAssembler()
    outputs = [assembler.add(c) for c in chunks]
    assert outputs[2] == [
        ChoiceDelta(index=1, content="b", finish_reason="stop"),
        ChoiceDelta(index=0, content="a"),
    ]
    result = assembler.result()
    assert [(c.index, c.content, c.finish_reason) for c in result.choices] == [
        (0, "Aa", "length"),
        (1, "Bb", "stop"),
    ]
    assert result.content == "Aa"  # the properties read choice 0


def test_finish_reason_length_and_last_non_null_wins() -> None:
    result = assemble(
        [
            chunk(choice(content="Once upon a")),
            chunk(choice(content=" time", finish_reason="length")),
            chunk(choice(finish_reason=None), usage=USAGE),
        ]
    )
    assert result.finish_reason == "length"
    assert result.content == "Once upon a time"
    result = assemble([chunk(choice(finish_reason="stop")), chunk(choice(finish_reason="length"))])
    assert result.finish_reason == "length"


def test_role_first_non_null_is_kept() -> None:
    chunks = [chunk(choice(role=None)), chunk(choice(role="assistant")), chunk(choice(role="x"))]
    assert assemble(chunks).role == "assistant"


def test_metadata_comes_from_the_first_chunk_that_has_it() -> None:
    result = assemble(
        [
            {"id": "", "model": "", "created": None, "system_fingerprint": "", "choices": []},
            {"id": "chatcmpl-9", "model": "m1", "created": 5, "system_fingerprint": "fp_9"},
            {"id": "chatcmpl-other", "model": "m2", "created": 6, "system_fingerprint": "fp_x"},
        ]
    )
    assert (result.id, result.model, result.created) == ("chatcmpl-9", "m1", 5)
    assert result.system_fingerprint == "fp_9"
    assert result.choices == []


def test_empty_result() -> None:
    result = assemble([])
    assert result == ChatResult()
    assert (result.content, result.reasoning_content, result.tool_calls) == ("", "", [])
    assert (result.finish_reason, result.role, result.usage) == (None, None, None)
    assert result.to_message() == {"role": "assistant", "content": ""}


def test_lenient_shapes_are_accepted() -> None:
    chunks = [
        {},
        {"choices": None},
        {"choices": [{"index": 0}]},
        {"choices": [{"index": 0, "delta": None, "finish_reason": ""}]},
        {"choices": [{"index": 0, "delta": {"content": "x", "refusal": None, "extra": [1]}}]},
        {"error": None, "choices": [{"index": 0, "delta": {"tool_calls": None}}]},
    ]
    result = assemble(chunks)
    assert result.content == "x"
    assert result.finish_reason is None


# --- the shapes of issue 14 -------------------------------------------------------------------


def test_reasoning_from_either_field_and_counted_once() -> None:
    result = assemble(
        [
            chunk(choice(role="assistant", reasoning="Groq ")),  # Groq, OpenRouter, vLLM
            chunk(choice(reasoning_content="DeepSeek ", reasoning=None)),
            chunk(choice(reasoning="same", reasoning_content="same")),  # vLLM fills both
            chunk(choice(reasoning_content="", reasoning=" end")),
            chunk(choice(content="answer", reasoning=None)),
        ]
    )
    assert result.reasoning_content == "Groq DeepSeek same end"
    assert result.content == "answer"


def test_content_as_a_list_of_parts() -> None:
    def parts(*items: dict) -> dict:
        return chunk(choice(content=list(items)))

    def thinking(*texts: str) -> dict:
        return {"type": "thinking", "thinking": [{"type": "text", "text": t} for t in texts]}

    assembler = ChunkAssembler()
    outputs = [
        assembler.add(parts(thinking("Let me ", "think."))),
        assembler.add(parts({"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"})),
        assembler.add(parts({"type": "image_url", "image_url": {"url": "x"}})),  # ignored
        assembler.add(parts({"type": "thinking", "thinking": " More."}, {"type": "text"})),
        assembler.add(
            parts({"type": "reference", "reference_ids": [1]}, {"type": "text", "text": "!"})
        ),
        assembler.add(chunk(choice(content=" Plain."))),
        assembler.add(parts()),
    ]
    assert outputs == [
        [ChoiceDelta(index=0, reasoning_content="Let me think.")],
        [ChoiceDelta(index=0, content="Bonjour")],
        [],
        [ChoiceDelta(index=0, reasoning_content=" More.")],
        [ChoiceDelta(index=0, content="!")],
        [ChoiceDelta(index=0, content=" Plain.")],
        [],
    ]
    result = assembler.result()
    assert (result.content, result.reasoning_content) == ("Bonjour! Plain.", "Let me think. More.")


def test_tool_call_fragments_without_index() -> None:
    def call(**fragment: Any) -> dict:
        return chunk(choice(tool_calls=[fragment]))

    result = assemble(
        [
            call(function={"arguments": "{"}),  # no call yet: it starts call 0
            call(id="call_a", function={"name": "f"}),  # a new id: the next call (1)
            call(function={"arguments": '"x": 1}'}),  # no id: continues the newest call
            call(id="", function={"arguments": ""}),  # "" is no id either
            call(id="call_b", type="function", function={"name": "g", "arguments": "{}"}),
            call(id="call_a", function={"arguments": "!"}),  # a known id: that call
            chunk(choice(tool_calls=[{"id": "call_c"}, {"id": "call_d"}])),  # two in one delta
        ]
    )
    assert result.tool_calls == [
        ToolCall(index=0, id=None, name="", arguments="{"),
        ToolCall(index=1, id="call_a", name="f", arguments='"x": 1}!'),
        ToolCall(index=2, id="call_b", name="g", arguments="{}"),
        ToolCall(index=3, id="call_c"),
        ToolCall(index=4, id="call_d"),
    ]


def test_empty_id_never_overwrites_a_real_id() -> None:
    result = assemble(
        [
            chunk(choice(tool_calls=[tool(0, "", "call_real", "get_weather")])),
            chunk(choice(tool_calls=[{**tool(0, '{"a": 1}'), "id": "", "type": "function"}])),
            chunk(choice(tool_calls=[{"index": 1, "id": "", "function": {"name": "h"}}])),
            chunk(choice(tool_calls=[{"index": 1, "id": "call_late", "function": {}}])),
        ]
    )
    assert [(c.index, c.id, c.name, c.arguments) for c in result.tool_calls] == [
        (0, "call_real", "get_weather", '{"a": 1}'),
        (1, "call_late", "h", ""),  # the first non-empty id, even when it comes late
    ]


def test_whole_tool_call_in_one_delta_and_tool_call_deltas() -> None:
    whole = {
        "index": 0,
        "id": "call_w",
        "type": "function",
        "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
    }
    assembler = ChunkAssembler()
    news = assembler.add(chunk(choice(role="assistant", tool_calls=[whole])))
    assert news == [
        ChoiceDelta(index=0, tool_calls=[ToolCallDelta(0, "call_w", "get_time", '{"tz": "UTC"}')])
    ]
    assert assembler.tool_calls() == [
        ToolCall(index=0, id="call_w", name="get_time", arguments='{"tz": "UTC"}')
    ]
    assembler.tool_calls()[0].arguments = "changed"  # a copy
    assert assembler.tool_calls()[0].arguments == '{"tz": "UTC"}'


def test_refusal_is_kept() -> None:
    assembler = ChunkAssembler()
    outputs = [
        assembler.add(c)
        for c in [
            chunk(choice(role="assistant", content=None, refusal="")),
            chunk(choice(refusal="I can't")),
            chunk(choice(refusal=" help with that.")),
            chunk(choice(finish_reason="stop")),
        ]
    ]
    assert outputs[1] == [ChoiceDelta(index=0, refusal="I can't")]
    result = assembler.result()
    assert result.refusal == assembler.refusal() == "I can't help with that."
    assert result.choices[0].refusal == "I can't help with that."
    assert result.content == ""
    assert result.to_message() == {
        "role": "assistant",
        "content": "",
        "refusal": "I can't help with that.",
    }


def test_usage_from_x_groq() -> None:
    groq_usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "queue_time": 0.1}
    result = assemble(
        [
            chunk(choice(content="hi"), x_groq={"id": "req_1"}),
            chunk(choice(finish_reason="stop"), x_groq={"id": "req_1", "usage": groq_usage}),
        ]
    )
    assert result.usage == groq_usage
    # A top-level usage wins over x_groq's; an x_groq that is not an object is ignored.
    both = assemble([chunk(usage=USAGE, x_groq={"usage": groq_usage}), chunk(x_groq="?")])
    assert both.usage == USAGE


def test_nulls_and_unknown_fields_are_ignored() -> None:
    chunks = [
        {  # Azure's prompt-filter chunk: empty id and model, created 0, object ""
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        },
        chunk(
            {
                "index": 0,
                "delta": {"content": "a", "role": None, "tool_calls": None, "refusal": None},
                "logprobs": {"content": [{"token": "a", "logprob": -0.1, "bytes": [97]}]},
                "matched_stop": None,
                "content_filter_results": {"hate": {"filtered": False}},
            },
            obfuscation="xY12",
            service_tier="default",
            error=None,
        ),
        chunk({"index": 0, "delta": {}, "finish_reason": "stop", "matched_stop": 100257}),
    ]
    result = assemble(chunks)
    assert result.content == "a"
    assert result.finish_reason == "stop"
    assert (result.id, result.model, result.created) == ("chatcmpl-1", "gpt-4o-mini", 1700000000)


def test_live_readers() -> None:
    assembler = ChunkAssembler()
    assert (assembler.content(), assembler.reasoning(), assembler.refusal()) == ("", "", "")
    assert (assembler.tool_calls(), assembler.finish_reason(), assembler.usage) == ([], None, None)
    for c in SEED[:4]:
        assembler.add(c)
    assert assembler.content() == "你好！有什么"
    assert assembler.content() == "你好！有什么"  # reading twice is fine
    for c in SEED[4:]:
        assembler.add(c)
    assert assembler.content() == SEED_ANSWER
    assert assembler.finish_reason() == "stop"
    assert assembler.content(1) == "" and assembler.finish_reason(1) is None
    usage = assembler.usage
    assert usage == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    usage["total_tokens"] = 0  # a copy
    assert assembler.usage["total_tokens"] == 40
    assert assembler.result().usage is not assembler.result().usage


def test_readers_in_another_thread_see_a_prefix_and_lose_nothing() -> None:
    import threading

    pieces = [f"{i}," for i in range(20000)]
    assembler = ChunkAssembler()
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(assembler.content())
            seen.append(assembler.result().content)

    reader = threading.Thread(target=read)
    reader.start()
    for piece in pieces:
        assembler.add(chunk(choice(content=piece)))
    done.set()
    reader.join()
    full = "".join(pieces)
    assert assembler.content() == full == assembler.result().content
    assert all(full.startswith(text) for text in seen)


def test_no_recursion_error_on_deep_nesting() -> None:
    deep: dict = {"total_tokens": 1}
    for _ in range(5000):
        deep = {"details": deep}
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    assembler = ChunkAssembler()
    assembler.add(chunk(choice(content="a", extra=nested), usage=deep, junk=nested))
    thinking: Any = [{"type": "text", "text": "t"}]
    for _ in range(5000):
        thinking = [{"type": "thinking", "thinking": thinking}]
    assembler.add(chunk(choice(content=thinking)))  # nested thinking parts are not read
    result = assembler.result()
    assert result.content == "a"
    copied = assembler.usage
    for _ in range(5000):
        copied = copied["details"]
    assert copied == {"total_tokens": 1}
    with pytest.raises(ChunkError, match="content"):
        assembler.add(chunk(choice(content=[nested])))


# --- from_completion and completion_to_chunk ---------------------------------------------------


def test_from_completion() -> None:
    body = {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 1700000001,
        "model": "deepseek-reasoner",
        "choices": [
            {
                "index": 1,
                "message": {"role": "assistant", "content": "Second"},
                "finish_reason": "length",
            },
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "Weather needs a tool.",
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
                "finish_reason": "tool_calls",
            },
        ],
        "usage": USAGE,
    }
    result = from_completion(body)
    assert (result.id, result.model, result.created) == (
        "chatcmpl-2",
        "deepseek-reasoner",
        1700000001,
    )
    assert result.usage == USAGE
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[1] == Choice(
        1, role="assistant", content="Second", finish_reason="length"
    )
    assert result.reasoning_content == "Weather needs a tool."
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        ToolCall(index=0, id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(index=1, id="call_b", name="get_time", arguments="{}"),
    ]
    assert result.to_message()["tool_calls"][1]["function"] == {
        "name": "get_time",
        "arguments": "{}",
    }
    assert body["choices"][1]["message"]["tool_calls"][0].get("index") is None  # not modified


def test_completion_to_chunk_keeps_every_message_field() -> None:
    body = {
        "id": "chatcmpl-3",
        "object": "chat.completion",
        "created": 1700000002,
        "model": "gpt-4o",
        "system_fingerprint": "fp_3",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "reasoning": "Needs a tool.",
                    "refusal": None,
                    "annotations": [],
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE,
    }
    before = json.dumps(body)
    one = completion_to_chunk(body)
    assert json.dumps(body) == before  # the body is not changed
    assert one["object"] == "chat.completion.chunk"
    assert (one["id"], one["model"], one["created"]) == ("chatcmpl-3", "gpt-4o", 1700000002)
    assert one["system_fingerprint"] == "fp_3"
    assert one["usage"] == USAGE
    delta = one["choices"][0]["delta"]
    assert delta["content"] == "Let me check."
    assert delta["reasoning"] == "Needs a tool."
    assert delta["annotations"] == []
    assert delta["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            "index": 0,
        }
    ]
    assert one["choices"][0]["finish_reason"] == "tool_calls"
    assert "message" not in one["choices"][0]
    result = from_completion(body)
    assert result == assemble([one])
    assert result.tool_calls == [
        ToolCall(index=0, id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
    ]
    assert result.reasoning_content == "Needs a tool."
    assert result.system_fingerprint == "fp_3"
    news = ChunkAssembler().add(one)
    assert news[0].tool_calls == [ToolCallDelta(0, "call_1", "get_weather", '{"city": "Oslo"}')]


def test_completion_to_chunk_refusal_and_missing_choice_index() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": None, "refusal": "No."}}]}
    result = from_completion(body)
    assert result.refusal == "No."
    assert completion_to_chunk(body)["choices"][0]["index"] == 0


def test_from_completion_matches_the_streamed_result() -> None:
    body = {
        "id": SEED[0]["id"],
        "object": "chat.completion",
        "created": SEED[0]["created"],
        "model": SEED[0]["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": SEED_ANSWER},
                "finish_reason": "stop",
            }
        ],
        "system_fingerprint": "",
        "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
    }
    assert from_completion(body) == assemble(SEED)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"choices": {}},
        {"choices": [1]},
        {"choices": [{"index": 0, "message": "hi"}]},
        {"choices": [{"index": 0, "message": {"content": 3}}]},
        {"choices": [{"index": 0, "message": {"tool_calls": ["x"]}}]},
        {"error": {"message": "model not found"}},
    ],
)
def test_from_completion_rejects_malformed_bodies(body: Any) -> None:
    with pytest.raises(ChunkError):
        from_completion(body)


# --- malformed chunks ---------------------------------------------------------------------

MALFORMED = [
    (None, "chunk must be an object"),
    ("data: [DONE]", "chunk must be an object"),
    ([{"choices": []}], "chunk must be an object"),
    ({"choices": {"index": 0}}, "chunk.choices"),
    ({"choices": "abc"}, "chunk.choices"),
    ({"choices": [None]}, "choices[0] must be an object"),
    ({"choices": [{"delta": {}}]}, "choices[0].index"),
    ({"choices": [{"index": "0", "delta": {}}]}, "choices[0].index"),
    ({"choices": [{"index": 1.0, "delta": {}}]}, "choices[0].index"),
    ({"choices": [{"index": True, "delta": {}}]}, "choices[0].index"),
    ({"choices": [{"index": -1, "delta": {}}]}, "choices[0].index"),
    ({"choices": [{"index": 0, "delta": "text"}]}, "choices[0].delta"),
    ({"choices": [{"index": 0, "delta": []}]}, "choices[0].delta"),
    ({"choices": [{"index": 0, "delta": {"content": 5}}]}, "choices[0].delta.content"),
    ({"choices": [{"index": 0, "delta": {"content": ["a"]}}]}, "choices[0].delta.content"),
    ({"choices": [{"index": 0, "delta": {"reasoning_content": {}}}]}, "reasoning_content"),
    ({"choices": [{"index": 0, "delta": {"role": 1}}]}, "choices[0].delta.role"),
    ({"choices": [{"index": 0, "finish_reason": 0}]}, "choices[0].finish_reason"),
    ({"choices": [{"index": 0, "delta": {"tool_calls": {}}}]}, "delta.tool_calls"),
    ({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": -1}]}}]}, "tool_calls[0].index"),
    (
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "0"}]}}]},
        "tool_calls[0].index",
    ),
    ({"choices": [{"index": 0, "delta": {"tool_calls": [{"id": 5}]}}]}, "tool_calls[0].id"),
    ({"choices": [{"index": 0, "delta": {"tool_calls": [1]}}]}, "tool_calls[0] must be"),
    (
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]},
        "tool_calls[0].function",
    ),
    (
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": {}}}]}}
            ]
        },
        "tool_calls[0].function.arguments",
    ),
    ({"usage": [1]}, "chunk.usage"),
    ({"created": "now"}, "chunk.created"),
    ({"created": True}, "chunk.created"),
    ({"id": 7}, "chunk.id"),
    ({"model": False}, "chunk.model"),
    # The shapes of issue 14, gone wrong:
    ({"choices": [{"index": 0, "delta": {"reasoning": 1}}]}, "choices[0].delta.reasoning"),
    ({"choices": [{"index": 0, "delta": {"refusal": []}}]}, "choices[0].delta.refusal"),
    ({"choices": [{"index": 0, "delta": {"content": {"type": "text"}}}]}, "delta.content"),
    (
        {"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": 1}]}}]},
        "choices[0].delta.content[0].text",
    ),
    (
        {"choices": [{"index": 0, "delta": {"content": [{"type": "thinking", "thinking": 2}]}}]},
        "choices[0].delta.content[0].thinking",
    ),
    (
        {"choices": [{"index": 0, "delta": {"content": [{"type": "thinking", "thinking": [3]}]}}]},
        "choices[0].delta.content[0].thinking[0]",
    ),
    ({"x_groq": {"usage": "a lot"}}, "chunk.x_groq.usage"),
]


@pytest.mark.parametrize(("bad", "where"), MALFORMED)
def test_malformed_chunks_raise_chunk_error(bad: Any, where: str) -> None:
    assembler = ChunkAssembler()
    assembler.add(SEED[0])
    before = assembler.result()
    with pytest.raises(ChunkError, match=r"^[^\n]+$") as caught:
        assembler.add(bad)
    assert where in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert assembler.result() == before  # a rejected chunk changes nothing
    assert assembler.chunk_count == 1


def test_rejected_chunk_changes_nothing_even_when_its_first_choice_is_fine() -> None:
    assembler = ChunkAssembler()
    bad = chunk(choice(0, content="kept?"), {"index": 1, "delta": {"content": 1}}, usage=USAGE)
    with pytest.raises(ChunkError, match=r"choices\[1\]\.delta\.content"):
        assembler.add(bad)
    assert assembler.result() == ChatResult()
    assert assembler.chunk_count == 0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            {"message": "Rate limit reached\nfor requests", "code": 429},
            "Rate limit reached for requests",
        ),
        ("upstream  timeout", "upstream timeout"),
        ({"code": 500}, "dict without a message"),
        ({"message": " \n "}, "dict without a message"),
        (["?"], "list without a message"),
    ],
)
def test_provider_error_mid_stream(error: Any, expected: str) -> None:
    assembler = ChunkAssembler()
    assembler.add(SEED[0])
    assembler.add(SEED[1])
    with pytest.raises(ChunkError) as caught:
        assembler.add({"error": error})
    assert str(caught.value) == f"the provider sent an error: {expected}"
    assert assembler.result().content == "你好"


def test_long_provider_error_is_shortened() -> None:
    with pytest.raises(ChunkError) as caught:
        assemble([{"error": {"message": "overloaded " * 1000}}])
    assert str(caught.value).startswith("the provider sent an error: overloaded overloaded")
    assert len(str(caught.value)) < 400


# --- hypothesis ---------------------------------------------------------------------------

# "Nothing" can be written three ways; each must be ignored.
nothing = st.sampled_from([{}, {"content": None}, {"content": ""}])


@given(text=st.text(), data=st.data())
@settings(max_examples=300, deadline=None)
def test_any_split_of_the_content_reassembles(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    deltas = []
    for piece in pieces:
        deltas.append({"content": piece, "reasoning_content": None})
        deltas.extend(data.draw(st.lists(nothing, max_size=2)))
    assembler = ChunkAssembler()
    shown = [assembler.add(chunk(choice(**delta))) for delta in deltas]
    assert assembler.result().content == text
    assert "".join(d.content for out in shown for d in out) == text
    assert all(d.content for out in shown for d in out)  # no empty deltas are reported


@given(arguments=st.lists(st.text(max_size=5), max_size=8), order=st.randoms())
@settings(max_examples=200, deadline=None)
def test_any_split_of_two_tool_calls_reassembles(arguments: list[str], order: Any) -> None:
    fragments = [(i % 2, piece) for i, piece in enumerate(arguments)]
    expected = ["".join(p for idx, p in fragments if idx == k) for k in (0, 1)]
    # Keep the order within each call, interleave the two calls at random.
    queues = [[f for f in fragments if f[0] == k] for k in (0, 1)]
    stream = [chunk(choice(tool_calls=[tool(k, "", f"call_{k}", f"fn_{k}")])) for k in (1, 0)]
    while queues[0] or queues[1]:
        k = order.choice([k for k in (0, 1) if queues[k]])
        index, piece = queues[k].pop(0)
        stream.append(chunk(choice(tool_calls=[tool(index, piece)])))
    result = assemble(stream)
    assert [c.arguments for c in result.tool_calls] == expected
    assert [c.name for c in result.tool_calls] == ["fn_0", "fn_1"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Either a well-formed value or any JSON value at all."""
    return valid | json_values


def shape(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """Dicts holding any subset of the given fields."""
    return st.fixed_dictionaries({}, optional=fields)


fragment_shapes = shape(
    index=maybe(st.integers(0, 2)),
    id=maybe(st.just("call_1")),
    type=maybe(st.just("function")),
    function=maybe(shape(name=maybe(st.text(max_size=3)), arguments=maybe(st.text(max_size=3)))),
)
text_part = shape(
    type=maybe(st.sampled_from(["text", "image_url"])), text=maybe(st.text(max_size=3))
)
content_parts = st.lists(
    maybe(text_part | shape(type=st.just("thinking"), thinking=maybe(st.lists(maybe(text_part))))),
    max_size=3,
)
delta_shapes = shape(
    role=maybe(st.just("assistant")),
    content=maybe(st.text(max_size=5) | content_parts),
    reasoning_content=maybe(st.text(max_size=5)),
    reasoning=maybe(st.text(max_size=5)),
    refusal=maybe(st.text(max_size=5)),
    tool_calls=maybe(st.lists(maybe(fragment_shapes), max_size=3)),
)
choice_shapes = shape(
    index=maybe(st.integers(0, 2)),
    delta=maybe(delta_shapes),
    message=maybe(delta_shapes),
    finish_reason=maybe(st.sampled_from(["stop", "length", "tool_calls", ""])),
)
chunk_shapes = shape(
    id=maybe(st.text(max_size=3)),
    model=maybe(st.text(max_size=3)),
    created=maybe(st.integers()),
    system_fingerprint=maybe(st.text(max_size=3)),
    usage=maybe(st.dictionaries(st.sampled_from(["prompt_tokens", "total_tokens"]), st.integers())),
    x_groq=maybe(shape(usage=maybe(st.dictionaries(st.just("total_tokens"), st.integers())))),
    choices=maybe(st.lists(maybe(choice_shapes), max_size=3)),
    error=st.none() | json_values,
)


def assert_sane(result: ChatResult) -> None:
    indexes = [c.index for c in result.choices]
    assert indexes == sorted(set(indexes))
    for c in result.choices:
        assert isinstance(c.content, str) and isinstance(c.reasoning_content, str)
        assert isinstance(c.refusal, str)
        assert [t.index for t in c.tool_calls] == sorted({t.index for t in c.tool_calls})
        assert isinstance(c.to_message(), dict)


@given(st.lists(chunk_shapes | json_values, max_size=6))
@settings(max_examples=500, deadline=None)
def test_fuzzing_raises_only_chunk_error(chunks: list[Any]) -> None:
    assembler = ChunkAssembler()
    accepted = 0
    for c in chunks:
        before = assembler.result()
        try:
            deltas = assembler.add(c)
        except ChunkError as error:
            assert len(str(error).splitlines()) == 1
            assert assembler.result() == before
        else:
            accepted += 1
            assert all(isinstance(d, ChoiceDelta) for d in deltas)
    assert assembler.chunk_count == accepted
    assert_sane(assembler.result())


@given(chunk_shapes | json_values)
@settings(max_examples=300, deadline=None)
def test_fuzzing_from_completion_raises_only_chunk_error(body: Any) -> None:
    try:
        result = from_completion(body)
    except ChunkError as error:
        assert len(str(error).splitlines()) == 1
    else:
        assert_sane(result)


# --- agreement with the official openai package -----------------------------------------------


def openai_final(chunks: list[dict]) -> Any:
    """Feed the chunks to openai's own accumulator and return its snapshot.

    (``get_final_completion()`` would also parse, and refuses finish_reason "length".)
    """
    streaming = pytest.importorskip("openai.lib.streaming.chat")
    chat_types = pytest.importorskip("openai.types.chat")
    state = streaming.ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(chat_types.ChatCompletionChunk.model_validate(c))
    return state.current_completion_snapshot


STREAMS = {
    "siliconflow": SEED,
    "openai-include-usage": OPENAI_INCLUDE_USAGE,
    "tool-calls": TOOL_CALL_STREAM,
    "two-choices": TWO_CHOICES,
    "reasoning": REASONING_STREAM,
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_agrees_with_openai_accumulator(name: str) -> None:
    chunks = STREAMS[name]
    ours = assemble(chunks)
    theirs = openai_final(chunks)
    assert [c.index for c in ours.choices] == [c.index for c in theirs.choices]
    for mine, other in zip(ours.choices, theirs.choices, strict=True):
        assert mine.content == (other.message.content or "")
        assert mine.role == other.message.role
        assert mine.finish_reason == other.finish_reason
        their_calls = other.message.tool_calls or []
        assert [(t.id, t.type, t.name, t.arguments) for t in mine.tool_calls] == [
            (t.id, t.type, t.function.name, t.function.arguments) for t in their_calls
        ]
    assert ours.usage == (theirs.usage.to_dict() if theirs.usage else None)
    assert (ours.id, ours.model, ours.created) == (theirs.id, theirs.model, theirs.created)


@given(pieces=st.lists(st.text(max_size=4) | st.none(), max_size=10))
@settings(max_examples=100, deadline=None)
def test_content_agrees_with_openai_accumulator(pieces: list[str | None]) -> None:
    chunks = [chunk(choice(role="assistant", content=""))]
    chunks += [chunk(choice(content=p)) for p in pieces]
    chunks.append(chunk(choice(finish_reason="stop"), usage=USAGE))
    theirs = openai_final(chunks)
    assert assemble(chunks).content == (theirs.choices[0].message.content or "")
