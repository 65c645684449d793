"""The fault lab: every ``fault-*`` scenario of the local server, through the client.

One parametrized test runs each scenario and checks the outcome (the exception class, the HTTP
status, the one-line message, the partial text kept) or, for recoverable oddities, that the
text is exactly the normal answer. Then: retries (backoff, Retry-After, bounds, never after
output), timeouts, and the key never showing up anywhere.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from lesson_helpers import seed
from lesson_helpers.chunks import ChatResult, Choice, ToolCall
from lesson_helpers.client import ChatClient, backoff_delay
from lesson_helpers.config import Secret, Settings, load_settings
from lesson_helpers.errors import (
    AuthError,
    BadRequestError,
    ConnectError,
    LLMError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StreamError,
    error_from_response,
    finish_note,
)
from lesson_helpers.local_server import MODELS, SCENARIOS, Exchange, LocalServer, ModelSpec
from lesson_helpers.local_server import scenarios as lab_scenarios

FAKE_KEY = "fake-key-for-tests-0123456789abcdef"
SEED_TEXT = seed.ANSWER
SEED_PIECES = list(seed.PIECES)
HELLO = [{"role": "user", "content": "你好"}]
PARTIAL = "你好！有什么"  # the three tokens sent before a mid-stream fault


@pytest.fixture(scope="module")
def lab():
    """A local server whose key is the fake test key (so leaks of it can be looked for)."""
    with LocalServer(pace=0, api_key=FAKE_KEY) as server:
        yield server


def lab_settings(server: LocalServer, timeout: float = 2.0, key: str = FAKE_KEY) -> Settings:
    return Settings(
        api_key=Secret(key),
        base_url=server.base_url,
        model="Qwen/Qwen2.5-7B-Instruct",
        timeout=timeout,
        connect_timeout=2.0,
        provider="local",
    )


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class CountingSession(requests.Session):
    """A requests session that counts the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent += 1
        return super().request(*args, **kwargs)


def assert_one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text, text
    assert "Traceback" not in text
    return text


def everything_shown(error: BaseException, with_locals: bool = True) -> str:
    """All an error can show: str, repr, attributes, the traceback (with every local, as
    IPython's ``%xmode Verbose`` prints it) and every exception in its chain."""
    parts = [str(error), repr(error), repr(vars(error))]
    parts += traceback.format_exception(error)
    tb = traceback.TracebackException.from_exception(error, capture_locals=with_locals)
    parts += list(tb.format())
    link: BaseException | None = error
    while link is not None:  # the whole chain, suppressed or not
        parts += [repr(link), repr(getattr(link, "request", None))]
        request = getattr(link, "request", None)
        if request is not None:
            parts.append(repr(dict(request.headers)))
        link = link.__cause__ or link.__context__
    return "\n".join(parts)


# -- what each scenario must do -----------------------------------------------------------------
@dataclass
class Expect:
    error: type[LLMError] | None = None  # None: the answer arrives
    status: int | None = None
    says: tuple[str, ...] = ()  # in str(error), or in finish_note(result)
    partial: str | None = None  # error.partial_text
    text: str | None = SEED_TEXT  # result.content when there is no error
    pieces: list[str] | None = None  # the content pieces, when they must be exact
    retries: int = 0  # automatic retries before the outcome
    finish: str | None = "stop"
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float = 2.0


