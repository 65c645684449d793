"""ChatClient against the real local server, and against a tiny scripted server for faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lesson_helpers import seed
from lesson_helpers.chunks import ChoiceDelta, ChunkAssembler
from lesson_helpers.client import ChatClient, ChatStream
from lesson_helpers.config import Secret, Settings
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
)

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
SEED_TEXT = seed.ANSWER
SEED_PIECES = list(seed.PIECES)
HELLO = [{"role": "user", "content": "你好"}]
WRONG_KEY = "fake-key-wrong-0000000000"


def make_settings(base_url: str, key: str = "", timeout: float = 10.0, **kw: Any) -> Settings:
    kw.setdefault("model", SEED_MODEL)
    return Settings(
        api_key=Secret(key),
        base_url=base_url,
        timeout=timeout,
        connect_timeout=5.0,
        provider="local",
        **kw,
    )


class FakeSleep:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def assert_one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text and "\r" not in text
    assert "Traceback" not in text
    return text


# -- a tiny scripted HTTP server ---------------------------------------------------------------
Action = Callable[[BaseHTTPRequestHandler], None]


class _ScriptHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ScriptHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        script = self.server.script
        with script.lock:
            script.requests.append((self.command, self.path, dict(self.headers), body))
            action = script.actions.pop(0) if script.actions else None
        if action is None:
            json_reply(500, {"error": {"message": "script ran out of actions"}})(self)
        else:
            action(self)

    do_GET = do_POST = _handle  # noqa: N815


class _ScriptHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    script: Script

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up on purpose is part of several tests


class Script:
    """Replies to each request with the next action; records every request."""

    def __init__(self, *actions: Action) -> None:
        self.actions: list[Action] = list(actions)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self._server = _ScriptHTTPServer(("127.0.0.1", 0), _ScriptHandler)
        self._server.script = self
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Script:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        data = (obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    return act


def sse_reply(*parts: bytes | float, chunked: bool = False, finish: bool = True) -> Action:
    """A streaming 200: bytes are written at once, a float is a pause in seconds.

    Close-delimited by default; ``chunked=True, finish=False`` drops the connection without
    the zero-length chunk (a cut HTTP body)."""

    def act(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        for part in parts:
            if isinstance(part, float):
                time.sleep(part)
                continue
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            h.wfile.flush()
        if chunked and finish:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        h.close_connection = True

    return act


@pytest.fixture
def seed_events(seed_stream_bytes) -> list[bytes]:
    """The seed stream cut into its 13 events (12 chunks, then [DONE])."""
    events = [e + b"\n\n" for e in seed_stream_bytes.split(b"\n\n") if e]
    assert len(events) == 13 and events[-1] == b"data: [DONE]\n\n"
    return events


def completion(text: str = SEED_TEXT) -> dict[str, Any]:
    return {
        "id": "cmpl-test",
        "object": "chat.completion",
        "created": 1763350084,
        "model": SEED_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
    }


# -- against the local server ------------------------------------------------------------------
@pytest.fixture
def client(server) -> ChatClient:
    return ChatClient(make_settings(server.base_url, server.api_key), max_retries=0)


def test_stream_assembles_the_seed_text(client):
    stream = client.stream(HELLO)
    assert isinstance(stream, ChatStream)
    chunks = list(stream)
    assert len(chunks) == 12
    assert stream.done
    assert stream.events == 13
    result = stream.result
    assert result.content == SEED_TEXT
    assert result.finish_reason == "stop"
    assert result.role == "assistant"
    assert result.model == SEED_MODEL
    assert result.usage == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    assert len({c["id"] for c in chunks}) == 1 and result.id == chunks[0]["id"]


def test_stream_text_yields_the_pieces_in_order(client):
    with client.stream(HELLO) as stream:
        assert list(stream.text()) == SEED_PIECES


def test_stream_passes_extra_params(client):
    stream = client.stream(HELLO, max_tokens=3)
    list(stream)
    assert stream.result.content == "你好！有什么"
    assert stream.result.finish_reason == "length"


def test_stream_with_another_model(client):
    stream = client.stream(HELLO, model="deepseek-ai/DeepSeek-R1")
    list(stream)
    assert stream.result.content == SEED_TEXT
    assert stream.result.reasoning_content
    assert stream.result.model == "deepseek-ai/DeepSeek-R1"


def test_chat_non_stream(client):
    result = client.chat(HELLO)
    assert result.content == SEED_TEXT
    assert result.finish_reason == "stop"
    assert result.usage["total_tokens"] == 40
    assert result.to_message() == {"role": "assistant", "content": SEED_TEXT}


def test_models(client):
    models = client.models()
    assert SEED_MODEL in models
    assert "deepseek-ai/DeepSeek-R1" in models
    assert all(isinstance(m, str) for m in models)


def test_wrong_key_is_auth_error(server):
    client = ChatClient(make_settings(server.base_url, WRONG_KEY), max_retries=2)
    with pytest.raises(AuthError) as info:
        client.chat(HELLO)
    error = info.value
    text = assert_one_line(error)
    assert error.status == 401
    assert "401" in text
    assert "Incorrect API key provided." in text
    assert WRONG_KEY not in text and WRONG_KEY not in repr(error)
    with pytest.raises(AuthError):
        list(client.stream(HELLO))
    with pytest.raises(AuthError):
        client.models()


def test_missing_key_is_auth_error(server):
    client = ChatClient(make_settings(server.base_url, ""), max_retries=0)
    with pytest.raises(AuthError) as info:
        client.chat(HELLO)
    assert info.value.status == 401


def test_unknown_model_is_not_found(client):
    with pytest.raises(NotFoundError) as info:
        client.chat(HELLO, model="no-such-model")
    error = info.value
    text = assert_one_line(error)
    assert error.status == 404
    assert "404" in text
    assert "no-such-model" in error.provider_message
    assert "does not exist" in text


def test_bad_request_is_not_retried(server):
    sleep = FakeSleep()
    client = ChatClient(make_settings(server.base_url, server.api_key), sleep=sleep)
    with pytest.raises(BadRequestError) as info:
        client.chat(HELLO, max_tokens=0)
    assert info.value.status == 400
    assert "max_tokens" in str(info.value)
    assert sleep.waits == []


def test_connection_refused_is_one_line_connect_error():
    client = ChatClient(make_settings("http://127.0.0.1:9/v1", "fake-key-for-tests"), max_retries=0)
    started = time.monotonic()
    with pytest.raises(ConnectError) as info:
        client.chat(HELLO)
    assert time.monotonic() - started < 5
    text = assert_one_line(info.value)
    assert "127.0.0.1:9" in text
    assert "拒绝" in text
    assert info.value.status is None


def test_connection_refused_is_retried():
    sleep = FakeSleep()
    retries: list[tuple[type, float, int]] = []
    client = ChatClient(
        make_settings("http://127.0.0.1:9/v1"),
        max_retries=2,
        sleep=sleep,
        on_retry=lambda e, wait, n: retries.append((type(e), wait, n)),
    )
    with pytest.raises(ConnectError):
        client.stream(HELLO)
    assert len(sleep.waits) == 2
    assert [(kind, n) for kind, _, n in retries] == [(ConnectError, 1), (ConnectError, 2)]


# -- retries -----------------------------------------------------------------------------------
def rate_limited(retry_after: str = "0") -> Action:
    body = {"error": {"message": "Rate limit reached for requests", "code": "rate_limit"}}
    return json_reply(429, body, {"Retry-After": retry_after})


def server_error() -> Action:
    return json_reply(500, {"error": {"message": "internal error", "type": "server_error"}})


def test_429_with_retry_after_is_retried_then_streams(seed_events):
    sleep = FakeSleep()
    retries: list[LLMError] = []
    with Script(rate_limited("0"), sse_reply(b"".join(seed_events))) as script:
        client = ChatClient(
            make_settings(script.base_url, "fake-key-for-tests"),
            sleep=sleep,
            on_retry=lambda e, wait, n: retries.append(e),
        )
        stream = client.stream(HELLO)
        assert list(stream.text()) == SEED_PIECES
    assert stream.result.content == SEED_TEXT
    assert sleep.waits == [0]
    assert len(script.requests) == 2
    assert len(retries) == 1 and isinstance(retries[0], RateLimitError)
    assert retries[0].retry_after == 0
    method, path, headers, body = script.requests[1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["Authorization"] == "Bearer fake-key-for-tests"
    assert headers["Accept"] == "text/event-stream"
    assert json.loads(body) == {"model": SEED_MODEL, "messages": HELLO, "stream": True}


def test_429_then_non_stream_success():
    sleep = FakeSleep()
    with Script(rate_limited("0"), json_reply(200, completion())) as script:
        client = ChatClient(make_settings(script.base_url, "fake-key-for-tests"), sleep=sleep)
        assert client.chat(HELLO).content == SEED_TEXT
    assert sleep.waits == [0]
    assert json.loads(script.requests[0][3]) == {"model": SEED_MODEL, "messages": HELLO}


def test_500_twice_then_success_with_backoff():
    sleep = FakeSleep()
    with Script(server_error(), server_error(), json_reply(200, completion())) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=2, sleep=sleep)
        assert client.chat(HELLO).content == SEED_TEXT
    assert len(script.requests) == 3
    assert len(sleep.waits) == 2
    assert 0.5 <= sleep.waits[0] <= 1.0  # exponential backoff with jitter
    assert 1.0 <= sleep.waits[1] <= 2.0


def test_500_three_times_exhausts_two_retries():
    sleep = FakeSleep()
    with Script(server_error(), server_error(), server_error()) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=2, sleep=sleep)
        with pytest.raises(ServerError) as info:
            client.chat(HELLO)
    assert len(script.requests) == 3
    assert len(sleep.waits) == 2
    assert info.value.status == 500
    assert "internal error" in assert_one_line(info.value)


def test_no_retries_when_max_retries_is_0():
    sleep = FakeSleep()
    with Script(server_error(), json_reply(200, completion())) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=0, sleep=sleep)
        with pytest.raises(ServerError) as info:
            client.chat(HELLO)
    assert len(script.requests) == 1
    assert sleep.waits == []
    assert "500" in assert_one_line(info.value)


def test_retry_after_beyond_the_budget_is_not_waited_for():
    sleep = FakeSleep()
    with Script(rate_limited("120"), json_reply(200, completion())) as script:
        client = ChatClient(make_settings(script.base_url), max_retry_wait=30, sleep=sleep)
        with pytest.raises(RateLimitError) as info:
            client.chat(HELLO)
    assert sleep.waits == []
    assert len(script.requests) == 1
    assert info.value.retry_after == 120
    assert "120" in str(info.value)  # the hint says how long the server asked to wait


def test_html_error_page_is_summarised():
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

    def html(h: BaseHTTPRequestHandler) -> None:
        data = page.encode()
        h.send_response(502)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    with Script(html) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=0)
        with pytest.raises(ServerError) as info:
            client.chat(HELLO)
    text = assert_one_line(info.value)
    assert "502 Bad Gateway" in text
    assert "<html>" not in text


# -- broken streams ----------------------------------------------------------------------------
def collect(stream: ChatStream) -> tuple[list[str], LLMError]:
    """Read the stream's text until it raises; return the pieces and the error."""
    pieces: list[str] = []
    with pytest.raises(LLMError) as info:
        for piece in stream.text():
            pieces.append(piece)
    return pieces, info.value


