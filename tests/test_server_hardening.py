"""The local server always answers: malformed requests, odd HTTP, slow clients, fuzzing.

Every malformed request gets a 4xx JSON error in OpenAI's shape naming the parameter; HTTP
details (chunked request bodies, HTTP/1.0, CORS preflights, HEAD) are handled as a real server
does; a connection that sends nothing, or sends its request too slowly, is closed in time
without holding a thread; and random JSON in any field of a chat request never makes the
server drop the connection.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lesson_helpers import seed
from lesson_helpers.chunks import assemble
from lesson_helpers.local_server import Exchange, LocalServer, ModelSpec
from lesson_helpers.local_server.validation import check_chat_request

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
HELLO = [{"role": "user", "content": "你好"}]
SEED_TEXT = seed.ANSWER
TIMEOUT = (5, 10)


# -- helpers ---------------------------------------------------------------------------------
def send_raw(port: int, data: bytes, timeout: float = 10) -> http.client.HTTPResponse:
    """Send raw bytes; parse the response as ``http.client`` does (any framing)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.sock = sock  # type: ignore[attr-defined]  # closed by the caller
    return response


def request_bytes(
    server: LocalServer,
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    version: str = "HTTP/1.1",
    key: bytes | None = None,
    extra: bytes = b"",
    length: bool = True,
) -> bytes:
    key = server.api_key.encode() if key is None else key
    head = (
        f"{method} {path} {version}\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
        + b"Authorization: Bearer "
        + key
        + b"\r\nContent-Type: application/json\r\n"
        + (f"Content-Length: {len(body)}\r\n".encode() if length else b"")
        + extra
        + b"Connection: close\r\n\r\n"
    )
    return head + body