HTTP_HINT_ENV = ".env"
EXPECTED: dict[str, Expect] = {
    "fault-401": Expect(AuthError, 401, ("HTTP 401", "Incorrect API key provided", "LLM_API_KEY")),
    "fault-403": Expect(AuthError, 403, ("HTTP 403", "identity verification", "余额")),
    "fault-404": Expect(NotFoundError, 404, ("HTTP 404", "does not exist", "LLM_MODEL")),
    "fault-400": Expect(BadRequestError, 400, ("HTTP 400", "'temperature'", "参数")),
    "fault-context-too-long": Expect(
        BadRequestError, 400, ("HTTP 400", "maximum context length", "上下文", "max_tokens")
    ),
    "fault-413": Expect(
        BadRequestError, 413, ("HTTP 413", "413 Request Entity Too Large", "网页", "缩短")
    ),
    "fault-429-retry-after": Expect(retries=1, pieces=SEED_PIECES),
    "fault-429": Expect(
        RateLimitError, 429, ("HTTP 429", "rate limiting", "已自动重试 2 次", "稍等"), retries=2
    ),
    "fault-500": Expect(
        ServerError, 500, ("HTTP 500", "error while processing", "已自动重试 2 次"), retries=2
    ),
    "fault-502-html": Expect(
        ServerError, 502, ("HTTP 502", "502 Bad Gateway", "网页", "代理"), retries=2
    ),
    "fault-503": Expect(ServerError, 503, ("HTTP 503", "overloaded", "稍后重试"), retries=2),
    "fault-json-not-stream": Expect(pieces=[SEED_TEXT]),
    "fault-html-200": Expect(StreamError, 200, ("网页", "校园网认证", "登录页")),
    "fault-error-event": Expect(
        StreamError,
        None,
        ("流中途报告了错误", "Upstream inference worker failed", "已保留"),
        partial=PARTIAL,
    ),
    "fault-cut-mid-stream": Expect(
        StreamError, None, ("断开", "已保留", "不完整"), partial=PARTIAL
    ),
    "fault-malformed-json": Expect(
        StreamError, None, ("不是合法的 JSON", "已保留", "不完整"), partial=PARTIAL
    ),
    "fault-stall": Expect(
        RequestTimeout,
        None,
        ("0.5", "没有新数据", "LLM_TIMEOUT", "已保留"),
        partial=PARTIAL,
        timeout=0.5,
    ),
    "fault-slow-first-token": Expect(pieces=SEED_PIECES, params={"fault_delay": 0.3}),
    "fault-keepalive": Expect(pieces=SEED_PIECES),
    "fault-crlf": Expect(pieces=SEED_PIECES),
    "fault-close-delimited": Expect(pieces=SEED_PIECES),
    "fault-split-utf8": Expect(pieces=SEED_PIECES),
    "fault-no-charset": Expect(pieces=SEED_PIECES),
    "fault-gzip": Expect(pieces=SEED_PIECES),
    "fault-no-done": Expect(pieces=SEED_PIECES),
    "fault-length": Expect(text="你好！有什么问题", finish="length", says=("max_tokens", "length")),
    "fault-content-filter": Expect(
        text=PARTIAL, finish="content_filter", says=("内容审核", "content_filter")
    ),
    "fault-reasoning-only": Expect(
        text="", finish="length", says=("reasoning_content", "max_tokens")
    ),
    "fault-tool-calls": Expect(text="", finish="tool_calls", says=("get_weather", "tool")),
}

REQUIRED_IDS = {
    "fault-401", "fault-403", "fault-404", "fault-400", "fault-context-too-long",
    "fault-429-retry-after", "fault-429", "fault-500", "fault-502-html", "fault-503",
    "fault-json-not-stream", "fault-error-event", "fault-cut-mid-stream", "fault-malformed-json",
    "fault-keepalive", "fault-crlf", "fault-close-delimited", "fault-split-utf8", "fault-stall",
    "fault-slow-first-token", "fault-length", "fault-content-filter", "fault-reasoning-only",
    "fault-tool-calls",
}  # fmt: skip
RECOVERABLE = (
    "fault-keepalive",
    "fault-crlf",
    "fault-close-delimited",
    "fault-split-utf8",
    "fault-slow-first-token",
    "fault-no-charset",
    "fault-gzip",
    "fault-no-done",
)


def test_every_scenario_is_registered_and_expected():
    assert REQUIRED_IDS <= set(SCENARIOS)
    assert set(SCENARIOS) == set(EXPECTED)
    assert all(mid.startswith("fault-") for mid in SCENARIOS)
    assert all(MODELS[mid] is spec for mid, spec in SCENARIOS.items())


def test_models_lists_every_scenario_with_a_one_line_chinese_description(lab):
    response = requests.get(
        lab.base_url + "/models", headers={"Authorization": f"Bearer {FAKE_KEY}"}, timeout=5
    )
    listed = {m["id"]: m for m in response.json()["data"]}
    for mid in SCENARIOS:
        description = listed[mid]["description"]
        assert description and "\n" not in description and len(description) <= 80, mid
        assert any("\u4e00" <= ch <= "\u9fff" for ch in description), mid