def test_stream_cut_without_done_keeps_the_partial_text(seed_events):
    with Script(sse_reply(*seed_events[:3])) as script:
        client = ChatClient(make_settings(script.base_url))
        pieces, error = collect(client.stream(HELLO))
    assert type(error) is StreamError
    assert pieces == ["你好", "！"]
    assert error.partial_text == "你好！"
    assert error.result.content == "你好！"
    assert error.result.usage["completion_tokens"] == 2
    text = assert_one_line(error)
    assert "已保留" in text and "3 个字符" in text
    assert "[DONE]" in text


def test_chunked_stream_cut_mid_body_keeps_the_partial_text(seed_events):
    action = sse_reply(*seed_events[:4], chunked=True, finish=False)
    with Script(action) as script:
        client = ChatClient(make_settings(script.base_url))
        stream = client.stream(HELLO)
        pieces, error = collect(stream)
    assert type(error) is StreamError
    assert pieces == ["你好", "！", "有什么"]
    assert error.partial_text == "你好！有什么"
    assert stream.result.content == "你好！有什么"  # still there after the error
    assert not stream.done
    assert "已保留" in assert_one_line(error)


def test_stream_that_finished_but_lost_done_is_complete(seed_events):
    with Script(sse_reply(*seed_events[:12])) as script:
        client = ChatClient(make_settings(script.base_url))
        stream = client.stream(HELLO)
        assert "".join(stream.text()) == SEED_TEXT
    assert not stream.done
    assert stream.result.finish_reason == "stop"