def post(server: LocalServer, body: Any, **kwargs: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()  # ASCII escapes
    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    headers.update(kwargs.pop("headers", {}))
    return requests.post(
        server.base_url + "/chat/completions", data=data, headers=headers, timeout=TIMEOUT, **kwargs
    )


def openai_error(response: requests.Response | http.client.HTTPResponse, status: int) -> dict:
    if isinstance(response, requests.Response):
        got, ctype, body = response.status_code, response.headers["Content-Type"], response.content
    else:
        got, ctype, body = response.status, response.getheader("Content-Type"), response.read()
    assert got == status, body[:300]
    assert ctype.startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"].endswith(".")
    assert "\n" not in error["message"]
    return error


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": SEED_MODEL, "messages": HELLO, **fields}


def request_threads() -> int:
    return sum(t.name == "lesson-helpers-request" for t in threading.enumerate())


@contextlib.contextmanager
def sockets(count: int, port: int) -> Iterator[list[socket.socket]]:
    opened = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it stayed open."""
    sock.settimeout(within)
    data = b""
    try:
        while piece := sock.recv(65536):
            data += piece
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


# -- malformed parameters: 400 with param ----------------------------------------------------
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
BAD_FIELDS = [
    ({"max_completion_tokens": "5"}, "max_completion_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"max_completion_tokens": True}, "max_completion_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stream_options": "include_usage"}, "stream_options"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": -1}, "temperature"),
    ({"temperature": 7}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_p": -0.1}, "top_p"),
    ({"n": 0}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"stop": ["ok", 5]}, "stop[1]"),
    ({"stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]},
     "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "magic"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": ["just a string"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "18°C", "tool_call_id": "call_1"}]},
     "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                   {"role": "tool", "content": "18°C", "tool_call_id": "call_2"}]},
     "messages[1].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                   {"role": "tool", "content": "18°C"}]},
     "messages[1].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": "f"}]},
     "messages[0].tool_calls"),
    ({"model": ""}, "model"),
    ({"model": 5}, "model"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]},
     "tools[0].function.name"),
    ({"tools": [], "tool_choice": {"type": "function", "function": {"name": "f"}}},
     "tool_choice"),
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fields", "param"), BAD_FIELDS)
def test_malformed_parameters_are_400_naming_the_parameter(server, fields, param, stream):
    error = openai_error(post(server, {**chat(stream=stream), **fields}), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param.split("[")[0].split(".")[0] in error["message"]


def test_a_tool_message_answering_an_earlier_call_is_fine(server):
    messages = [
        {"role": "user", "content": "北京天气？"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "18°C", "tool_call_id": "call_1"},
    ]
    response = post(server, chat(messages=messages))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 0, "top_p": 1, "n": 1, "max_tokens": 1, "stop": []},
        {"temperature": 2.0, "top_p": 0.0, "stop": "x", "max_completion_tokens": 5},
        {"stream_options": {"include_usage": True}, "stream": True},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "你好"}]}]},
        {"messages": [{"role": "developer", "content": "简短"}, *HELLO]},
        {"stop": ["a", "b", "c", "d"], "presence_penalty": -2, "seed": 7},
    ],
)
def test_valid_parameters_at_their_limits_are_accepted(server, fields):
    response = post(server, chat(**fields))
    assert response.status_code == 200, response.text


# -- bodies that used to get no answer at all ------------------------------------------------
def test_json_nested_5000_deep_is_400(server):
    deep = b'{"model": "m", "messages": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    error = openai_error(post(server, deep), 400)
    assert error["code"] == "invalid_json"
    assert "deep" in error["message"]


def test_json_nested_100_deep_in_a_field_is_400_naming_it(server):
    value: Any = "x"
    for _ in range(100):
        value = {"a": value}
    error = openai_error(post(server, chat(metadata=value)), 400)
    assert error["param"] == "metadata"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(messages=[{"role": "user", "content": "你好\ud800"}]), "messages[0].content"),
        (chat(model="Qwen\ud800"), "model"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]),
            "messages[0].content[0].text",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_surrogate_is_400_naming_where(server, body, param, stream):
    error = openai_error(post(server, {**body, "stream": stream}), 400)
    assert error["param"] == param
    assert "surrogate" in error["message"]


def test_a_lone_surrogate_never_leaves_a_stream_unterminated(server):
    def handler(ex: Exchange) -> None:  # a model whose text holds a lone surrogate
        ex.start_stream()
        ex.send_event({"choices": [{"index": 0, "delta": {"content": "半\ud800句"}}]})
        ex.send_done()
        ex.end_stream()

    server.register(ModelSpec("test/surrogate", "测试用：文字里有孤立代理项。", handler))
    try:
        response = post(server, chat(model="test/surrogate", stream=True))
        assert response.status_code == 200
        body = response.content  # requests raises if the chunked framing is unterminated
    finally:
        server.unregister("test/surrogate")
    assert body.endswith(b"data: [DONE]\n\n")
    first = json.loads(body.split(b"\n\n")[0][len(b"data: ") :])
    assert first["choices"][0]["delta"]["content"] == "半\ud800句"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "messages": [], "max_tokens": 1' + b"0" * 5000 + b"}",
        b'{"model": "m", "messages": [], "temperature": NaN}',
        b'{"model": "m", "messages": [], "temperature": Infinity}',
        b'{"model": "\xff\xfe"}',
    ],
)
def test_bodies_json_loads_chokes_on_are_400(server, body):
    assert openai_error(post(server, body), 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"model": "m", "messages": [], "temperature": 1e999}', "the number 1e999 is too large"),
        (b'{"model": "m", "messages": [], "top_p": -2E+400}', "the number -2E+400 is too large"),
        (b'{"model": "m", "max_tokens": -1' + b"0" * 5000 + b"}", "integer of 5001 digits"),
    ],
)
def test_numbers_out_of_range_are_named_in_the_400(server, body, says):
    error = openai_error(post(server, body), 400)
    assert error["code"] == "invalid_json"
    assert says in error["message"] and "set_int_max_str_digits" not in error["message"]


@pytest.mark.parametrize("key", [b"caf\xe9", b"\xe4\xbd\xa0\xe5\xa5\xbd", b"\xff" * 40])
def test_a_key_with_non_ascii_bytes_is_401(server, key):
    response = send_raw(server.port, request_bytes(server, json.dumps(chat()).encode(), key=key))
    try:
        error = openai_error(response, 401)
    finally:
        response.sock.close()  # type: ignore[attr-defined]
    assert error["code"] == "invalid_api_key"


def test_the_key_also_works_as_x_api_key(server):
    headers = {"x-api-key": server.api_key, "Content-Type": "application/json"}
    response = requests.post(
        server.base_url + "/chat/completions", json=chat(), headers=headers, timeout=TIMEOUT
    )
    assert response.json()["choices"][0]["message"]["content"] == SEED_TEXT


# -- HTTP framing ----------------------------------------------------------------------------
def test_a_chunked_request_body_from_a_generator(server):
    payload = json.dumps(chat(stream=True)).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    with requests.Session() as session:
        url = server.base_url + "/chat/completions"
        first = session.post(url, data=pieces(), headers=headers, timeout=TIMEOUT)
        assert first.request.headers["Transfer-Encoding"] == "chunked"
        assert first.status_code == 200, first.text
        chunks = [json.loads(line[6:]) for line in first.text.split("\n\n") if line[6:7] == "{"]
        assert assemble(chunks).content == SEED_TEXT
        # The same connection takes the next request: nothing of the body was left behind.
        second = session.post(url, json=chat(), headers=headers, timeout=TIMEOUT)
        assert second.json()["choices"][0]["message"]["content"] == SEED_TEXT
        pools = session.get_adapter(url).poolmanager.pools
        assert [pools[k].num_connections for k in pools.keys()] == [1]


def test_a_chunked_body_with_extensions_and_trailers(server):
    payload = json.dumps(chat()).encode()
    body = b"5;name=value\r\n" + payload[:5] + b"\r\n"
    body += b"%X\r\n" % (len(payload) - 5) + payload[5:] + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"
    extra = b"Transfer-Encoding: chunked\r\n"
    response = send_raw(server.port, request_bytes(server, body, extra=extra, length=False))
    try:
        assert response.status == 200
        assert json.loads(response.read())["choices"][0]["message"]["content"] == SEED_TEXT
    finally:
        response.sock.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "extra", "status"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", b"Transfer-Encoding: chunked\r\n", 400),
        (b"2\r\n{}XX0\r\n\r\n", b"Transfer-Encoding: chunked\r\n", 400),
        (b"{}", b"Transfer-Encoding: gzip\r\n", 501),
        (b"{}", b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", 400),
        (b"{}", b"Content-Length: 2\r\nContent-Length: 3\r\n", 400),
        (b"{}", b"Content-Length: -2\r\n", 400),
        (b"{}", b"Content-Length: 99999999999\r\n", 413),
    ],
)
def test_bad_body_framing_is_a_json_error_and_closes(server, body, extra, status):
    response = send_raw(server.port, request_bytes(server, body, extra=extra, length=False))
    try:
        openai_error(response, status)
        assert response.getheader("Connection") == "close"
    finally:
        response.sock.close()  # type: ignore[attr-defined]


def test_http_1_0_gets_a_close_delimited_stream_not_chunks(server):
    body = json.dumps(chat(stream=True)).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes(server, body, version="HTTP/1.0"))
        data = b""
        while piece := sock.recv(65536):  # the server closes: that is the end of the body
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert rest.startswith(b"data: {") and rest.endswith(b"data: [DONE]\n\n")
    chunks = [json.loads(e[6:]) for e in rest.split(b"\n\n") if e.startswith(b"data: {")]
    assert assemble(chunks).content == SEED_TEXT


def test_http_1_0_non_stream_has_a_length(server):
    body = json.dumps(chat()).encode()
    response = send_raw(server.port, request_bytes(server, body, version="HTTP/1.0"))
    try:
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") is None
        assert int(response.getheader("Content-Length")) > 0
        assert json.loads(response.read())["choices"][0]["message"]["content"] == SEED_TEXT
    finally:
        response.sock.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "request_line",
    [b"GARBAGE\r\n\r\n", b"GET /v1/models HTTP/9.9\r\n\r\n", b"BREW /v1/models HTTP/1.1\r\n\r\n"],
)
def test_http_level_errors_are_json_too(server, request_line):
    response = send_raw(server.port, request_line)
    try:
        assert 400 <= response.status < 600
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(response.read())["error"]["message"]
    finally:
        response.sock.close()  # type: ignore[attr-defined]


def test_head_has_headers_and_no_body_and_keeps_the_connection(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        auth = f"Authorization: Bearer {server.api_key}\r\n".encode()
        sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + auth + b"Connection: close\r\n\r\n"
        )
        data = b""
        while piece := sock.recv(65536):
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 200")  # no body after the HEAD response's headers
    second_head, _, second_body = rest.partition(b"\r\n\r\n")
    assert json.loads(second_body)["object"] == "list"
    assert content_length(head) == content_length(second_head) == len(second_body)


def content_length(head: bytes) -> int:
    found = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert found, head
    return int(found.group(1))


# -- CORS and GET /v1/models/{id} --------------------------------------------------------------
def test_a_cors_preflight_is_answered_without_the_key(server):
    response = requests.options(
        server.base_url + "/chat/completions",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.content == b""


def test_responses_carry_cors_headers_and_the_key_still_guards(server):
    origin = {"Origin": "http://localhost:5173"}
    refused = requests.post(
        server.base_url + "/chat/completions", json=chat(), headers=origin, timeout=TIMEOUT
    )
    assert openai_error(refused, 401)["code"] == "invalid_api_key"
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    answered = post(server, chat(stream=True), headers=origin)
    assert answered.status_code == 200
    assert answered.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Request-Id" in answered.headers["Access-Control-Expose-Headers"]
    # Without an Origin (not a web page) the response head stays as it was.
    plain = post(server, chat(stream=True))
    assert "Access-Control-Allow-Origin" not in plain.headers


def test_options_on_an_unknown_path_is_404(server):
    response = requests.options(server.base_url + "/nothing", timeout=TIMEOUT)
    assert openai_error(response, 404)["code"] == "not_found"


@pytest.mark.parametrize("model", [SEED_MODEL, "gpt-4o-mini", "fault-cut-mid-stream"])
def test_get_one_model(server, model):
    response = requests.get(
        f"{server.base_url}/models/{model}",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == model and body["object"] == "model" and body["owned_by"]


def test_get_an_unknown_model_is_404_and_needs_the_key(server):
    url = f"{server.base_url}/models/no-such/model"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    error = openai_error(requests.get(url, headers=headers, timeout=TIMEOUT), 404)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "no-such/model" in error["message"]
    assert openai_error(requests.get(url, timeout=TIMEOUT), 401)["code"] == "invalid_api_key"


# -- slow and silent clients ---------------------------------------------------------------------
@pytest.fixture
def impatient():
    """A server that closes silent connections and slow requests after half a second."""
    with LocalServer(pace=0, idle_timeout=0.5, read_timeout=0.5) as srv:
        yield srv


def test_a_connection_that_sends_nothing_is_closed(impatient):
    with sockets(1, impatient.port) as (sock,):
        started = time.monotonic()
        assert closed_by_server(sock, within=3) == b""
        assert 0.4 <= time.monotonic() - started < 2.5


def test_a_body_that_never_arrives_gets_408(impatient):
    with sockets(1, impatient.port) as (sock,):
        whole = request_bytes(impatient, b"{" * 100)
        sock.sendall(whole[:-99])  # the head, and 1 byte of the 100 the head announces
        data = closed_by_server(sock, within=3)
    assert data is not None and data.startswith(b"HTTP/1.1 408")
    assert b'"code":"request_timeout"' in data


def test_a_kept_alive_connection_is_closed_when_idle(impatient):
    with requests.Session() as session:
        headers = {"Authorization": f"Bearer {impatient.api_key}"}
        url = impatient.base_url + "/models"
        assert session.get(url, headers=headers, timeout=TIMEOUT).status_code == 200
        time.sleep(1.2)  # longer than the idle timeout: the server has closed the connection
        assert session.get(url, headers=headers, timeout=TIMEOUT).status_code == 200


def test_slowloris_connections_hold_no_threads_and_are_closed():
    with LocalServer(pace=0, idle_timeout=1.0, read_timeout=1.0) as srv:
        before = request_threads()
        trickling = []
        try:
            for _ in range(300):
                sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                trickling.append(sock)
            for _ in range(3):  # a header line every 0.1 s: each read alone is quick
                time.sleep(0.1)
                for sock in trickling:
                    sock.sendall(b"X-Slow: 1\r\n")
                assert request_threads() - before <= 2
            # Meanwhile a normal request is answered at once.
            response = post(srv, chat())
            assert response.json()["choices"][0]["message"]["content"] == SEED_TEXT
            # When their read timeout has passed, every one is closed, with a 408.
            for sock in trickling:
                data = closed_by_server(sock, within=3)
                assert data is not None and data.startswith(b"HTTP/1.1 408")
        finally:
            for sock in trickling:
                sock.close()
        assert request_threads() <= before


def test_a_slow_body_holds_one_thread_only_until_the_read_timeout(impatient):
    before = request_threads()
    with sockets(20, impatient.port) as slow:
        head = request_bytes(impatient, b"{" * 10)
        for sock in slow:
            sock.sendall(head[:-5])  # the head and half the body
        time.sleep(0.1)
        assert request_threads() - before <= 20
        for sock in slow:
            data = closed_by_server(sock, within=3)
            assert data is not None and data.startswith(b"HTTP/1.1 408")
    deadline = time.monotonic() + 3
    while request_threads() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert request_threads() <= before


def test_bad_settings_are_refused():
    for bad in (float("nan"), float("inf"), -1, "1"):
        with pytest.raises(ValueError, match="pace"):
            LocalServer(pace=bad)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="0 to 65535"):
        LocalServer(port=70000)
    with LocalServer() as srv, pytest.raises(ValueError, match="pace"):
        srv.pace = float("nan")


# -- random JSON in every field -------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=()), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "n", "temperature", "top_p", "stop", "tools", "tool_choice", "presence_penalty",
    "frequency_penalty", "seed", "logprobs", "top_logprobs", "parallel_tool_calls",
    "response_format", "user", "fault_delay", "messages[0]", "messages[0].role",
    "messages[0].content", "messages[0].content[0]", "messages[0].content[0].text",
    "messages[0].content[0].type", "messages[1].tool_calls", "messages[2].tool_call_id",
    "stream_options.include_usage", "tools[0].function", "tools[0].function.name",
]  # fmt: skip


def fuzzed_request(field: str, value: Any, model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "北京天气？"}]},
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "content": "18°C", "tool_call_id": "call_1"},
        ],
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    target: Any = body
    *parents, last = field.replace("[", ".").replace("]", "").split(".")
    for step in parents:
        target = target[int(step)] if step.isdigit() else target[step]
    target[int(last) if last.isdigit() else last] = value
    return body


@pytest.fixture(scope="module")
def fuzz_server():
    with LocalServer(pace=0, read_timeout=5) as srv:
        yield srv


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(
    field=st.sampled_from(FIELDS),
    value=json_values,
    model=st.sampled_from([SEED_MODEL, "deepseek-ai/DeepSeek-R1", "gpt-4o-mini"]),
    stream=st.booleans(),
)
def test_random_json_in_any_field_always_gets_an_answer(fuzz_server, field, value, model, stream):
    body = fuzzed_request(field, value, model, stream)
    response = post(fuzz_server, body)  # a dropped connection would raise here
    status = response.status_code
    assert 200 <= status < 300 or 400 <= status < 500, (status, response.text[:300])
    if status >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"
        assert (check_chat_request(body) is None) == (status == 404)
        return
    assert check_chat_request(body) is None
    if response.headers["Content-Type"].startswith("text/event-stream"):
        assert response.content.endswith(b"data: [DONE]\n\n")
    else:
        assert response.json()["object"] == "chat.completion"


# -- a real web page calling the server ---------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE = """<!doctype html><meta charset="utf-8"><script>
async function ask(base, key) {
  const headers = {"Content-Type": "application/json"};
  if (key) headers["Authorization"] = "Bearer " + key;
  const response = await fetch(base + "/chat/completions", {
    method: "POST", headers,
    body: JSON.stringify({model: "Qwen/Qwen2.5-7B-Instruct", stream: true,
                          messages: [{role: "user", content: "你好"}]}),
  });
  if (!response.ok) return {status: response.status, body: await response.json()};
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let raw = "";
  for (;;) { const {done, value} = await reader.read(); if (done) break;
             raw += decoder.decode(value, {stream: true}); }
  let text = "";
  for (const line of raw.split("\\n"))
    if (line.startsWith("data: {"))
      text += JSON.parse(line.slice(6)).choices[0].delta.content || "";
  return {status: response.status, text};
}
</script>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")
def test_a_web_page_on_another_origin_streams_from_the_server(server):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)  # another origin (port)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
                answer = page.evaluate("([b, k]) => ask(b, k)", [server.base_url, server.api_key])
                refused = page.evaluate("([b]) => ask(b, null)", [server.base_url])
            finally:
                browser.close()
    finally:
        site.shutdown()
        site.server_close()
    assert answer == {"status": 200, "text": SEED_TEXT}
    assert refused["status"] == 401  # the page can read the error: the key still guards
    assert refused["body"]["error"]["code"] == "invalid_api_key"
