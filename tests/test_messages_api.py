"""POST /v1/messages on the local server (real sockets), and lesson_helpers.messages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
import urllib3

from lesson_helpers.messages import MessageAssembler, MessageDelta, MessagesStreamError, assemble
from lesson_helpers.sse import ServerSentEvent, SSEParser

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
REASONING_MODEL = "deepseek-ai/DeepSeek-R1"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
SEED_PIECES = ["你好", "！", "有什么", "问题", "或者", "需要", "帮助", "的", "吗", "？"]
VERSION = {"anthropic-version": "2023-06-01"}
TIMEOUT = (5, 10)
WEATHER = {
    "name": "get_weather",
    "description": "查询一个城市现在的天气",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def post(server, body: Any, headers: dict[str, str] | None = None, **kwargs: Any):
    if headers is None:
        headers = {"x-api-key": server.api_key, **VERSION}
    return requests.post(
        server.base_url + "/messages", json=body, headers=headers, timeout=TIMEOUT, **kwargs
    )


def create(server, **body: Any) -> dict[str, Any]:
    body.setdefault("model", SEED_MODEL)
    body.setdefault("max_tokens", 200)
    body.setdefault("messages", user("你好"))
    response = post(server, body)
    assert response.status_code == 200, response.text
    return response.json()


def raw_stream(server, **body: Any) -> bytes:
    body.setdefault("model", SEED_MODEL)
    body.setdefault("max_tokens", 200)
    body.setdefault("messages", user("你好"))
    response = post(server, {**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response.content


def stream(server, **body: Any) -> list[dict[str, Any]]:
    """The data of each event; checks that every event's name equals its data's type."""
    events = SSEParser().feed(raw_stream(server, **body))
    datas = [e.json() for e in events]
    assert [e.event for e in events] == [d["type"] for d in datas]
    return datas


def types(datas: list[dict[str, Any]]) -> list[str]:
    return [d["type"] for d in datas]


def error_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert body["request_id"] == response.headers["request-id"]
    return body["error"]


def read_until_cut(server, body: dict[str, Any]) -> bytes:
    response = post(server, body, stream=True)
    data = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        while piece := response.raw.read1(65536):
            data += piece
    return data


# -- the answer --------------------------------------------------------------------------------
def test_non_streaming_seed_reply(server):
    body = create(server)
    assert body["type"] == "message" and body["role"] == "assistant"
    assert re.fullmatch(r"msg_01[0-9a-f]{24}", body["id"])
    assert body["model"] == SEED_MODEL
    assert body["content"] == [{"type": "text", "text": SEED_TEXT}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 30 and body["usage"]["output_tokens"] == 10
    assert create(server)["id"] == body["id"]  # ids come from the request


def test_bearer_auth_works_too(server):
    headers = {"Authorization": f"Bearer {server.api_key}", **VERSION}
    body = {"model": SEED_MODEL, "max_tokens": 50, "messages": user("你好")}
    response = post(server, body, headers=headers)
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == SEED_TEXT


def test_system_and_content_blocks(server):
    plain = create(server)
    blocks = [{"type": "text", "text": "你"}, {"type": "text", "text": "好"}]
    told = create(server, system="回答要简短。", messages=[{"role": "user", "content": blocks}])
    assert told["content"] == plain["content"]
    assert told["usage"]["input_tokens"] > plain["usage"]["input_tokens"]
    system_blocks = [{"type": "text", "text": "回答要简短。"}]
    assert create(server, system=system_blocks)["usage"] == told["usage"]


def test_streamed_seed_reply_event_by_event(server):
    datas = stream(server)
    assert types(datas) == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 10,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = datas[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == 30
    assert datas[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [d["delta"] for d in datas if d["type"] == "content_block_delta"]
    assert deltas == [{"type": "text_delta", "text": p} for p in SEED_PIECES]
    assert datas[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 10},
    }
    assert datas[-1] == {"type": "message_stop"}
    assert start["id"] == create(server)["id"]


def test_a_reasoning_model_streams_thinking_then_a_signature(server):
    datas = stream(server, model=REASONING_MODEL)
    assert datas[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    thinking = [d["delta"] for d in datas if d["type"] == "content_block_delta" and d["index"] == 0]
    assert all(d["type"] == "thinking_delta" for d in thinking[:-1])
    assert thinking[-1]["type"] == "signature_delta" and thinking[-1]["signature"]
    assert "你好" in "".join(d["thinking"] for d in thinking[:-1])
    text = [
        d["delta"]["text"] for d in datas if d["type"] == "content_block_delta" and d["index"] == 1
    ]
    assert "".join(text) == SEED_TEXT
    body = create(server, model=REASONING_MODEL)
    assert [b["type"] for b in body["content"]] == ["thinking", "text"]
    assert body["content"][0]["signature"] == thinking[-1]["signature"]


def test_thinking_enabled_on_an_ordinary_model(server):
    thinking = {"type": "enabled", "budget_tokens": 100}
    body = create(server, thinking=thinking)
    assert [b["type"] for b in body["content"]] == ["thinking", "text"]


def test_tool_use_streams_input_json_deltas(server):
    datas = stream(server, messages=user("北京和上海的天气怎么样？"), tools=[WEATHER])
    starts = [d for d in datas if d["type"] == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    for start, city in zip(starts, ("北京", "上海"), strict=True):
        block = start["content_block"]
        assert block["type"] == "tool_use" and block["name"] == "get_weather"
        assert block["input"] == {} and re.fullmatch(r"toolu_01[0-9a-f]{22}", block["id"])
        pieces = [
            d["delta"]
            for d in datas
            if d["type"] == "content_block_delta" and d["index"] == start["index"]
        ]
        assert all(p["type"] == "input_json_delta" for p in pieces)
        assert pieces[0]["partial_json"] == "" and len(pieces) >= 4
        assert json.loads("".join(p["partial_json"] for p in pieces)) == {"city": city}
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"


def test_the_tool_loop_with_tool_result_blocks(server):
    messages = user("北京天气怎么样？")
    first = create(server, messages=messages, tools=[WEATHER])
    [call] = first["content"]
    assert first["stop_reason"] == "tool_use" and call["input"] == {"city": "北京"}
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": '{"temperature": 21}'}
    messages += [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [result]},
    ]
    answer = create(server, messages=messages, tools=[WEATHER])
    assert answer["stop_reason"] == "end_turn"
    assert "气温 21°C" in answer["content"][0]["text"]
    result["is_error"] = True
    result["content"] = [{"type": "text", "text": "city not found"}]
    failed = create(server, messages=messages, tools=[WEATHER])
    assert "调用失败" in failed["content"][0]["text"]


def test_tool_choice_auto_any_tool_none(server):
    assert create(server, tools=[WEATHER])["content"][0]["type"] == "text"
    forced = create(server, tools=[WEATHER], tool_choice={"type": "any"})
    assert forced["content"][0]["type"] == "tool_use"
    named = create(server, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    assert named["content"][0]["name"] == "get_weather"
    none = create(server, messages=user("北京天气"), tools=[WEATHER], tool_choice={"type": "none"})
    assert none["content"][0]["type"] == "text"
    one = create(
        server,
        messages=user("北京和上海天气"),
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert len(one["content"]) == 1


def test_stop_sequences(server):
    body = create(server, stop_sequences=["问题"])
    assert body["content"][0]["text"] == "你好！有什么"
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "问题"
    spanning = create(server, stop_sequences=["什么问"])  # across two tokens
    assert spanning["content"][0]["text"] == "你好！有"
    datas = stream(server, stop_sequences=["需要", "问题"])
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "你好！有什么"
    assert datas[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "问题"}
    assert create(server, stop_sequences=["不会出现"])["stop_reason"] == "end_turn"


def test_max_tokens_stops_with_max_tokens(server):
    body = create(server, max_tokens=3)
    assert body["content"][0]["text"] == "".join(SEED_PIECES[:3])
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 3
    datas = stream(server, max_tokens=3)
    assert datas[-2]["delta"]["stop_reason"] == "max_tokens"


# -- errors in Anthropic's shape ---------------------------------------------------------------
def body_with(**extra: Any) -> dict[str, Any]:
    return {"model": SEED_MODEL, "max_tokens": 10, "messages": user("x"), **extra}


ORPHAN_RESULT = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": SEED_MODEL, "messages": user("你好")}, "max_tokens: Field required"),
        (body_with(max_tokens=0), "max_tokens"),
        ({"max_tokens": 10, "messages": user("你好")}, "model: Field required"),
        ({"model": SEED_MODEL, "max_tokens": 10}, "messages: Field required"),
        (body_with(messages=[]), "at least one message"),
        (body_with(messages=[{"role": "system", "content": "x"}]), "top-level `system` parameter"),
        (body_with(messages=[{"role": "robot", "content": "x"}]), "messages.0.role"),
        (body_with(messages=ORPHAN_RESULT), "unexpected `tool_use_id`"),
        (body_with(temperature=1.5), "temperature"),
        (body_with(stop_sequences="问题"), "stop_sequences"),
        (body_with(tools=[{"name": "x"}]), "input_schema"),
        (body_with(tools=[{"type": "web_search_20250305"}]), "not supported"),
        (body_with(tools=[WEATHER], tool_choice={"type": "some"}), "tool_choice.type"),
        (body_with(thinking={"type": "enabled", "budget_tokens": 10}), "budget_tokens"),
        (body_with(model="fault-500"), "does not work with POST /v1/messages"),
    ],
)
def test_bad_requests_are_invalid_request_errors(server, body, words):
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert words in error["message"] and "\n" not in error["message"]


def test_the_version_header_is_required(server):
    body = {"model": SEED_MODEL, "max_tokens": 10, "messages": user("你好")}
    response = post(server, body, headers={"x-api-key": server.api_key})
    assert response.status_code == 400
    assert "anthropic-version" in error_of(response)["message"]


def test_wrong_key_unknown_model_and_doubled_v1(server):
    body = {"model": SEED_MODEL, "max_tokens": 10, "messages": user("你好")}
    wrong = post(server, body, headers={"x-api-key": "fake-key-wrong-0000", **VERSION})
    assert wrong.status_code == 401
    assert error_of(wrong) == {"type": "authentication_error", "message": "invalid x-api-key"}
    assert "fake-key-wrong-0000" not in wrong.text
    keyless = post(server, body, headers=VERSION)
    assert keyless.status_code == 401
    assert error_of(keyless)["message"] == "x-api-key header is required"
    missing = post(server, {**body, "model": "claude-nothing"})
    assert missing.status_code == 404
    assert error_of(missing) == {"type": "not_found_error", "message": "model: claude-nothing"}
    doubled = requests.post(
        server.base_url + "/v1/messages",
        json=body,
        headers={"x-api-key": server.api_key, **VERSION},
        timeout=TIMEOUT,
    )
    assert doubled.status_code == 404 and "without /v1" in error_of(doubled)["message"]


# -- the fault models of this API --------------------------------------------------------------
def test_fault_messages_overloaded_mid_stream(server):
    datas = stream(server, model="fault-messages-overloaded")
    assert datas[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert text == "".join(SEED_PIECES[:3])
    assert "message_stop" not in types(datas)
    response = post(
        server, {"model": "fault-messages-overloaded", "max_tokens": 9, "messages": user("你好")}
    )
    assert response.status_code == 529


def test_fault_messages_529(server):
    response = post(
        server, {"model": "fault-messages-529", "max_tokens": 9, "messages": user("你好")}
    )
    assert response.status_code == 529
    assert error_of(response) == {"type": "overloaded_error", "message": "Overloaded"}


def test_fault_messages_cut(server):
    body = {
        "model": "fault-messages-cut",
        "max_tokens": 50,
        "messages": user("你好"),
        "stream": True,
    }
    names = [e.event for e in SSEParser().feed(read_until_cut(server, body))]
    assert names[-1] == "content_block_delta" and "message_stop" not in names


def test_tool_faults_in_the_messages_format(server):
    datas = stream(server, model="fault-tool-bad-json", messages=user("北京天气"), tools=[WEATHER])
    partial = "".join(
        d["delta"]["partial_json"] for d in datas if d["type"] == "content_block_delta"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)
    offered = create(
        server, model="fault-tool-not-offered", messages=user("北京天气"), tools=[WEATHER]
    )
    assert offered["content"][0]["name"] == "search_web" and offered["stop_reason"] == "tool_use"
    body = {
        "model": "fault-tool-cut-arguments",
        "max_tokens": 50,
        "messages": user("北京天气"),
        "stream": True,
    }
    names = [e.event for e in SSEParser().feed(read_until_cut(server, body))]
    assert names[-1] == "content_block_delta" and "content_block_stop" not in names


# -- the assembler -----------------------------------------------------------------------------
def test_assembler_on_the_seed_stream(server):
    events = SSEParser().feed(raw_stream(server))
    assembler = MessageAssembler()
    deltas = [assembler.add(e) for e in events]
    assert [d.text for d in deltas if d.text] == SEED_PIECES
    assert {d.index for d in deltas if d.text} == {0}
    result = assembler.result()
    assert result.text == SEED_TEXT == assembler.text
    assert result.content == [{"type": "text", "text": SEED_TEXT}]
    assert result.stop_reason == "end_turn" and result.done
    assert result.usage["input_tokens"] == 30 and result.usage["output_tokens"] == 10
    assert result.id.startswith("msg_") and result.model == SEED_MODEL
    assert result.to_message() == {"role": "assistant", "content": result.content}
    assert assembler.event_count == len(events) - 1  # the ping is skipped


def test_assembler_thinking_and_tool_use(server):
    raw = raw_stream(
        server, model=REASONING_MODEL, messages=user("上海和东京天气"), tools=[WEATHER]
    )
    result = assemble(SSEParser().feed(raw))
    assert "上海和东京天气" in result.thinking
    assert result.content[0]["signature"]
    assert [(t.name, t.input) for t in result.tool_uses] == [
        ("get_weather", {"city": "上海"}),
        ("get_weather", {"city": "东京"}),
    ]
    assert [t.index for t in result.tool_uses] == [1, 2]
    assert result.tool_uses[0].partial_json == '{"city": "上海"}'
    assert result.stop_reason == "tool_use" and result.text == ""


def test_assembler_raises_on_the_overloaded_event_and_keeps_the_text(server):
    assembler = MessageAssembler()
    with pytest.raises(MessagesStreamError) as info:
        for event in SSEParser().feed(raw_stream(server, model="fault-messages-overloaded")):
            assembler.add(event)
    assert str(info.value) == "the provider sent an error: overloaded_error: Overloaded"
    assert assembler.result().text == "".join(SEED_PIECES[:3])
    assert not assembler.result().done


def test_assembler_bad_tool_json_is_one_line(server):
    raw = raw_stream(
        server, model="fault-tool-bad-json", messages=user("北京天气"), tools=[WEATHER]
    )
    assembler = MessageAssembler()
    with pytest.raises(MessagesStreamError) as info:
        for event in SSEParser().feed(raw):
            assembler.add(event)
    assert "get_weather" in str(info.value) and "not valid JSON" in str(info.value)
    assert "\n" not in str(info.value)


def ev(kind: str, **data: Any) -> ServerSentEvent:
    return ServerSentEvent(event=kind, data=json.dumps({"type": kind, **data}))


def started() -> MessageAssembler:
    assembler = MessageAssembler()
    assembler.add(ev("message_start", message={"id": "msg_1", "role": "assistant", "usage": {}}))
    assembler.add(ev("content_block_start", index=0, content_block={"type": "text", "text": ""}))
    assembler.add(ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "你好"}))
    return assembler


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (ServerSentEvent(event="content_block_delta", data="{oops"), "not JSON"),
        (ServerSentEvent(data='"text"'), "must be a JSON object"),
        (
            ServerSentEvent(event="message_stop", data='{"type": "message_delta"}'),
            "the event line says",
        ),
        (
            ev("content_block_delta", index=3, delta={"type": "text_delta", "text": "x"}),
            "before its",
        ),
        (
            ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "x"}),
            "which is text",
        ),
        (
            ev("content_block_delta", index=0, delta={"type": "text_delta", "text": None}),
            "text must be str",
        ),
        (ev("content_block_start", index=5, content_block={"type": "text"}), "expected 1"),
        (ev("content_block_start", index="1", content_block={"type": "text"}), "index must be"),
        (ev("message_start", message={"id": "msg_2"}), "a second message_start"),
        (ev("message_delta", delta={"stop_reason": 1}), "stop_reason must be str"),
        (ev("content_block_delta", index=0, delta={"type": "text_delta"}), "text must be str"),
    ],
)
def test_assembler_malformed_events_raise_one_line_and_change_nothing(bad, message):
    assembler = started()
    before = assembler.result()
    with pytest.raises(MessagesStreamError) as info:
        assembler.add(bad)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert assembler.result() == before


def test_assembler_needs_message_start_first():
    with pytest.raises(MessagesStreamError, match="before message_start"):
        MessageAssembler().add(ev("content_block_start", index=0, content_block={"type": "text"}))


def test_assembler_usage_counts_replace_the_earlier_ones():
    assembler = started()
    assembler.add(
        ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 5})
    )
    assembler.add(ev("message_delta", delta={"stop_reason": None}, usage={"output_tokens": 9}))
    result = assembler.result()
    assert result.usage == {"output_tokens": 9} and result.stop_reason == "end_turn"
    assert assembler.add(ev("ping")) == MessageDelta() == assembler.add(ev("something_new", x=1))


def test_assembler_a_block_stops_once():
    assembler = started()
    assembler.add(ev("content_block_stop", index=0))
    with pytest.raises(MessagesStreamError, match="twice"):
        assembler.add(ev("content_block_stop", index=0))
    with pytest.raises(MessagesStreamError, match="which is stopped"):
        assembler.add(ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"}))
    assert assembler.result().text == "你好"