def test_chunked_stream_from_the_script_server(seed_events):
    with Script(sse_reply(*seed_events, chunked=True)) as script:
        client = ChatClient(make_settings(script.base_url))
        stream = client.stream(HELLO)
        assert list(stream.text()) == SEED_PIECES
    assert stream.done


def test_error_event_mid_stream(seed_events):
    error_event = b'data: {"error": {"message": "upstream overloaded", "type": "server_error"}}\n\n'
    with Script(sse_reply(*seed_events[:3], error_event, *seed_events[3:])) as script:
        client = ChatClient(make_settings(script.base_url))
        pieces, error = collect(client.stream(HELLO))
    assert type(error) is StreamError
    assert pieces == ["你好", "！"]
    assert error.provider_message == "upstream overloaded"
    assert error.partial_text == "你好！"
    text = assert_one_line(error)
    assert "upstream overloaded" in text and "已保留" in text


def test_error_event_type_mid_stream(seed_events):
    error_event = b'event: error\ndata: {"message": "model crashed"}\n\n'
    with Script(sse_reply(*seed_events[:2], error_event)) as script:
        client = ChatClient(make_settings(script.base_url))
        pieces, error = collect(client.stream(HELLO))
    assert type(error) is StreamError
    assert pieces == ["你好"]
    assert error.provider_message == "model crashed"
    assert error.partial_text == "你好"


