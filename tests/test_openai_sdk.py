"""The official `openai` SDK, unchanged, as a client of the local server."""

from __future__ import annotations

import json

import pytest
import requests

openai = pytest.importorskip("openai")

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
HELLO = [{"role": "user", "content": "你好"}]


@pytest.fixture
def client(server):
    with openai.OpenAI(
        base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=10
    ) as sdk:
        yield sdk


def test_non_stream(client):
    completion = client.chat.completions.create(model=SEED_MODEL, messages=HELLO)
    assert completion.object == "chat.completion"
    assert completion.model == SEED_MODEL
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == SEED_TEXT
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 30
    assert completion.usage.completion_tokens == 10
    assert completion.usage.total_tokens == 40


def test_stream_deltas_concatenate_to_the_seed_text(client):
    stream = client.chat.completions.create(model=SEED_MODEL, messages=HELLO, stream=True)
    chunks = list(stream)
    assert len(chunks) == 12
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == SEED_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 40  # SiliconFlow style: usage in every chunk


def test_stream_of_a_reasoning_model_keeps_reasoning_content(client):
    stream = client.chat.completions.create(
        model="deepseek-ai/DeepSeek-R1", messages=HELLO, stream=True
    )
    reasoning, content = "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
    assert content == SEED_TEXT
    assert "你好" in reasoning


def test_stream_options_include_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    *body, last = chunks
    assert last.choices == []
    assert last.usage.completion_tokens == 10
    assert all(c.usage is None for c in body)
    assert "".join(c.choices[0].delta.content or "" for c in body) == SEED_TEXT


def test_models_list(client):
    ids = [model.id for model in client.models.list()]
    assert SEED_MODEL in ids
    assert "gpt-4o-mini" in ids
    assert "deepseek-ai/DeepSeek-R1" in ids


def test_wrong_key_is_authentication_error(server):
    wrong = "fake-key-wrong-0000000000"
    with openai.OpenAI(base_url=server.base_url, api_key=wrong, max_retries=0, timeout=10) as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            sdk.chat.completions.create(model=SEED_MODEL, messages=HELLO)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert wrong not in str(info.value)


def test_unknown_model_is_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert "no-such-model" in str(info.value)


def test_bad_request_is_bad_request_error(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=SEED_MODEL, messages=[])
    assert info.value.status_code == 400


def test_max_tokens_and_n(client):
    completion = client.chat.completions.create(model=SEED_MODEL, messages=HELLO, max_tokens=3, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content == "你好！有什么"
    assert all(c.finish_reason == "length" for c in completion.choices)


def test_stream_helper_gives_the_final_text(client):
    helper = getattr(client.chat.completions, "stream", None)
    if helper is None:  # older SDKs keep it under beta
        helper = getattr(getattr(client, "beta", None), "chat", None)
        helper = helper.completions.stream if helper is not None else None
    if helper is None:
        pytest.skip("this openai version has no chat.completions.stream helper")
    pieces = []
    with helper(model=SEED_MODEL, messages=HELLO) as stream:
        for event in stream:
            if event.type == "content.delta":
                pieces.append(event.delta)
        final = stream.get_final_completion()
    assert "".join(pieces) == SEED_TEXT
    assert final.choices[0].message.content == SEED_TEXT
    assert final.choices[0].finish_reason == "stop"


# -- chat completions with tools ----------------------------------------------------------------
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "查询一个城市现在的天气",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TWO_CITIES = [{"role": "user", "content": "北京和上海的天气怎么样？"}]
TEMPERATURES = {"北京": 23, "上海": 26}


def weather_results(tool_calls) -> list[dict]:
    results = []
    for call in tool_calls:
        city = json.loads(call.function.arguments)["city"]
        content = json.dumps({"city": city, "temperature": TEMPERATURES[city]}, ensure_ascii=False)
        results.append({"role": "tool", "tool_call_id": call.id, "content": content})
    return results


@pytest.mark.parametrize("model", [SEED_MODEL, "gpt-4o-mini", "deepseek-ai/DeepSeek-R1"])
def test_chat_with_tools_the_whole_loop(client, model):
    first = client.chat.completions.create(model=model, messages=TWO_CITIES, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"] * 2
    messages = [*TWO_CITIES, choice.message, *weather_results(choice.message.tool_calls)]
    final = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert "23°C" in final.choices[0].message.content
    assert "26°C" in final.choices[0].message.content


@pytest.mark.parametrize("model", [SEED_MODEL, "gpt-4o-mini"])
def test_streaming_tool_calls_chunk_by_chunk(client, model):
    stream = client.chat.completions.create(
        model=model, messages=TWO_CITIES, tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for part in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += part.id or ""
            call["name"] += part.function.name or ""
            call["arguments"] += part.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [json.loads(c["arguments"]) for c in calls.values()] == [
        {"city": "北京"},
        {"city": "上海"},
    ]
    assert all(c["id"].startswith("call_") and c["name"] == "get_weather" for c in calls.values())


def test_chat_stream_helper_with_tool_calls(client):
    with client.chat.completions.stream(
        model=SEED_MODEL, messages=TWO_CITIES, tools=[WEATHER_TOOL]
    ) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        done = stream.get_final_completion()
    assert len(deltas) >= 6  # several fragments per call
    [choice] = done.choices
    assert choice.finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments) for c in choice.message.tool_calls] == [
        {"city": "北京"},
        {"city": "上海"},
    ]


def test_tool_choice_through_the_sdk(client):
    forced = client.chat.completions.create(
        model=SEED_MODEL, messages=HELLO, tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert forced.choices[0].message.tool_calls[0].function.name == "get_weather"
    none = client.chat.completions.create(
        model=SEED_MODEL, messages=TWO_CITIES, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=SEED_MODEL,
            messages=HELLO,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "not_offered"}},
        )
    assert info.value.param == "tool_choice"