def run(server: LocalServer, model: str, expect: Expect, **client_kw: Any):
    """Stream one request; return (error or None, result, pieces, waits, requests sent)."""
    sleep = FakeSleep()
    session = CountingSession()
    client = ChatClient(
        lab_settings(server, expect.timeout), sleep=sleep, session=session, **client_kw
    )
    pieces: list[str] = []
    stream = None
    try:
        stream = client.stream(HELLO, model=model, **expect.params)
        for piece in stream.text():
            pieces.append(piece)
    except LLMError as error:
        return error, error.result, pieces, sleep.waits, session.sent
    assert stream is not None
    return None, stream.result, pieces, sleep.waits, session.sent


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_scenario_through_the_client(lab, model):
    expect = EXPECTED[model]
    error, result, pieces, waits, sent = run(lab, model, expect)
    assert len(waits) == expect.retries
    assert sent == expect.retries + 1
    if expect.error is None:
        assert error is None, f"{model}: unexpected {error!r}"
        assert result.content == expect.text
        assert "".join(pieces) == expect.text
        if expect.pieces is not None:
            assert pieces == expect.pieces
        assert result.finish_reason == expect.finish
        note = finish_note(result)
        assert (note == "") == (not expect.says), note
        for word in expect.says:
            assert word in note, (model, note)
        return
    assert type(error) is expect.error, f"{model}: {error!r}"
    text = assert_one_line(error)
    assert error.status == expect.status
    if expect.status is not None:
        assert text.startswith(f"HTTP {expect.status} ")
    for word in expect.says:
        assert word in text, (model, text)
    assert text.endswith("。"), text  # what happened, then what to do
    assert FAKE_KEY not in everything_shown(error)
    assert error.request_id and len(error.request_id) == 32  # the local server's X-Request-Id
    if expect.partial is not None:
        assert error.partial_text == expect.partial
        assert "".join(pieces) == expect.partial  # shown, and kept
        assert error.result.content == expect.partial
        assert f"已收到的 {len(expect.partial)} 个字符已保留" in text
    else:
        assert error.partial_text == ""


@pytest.mark.parametrize("model", [m for m, e in EXPECTED.items() if e.status])
def test_http_errors_are_the_same_without_streaming(lab, model):
    expect = EXPECTED[model]
    sleep = FakeSleep()
    client = ChatClient(lab_settings(lab), sleep=sleep)
    with pytest.raises(expect.error) as info:
        client.chat(HELLO, model=model)
    assert info.value.status == expect.status
    assert len(sleep.waits) == expect.retries
    assert FAKE_KEY not in everything_shown(info.value)


@pytest.mark.parametrize("model", RECOVERABLE)
def test_recoverable_oddities_give_exactly_the_normal_chunks(lab, model):
    client = ChatClient(lab_settings(lab))
    normal = list(client.stream(HELLO))
    odd_stream = client.stream(HELLO, model=model, **EXPECTED[model].params)
    odd = list(odd_stream)
    assert [c["choices"] for c in odd] == [c["choices"] for c in normal]
    assert [c["usage"] for c in odd] == [c["usage"] for c in normal]
    assert odd_stream.done == (model != "fault-no-done")


def test_recoverable_oddities_with_another_question(lab):
    question = [{"role": "user", "content": "什么是流式输出？"}]
    client = ChatClient(lab_settings(lab))
    expected = client.chat(question).content
    assert len(expected) > 50
    for model in RECOVERABLE:
        params = EXPECTED[model].params
        assert "".join(client.stream(question, model=model, **params).text()) == expected, model


def test_json_not_stream_non_streaming_and_tool_call_details(lab):
    client = ChatClient(lab_settings(lab))
    assert client.chat(HELLO, model="fault-json-not-stream").content == SEED_TEXT
    stream = client.stream(HELLO, model="fault-tool-calls")
    list(stream)
    (call,) = stream.result.tool_calls
    assert (call.id, call.type, call.name) == ("call_fault_lab_0", "function", "get_weather")
    assert json.loads(call.arguments) == {"city": "北京", "unit": "celsius"}
    assert stream.result.to_message()["tool_calls"][0]["function"]["name"] == "get_weather"


def test_reasoning_only_keeps_the_reasoning(lab):
    stream = ChatClient(lab_settings(lab)).stream(HELLO, model="fault-reasoning-only")
    assert list(stream.text()) == []
    assert stream.result.reasoning_content.startswith("嗯，用户问的是「你好」")