def test_non_json_event_is_a_stream_error(seed_events):
    with Script(sse_reply(*seed_events[:3], b"data: <html>oops\n\n", seed_events[-1])) as script:
        client = ChatClient(make_settings(script.base_url))
        pieces, error = collect(client.stream(HELLO))
    assert type(error) is StreamError
    assert pieces == ["你好", "！"]
    assert error.partial_text == "你好！"
    text = assert_one_line(error)
    assert "JSON" in text
    assert "<html>oops" in text


def test_malformed_chunk_is_a_stream_error(seed_events):
    bad = b'data: {"choices": [{"index": "zero", "delta": {"content": "x"}}]}\n\n'
    with Script(sse_reply(*seed_events[:2], bad)) as script:
        client = ChatClient(make_settings(script.base_url))
        pieces, error = collect(client.stream(HELLO))
    assert type(error) is StreamError
    assert pieces == ["你好"]
    assert error.partial_text == "你好"


def test_stall_longer_than_the_timeout_is_request_timeout(seed_events):
    with Script(sse_reply(*seed_events[:3], 2.0, *seed_events[3:])) as script:
        client = ChatClient(make_settings(script.base_url, timeout=0.3))
        stream = client.stream(HELLO)
        started = time.monotonic()
        pieces, error = collect(stream)
        elapsed = time.monotonic() - started
    assert type(error) is RequestTimeout
    assert elapsed < 1.5  # the timeout fired, not the end of the 2 s pause
    assert pieces == ["你好", "！"]
    assert error.partial_text == "你好！"
    text = assert_one_line(error)
    assert "0.3" in text and "已保留" in text
    assert stream.result.content == "你好！"


