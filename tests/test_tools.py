"""Tool calling on the local server's chat models: the rules, then over real sockets."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
import urllib3

from lesson_helpers.chunks import assemble, from_completion
from lesson_helpers.local_server.api_faults import API_FAULTS
from lesson_helpers.local_server.tools import (
    ToolChoice,
    ToolError,
    answer_from_results,
    cut_arguments,
    decide,
    parse_chat_tools,
)
from lesson_helpers.sse import SSEParser

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
TIMEOUT = (5, 10)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "查询一个城市现在的天气",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "城市名，如 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "The current time in a time zone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
    },
}
CALC = {
    "type": "function",
    "function": {
        "name": "calculate",
        "description": "计算一个算术表达式",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}
TOOLS = [WEATHER, TIME, CALC]
NAMED_UNKNOWN = {"type": "function", "function": {"name": "not_offered"}}
STYLES = ["Qwen/Qwen2.5-7B-Instruct", "gpt-4o-mini", "deepseek-ai/DeepSeek-R1"]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def planned(question: str, tools: list[dict] = TOOLS, **choice: Any) -> list[tuple[str, dict]]:
    parsed, default = parse_chat_tools({"tools": tools})
    decision = decide(user(question), parsed, ToolChoice(**choice) if choice else default)
    return [(c.name, json.loads(c.arguments)) for c in decision.calls]


def post(server, body: dict[str, Any]) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return requests.post(
        server.base_url + "/chat/completions", json=body, headers=headers, timeout=TIMEOUT
    )


def stream(server, **body: Any) -> tuple[list[dict[str, Any]], bytes]:
    """The chunks of a streamed chat completion, and its raw bytes (which end with [DONE])."""
    body.setdefault("model", SEED_MODEL)
    response = post(server, {**body, "stream": True})
    assert response.status_code == 200, response.text
    events = SSEParser().feed(response.content)
    assert events[-1].data == "[DONE]"
    return [json.loads(e.data) for e in events[:-1]], response.content


def tool_results(calls: list[dict[str, Any]], temperatures: dict[str, int]) -> list[dict]:
    out = []
    for call in calls:
        city = json.loads(call["function"]["arguments"])["city"]
        content = {"city": city, "temperature": temperatures[city], "condition": "晴"}
        out.append(
            {
                "role": "tool",
                "tool_call_id": call["id"],
                "content": json.dumps(content, ensure_ascii=False),
            }
        )
    return out


# -- the rules -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("北京今天天气怎么样？", [("get_weather", {"city": "北京"})]),
        ("What's the weather like in Paris?", [("get_weather", {"city": "Paris"})]),
        ("绍兴的天气", [("get_weather", {"city": "绍兴"})]),
        ("上海的气温是多少华氏度", [("get_weather", {"city": "上海", "unit": "fahrenheit"})]),
        ("现在几点了？", [("get_current_time", {})]),
        ("What time is it in Tokyo?", [("get_current_time", {"timezone": "Asia/Tokyo"})]),
        ("纽约现在几点", [("get_current_time", {"timezone": "America/New_York"})]),
        ("帮我计算 (3+5)*2", [("calculate", {"expression": "(3+5)*2"})]),
        ("23 乘以 17 等于多少？", [("calculate", {"expression": "23 * 17"})]),
        ("calculate 1.5 / 3", [("calculate", {"expression": "1.5 / 3"})]),
    ],
)
def test_the_question_picks_the_tool_and_its_arguments(question, expected):
    assert planned(question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "北京和上海的天气怎么样？",
            [("get_weather", {"city": "北京"}), ("get_weather", {"city": "上海"})],
        ),
        (
            "Weather in London and New York?",
            [("get_weather", {"city": "London"}), ("get_weather", {"city": "New York"})],
        ),
        (
            "东京天气如何？现在那里几点？",
            [("get_weather", {"city": "东京"}), ("get_current_time", {"timezone": "Asia/Tokyo"})],
        ),
    ],
)
def test_two_things_at_once_are_parallel_calls(question, expected):
    assert planned(question) == expected


@pytest.mark.parametrize(
    "question", ["你好", "什么是流式输出？", "什么是计算机？", "comparison of two lists", "hello"]
)
def test_a_question_no_tool_fits_gets_no_call(question):
    assert planned(question) == []


def test_a_weather_question_without_a_city_asks_which_city():
    parsed, choice = parse_chat_tools({"tools": TOOLS})
    decision = decide(user("今天天气怎么样？"), parsed, choice)
    assert decision.calls == []
    assert decision.text is not None and "哪个城市" in decision.text


def test_tools_are_recognised_by_description_and_parameter_names_too():
    by_description = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "查询天气预报",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
    by_parameter = {
        "type": "function",
        "function": {
            "name": "tz_now",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
        },
    }
    assert planned("深圳天气怎么样", [by_description]) == [("lookup", {"location": "深圳"})]
    assert planned("伦敦现在几点", [by_parameter]) == [("tz_now", {"timezone": "Europe/London"})]


def test_naming_a_tool_calls_it_with_arguments_from_the_question():
    order = {
        "type": "function",
        "function": {
            "name": "get_order_status",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
    assert planned("用 get_order_status 查一下订单 12345", [order]) == [
        ("get_order_status", {"order_id": "12345"})
    ]


def test_tool_choice_rules():
    assert planned("北京天气", mode="none") == []
    assert planned("你好", mode="required") == [("get_weather", {"city": "北京"})]
    assert planned("北京天气", mode="required", name="calculate") == [
        ("calculate", {"expression": "北京天气"})
    ]
    assert planned("北京和上海天气", mode="auto", parallel=False) == [
        ("get_weather", {"city": "北京"})
    ]


def test_after_the_tool_results_the_answer_uses_them():
    calls = [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "calculate", "arguments": "{}"}},
    ]
    messages = [
        *user("北京天气，还有 6*7"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "a", "content": '{"city": "北京", "temperature": 23}'},
        {"role": "tool", "tool_call_id": "b", "content": '{"expression": "6*7", "result": 42}'},
    ]
    assert answer_from_results(messages) == "根据工具返回的结果：北京气温 23°C；6*7 = 42。"
    messages[-1]["content"] = '{"error": "division by zero"}'
    assert "calculate 调用失败：division by zero" in (answer_from_results(messages) or "")
    messages[-1]["content"] = "plain text result"
    assert "calculate 返回了：plain text result" in (answer_from_results(messages) or "")
    assert answer_from_results(user("你好")) is None


@pytest.mark.parametrize(
    "arguments",
    ['{"city": "北京", "unit": "celsius"}', '{"city":"Paris"}', '{"expression":"(3+5)*2"}', "{}"],
)
def test_arguments_are_cut_into_fragments_that_join_back_exactly(arguments):
    fragments = cut_arguments(arguments)
    assert "".join(fragments) == arguments
    if len(arguments) > 2:
        assert len(fragments) >= 4
        assert fragments[0] == '{"'


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": "get_weather"}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"function": {"name": "has space"}}]}, "tools[0].function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": NAMED_UNKNOWN}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ],
)
def test_unusable_tools_are_a_tool_error_naming_the_parameter(body, param):
    with pytest.raises(ToolError) as info:
        parse_chat_tools(body)
    assert info.value.param == param
    assert "\n" not in str(info.value)


# -- over real sockets ----------------------------------------------------------------------
@pytest.mark.parametrize("model", STYLES)
def test_streamed_tool_calls_come_in_fragments_with_finish_reason_tool_calls(server, model):
    chunks, raw = stream(
        server, model=model, messages=user("北京和上海的天气怎么样？"), tools=TOOLS
    )
    fragments: dict[int, list[dict[str, Any]]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
            fragments.setdefault(call["index"], []).append(call)
    assert sorted(fragments) == [0, 1]
    for parts in fragments.values():
        first, *rest = parts
        assert re.fullmatch(r"call_[0-9a-f]{24}", first["id"])
        assert first["type"] == "function"
        assert first["function"] == {"name": "get_weather", "arguments": ""}
        assert len(rest) >= 3  # arguments in several pieces
        assert all(set(p) == {"index", "function"} for p in rest)  # no id or name again
        assert all(set(p["function"]) == {"arguments"} for p in rest)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert raw.endswith(b"data: [DONE]\n\n")
    result = assemble(chunks)
    assert result.finish_reason == "tool_calls"
    assert [json.loads(c.arguments) for c in result.tool_calls] == [
        {"city": "北京"},
        {"city": "上海"},
    ]
    assert result.content == ""
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    if model == "deepseek-ai/DeepSeek-R1":
        assert result.reasoning_content  # it thinks before it calls


def test_openai_style_first_chunk_carries_role_and_the_first_call(server):
    chunks, _ = stream(server, model="gpt-4o-mini", messages=user("北京天气"), tools=TOOLS)
    delta = chunks[0]["choices"][0]["delta"]
    assert list(delta) == ["role", "content", "tool_calls", "refusal"]
    assert delta["content"] is None and delta["refusal"] is None
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all("usage" not in c for c in chunks)
    args = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[:-1]
    )
    assert args == '{"city":"北京"}'  # OpenAI's compact JSON


def test_siliconflow_style_keeps_usage_in_every_chunk(server):
    chunks, _ = stream(server, messages=user("北京天气"), tools=TOOLS)
    assert all(c["usage"]["prompt_tokens"] == chunks[0]["usage"]["prompt_tokens"] for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] == len(cut_arguments('{"city": "北京"}'))
    assert all(
        "reasoning_content" in c["choices"][0]["delta"] and "content" in c["choices"][0]["delta"]
        for c in chunks
    )


def test_include_usage_adds_the_usage_chunk_after_the_calls(server):
    chunks, _ = stream(
        server,
        model="gpt-4o-mini",
        messages=user("北京天气"),
        tools=TOOLS,
        stream_options={"include_usage": True},
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("model", STYLES)
def test_non_streaming_tool_calls(server, model):
    response = post(server, {"model": model, "messages": user("计算 12*34"), "tools": TOOLS})
    assert response.status_code == 200
    body = response.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "calculate"
    assert json.loads(call["function"]["arguments"]) == {"expression": "12*34"}
    assert from_completion(body).tool_calls[0].name == "calculate"
    streamed = assemble(stream(server, model=model, messages=user("计算 12*34"), tools=TOOLS)[0])
    assert streamed.tool_calls[0].id == call["id"]  # the same request gets the same id


def test_ids_are_derived_from_the_request(server):
    body = {"messages": user("北京天气"), "tools": TOOLS}
    first = assemble(stream(server, **body)[0]).tool_calls[0].id
    again = assemble(stream(server, **body)[0]).tool_calls[0].id
    other = assemble(stream(server, messages=user("上海天气"), tools=TOOLS)[0]).tool_calls[0].id
    assert first == again != other


@pytest.mark.parametrize("model", STYLES)
def test_the_whole_loop_call_results_answer(server, model):
    messages = user("北京和上海的天气怎么样？")
    result = assemble(stream(server, model=model, messages=messages, tools=TOOLS)[0])
    assistant = result.to_message()
    messages += [assistant, *tool_results(assistant["tool_calls"], {"北京": 23, "上海": 26})]
    answer = assemble(stream(server, model=model, messages=messages, tools=TOOLS)[0])
    assert answer.finish_reason == "stop"
    assert answer.tool_calls == []
    assert "北京晴，气温 23°C" in answer.content and "上海晴，气温 26°C" in answer.content
    body = post(server, {"model": model, "messages": messages, "tools": TOOLS}).json()
    assert body["choices"][0]["message"]["content"] == answer.content


def test_a_question_no_tool_fits_is_answered_as_without_tools(server):
    with_tools, _ = stream(server, messages=user("你好"), tools=TOOLS)
    without, _ = stream(server, messages=user("你好"))
    assert [c["choices"] for c in with_tools] == [c["choices"] for c in without]
    assert assemble(with_tools).content == SEED_TEXT


def test_tool_choice_over_the_wire(server):
    weather = user("北京天气怎么样")
    none = assemble(stream(server, messages=weather, tools=TOOLS, tool_choice="none")[0])
    plain = assemble(stream(server, messages=weather)[0])
    assert none.tool_calls == [] and none.content == plain.content
    required = assemble(
        stream(server, messages=user("你好"), tools=TOOLS, tool_choice="required")[0]
    )
    assert [c.name for c in required.tool_calls] == ["get_weather"]
    named = {"type": "function", "function": {"name": "get_current_time"}}
    forced = assemble(stream(server, messages=weather, tools=TOOLS, tool_choice=named)[0])
    assert [c.name for c in forced.tool_calls] == ["get_current_time"]
    single = assemble(
        stream(server, messages=user("北京和上海天气"), tools=TOOLS, parallel_tool_calls=False)[0]
    )
    assert len(single.tool_calls) == 1


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": TOOLS, "tool_choice": NAMED_UNKNOWN}, "tool_choice"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ],
)
def test_unusable_tools_are_a_400_with_param(server, extra, param):
    response = post(server, {"model": SEED_MODEL, "messages": user("北京天气"), **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["message"]


def test_max_tokens_cuts_the_arguments_with_finish_reason_length(server):
    chunks, _ = stream(server, messages=user("北京天气"), tools=TOOLS, max_tokens=2)
    result = assemble(chunks)
    assert result.finish_reason == "length"
    assert result.tool_calls[0].arguments == '{"city'
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_n_choices_each_call_the_tools(server):
    chunks, _ = stream(server, messages=user("北京天气"), tools=TOOLS, n=2)
    result = assemble(chunks)
    assert [c.index for c in result.choices] == [0, 1]
    assert all(c.finish_reason == "tool_calls" for c in result.choices)
    assert result.choices[0].tool_calls == result.choices[1].tool_calls


# -- the tool call faults through chat completions ------------------------------------------------
def fault(server, model: str, messages: list[dict] | None = None, **body: Any):
    messages = messages or user("北京天气怎么样？")
    return stream(server, model=model, messages=messages, tools=[WEATHER], **body)


def test_fault_tool_bad_json(server):
    result = assemble(fault(server, "fault-tool-bad-json")[0])
    assert result.finish_reason == "tool_calls"
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.tool_calls[0].arguments)


def test_fault_tool_bad_arguments(server):
    result = assemble(fault(server, "fault-tool-bad-arguments")[0])
    arguments = json.loads(result.tool_calls[0].arguments)  # valid JSON ...
    assert "city" not in arguments and arguments  # ... without the required argument


def test_fault_tool_not_offered(server):
    result = assemble(fault(server, "fault-tool-not-offered")[0])
    assert [c.name for c in result.tool_calls] == ["search_web"]
    assert json.loads(result.tool_calls[0].arguments) == {"query": "北京天气怎么样？"}


def read_until_cut(server, body: dict[str, Any]) -> bytes:
    """Every byte of a streamed body that ends without its last chunk (a cut connection)."""
    response = requests.post(
        server.base_url + "/chat/completions",
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


def test_fault_tool_cut_arguments(server):
    body = {"model": "fault-tool-cut-arguments", "messages": user("北京天气"), "stream": True}
    events = SSEParser().feed(read_until_cut(server, body))
    assert events and events[-1].data != "[DONE]"
    result = assemble([json.loads(e.data) for e in events])
    assert result.finish_reason is None
    assert result.tool_calls[0].name == "get_weather"
    assert result.tool_calls[0].arguments.startswith('{"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.tool_calls[0].arguments)


def test_fault_tool_loop_calls_again_after_the_results(server):
    messages = user("北京天气怎么样？")
    for _ in range(3):
        result = assemble(fault(server, "fault-tool-loop", messages)[0])
        assert result.finish_reason == "tool_calls"
        assistant = result.to_message()
        messages = [*messages, assistant, *tool_results(assistant["tool_calls"], {"北京": 20})]
    ids = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert len(set(ids)) == 3  # a new call each round


@pytest.mark.parametrize(
    "model", ["fault-tool-bad-json", "fault-tool-bad-arguments", "fault-tool-not-offered"]
)
def test_tool_faults_without_streaming_and_without_tools(server, model):
    response = post(server, {"model": model, "messages": user("你好")})
    assert response.status_code == 200
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] in ("get_weather", "search_web")


def test_a_fault_model_of_another_api_is_a_400_here(server):
    response = post(server, {"model": "fault-messages-529", "messages": user("你好")})
    assert response.status_code == 400
    assert "/v1/messages" in response.json()["error"]["message"]


def test_models_lists_the_new_fault_models_with_chinese_descriptions(server):
    response = requests.get(
        server.base_url + "/models",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=TIMEOUT,
    )
    listed = {m["id"]: m for m in response.json()["data"]}
    assert len(API_FAULTS) >= 8
    for model_id, spec in API_FAULTS.items():
        assert model_id.startswith("fault-")
        description = listed[model_id]["description"]
        assert description == spec.description
        assert "\n" not in description and len(description) <= 80
        assert any("\u4e00" <= ch <= "\u9fff" for ch in description)
        assert listed[model_id]["owned_by"] == "fault-lab"