# -- the Responses API ----------------------------------------------------------------------------
RESPONSES_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "查询一个城市现在的天气",
    "parameters": WEATHER_TOOL["function"]["parameters"],
}


@pytest.fixture
def responses(client):
    if not hasattr(client, "responses"):
        pytest.skip("this openai version has no Responses API client")
    return client.responses


def test_responses_create(responses):
    response = responses.create(model=SEED_MODEL, input="你好")
    assert response.output_text == SEED_TEXT
    assert response.status == "completed"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (30, 10)
    listed = responses.create(model=SEED_MODEL, input=HELLO, instructions="回答要简短。")
    assert listed.output_text == SEED_TEXT and listed.instructions == "回答要简短。"


def test_responses_stream_text_deltas_and_final_response(responses):
    with responses.stream(model=SEED_MODEL, input="你好") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == SEED_TEXT and len(deltas) == 10
    assert final.output_text == SEED_TEXT and final.usage.total_tokens == 40


def test_responses_stream_reasoning_summary(responses):
    with responses.stream(model="deepseek-ai/DeepSeek-R1", input="你好") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert final.output[0].type == "reasoning" and "你好" in final.output[0].summary[0].text
    assert final.output_text == SEED_TEXT
    assert final.usage.output_tokens_details.reasoning_tokens > 0


def test_responses_function_call_loop(responses):
    first = responses.create(model=SEED_MODEL, input=TWO_CITIES, tools=[RESPONSES_WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "北京"}, {"city": "上海"}]
    conversation = [*TWO_CITIES, *calls]
    for call in calls:
        city = json.loads(call.arguments)["city"]
        output = json.dumps({"temperature": TEMPERATURES[city]})
        conversation.append(
            {"type": "function_call_output", "call_id": call.call_id, "output": output}
        )
    final = responses.create(model=SEED_MODEL, input=conversation, tools=[RESPONSES_WEATHER])
    assert "北京气温 23°C" in final.output_text and "上海气温 26°C" in final.output_text


def test_responses_stream_function_call_arguments(responses):
    with responses.stream(model=SEED_MODEL, input=TWO_CITIES, tools=[RESPONSES_WEATHER]) as stream:
        deltas = [e for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert len(deltas) >= 6 and deltas[-1].snapshot == '{"city":"上海"}'
    assert [item.name for item in final.output] == ["get_weather", "get_weather"]


def test_responses_incomplete_and_errors(responses):
    short = responses.create(model=SEED_MODEL, input="你好", max_output_tokens=3)
    assert short.status == "incomplete" and short.incomplete_details.reason == "max_output_tokens"
    events = list(
        responses.create(model=SEED_MODEL, input="你好", max_output_tokens=3, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    with pytest.raises(openai.NotFoundError):
        responses.create(model="no-such-model", input="你好")
    with pytest.raises(openai.BadRequestError) as info:
        responses.create(model=SEED_MODEL, input=[])
    assert info.value.param == "input"
    with pytest.raises(openai.InternalServerError):
        responses.create(model="fault-responses-failed", input="你好")


# -- lesson_helpers.responses against the SDK's own accumulation -----------------------------------
RESPONSE_CASES = {
    "seed": {"model": SEED_MODEL, "input": "你好"},
    "reasoning": {"model": "deepseek-ai/DeepSeek-R1", "input": "你好"},
    "calls": {"model": SEED_MODEL, "input": TWO_CITIES, "tools": [RESPONSES_WEATHER]},
    "reasoning+calls": {
        "model": "deepseek-ai/DeepSeek-R1",
        "input": "东京天气如何？",
        "tools": [RESPONSES_WEATHER],
    },
    "instructions": {"model": "gpt-4o-mini", "input": "什么是 token？", "instructions": "简短"},
}


def summary_of(result) -> dict:
    return {
        "id": result.id,
        "model": result.model,
        "status": result.status,
        "text": result.text,
        "reasoning": result.reasoning,
        "calls": [(c.call_id, c.name, c.arguments, c.status) for c in result.function_calls],
        "usage": result.usage,
    }


def sdk_summary(final) -> dict:
    return {
        "id": final.id,
        "model": final.model,
        "status": final.status,
        "text": final.output_text,
        "reasoning": "".join(
            s.text for item in final.output if item.type == "reasoning" for s in item.summary
        ),
        "calls": [
            (item.call_id, item.name, item.arguments, item.status)
            for item in final.output
            if item.type == "function_call"
        ],
        "usage": final.usage.model_dump(exclude_none=True),
    }


@pytest.mark.parametrize("case", sorted(RESPONSE_CASES))
def test_response_assembler_agrees_with_the_sdk_on_the_same_events(responses, server, case):
    from lesson_helpers.responses import ResponseAssembler, assemble
    from lesson_helpers.sse import SSEParser

    body = RESPONSE_CASES[case]
    ours = ResponseAssembler()
    with responses.stream(**body) as stream:
        for event in stream:  # the events the SDK itself accumulates, fed to ours too
            ours.add(event.model_dump(mode="json", exclude_none=True, warnings=False))
        final = stream.get_final_response()
    assert summary_of(ours.result()) == sdk_summary(final)
    raw = requests.post(  # the same request's bytes, through lesson_helpers' own parser
        server.base_url + "/responses",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    ).content
    assert summary_of(assemble(SSEParser().feed(raw))) == sdk_summary(final)