def test_no_response_within_the_timeout_is_request_timeout(seed_events):
    def slow(h: BaseHTTPRequestHandler) -> None:
        time.sleep(2.0)
        sse_reply(*seed_events)(h)

    sleep = FakeSleep()
    with Script(slow) as script:
        client = ChatClient(make_settings(script.base_url, timeout=0.3), sleep=sleep)
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as info:
            client.stream(HELLO)
        assert time.monotonic() - started < 1.5
    assert sleep.waits == []  # a timeout is not retried: the request may have been processed
    assert "0.3" in assert_one_line(info.value)


def test_json_reply_to_a_stream_request_becomes_one_chunk():
    with Script(json_reply(200, completion())) as script:
        client = ChatClient(make_settings(script.base_url))
        stream = client.stream(HELLO)
        chunks = list(stream)
    assert len(chunks) == 1
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["content"] == SEED_TEXT
    assert delta["role"] == "assistant"
    assert chunks[0]["choices"][0]["finish_reason"] == "stop"
    assert stream.done
    assert stream.result.content == SEED_TEXT
    assert stream.result.usage["total_tokens"] == 40


def test_json_error_body_with_200_to_a_stream_request():
    body = {"error": {"message": "quota exceeded"}}
    with Script(json_reply(200, body)) as script:
        client = ChatClient(make_settings(script.base_url))
        with pytest.raises(StreamError) as info:
            list(client.stream(HELLO))
    assert info.value.provider_message == "quota exceeded"


def test_stream_split_at_every_byte_is_reassembled(seed_stream_bytes):
    pieces = [seed_stream_bytes[i : i + 1] for i in range(0, 600)]
    pieces.append(seed_stream_bytes[600:])
    with Script(sse_reply(*pieces)) as script:
        client = ChatClient(make_settings(script.base_url))
        stream = client.stream(HELLO)
        assert list(stream.text()) == SEED_PIECES
    assert stream.done


# -- one merge per chunk, text() from the assembler (issue 15) ----------------------------------
@pytest.fixture
def counted_merges(monkeypatch) -> list[int]:
    """Every ChunkAssembler.add call, counted (one item per merged chunk)."""
    calls: list[int] = []
    real = ChunkAssembler.add

    def add(self: ChunkAssembler, chunk: dict[str, Any]) -> Any:
        calls.append(1)
        return real(self, chunk)

    monkeypatch.setattr(ChunkAssembler, "add", add)
    return calls


def test_each_chunk_is_merged_exactly_once(client, counted_merges):
    stream = client.stream(HELLO)
    assert "".join(stream.text()) == SEED_TEXT
    assert len(counted_merges) == 12  # 12 chunks, 12 merges
    assert stream.result.content == SEED_TEXT and stream.assembler.result().content == SEED_TEXT
    assert len(counted_merges) == 12  # reading the result merges nothing again
    assert stream.assembler.chunk_count == 12


def test_iterating_chunks_merges_each_once(client, counted_merges):
    stream = client.stream(HELLO)
    assert len(list(stream)) == 12
    assert len(counted_merges) == 12


def test_text_comes_from_the_assemblers_deltas(client, monkeypatch):
    """text() yields what the assembler says a chunk added, never re-reading the chunk dict."""
    real = ChunkAssembler.add

    def add(self: ChunkAssembler, chunk: dict[str, Any]) -> list[ChoiceDelta]:
        news = real(self, chunk)
        return [ChoiceDelta(index=d.index, content=f"<{d.content}>") for d in news if d.content]

    monkeypatch.setattr(ChunkAssembler, "add", add)
    pieces = list(client.stream(HELLO).text())
    assert pieces == [f"<{p}>" for p in SEED_PIECES]


