"""The official `openai` SDK, unchanged, as a client of the local server."""

from __future__ import annotations

import pytest

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
