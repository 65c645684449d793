"""POST /v1/responses on the local server (real sockets), and lesson_helpers.responses."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
import urllib3

from lesson_helpers.responses import (
    ResponseAssembler,
    ResponseDelta,
    ResponsesStreamError,
    assemble,
)
from lesson_helpers.sse import ServerSentEvent, SSEParser

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
REASONING_MODEL = "deepseek-ai/DeepSeek-R1"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
SEED_PIECES = ["你好", "！", "有什么", "问题", "或者", "需要", "帮助", "的", "吗", "？"]
TIMEOUT = (5, 10)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "查询一个城市现在的天气",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def post(server, body: Any, key: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    return requests.post(
        server.base_url + "/responses", json=body, headers=headers, timeout=TIMEOUT, **kwargs
    )


def create(server, **body: Any) -> dict[str, Any]:
    body.setdefault("model", SEED_MODEL)
    response = post(server, body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def raw_stream(server, **body: Any) -> bytes:
    body.setdefault("model", SEED_MODEL)
    response = post(server, {**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return response.content


def events_of(raw: bytes) -> list[ServerSentEvent]:
    events = SSEParser().feed(raw)
    assert raw.endswith(b"\n\n")
    return events


def stream(server, **body: Any) -> list[dict[str, Any]]:
    """The data of each event; checks the event: lines and the sequence numbers."""
    events = events_of(raw_stream(server, **body))
    datas = [e.json() for e in events]
    assert [e.event for e in events] == [d["type"] for d in datas]  # named events
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    return datas


def types(datas: list[dict[str, Any]]) -> list[str]:
    return [d["type"] for d in datas]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def read_until_cut(server, body: dict[str, Any]) -> bytes:
    response = requests.post(
        server.base_url + "/responses",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
        stream=True,
        timeout=TIMEOUT,
    )
    data = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        while piece := response.raw.read1(65536):
            data += piece
    return data


# -- the answer -----------------------------------------------------------------------------
def test_non_streaming_seed_reply(server):
    body = create(server, input="你好")
    assert body["object"] == "response"
    assert re.fullmatch(r"resp_[0-9a-f]{32}", body["id"])
    assert body["status"] == "completed" and body["error"] is None
    assert body["model"] == SEED_MODEL
    [item] = body["output"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["status"] == "completed" and re.fullmatch(r"msg_[0-9a-f]{32}", item["id"])
    assert item["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": SEED_TEXT}
    ]
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (30, 10, 40)
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    assert create(server, input="你好")["id"] == body["id"]  # ids come from the request


@pytest.mark.parametrize(
    "given",
    [
        "你好",
        [{"role": "user", "content": "你好"}],
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "你好"}]}],
    ],
)
def test_input_as_a_string_or_a_list_of_messages(server, given):
    body = create(server, input=given)
    assert body["output"][0]["content"][0]["text"] == SEED_TEXT


def test_instructions_are_a_system_message(server):
    plain = create(server, input="你好")
    told = create(server, input="你好", instructions="回答要简短。")
    assert told["instructions"] == "回答要简短。"
    assert told["usage"]["input_tokens"] > plain["usage"]["input_tokens"]
    assert told["output"][0]["content"] == plain["output"][0]["content"]
    assert told["id"] != plain["id"]


def test_multi_turn_input_answers_the_last_question(server):
    conversation = [
        {"role": "user", "content": "什么是流式输出？"},
        {
            "role": "assistant",
            "content": [{"type": "output_text", "text": "就是一边生成一边发送。"}],
        },
        {"role": "user", "content": "我刚才问的是什么？"},
    ]
    text = create(server, input=conversation)["output"][0]["content"][0]["text"]
    assert "什么是流式输出" in text


def test_streamed_seed_reply_event_by_event(server):
    datas = stream(server, input="你好")
    assert types(datas) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 10,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = datas[0]["response"]
    assert (
        created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    )
    added = datas[2]
    assert added["output_index"] == 0
    assert added["item"]["status"] == "in_progress" and added["item"]["content"] == []
    deltas = [d for d in datas if d["type"] == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == SEED_PIECES
    assert {(d["item_id"], d["output_index"], d["content_index"]) for d in deltas} == {
        (added["item"]["id"], 0, 0)
    }
    assert datas[-4]["text"] == SEED_TEXT
    assert datas[-3]["part"]["text"] == SEED_TEXT
    completed = datas[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == create(server, input="你好")["output"]
    assert completed["usage"]["output_tokens"] == 10


def test_the_stream_has_no_done_marker_and_every_event_is_named(server):
    raw = raw_stream(server, input="你好")
    assert b"[DONE]" not in raw
    blocks = raw.decode().split("\n\n")[:-1]
    assert all(re.fullmatch(r"event: response\.[a-z_.]+\ndata: \{.*\}", b) for b in blocks)


def test_a_reasoning_model_streams_its_summary_first(server):
    datas = stream(server, model=REASONING_MODEL, input="你好")
    assert types(datas)[2:5] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
    ]
    reasoning = "".join(
        d["delta"] for d in datas if d["type"] == "response.reasoning_summary_text.delta"
    )
    assert "你好" in reasoning
    done = next(d for d in datas if d["type"] == "response.reasoning_summary_text.done")
    assert done["text"] == reasoning and done["summary_index"] == 0
    text = "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta")
    assert text == SEED_TEXT
    assert {d["output_index"] for d in datas if d["type"] == "response.output_text.delta"} == {1}
    final = datas[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": reasoning}]
    usage = final["usage"]
    assert usage["output_tokens"] == usage["output_tokens_details"]["reasoning_tokens"] + 10


def test_function_calls_stream_with_argument_deltas(server):
    datas = stream(server, input="北京和上海的天气怎么样？", tools=[WEATHER])
    added = [d for d in datas if d["type"] == "response.output_item.added"]
    assert [d["output_index"] for d in added] == [0, 1]
    for event in added:
        item = event["item"]
        assert item["type"] == "function_call" and item["status"] == "in_progress"
        assert item["name"] == "get_weather" and item["arguments"] == ""
        assert re.fullmatch(r"call_[0-9a-f]{24}", item["call_id"])
    for index, city in ((0, "北京"), (1, "上海")):
        deltas = [
            d["delta"]
            for d in datas
            if d["type"] == "response.function_call_arguments.delta" and d["output_index"] == index
        ]
        assert len(deltas) >= 3 and json.loads("".join(deltas)) == {"city": city}
        done = next(
            d
            for d in datas
            if d["type"] == "response.function_call_arguments.done" and d["output_index"] == index
        )
        assert done["arguments"] == "".join(deltas)
    final = datas[-1]["response"]
    assert final["status"] == "completed"
    assert [i["type"] for i in final["output"]] == ["function_call", "function_call"]
    assert "response.output_text.delta" not in types(datas)


def test_the_tool_loop_through_input_items(server):
    first = create(server, input="北京天气怎么样？", tools=[WEATHER])
    [call] = first["output"]
    result = {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": '{"temperature": 19}',
    }
    conversation = [{"role": "user", "content": "北京天气怎么样？"}, call, result]
    answer = create(server, input=conversation, tools=[WEATHER])
    assert answer["output"][0]["type"] == "message"
    assert "气温 19°C" in answer["output"][0]["content"][0]["text"]


@pytest.mark.parametrize("order", ["each call then its output", "all calls, then all outputs"])
def test_parallel_results_are_all_used_however_the_items_alternate(server, order):
    """OpenAI's docs append each function_call and then its output: both results count."""
    question = "北京和上海天气怎么样？"
    calls = create(server, input=question, tools=[WEATHER])["output"]
    assert [item["type"] for item in calls] == ["function_call", "function_call"]
    outputs = [
        {
            "type": "function_call_output",
            "call_id": call["call_id"],
            "output": f'{{"temperature": {t}}}',
        }
        for call, t in zip(calls, (19, 24), strict=True)
    ]
    if order.startswith("each"):
        items = [calls[0], outputs[0], calls[1], outputs[1]]
    else:
        items = [*calls, *outputs]
    answer = create(server, input=[{"role": "user", "content": question}, *items], tools=[WEATHER])
    text = answer["output"][0]["content"][0]["text"]
    assert "气温 19°C" in text and "气温 24°C" in text, text


