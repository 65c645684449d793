"""The official `anthropic` SDK, unchanged, as a client of the local server's /v1/messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from lesson_helpers.messages import MessageAssembler, assemble
from lesson_helpers.sse import SSEParser

anthropic = pytest.importorskip("anthropic")

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
REASONING_MODEL = "deepseek-ai/DeepSeek-R1"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
HELLO = [{"role": "user", "content": "你好"}]
TWO_CITIES = [{"role": "user", "content": "北京和上海的天气怎么样？"}]
WEATHER = {
    "name": "get_weather",
    "description": "查询一个城市现在的天气",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def root(server) -> str:
    """The SDK adds /v1 itself: its base_url is the server without /v1."""
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def client(server):
    with anthropic.Anthropic(
        base_url=root(server), api_key=server.api_key, max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def test_messages_create(client):
    message = client.messages.create(model=SEED_MODEL, max_tokens=100, messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == SEED_TEXT
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 10)
    assert message._request_id  # from the request-id header


def test_messages_create_with_system_and_stop_sequences(client):
    message = client.messages.create(
        model=SEED_MODEL,
        max_tokens=100,
        system="回答要简短。",
        stop_sequences=["问题"],
        messages=HELLO,
    )
    assert message.content[0].text == "你好！有什么"
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "问题"


def test_messages_stream_text_stream_and_final_message(client):
    with client.messages.stream(model=SEED_MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == SEED_TEXT and len(pieces) == 10
    assert final.content[0].text == SEED_TEXT and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 10


def test_messages_stream_get_final_text_and_events(client):
    with client.messages.stream(model=SEED_MODEL, max_tokens=100, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        assert stream.get_final_text() == SEED_TEXT
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("text") == 10  # the SDK's own text events, one per delta


def test_a_reasoning_model_gives_a_thinking_block(client):
    with client.messages.stream(model=REASONING_MODEL, max_tokens=200, messages=HELLO) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_message()
    assert {"thinking", "signature"} <= kinds
    thinking, text = final.content
    assert thinking.type == "thinking" and "你好" in thinking.thinking and thinking.signature
    assert text.text == SEED_TEXT


def test_tool_use_the_whole_loop(client):
    first = client.messages.create(
        model=SEED_MODEL, max_tokens=200, tools=[WEATHER], messages=TWO_CITIES
    )
    assert first.stop_reason == "tool_use"
    calls = [block for block in first.content if block.type == "tool_use"]
    assert [c.input for c in calls] == [{"city": "北京"}, {"city": "上海"}]
    temperatures = {"北京": 23, "上海": 26}
    results = [
        {
            "type": "tool_result",
            "tool_use_id": c.id,
            "content": json.dumps({"temperature": temperatures[c.input["city"]]}),
        }
        for c in calls
    ]
    messages = [
        *TWO_CITIES,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": results},
    ]
    final = client.messages.create(
        model=SEED_MODEL, max_tokens=200, tools=[WEATHER], messages=messages
    )
    assert final.stop_reason == "end_turn"
    assert "北京气温 23°C" in final.content[0].text and "上海气温 26°C" in final.content[0].text


def test_streamed_tool_use_input_json(client):
    with client.messages.stream(
        model=SEED_MODEL, max_tokens=200, tools=[WEATHER], messages=TWO_CITIES
    ) as stream:
        partials = [event.partial_json for event in stream if event.type == "input_json"]
        final = stream.get_final_message()
    assert len(partials) >= 8
    assert [block.input for block in final.content] == [{"city": "北京"}, {"city": "上海"}]


def test_bearer_auth_token_works_too(server):
    with anthropic.Anthropic(
        base_url=root(server), auth_token=server.api_key, max_retries=0, timeout=10
    ) as sdk:
        message = sdk.messages.create(model=SEED_MODEL, max_tokens=50, messages=HELLO)
    assert message.content[0].text == SEED_TEXT


def test_errors_are_the_sdk_exceptions(server, client):
    with anthropic.Anthropic(
        base_url=root(server), api_key="fake-key-wrong-0000", max_retries=0, timeout=10
    ) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as info:
            wrong.messages.create(model=SEED_MODEL, max_tokens=50, messages=HELLO)
    assert "fake-key-wrong-0000" not in str(info.value)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nothing", max_tokens=50, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model=SEED_MODEL, max_tokens=50, messages=[{"role": "system", "content": "x"}]
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.InternalServerError) as busy:
        client.messages.create(model="fault-messages-529", max_tokens=50, messages=HELLO)
    assert busy.value.status_code == 529


def test_an_overloaded_error_event_mid_stream(client):
    with client.messages.stream(
        model="fault-messages-overloaded", max_tokens=100, messages=HELLO
    ) as stream:
        pieces = []
        with pytest.raises(anthropic.APIStatusError) as info:
            for piece in stream.text_stream:
                pieces.append(piece)
    assert "".join(pieces) == "你好！有什么"
    assert info.value.body["error"]["type"] == "overloaded_error"


# -- lesson_helpers.messages against the SDK's own accumulation ---------------------------------
MESSAGE_CASES: dict[str, dict[str, Any]] = {
    "seed": {"model": SEED_MODEL, "messages": HELLO},
    "thinking": {"model": REASONING_MODEL, "messages": HELLO},
    "tools": {"model": SEED_MODEL, "messages": TWO_CITIES, "tools": [WEATHER]},
    "thinking+tools": {"model": REASONING_MODEL, "messages": TWO_CITIES, "tools": [WEATHER]},
    "stop_sequence": {"model": SEED_MODEL, "messages": HELLO, "stop_sequences": ["需要"]},
    "max_tokens": {"model": REASONING_MODEL, "messages": HELLO, "max_tokens": 30},
}
_BLOCK_FIELDS = {
    "text": ("type", "text"),
    "thinking": ("type", "thinking", "signature"),
    "tool_use": ("type", "id", "name", "input"),
}


def blocks_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: b.get(k) for k in _BLOCK_FIELDS[b["type"]]} for b in blocks]


def sdk_summary(final) -> dict[str, Any]:
    return {
        "id": final.id,
        "model": final.model,
        "content": blocks_of([b.model_dump() for b in final.content]),
        "stop_reason": final.stop_reason,
        "stop_sequence": final.stop_sequence,
        "tokens": (final.usage.input_tokens, final.usage.output_tokens),
    }


def summary_of(result) -> dict[str, Any]:
    return {
        "id": result.id,
        "model": result.model,
        "content": blocks_of(result.content),
        "stop_reason": result.stop_reason,
        "stop_sequence": result.stop_sequence,
        "tokens": (result.usage["input_tokens"], result.usage["output_tokens"]),
    }


@pytest.mark.parametrize("case", sorted(MESSAGE_CASES))
def test_message_assembler_agrees_with_the_sdk_on_the_same_events(server, client, case):
    body = {"max_tokens": 200, **MESSAGE_CASES[case]}
    ours = MessageAssembler()
    with client.messages.stream(**body) as stream:
        for event in stream:  # the SDK's events: raw ones are fed to ours, its own are skipped
            ours.add(event.model_dump(mode="json", warnings=False))
        final = stream.get_final_message()
    assert summary_of(ours.result()) == sdk_summary(final)
    raw = requests.post(  # the same request's bytes, through lesson_helpers' own parser
        server.base_url + "/messages",
        json={**body, "stream": True},
        headers={"x-api-key": server.api_key, "anthropic-version": "2023-06-01"},
        timeout=10,
    ).content
    assert summary_of(assemble(SSEParser().feed(raw))) == sdk_summary(final)