# -- retries ------------------------------------------------------------------------------------
def test_429_retry_after_really_waits_the_servers_second(lab):
    retries: list[tuple[str, float, int]] = []
    client = ChatClient(
        lab_settings(lab), on_retry=lambda e, wait, n: retries.append((type(e).__name__, wait, n))
    )
    question = [{"role": "user", "content": "限流之后重试（真的等待）"}]
    started = time.monotonic()
    text = "".join(client.stream(question, model="fault-429-retry-after").text())
    assert time.monotonic() - started >= 0.95
    assert retries == [("RateLimitError", 1.0, 1)]
    assert text.startswith("你问的是：「限流之后重试（真的等待）」")


def test_429_retry_after_state_is_per_conversation(lab):
    sleep = FakeSleep()
    client = ChatClient(lab_settings(lab), sleep=sleep)
    for question in ("第一段对话", "第二段对话", "第一段对话"):
        messages = [{"role": "user", "content": question}]
        assert question in client.chat(messages, model="fault-429-retry-after").content
    assert sleep.waits == [1.0, 1.0, 1.0]  # each conversation is refused once, then answered


def test_429_retry_after_without_retries_is_one_line_with_the_wait(lab):
    client = ChatClient(lab_settings(lab), max_retries=0)
    messages = [{"role": "user", "content": "不许重试"}]
    with pytest.raises(RateLimitError) as info:
        client.chat(messages, model="fault-429-retry-after")
    assert info.value.retry_after == 1.0
    assert "等待 1 秒" in assert_one_line(info.value)
    assert "已自动重试" not in str(info.value)
    assert "不许重试" in client.chat(messages, model="fault-429-retry-after").content


def test_backoff_grows_exponentially_with_jitter(lab):
    sleep = FakeSleep()
    client = ChatClient(lab_settings(lab), max_retries=4, max_retry_wait=100, sleep=sleep)
    with pytest.raises(ServerError):
        client.chat(HELLO, model="fault-503")
    assert len(sleep.waits) == 4
    for attempt, wait in enumerate(sleep.waits, start=1):
        step = 0.5 * 2 ** (attempt - 1)
        assert step <= wait <= 2 * step


def test_backoff_delay_rules():
    import random

    rng = random.Random(7)
    assert backoff_delay(1, 3.0) == 3.0  # Retry-After wins
    assert backoff_delay(5, 0.0) == 0.0
    samples = [backoff_delay(2, rng=rng) for _ in range(200)]
    assert all(1.0 <= s <= 2.0 for s in samples)
    assert len(set(samples)) > 100  # jitter: not all in step
    assert backoff_delay(50, rng=rng) == 30.0  # capped
    assert 0.1 <= backoff_delay(1, base=0.1, rng=rng) <= 0.2


def test_total_retry_time_is_bounded(lab):
    sleep = FakeSleep()
    client = ChatClient(lab_settings(lab), max_retries=10, max_retry_wait=2.0, sleep=sleep)
    with pytest.raises(RateLimitError) as info:
        client.chat(HELLO, model="fault-429")
    assert sum(sleep.waits) <= 2.0
    assert len(sleep.waits) in (1, 2)  # 0.5-1 s, then 1-2 s only if the sum stays <= 2 s
    assert info.value.retries == len(sleep.waits)


def test_retry_after_beyond_the_budget_is_not_waited(lab):
    sleep = FakeSleep()
    client = ChatClient(lab_settings(lab), max_retry_wait=0.5, sleep=sleep)
    with pytest.raises(RateLimitError) as info:
        client.chat([{"role": "user", "content": "预算不够"}], model="fault-429-retry-after")
    assert sleep.waits == []
    assert "等待 1 秒" in str(info.value)


@pytest.mark.parametrize(
    "model", ["fault-cut-mid-stream", "fault-error-event", "fault-malformed-json", "fault-stall"]
)
def test_never_retried_once_output_was_shown(lab, model):
    expect = EXPECTED[model]
    error, _, pieces, waits, sent = run(lab, model, expect, max_retries=5)
    assert pieces and error is not None
    assert waits == [] and sent == 1
    assert error.retries == 0


def test_retry_after_as_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=5)
    error = error_from_response(429, "{}", {"Retry-After": format_datetime(when, usegmt=True)})
    assert error.retry_after is not None and 3.5 <= error.retry_after <= 5.0
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert error_from_response(429, "{}", {"Retry-After": past}).retry_after == 0.0
    assert error_from_response(429, "{}", {"Retry-After": "soon"}).retry_after is None