def test_json_reply_to_a_stream_request_is_merged_once(counted_merges):
    with Script(json_reply(200, completion())) as script:
        stream = ChatClient(make_settings(script.base_url)).stream(HELLO)
        assert list(stream.text()) == [SEED_TEXT]
    assert len(counted_merges) == 1


def test_json_reply_to_a_stream_request_keeps_tool_calls_and_fingerprint():
    body = completion("")
    body["system_fingerprint"] = "fp_test_0001"
    body["choices"][0]["finish_reason"] = "tool_calls"
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
            },
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }
    with Script(json_reply(200, body), json_reply(200, body)) as script:
        client = ChatClient(make_settings(script.base_url))
        streamed = client.stream(HELLO)
        chunks = list(streamed)
        whole = client.chat(HELLO)
    result = streamed.result
    assert len(chunks) == 1
    assert result.system_fingerprint == "fp_test_0001" == whole.system_fingerprint
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("call_0", "get_weather", '{"city": "北京"}'),
        ("call_1", "get_time", "{}"),
    ]
    assert result.tool_calls == whole.tool_calls
    assert result.finish_reason == "tool_calls"
    assert result.to_message() == whole.to_message()


def test_a_chunk_with_error_null_is_not_an_error(seed_events):
    events = [
        e.replace(b'{"id"', b'{"error": null, "id"', 1) if e.startswith(b"data: {") else e
        for e in seed_events
    ]
    assert events[0] != seed_events[0]
    with Script(sse_reply(*events)) as script:
        stream = ChatClient(make_settings(script.base_url)).stream(HELLO)
        assert "".join(stream.text()) == SEED_TEXT
    assert stream.done


def test_a_malformed_chunk_says_what_is_wrong_instead_of_retry(seed_events):
    bad = b'data: {"choices": [{"index": "zero", "delta": {"content": "x"}}]}\n\n'
    with Script(sse_reply(*seed_events[:2], bad)) as script:
        _, error = collect(ChatClient(make_settings(script.base_url)).stream(HELLO))
    text = assert_one_line(error)
    assert "请重试" not in text
    assert "index" in text  # what is wrong
    assert "第 3 个事件" in text


def test_an_event_that_is_a_json_list_is_malformed_not_retry(seed_events):
    with Script(sse_reply(*seed_events[:2], b"data: [1, 2]\n\n")) as script:
        _, error = collect(ChatClient(make_settings(script.base_url)).stream(HELLO))
    text = assert_one_line(error)
    assert "请重试" not in text and "list" in text
    assert error.partial_text == "你好"


# -- no raw exception (issue 16) ---------------------------------------------------------------
def raw_reply(head: bytes, body: bytes) -> Action:
    """Exactly these bytes after the status line (headers included), then hang up."""

    def act(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(head + b"\r\n" + body)
        h.wfile.flush()
        h.close_connection = True

    return act


TRUNCATED_401 = raw_reply(
    b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
    b"Content-Length: 500\r\nConnection: close\r\n",
    b'{"error": {"message": "Incorrect API key provided',
)
BAD_GZIP_200 = raw_reply(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 12\r\nConnection: close\r\n",
    b"not gzip at ",
)
BAD_GZIP_STREAM = raw_reply(
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    b"Connection: close\r\n",
    b"\x1f\x8b\x08\x00garbage that is not deflate data\n\n",
)
BAD_GZIP_500 = raw_reply(
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b"Content-Encoding: gzip\r\nContent-Length: 8\r\nConnection: close\r\n",
    b"notgzip!",
)


@pytest.mark.parametrize("call", ["chat", "stream", "models"])
def test_a_truncated_error_body_is_one_line(call):
    with Script(TRUNCATED_401) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=0)
        with pytest.raises(AuthError) as info:
            if call == "models":
                client.models()
            else:
                list(getattr(client, call)(HELLO))
    text = assert_one_line(info.value)
    assert info.value.status == 401
    assert "没有传完整" in text
    assert "Incorrect API key provided" in text  # what did arrive is still shown