def test_tool_choice_none_required_and_named(server):
    text = create(server, input="北京天气", tools=[WEATHER], tool_choice="none")
    assert text["output"][0]["type"] == "message" and text["tool_choice"] == "none"
    forced = create(server, input="你好", tools=[WEATHER], tool_choice="required")
    assert forced["output"][0]["type"] == "function_call"
    named = {"type": "function", "name": "get_weather"}
    assert create(server, input="你好", tools=[WEATHER], tool_choice=named)["output"][0][
        "name"
    ] == ("get_weather")
    assert create(server, input="你好", tools=[WEATHER])["output"][0]["type"] == "message"


def test_max_output_tokens_makes_an_incomplete_response(server):
    datas = stream(server, input="你好", max_output_tokens=3)
    assert types(datas)[-1] == "response.incomplete"
    final = datas[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["content"][0]["text"] == "".join(SEED_PIECES[:3])
    assert final["output"][0]["status"] == "incomplete"
    body = create(server, input="你好", max_output_tokens=3)
    assert body["status"] == "incomplete" and body["usage"]["output_tokens"] == 3


# -- errors, in the OpenAI shape ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": SEED_MODEL}, "input"),
        ({"input": "你好"}, "model"),
        ({"model": SEED_MODEL, "input": []}, "input"),
        ({"model": SEED_MODEL, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": SEED_MODEL, "input": [{"type": "image_generation_call"}]}, "input[0].type"),
        (
            {"model": SEED_MODEL, "input": [{"type": "function_call_output", "call_id": "c1"}]},
            "input",
        ),
        ({"model": SEED_MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": SEED_MODEL, "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": SEED_MODEL, "input": "x", "temperature": 3}, "temperature"),
        ({"model": SEED_MODEL, "input": "x", "previous_response_id": "r"}, "previous_response_id"),
        ({"model": SEED_MODEL, "input": "x", "tool_choice": "required"}, "tool_choice"),
        ({"model": "fault-500", "input": "x"}, "model"),
    ],
)
def test_bad_requests_are_400_with_param(server, body, param):
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"] and "\n" not in error["message"]
    assert error["type"] == "invalid_request_error"


def test_unknown_model_and_wrong_key(server):
    response = post(server, {"model": "no-such-model", "input": "你好"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    wrong = post(server, {"model": SEED_MODEL, "input": "你好"}, key="fake-key-wrong-0000")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "fake-key-wrong-0000" not in wrong.text


# -- the fault models of this API -----------------------------------------------------------------
def test_fault_responses_failed(server):
    datas = stream(server, model="fault-responses-failed", input="你好")
    assert types(datas)[-1] == "response.failed"
    failed = datas[-1]["response"]
    assert failed["status"] == "failed" and failed["usage"] is None
    assert failed["error"]["code"] == "server_error" and failed["error"]["message"]
    text = "".join(d["delta"] for d in datas if d["type"] == "response.output_text.delta")
    assert text == "".join(SEED_PIECES[:3])
    assert "response.completed" not in types(datas)
    assert post(server, {"model": "fault-responses-failed", "input": "你好"}).status_code == 500


def test_fault_responses_error_event(server):
    datas = stream(server, model="fault-responses-error-event", input="你好")
    assert types(datas)[-1] == "error"
    assert datas[-1]["code"] == "server_error" and datas[-1]["message"]
    assert "response.completed" not in types(datas)


def test_fault_responses_cut(server):
    raw = read_until_cut(server, {"model": "fault-responses-cut", "input": "你好", "stream": True})
    names = [e.event for e in events_of(raw)]
    assert names[-1] == "response.output_text.delta" and "response.completed" not in names


@pytest.mark.parametrize("model", ["fault-tool-bad-json", "fault-tool-not-offered"])
def test_tool_faults_in_the_responses_format(server, model):
    datas = stream(server, model=model, input="北京天气", tools=[WEATHER])
    call = datas[-1]["response"]["output"][0]
    assert call["type"] == "function_call"
    if model == "fault-tool-bad-json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(call["arguments"])
    else:
        assert call["name"] not in ("get_weather",)


def test_fault_tool_cut_arguments_in_the_responses_format(server):
    body = {
        "model": "fault-tool-cut-arguments",
        "input": "北京天气",
        "tools": [WEATHER],
        "stream": True,
    }
    names = [e.event for e in events_of(read_until_cut(server, body))]
    assert names[-1] == "response.function_call_arguments.delta"
    assert "response.function_call_arguments.done" not in names


def test_a_fault_model_of_another_api_says_so(server):
    response = post(server, {"model": "fault-messages-529", "input": "你好"})
    assert response.status_code == 400
    assert "does not work with POST /v1/responses" in response.json()["error"]["message"]


# -- the assembler ---------------------------------------------------------------------------------
def test_assembler_on_the_seed_stream(server):
    raw = raw_stream(server, input="你好")
    assembler = ResponseAssembler()
    deltas = [assembler.add(event) for event in events_of(raw)]
    result = assembler.result()
    assert [d.text for d in deltas if d.text] == SEED_PIECES
    assert {d.output_index for d in deltas if d.text} == {0}
    assert "".join(d.text for d in deltas) == SEED_TEXT == result.text == assembler.text
    assert result.status == "completed"
    assert result.id.startswith("resp_") and result.model == SEED_MODEL
    assert result.usage["input_tokens"] == 30 and result.usage["output_tokens"] == 10
    assert result.reasoning == "" and result.function_calls == []
    assert assembler.event_count == 15  # the part and done events repeat what it has


def test_assembler_reasoning_and_function_calls(server):
    raw = raw_stream(server, model=REASONING_MODEL, input="北京和上海天气", tools=[WEATHER])
    assembler = ResponseAssembler()
    deltas = [assembler.add(e) for e in events_of(raw)]
    result = assembler.result()
    assert "".join(d.reasoning for d in deltas) == result.reasoning == assembler.reasoning
    assert "".join(d.arguments for d in deltas if d.output_index == 1) == '{"city":"北京"}'
    assert not any(d.text for d in deltas)
    assert "北京和上海天气" in result.reasoning
    assert [(c.name, json.loads(c.arguments)) for c in result.function_calls] == [
        ("get_weather", {"city": "北京"}),
        ("get_weather", {"city": "上海"}),
    ]
    assert [c.output_index for c in result.function_calls] == [1, 2]
    assert all(
        c.status == "completed" and c.call_id.startswith("call_") for c in result.function_calls
    )
    assert result.function_calls[0].to_input() == {
        "type": "function_call",
        "call_id": result.function_calls[0].call_id,
        "name": "get_weather",
        "arguments": '{"city":"北京"}',
    }


def test_assembler_incomplete_response(server):
    result = assemble(events_of(raw_stream(server, input="你好", max_output_tokens=4)))
    assert result.status == "incomplete" and result.incomplete_reason == "max_output_tokens"
    assert result.text == "".join(SEED_PIECES[:4])


def test_assembler_accepts_parsed_data_and_events_without_event_lines(server):
    events = events_of(raw_stream(server, input="你好"))
    unnamed = [ServerSentEvent(data=e.data) for e in events]  # "message", as if no event: line
    assert assemble(unnamed).text == SEED_TEXT
    assert assemble([e.json() for e in events]).text == SEED_TEXT


@pytest.mark.parametrize("model", ["fault-responses-failed", "fault-responses-error-event"])
def test_assembler_raises_on_errors_and_keeps_the_text(server, model):
    assembler = ResponseAssembler()
    with pytest.raises(ResponsesStreamError) as info:
        for event in events_of(raw_stream(server, model=model, input="你好")):
            assembler.add(event)
    assert "failed to generate" in str(info.value) and "\n" not in str(info.value)
    assert assembler.result().text == "".join(SEED_PIECES[:3])
    assert assembler.result().status == "in_progress"


def event(kind: str, number: int, **data: Any) -> ServerSentEvent:
    return ServerSentEvent(
        event=kind, data=json.dumps({"type": kind, "sequence_number": number, **data})
    )


def started() -> ResponseAssembler:
    assembler = ResponseAssembler()
    assembler.add(event("response.created", 0, response={"id": "resp_1", "status": "in_progress"}))
    item = {"id": "msg_1", "type": "message", "content": []}
    assembler.add(event("response.output_item.added", 1, output_index=0, item=item))
    return assembler


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (ServerSentEvent(event="response.output_text.delta", data="{not json"), "not JSON"),
        (ServerSentEvent(data="[1, 2]"), "must be a JSON object"),
        (ServerSentEvent(data='{"delta": "x"}'), "no 'type'"),
        (
            ServerSentEvent(event="response.completed", data='{"type": "response.created"}'),
            "the event line says",
        ),
        (event("response.output_text.delta", 3, output_index=5, delta="x"), "before its"),
        (event("response.output_text.delta", 3, output_index=0, delta=7), "delta must be str"),
        (event("response.output_text.delta", 2, output_index=0, delta="x"), "out of order"),
        (event("response.function_call_arguments.delta", 3, output_index=0, delta=""), "message"),
        (event("response.output_item.added", 3, output_index=-1, item={}), "output_index"),
        (event("response.completed", 3, response="done"), "response must be dict"),
    ],
)
def test_assembler_malformed_events_raise_one_line_and_change_nothing(bad, message):
    assembler = started()
    assembler.add(event("response.output_text.delta", 2, output_index=0, delta="你好"))
    before = assembler.result()
    with pytest.raises(ResponsesStreamError) as info:
        assembler.add(bad)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert assembler.result() == before


def test_assembler_skips_event_types_it_does_not_know():
    assembler = started()
    skipped = assembler.add(event("response.output_text.annotation.added", 2, annotation={}))
    assert skipped == ResponseDelta()
    assert assembler.event_count == 2