# -- timeouts -----------------------------------------------------------------------------------
def test_read_timeout_comes_from_llm_timeout(lab, monkeypatch):
    monkeypatch.setenv("LLM_TIMEOUT", "0.5")
    settings = load_settings(env_file="/nonexistent/.env")
    assert settings.timeout == 0.5
    settings = replace(settings, base_url=lab.base_url, api_key=Secret(FAKE_KEY))
    stream = ChatClient(settings).stream(HELLO, model="fault-stall")
    started = time.monotonic()
    with pytest.raises(RequestTimeout) as info:
        list(stream)
    assert 0.4 <= time.monotonic() - started < 2.0
    assert info.value.partial_text == PARTIAL


def test_every_request_gets_connect_and_read_timeouts(lab):
    seen: list[Any] = []

    class Spy(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            seen.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    settings = replace(lab_settings(lab, timeout=7.0), connect_timeout=3.0)
    client = ChatClient(settings, session=Spy())
    client.chat(HELLO)
    list(client.stream(HELLO))
    client.models()
    assert seen == [(3.0, 7.0)] * 3


def test_slow_first_token_longer_than_the_timeout_is_a_timeout(lab):
    client = ChatClient(lab_settings(lab, timeout=0.3))
    stream = client.stream(HELLO, model="fault-slow-first-token", fault_delay=1.0)
    with pytest.raises(RequestTimeout) as info:
        list(stream)
    assert info.value.partial_text == ""
    assert "0.3" in str(info.value)


def test_no_answer_at_all_is_a_read_timeout_and_not_retried():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        base_url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        settings = Settings(Secret(FAKE_KEY), base_url, "m", timeout=0.3, connect_timeout=1.0)
        sleep = FakeSleep()
        with pytest.raises(RequestTimeout) as info:
            ChatClient(settings, sleep=sleep).chat(HELLO)
    finally:
        listener.close()
    assert sleep.waits == []
    assert FAKE_KEY not in everything_shown(info.value)
    assert info.value.__context__ is None


# -- the key never shows ------------------------------------------------------------------------
def test_connection_refused_has_no_key_and_no_context():
    settings = Settings(Secret(FAKE_KEY), "http://127.0.0.1:9/v1", "m", connect_timeout=2.0)
    with pytest.raises(ConnectError) as info:
        ChatClient(settings, max_retries=0).chat(HELLO)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert FAKE_KEY not in everything_shown(info.value)


class LeakySession(requests.Session):
    """Raises requests' own exceptions carrying the request -- and the key in the text."""

    def __init__(self, kind: type[requests.RequestException]) -> None:
        super().__init__()
        self.kind = kind

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        prepared = requests.Request(method, url, headers=kwargs.get("headers")).prepare()
        raise self.kind(f"failed with headers {prepared.headers}", request=prepared)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (requests.ConnectionError, ConnectError),
        (requests.ConnectTimeout, ConnectError),
        (requests.ReadTimeout, RequestTimeout),
        (requests.TooManyRedirects, LLMError),
        (requests.exceptions.InvalidHeader, LLMError),
    ],
)
def test_requests_exceptions_with_the_key_inside_do_not_leak(kind, expected):
    settings = Settings(Secret(FAKE_KEY), "http://127.0.0.1:9/v1", "m")
    with pytest.raises(LLMError) as info:
        ChatClient(settings, max_retries=0, session=LeakySession(kind)).stream(HELLO)
    assert type(info.value) is expected
    assert info.value.__context__ is None
    assert FAKE_KEY not in everything_shown(info.value)
    assert_one_line(info.value)


def echo_key(ex: Exchange) -> None:
    """A careless server that repeats the key it was sent (some proxies do)."""
    key = ex.request_headers.get("Authorization", "").partition(" ")[2]
    if not ex.stream:
        ex.send_error(401, f"Incorrect API key provided: {key} (Authorization: Bearer {key})")
        return
    ex.start_stream()
    ex.send_event({"id": "x", "choices": [{"index": 0, "delta": {"content": "半句"}}]})
    ex.send_event({"error": {"message": f"key {key} is over quota"}})
    ex.end_stream()


@pytest.fixture
def echo_model(lab):
    spec = lab.register(ModelSpec("test-echo-key", "测试用：把密钥原样说出来。", echo_key))
    yield spec.id
    lab.unregister(spec.id)