@pytest.mark.parametrize(
    ("action", "call"),
    [(BAD_GZIP_200, "chat"), (BAD_GZIP_200, "stream"), (BAD_GZIP_STREAM, "stream")],
)
def test_a_bad_gzip_body_is_one_line(action, call):
    with Script(action) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=0)
        with pytest.raises(StreamError) as info:
            result = getattr(client, call)(HELLO)
            list(result) if call == "stream" else None
    text = assert_one_line(info.value)
    assert "压缩" in text and "Content-Encoding" in text


def test_a_bad_gzip_error_body_keeps_the_status():
    with Script(BAD_GZIP_500) as script:
        with pytest.raises(ServerError) as info:
            ChatClient(make_settings(script.base_url), max_retries=0).chat(HELLO)
    assert info.value.status == 500
    assert "没有传完整" in assert_one_line(info.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [("http:///v1", "主机名"), ("http://127.0.0.1:99999/v1", "端口"), ("localhost:8000", "网址")],
)
def test_an_invalid_url_is_one_line_that_names_the_setting(url, says):
    sleep = FakeSleep()
    client = ChatClient(make_settings(url, "fake-key-for-tests"), sleep=sleep)
    for call in (lambda: client.chat(HELLO), lambda: client.stream(HELLO), client.models):
        with pytest.raises(LLMError) as info:
            call()
        text = assert_one_line(info.value)
        assert "LLM_BASE_URL" in text and says in text
    assert sleep.waits == []  # not retried: it cannot start working by itself


@pytest.mark.parametrize("timeout", [1e10, float("inf"), 0.0, -1.0, 1e-300])
def test_an_absurd_timeout_is_one_line_not_overflow_error(server, timeout):
    client = ChatClient(make_settings(server.base_url, server.api_key, timeout=timeout))
    with pytest.raises(LLMError) as info:
        client.chat(HELLO)
    text = assert_one_line(info.value)
    assert "LLM_TIMEOUT" in text
    with pytest.raises(LLMError):
        list(client.stream(HELLO))


def test_a_model_name_with_a_newline_is_one_line(server):
    client = ChatClient(make_settings(server.base_url, server.api_key, model="a\nb"))
    with pytest.raises(LLMError) as info:
        client.chat(HELLO)
    assert "LLM_MODEL='a\\nb'" in assert_one_line(info.value)


def test_a_socks_proxy_without_pysocks_is_one_line(monkeypatch):
    pytest.importorskip("requests")
    try:
        import socks  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PySocks is installed here")
    for name in (
        *("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"),
        "all_proxy",  # the lower-case name wins over ALL_PROXY
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:secret-pass@127.0.0.1:1080")
    sleep = FakeSleep()
    client = ChatClient(make_settings("http://127.0.0.1:9/v1", "fake-key-for-tests"), sleep=sleep)
    with pytest.raises(ConnectError) as info:
        client.chat(HELLO)
    text = assert_one_line(info.value)
    assert "ALL_PROXY" in text and "PySocks" in text and "pip install" in text
    assert "secret-pass" not in text  # a proxy URL may hold a password: never shown
    assert sleep.waits == []


def test_a_key_that_cannot_go_into_a_header_is_one_line(server):
    client = ChatClient(make_settings(server.base_url, "fake-key-ｋ-0000"))
    with pytest.raises(LLMError) as info:
        client.chat(HELLO)
    text = assert_one_line(info.value)
    assert "LLM_API_KEY" in text and "全角" in text


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": None, "id": "x"}, [1, 2]])
def test_a_json_reply_that_is_not_a_completion_is_not_an_empty_answer(body):
    with Script(json_reply(200, body), json_reply(200, body)) as script:
        client = ChatClient(make_settings(script.base_url))
        with pytest.raises(StreamError) as info:
            list(client.stream(HELLO))
        assert "请重试" not in assert_one_line(info.value)
        with pytest.raises(StreamError) as info:
            client.chat(HELLO)
    assert "不是完整的对话结果" in assert_one_line(info.value)


def test_an_error_null_completion_is_an_answer():
    body = {**completion(), "error": None}
    with Script(json_reply(200, body), json_reply(200, body)) as script:
        client = ChatClient(make_settings(script.base_url))
        assert client.chat(HELLO).content == SEED_TEXT
        assert "".join(client.stream(HELLO).text()) == SEED_TEXT


def test_a_redirect_loop_is_one_line():
    def loop(h: BaseHTTPRequestHandler) -> None:
        h.send_response(307)
        h.send_header("Location", h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    with Script(*[loop] * 40) as script:
        with pytest.raises(LLMError) as info:
            ChatClient(make_settings(script.base_url), max_retries=0).chat(HELLO)
    assert "重定向" in assert_one_line(info.value)


def test_errors_show_one_line_in_ipython():
    error = AuthError(status=401, provider_message="Incorrect API key provided.")
    assert error._render_traceback_() == [f"AuthError: {error}"]


def test_deeply_nested_json_is_one_line_not_recursion_error(seed_events):
    deep = b"data: " + b"[" * 100_000 + b"\n\n"
    with Script(sse_reply(*seed_events[:2], deep), json_reply(200, "[" * 100_000)) as script:
        client = ChatClient(make_settings(script.base_url), max_retries=0)
        _, error = collect(client.stream(HELLO))
        assert "JSON" in assert_one_line(error) and error.partial_text == "你好"
        with pytest.raises(StreamError) as info:
            client.chat(HELLO)
    assert "JSON" in assert_one_line(info.value)


def test_a_local_preset_that_is_not_running_says_how_to_start_it():
    settings = Settings(
        api_key=Secret(""),
        base_url="http://127.0.0.1:9/v1",
        model="qwen2.5:7b",
        timeout=5,
        connect_timeout=5,
        provider="ollama",
    )
    with pytest.raises(ConnectError) as info:
        ChatClient(settings, max_retries=0).chat(HELLO)
    text = assert_one_line(info.value)
    assert "Ollama" in text and "ollama serve" in text and "ollama pull qwen2.5:7b" in text


@pytest.mark.parametrize("together", [False, True], ids=["own piece", "same piece as an event"])
def test_a_line_over_the_parsers_limit_is_one_line_keeping_the_text(
    seed_events, monkeypatch, together
):
    from lesson_helpers import client as client_module
    from lesson_helpers.sse import SSEParser

    monkeypatch.setattr(client_module, "SSEParser", lambda: SSEParser(max_size=4096))
    huge = b"data: " + b"x" * 10_000  # no line end: a server that never ends its line
    # In one write with the event before it, the event comes out and the limit is found at the
    # end of the stream: it must still be reported (this was a flaky test before).
    events = [*seed_events[:2], seed_events[2] + huge] if together else [*seed_events[:3], huge]
    with Script(sse_reply(*events)) as script:
        pieces, error = collect(ChatClient(make_settings(script.base_url)).stream(HELLO))
    assert type(error) is StreamError
    text = assert_one_line(error)
    assert "太长" in text and "上限" in text
    assert pieces == ["你好", "！"] and error.partial_text == "你好！"


def test_text_of_a_stream_whose_content_comes_as_parts(seed_events):
    """Mistral sends content as a list of parts: text() still yields plain text pieces."""

    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {"id": "m1", "model": "mistral", "choices": [{"index": 0, "delta": delta}]}
        body["choices"][0]["finish_reason"] = finish
        return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

    events = [
        event({"role": "assistant", "content": [{"type": "text", "text": "你好"}]}),
        event({"content": [{"type": "text", "text": "！"}]}),
        event({"content": ""}, "stop"),
        b"data: [DONE]\n\n",
    ]
    with Script(sse_reply(*events)) as script:
        stream = ChatClient(make_settings(script.base_url)).stream(HELLO)
        assert list(stream.text()) == ["你好", "！"]
    assert stream.result.content == "你好！"