def test_a_server_echoing_the_key_is_redacted(lab, echo_model):
    client = ChatClient(lab_settings(lab), max_retries=0)
    with pytest.raises(AuthError) as info:
        client.chat(HELLO, model=echo_model)
    assert "***" in str(info.value)
    assert FAKE_KEY not in everything_shown(info.value)
    with pytest.raises(StreamError) as info:
        list(client.stream(HELLO, model=echo_model))
    assert info.value.partial_text == "半句"
    assert "***" in str(info.value)
    # The stream's own frames hold the bytes that arrived (the echoed key among them) as
    # locals; what the error itself says and carries is clean.
    assert FAKE_KEY not in everything_shown(info.value, with_locals=False)


def test_the_response_keeps_no_usable_key(lab):
    stream = ChatClient(lab_settings(lab)).stream(HELLO)
    list(stream)
    assert stream.response.request.headers["Authorization"] == "Bearer ***"
    assert FAKE_KEY not in repr(vars(stream))


def test_logs_never_contain_the_key(lab, caplog, echo_model):
    caplog.set_level(logging.DEBUG)
    client = ChatClient(lab_settings(lab), sleep=FakeSleep())
    for model in ("fault-500", "fault-429", "fault-cut-mid-stream", "fault-stall", echo_model):
        try:
            list(client.stream(HELLO, model=model, fault_delay=0.1))
        except LLMError as error:
            logging.getLogger("test").exception("failed: %s", error)
    assert caplog.records
    assert FAKE_KEY not in caplog.text
    assert all(FAKE_KEY not in record.getMessage() for record in caplog.records)


# -- finish_note --------------------------------------------------------------------------------
def result_with(**kw: Any) -> ChatResult:
    return ChatResult(choices=[Choice(index=0, **kw)])


def test_finish_note():
    assert finish_note(result_with(content="好", finish_reason="stop")) == ""
    assert "max_tokens" in finish_note(result_with(content="好", finish_reason="length"))
    only_thinking = result_with(reasoning_content="想", finish_reason="length")
    assert "reasoning_content" in finish_note(only_thinking)
    assert "content_filter" in finish_note(result_with(finish_reason="content_filter"))
    call = ToolCall(index=0, name="get_weather")
    assert "get_weather" in finish_note(result_with(tool_calls=[call], finish_reason="tool_calls"))
    assert "不完整" in finish_note(result_with(content="好"))
    assert "空" in finish_note(result_with(finish_reason="stop"))
    assert "weird" in finish_note(result_with(content="好", finish_reason="weird"))
    for note in (finish_note(result_with(finish_reason=r)) for r in ("length", "x", None)):
        assert "\n" not in note


def test_finish_note_shows_a_refusal_on_one_line():
    refused = result_with(refusal="I can't help\nwith that.", finish_reason="stop")
    assert finish_note(refused) == "模型拒绝了这个请求（refusal）：I can't help with that."
    long = finish_note(result_with(refusal="不" * 500, finish_reason="stop"))
    assert long.endswith("…") and len(long) < 250


def test_finish_note_never_repeats_the_key_the_server_sent_back():
    echoed = ToolCall(index=0, name=f"leak_{FAKE_KEY}")
    notes = [
        finish_note(result_with(tool_calls=[echoed], finish_reason="tool_calls"), FAKE_KEY),
        finish_note(result_with(refusal=f"no, {FAKE_KEY}", finish_reason="stop"), FAKE_KEY),
        finish_note(result_with(content="好", finish_reason=FAKE_KEY), FAKE_KEY),
    ]
    assert all(note and FAKE_KEY not in note for note in notes), notes
    assert "leak_" in notes[0]


def test_scenario_delays_are_configurable_and_bounded(lab):
    client = ChatClient(lab_settings(lab, timeout=5.0))
    started = time.monotonic()
    assert "".join(client.stream(HELLO, model="fault-stall", fault_delay=0.2).text()) == SEED_TEXT
    assert time.monotonic() - started < 2.0
    # The defaults: a stall outlasts a short read timeout; a slow first token does not outlast
    # the default LLM_TIMEOUT (60 s), so through a normal client it is only slow.
    assert lab_scenarios.STALL_DELAY >= 2.0
    assert lab_scenarios.SLOW_FIRST_TOKEN_DELAY <= 2.0
