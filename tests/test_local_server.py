"""The local practice server over real sockets: the seed, the protocol, the errors."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from lesson_helpers import seed
from lesson_helpers.chunks import assemble
from lesson_helpers.local_server import (
    MODELS,
    ROUTES,
    ChunkBuilder,
    Exchange,
    LocalServer,
    ModelSpec,
    Request,
    add_route,
    register,
)
from lesson_helpers.local_server.exchange import encode_json
from lesson_helpers.local_server.replies import reply_pieces

SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
SEED_MESSAGES = [{"role": "user", "content": "你好"}]
SEED_TEXT = seed.ANSWER
TIMEOUT = (5, 10)
WRONG_KEY = "fake-key-wrong-0000000000"


# -- helpers ---------------------------------------------------------------------------------
def sse_data(body: bytes) -> list[str]:
    """The data of each event in an LF-only SSE body (one data line per event)."""
    assert body.endswith(b"\n\n")
    events = body[:-2].split(b"\n\n")
    out = []
    for event in events:
        lines = event.decode("utf-8").split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), event
        out.append(lines[0][len("data: ") :])
    return out


def sse_chunks(body: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a complete stream; asserts that it ends with [DONE]."""
    data = sse_data(body)
    assert data[-1] == "[DONE]"
    assert "[DONE]" not in data[:-1]
    return [json.loads(d) for d in data[:-1]]


def post(server: LocalServer, body: Any, key: str | None = "default", **kwargs: Any):
    headers = kwargs.pop("headers", {})
    if key == "default":
        key = server.api_key
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if isinstance(body, bytes | str):
        kwargs["data"] = body
        headers.setdefault("Content-Type", "application/json")
    else:
        kwargs["json"] = body
    return requests.post(
        server.base_url + "/chat/completions", headers=headers, timeout=TIMEOUT, **kwargs
    )


def get(server: LocalServer, path: str, key: str | None = "default") -> requests.Response:
    key = server.api_key if key == "default" else key
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.get(server.base_url + path, headers=headers, timeout=TIMEOUT)


def stream_body(server: LocalServer, **body: Any) -> bytes:
    body.setdefault("model", SEED_MODEL)
    body.setdefault("messages", SEED_MESSAGES)
    body["stream"] = True
    response = post(server, body)
    assert response.status_code == 200, response.text
    return response.content


def content_of(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"].get("content") or ""
        for chunk in chunks
        for c in chunk["choices"]
        if c["index"] == index
    )


def key_order(obj: Any) -> Any:
    """The nested structure of keys (in order) and leaf values."""
    if isinstance(obj, dict):
        return [(k, key_order(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [key_order(v) for v in obj]
    return obj


def normalized(chunk: dict[str, Any]) -> dict[str, Any]:
    chunk = dict(chunk)  # same key order, id and created replaced in place
    chunk["id"] = "ID"
    chunk["created"] = 0
    return chunk


def raw_http(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send one request with `Connection: close` and return every byte of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                return data
            data += piece


def raw_request(server: LocalServer, body: dict[str, Any], close: bool = True) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.api_key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + payload


def split_head(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data[:200]
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def dechunk(data: bytes) -> tuple[list[bytes], bytes]:
    """Parse HTTP/1.1 chunked framing by hand: (the chunks, the bytes after the last one)."""
    chunks = []
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "chunk size line without CRLF"
        size = int(size_line.split(b";")[0], 16)  # the size is hexadecimal
        if size == 0:
            assert data.startswith(b"\r\n"), "no blank line after the last chunk"
            return chunks, data[2:]
        chunk, crlf, data = data[:size], data[size : size + 2], data[size + 2 :]
        assert len(chunk) == size and crlf == b"\r\n"
        chunks.append(chunk)


# -- the seed --------------------------------------------------------------------------------
def test_seed_stream_matches_the_recorded_wire_bytes(server, seed_stream_bytes):
    response = post(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True})
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Length" not in response.headers

    ours = sse_chunks(response.content)
    seed = sse_chunks(seed_stream_bytes)
    assert len(ours) == len(seed) == 12
    for mine, theirs in zip(ours, seed, strict=True):
        assert key_order(normalized(mine)) == key_order(normalized(theirs))
        assert mine["usage"] == theirs["usage"]
        assert mine["choices"][0]["delta"] == theirs["choices"][0]["delta"]
    assert len({c["id"] for c in ours}) == 1
    assert isinstance(ours[0]["id"], str) and ours[0]["id"]
    assert all(isinstance(c["created"], int) for c in ours)
    assert assemble(ours).content == SEED_TEXT
    assert sse_data(response.content)[-1] == "[DONE]"
    assert response.content.endswith(b"data: [DONE]\n\n")


def test_seed_stream_wire_bytes_equal_after_normalizing_id_and_created(server, seed_stream_bytes):
    ours = sse_chunks(stream_body(server))
    seed = sse_chunks(seed_stream_bytes)
    dump = [json.dumps(normalized(c), ensure_ascii=False, separators=(",", ":")) for c in ours]
    want = [json.dumps(normalized(c), ensure_ascii=False, separators=(",", ":")) for c in seed]
    assert dump == want


def test_raw_socket_sees_chunked_framing(server, seed_stream_bytes):
    body = {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True}
    data = raw_http(server.port, raw_request(server, body))
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in headers
    assert rest[: rest.index(b"\r\n")].isalnum()  # the first line is a hex size
    chunks, trailer = dechunk(rest)
    assert trailer == b""
    assert len(chunks) == 13  # one HTTP chunk per SSE event (12 chunks and [DONE])
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in chunks)
    assert chunks[-1] == b"data: [DONE]\n\n"
    events = sse_chunks(b"".join(chunks))
    seed = sse_chunks(seed_stream_bytes)
    assert [normalized(c) for c in events] == [normalized(c) for c in seed]


def test_non_stream_response_shape(server):
    response = post(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "system_fingerprint",
        "usage",
    ]
    assert body["object"] == "chat.completion"
    assert body["model"] == SEED_MODEL
    assert isinstance(body["created"], int)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": SEED_TEXT, "reasoning_content": None},
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}


# -- errors ----------------------------------------------------------------------------------
def assert_openai_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_no_key_is_401(server):
    response = post(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES}, key=None)
    error = assert_openai_error(response, 401, "invalid_api_key")
    assert "Authorization: Bearer" in error["message"]


def test_wrong_key_is_401_without_echo(server):
    response = post(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES}, key=WRONG_KEY)
    error = assert_openai_error(response, 401, "invalid_api_key")
    assert error["message"] == "Incorrect API key provided."
    assert WRONG_KEY not in response.text
    assert server.api_key not in response.text


def test_models_need_the_key_too(server):
    response = requests.get(server.base_url + "/models", timeout=TIMEOUT)
    assert_openai_error(response, 401, "invalid_api_key")


def test_unknown_model_is_404(server):
    body = {"model": "no-such-model", "messages": SEED_MESSAGES}
    error = assert_openai_error(post(server, body), 404, "model_not_found")
    assert "no-such-model" in error["message"]
    assert error["param"] == "model"


def test_malformed_json_is_400(server):
    error = assert_openai_error(post(server, b'{"model": "x", '), 400, "invalid_json")
    assert "JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"messages": SEED_MESSAGES}, "model"),
        ({"model": "", "messages": SEED_MESSAGES}, "model"),
        ({"model": SEED_MODEL, "messages": []}, "messages"),
        ({"model": SEED_MODEL}, "messages"),
        ({"model": SEED_MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": -5}, "max_tokens"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": "3"}, "max_tokens"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": 2.5}, "max_tokens"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": True}, "max_tokens"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "n": 0}, "n"),
        ({"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": "yes"}, "stream"),
        (["not", "an", "object"], "object"),
    ],
)
def test_bad_requests_are_400(server, body, word):
    error = assert_openai_error(post(server, body), 400, "invalid_request")
    assert word in error["message"]


def test_unknown_path_is_404(server):
    response = requests.get(
        server.base_url + "/nothing-here",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=TIMEOUT,
    )
    assert_openai_error(response, 404, "not_found")


def test_models_list(server):
    response = requests.get(
        server.base_url + "/models",
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    for expected in (SEED_MODEL, "deepseek-ai/DeepSeek-R1", "gpt-4o-mini", "deepseek-chat"):
        assert expected in ids
    assert ids == list(MODELS)
    for model in body["data"]:
        assert model["object"] == "model"
        assert isinstance(model["description"], str) and len(model["description"]) > 5
        assert model["owned_by"]


# -- features --------------------------------------------------------------------------------
def test_reasoning_model_thinks_before_answering(server):
    chunks = sse_chunks(stream_body(server, model="deepseek-ai/DeepSeek-R1"))
    kinds = []
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"]
        if delta.get("reasoning_content"):
            assert not delta.get("content")
            kinds.append("r")
        elif delta.get("content"):
            kinds.append("c")
    assert "r" in kinds and "c" in kinds
    first_content = kinds.index("c")
    assert "r" not in kinds[first_content:]  # every reasoning delta comes first
    result = assemble(chunks)
    assert result.content == SEED_TEXT
    assert "你好" in result.reasoning_content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == kinds.count("r") + kinds.count("c")


def test_include_usage_adds_a_final_usage_chunk(server):
    chunks = sse_chunks(stream_body(server, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    assert len(chunks) == 13
    assert assemble(chunks).content == SEED_TEXT


def test_openai_style_model_has_no_usage_by_default(server):
    chunks = sse_chunks(stream_body(server, model="gpt-4o-mini"))
    assert all("usage" not in c for c in chunks)
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert assemble(chunks).content == SEED_TEXT


def test_openai_style_model_with_include_usage(server):
    chunks = sse_chunks(
        stream_body(server, model="gpt-4o-mini", stream_options={"include_usage": True})
    )
    *body, last = chunks
    assert all("usage" in c and c["usage"] is None for c in body)
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 10
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 10


def test_max_tokens_stops_with_length(server):
    chunks = sse_chunks(stream_body(server, max_tokens=3))
    result = assemble(chunks)
    assert result.finish_reason == "length"
    assert result.content == "你好！有什么"
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks]
    assert len([p for p in pieces if p]) == 3
    assert chunks[-1]["usage"]["completion_tokens"] == 3

    body = post(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES, "max_tokens": 3}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "你好！有什么"
    assert body["usage"]["completion_tokens"] == 3


def test_n_2_streams_two_interleaved_choices(server):
    chunks = sse_chunks(stream_body(server, n=2))
    assert all(len(c["choices"]) == 1 for c in chunks)
    indexes = [c["choices"][0]["index"] for c in chunks]
    assert set(indexes) == {0, 1}
    assert indexes[:20] == [0, 1] * 10  # they take turns
    result = assemble(chunks)
    assert [c.index for c in result.choices] == [0, 1]
    assert result.choices[0].content == SEED_TEXT
    assert result.choices[1].content.endswith(SEED_TEXT)
    assert result.choices[1].content != SEED_TEXT
    assert all(c.finish_reason == "stop" for c in result.choices)


def test_multi_turn_quotes_the_previous_question(server):
    first = "什么是流式输出？"
    answer = post(server, {"model": SEED_MODEL, "messages": [{"role": "user", "content": first}]})
    text = answer.json()["choices"][0]["message"]["content"]
    messages = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "我刚才问了什么"},
    ]
    second = post(server, {"model": SEED_MODEL, "messages": messages}).json()
    reply = second["choices"][0]["message"]["content"]
    assert f"「{first}」" in reply
    assert reply != text
    streamed = assemble(sse_chunks(stream_body(server, messages=messages))).content
    assert streamed == reply


def test_replies_are_deterministic(server):
    messages = [{"role": "user", "content": "请介绍一下你自己"}]
    texts = [
        post(server, {"model": SEED_MODEL, "messages": messages}).json()["choices"][0]["message"][
            "content"
        ]
        for _ in range(2)
    ]
    streamed = [assemble(sse_chunks(stream_body(server, messages=messages))).content for _ in "ab"]
    assert texts[0] == texts[1] == streamed[0] == streamed[1]
    assert "请介绍一下你自己" in texts[0]


# -- connections -----------------------------------------------------------------------------
def test_keep_alive_on_one_requests_session(server):
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with requests.Session() as session:
        first = session.post(
            server.base_url + "/chat/completions",
            json={"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True},
            headers=headers,
            timeout=TIMEOUT,
        )
        second = session.post(
            server.base_url + "/chat/completions",
            json={"model": SEED_MODEL, "messages": SEED_MESSAGES},
            headers=headers,
            timeout=TIMEOUT,
        )
        third = session.get(server.base_url + "/models", headers=headers, timeout=TIMEOUT)
        manager = session.get_adapter(server.base_url).poolmanager
        pools = [manager.pools[key] for key in manager.pools.keys()]
        # all three requests went over one connection
        assert [pool.num_connections for pool in pools] == [1]
    assert assemble(sse_chunks(first.content)).content == SEED_TEXT
    assert second.json()["choices"][0]["message"]["content"] == SEED_TEXT
    assert third.status_code == 200


def test_keep_alive_on_a_raw_socket(server):
    """After the zero-length chunk the same connection takes the next request."""
    body = {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw_request(server, body, close=False))
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the zero-length chunk ends the body
            piece = sock.recv(65536)
            assert piece, "the server closed a keep-alive connection"
            data += piece
        _, headers, rest = split_head(data)
        chunks, leftover = dechunk(rest)
        assert leftover == b""
        assert assemble(sse_chunks(b"".join(chunks))).content == SEED_TEXT
        sock.sendall(raw_request(server, {"model": SEED_MODEL, "messages": SEED_MESSAGES}))
        data = b""
        while piece := sock.recv(65536):
            data += piece
    status, headers, rest = split_head(data)
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) == len(rest)
    assert json.loads(rest)["choices"][0]["message"]["content"] == SEED_TEXT


def test_client_disconnect_mid_stream_does_not_break_the_server():
    question = [{"role": "user", "content": "请讲一个很长的故事"}]
    with LocalServer(pace=0.05) as slow:
        body = {"model": SEED_MODEL, "messages": question, "stream": True}
        with socket.create_connection(("127.0.0.1", slow.port), timeout=10) as sock:
            sock.sendall(raw_request(slow, body))
            data = b""
            while data.count(b"data: ") < 3:
                piece = sock.recv(65536)
                assert piece
                data += piece
            # linger 0: close() sends a reset, like a killed client
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.15)  # the handler notices on its next write
        slow.pace = 0
        response = post(slow, {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True})
        assert response.status_code == 200
        assert assemble(sse_chunks(response.content)).content == SEED_TEXT
        started = time.monotonic()
    assert time.monotonic() - started < 3  # and it still stops promptly


def test_stop_is_prompt_while_a_slow_stream_is_running():
    with LocalServer(pace=0.5) as slow:
        body = {"model": SEED_MODEL, "messages": [{"role": "user", "content": "慢慢说"}]}
        sock = socket.create_connection(("127.0.0.1", slow.port), timeout=10)
        sock.sendall(raw_request(slow, {**body, "stream": True}))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
    try:
        assert time.monotonic() - started < 3
        sock.settimeout(5)
        rest = b""
        while piece := sock.recv(65536):
            rest += piece
        assert b"[DONE]" not in rest  # the stream was cut, not finished
    finally:
        sock.close()


def test_twenty_concurrent_streams():
    count = 20
    questions = [f"并发问题 {i}" for i in range(count)]
    results: list[str | None] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    with LocalServer(pace=0.005) as srv:

        def worker(i: int) -> None:
            try:
                barrier.wait(timeout=10)
                body = {"model": SEED_MODEL, "stream": True}
                body["messages"] = [{"role": "user", "content": questions[i]}]
                response = post(srv, body)
                assert response.status_code == 200
                results[i] = assemble(sse_chunks(response.content)).content
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        elapsed = time.monotonic() - started
    assert not errors, errors
    for i, text in enumerate(results):
        expected = "".join(reply_pieces([{"role": "user", "content": questions[i]}]))
        assert text == expected
        assert f"「{questions[i]}」" in text
    tokens = len(reply_pieces([{"role": "user", "content": questions[0]}]))
    assert elapsed < tokens * 0.005 * count  # they ran side by side, not one after another


# -- one server's models, request log and routes ---------------------------------------------
def echo_handler(ex: Exchange) -> None:
    ex.send_json(200, {"echo": ex.model})


def test_register_and_unregister_change_only_that_server():
    spec = ModelSpec("test/only-here", "测试用：只在一台服务器上。", echo_handler)
    with LocalServer(pace=0) as one, LocalServer(pace=0) as other:
        assert one.register(spec) is spec
        assert one.models["test/only-here"] is spec
        assert "test/only-here" not in other.models and "test/only-here" not in MODELS
        body = {"model": "test/only-here", "messages": SEED_MESSAGES}
        assert post(one, body).json() == {"echo": "test/only-here"}
        assert_openai_error(post(other, body), 404, "model_not_found")

        assert one.unregister(SEED_MODEL) is MODELS[SEED_MODEL]
        assert one.unregister(SEED_MODEL) is None  # already gone: nothing to remove
        seed = {"model": SEED_MODEL, "messages": SEED_MESSAGES}
        assert_openai_error(post(one, seed), 404, "model_not_found")
        assert post(other, seed).json()["choices"][0]["message"]["content"] == SEED_TEXT
        assert SEED_MODEL in MODELS

        listed = [m["id"] for m in get(one, "/models").json()["data"]]
        assert "test/only-here" in listed and SEED_MODEL not in listed
        assert listed == list(one.models)


def test_a_server_with_its_own_model_table():
    spec = ModelSpec("test/alone", "测试用：唯一的模型。", echo_handler)
    with LocalServer(pace=0, models={spec.id: spec}) as srv:
        assert list(srv.models) == ["test/alone"]
        assert [m["id"] for m in get(srv, "/models").json()["data"]] == ["test/alone"]
        seed = {"model": SEED_MODEL, "messages": SEED_MESSAGES}
        assert_openai_error(post(srv, seed), 404, "model_not_found")


def test_a_builtin_registered_later_is_still_served(server):
    """The grader's Recorder registers with the module-level register() while a server runs."""
    spec = register(ModelSpec("test/late-builtin", "测试用：后来注册的。", echo_handler))
    try:
        body = {"model": spec.id, "messages": SEED_MESSAGES}
        assert post(server, body).json() == {"echo": spec.id}
        assert spec.id in server.models
        with LocalServer(pace=0) as other:
            other.unregister(spec.id)
            assert_openai_error(post(other, body), 404, "model_not_found")
            assert spec.id not in other.models
    finally:
        del MODELS[spec.id]
    assert spec.id not in server.models


def test_the_request_log_keeps_each_request_with_the_key_masked():
    with LocalServer(pace=0) as srv:
        assert srv.requests == []
        before = time.time()
        post(srv, {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True})
        get(srv, "/models")
        post(srv, {"model": "gpt-4o-mini", "messages": SEED_MESSAGES}, key=WRONG_KEY)
        post(srv, b"{not json")
        first, second, third, fourth = srv.requests
        assert (first.method, first.path, first.model) == (
            "POST",
            "/v1/chat/completions",
            SEED_MODEL,
        )
        assert first.body == {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stream": True}
        assert first.headers["Authorization"] == "Bearer ***"
        assert before <= first.time <= second.time <= time.time()
        assert (second.method, second.path, second.body, second.model) == (
            "GET",
            "/v1/models",
            None,
            None,
        )
        assert third.model == "gpt-4o-mini"  # logged although the key was wrong
        assert fourth.body == "{not json" and fourth.model is None
        shown = repr(srv.requests)
        assert srv.api_key not in shown and WRONG_KEY not in shown
        srv.clear_requests()
        assert srv.requests == []


def test_the_request_log_is_per_server_and_thread_safe(server):
    with LocalServer(pace=0) as srv:

        def one(i: int) -> int:
            body = {"model": SEED_MODEL, "messages": [{"role": "user", "content": f"第 {i} 个"}]}
            return post(srv, body).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            assert set(pool.map(one, range(40))) == {200}
        texts = sorted(r.body["messages"][0]["content"] for r in srv.requests)
        assert texts == sorted(f"第 {i} 个" for i in range(40))
        assert all(
            r.body["messages"][0]["content"] not in str(server.requests) for r in srv.requests
        )


def test_add_route_on_one_server_gets_the_request_and_path_parameters():
    seen: list[Request] = []

    def handler(request: Request, ex: Exchange) -> None:
        seen.append(request)
        ex.send_json(200, {"name": request.params["name"], "body": request.body})

    with LocalServer(pace=0) as srv, LocalServer(pace=0) as other:
        route = srv.add_route("POST", "/v1/echo/{name}", handler)
        assert srv.routes[("POST", "/v1/echo/{name}")] is route
        url = "/echo/a%2Fb/c"
        response = requests.post(
            srv.base_url + url + "?x=1",
            json={"hi": 1},
            headers={"Authorization": f"Bearer {srv.api_key}"},
            timeout=TIMEOUT,
        )
        assert response.json() == {"name": "a/b/c", "body": {"hi": 1}}
        (request,) = seen
        assert (request.method, request.path, request.query) == ("POST", "/v1/echo/a%2Fb/c", "x=1")
        assert request.models is srv.models
        assert_openai_error(
            requests.post(srv.base_url + url, timeout=TIMEOUT), 401, "invalid_api_key"
        )
        assert len(seen) == 1  # the key guards an added route too
        response = requests.post(
            other.base_url + url,
            headers={"Authorization": f"Bearer {other.api_key}"},
            timeout=TIMEOUT,
        )
        assert_openai_error(response, 404, "not_found")
        assert_openai_error(get(srv, "/echo/x"), 405, "method_not_allowed")


def test_add_route_for_every_server_with_its_own_error_shape():
    def handler(request: Request, ex: Exchange) -> None:
        ex.send_json(200, {"ok": True})

    def errors(ex: Exchange, status: int, message: str, code: str | None, param: str | None):
        ex.send_json(status, {"type": "error", "error": {"type": code, "message": message}})

    add_route("POST", "/v1/test-everywhere", handler, errors=errors)
    try:
        with LocalServer(pace=0) as srv:
            url = srv.base_url + "/test-everywhere"
            headers = {"Authorization": f"Bearer {srv.api_key}"}
            assert requests.post(url, headers=headers, timeout=TIMEOUT).json() == {"ok": True}
            response = requests.post(url, timeout=TIMEOUT)
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "invalid_api_key"
            response = requests.post(url, data=b"{", headers=headers, timeout=TIMEOUT)
            assert response.status_code == 400
            assert response.json()["type"] == "error"
    finally:
        del ROUTES[("POST", "/v1/test-everywhere")]


# -- stop sequences --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stop", "text"),
    [
        ("问题", "你好！有什么"),  # a whole token: not included
        (["问题"], "你好！有什么"),
        ("么问", "你好！有什"),  # spans two tokens ("有什么" + "问题"): the first is cut
        (["帮助", "有什", "吗"], "你好！"),  # the first one in the text wins, not in the list
        ("你好", ""),  # right at the start: an empty answer
        (["不在回答里"], SEED_TEXT),  # never written: the whole reply
    ],
)
def test_stop_ends_the_reply_before_the_first_stop_sequence(server, stop, text):
    body = {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stop": stop}
    reply = post(server, body).json()
    assert reply["choices"][0]["message"]["content"] == text
    assert reply["choices"][0]["finish_reason"] == "stop"
    chunks = sse_chunks(stream_body(server, stop=stop))
    assert assemble(chunks).content == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"][0]["delta"]]
    assert reply["usage"]["completion_tokens"] == len([p for p in pieces if p])
    assert chunks[-1]["usage"]["completion_tokens"] == reply["usage"]["completion_tokens"]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "deepseek-ai/DeepSeek-R1"])
def test_stop_in_other_styles_and_n_2(server, model):
    chunks = sse_chunks(stream_body(server, model=model, stop=["或者"], n=2))
    result = assemble(chunks)
    assert [c.content for c in result.choices] == ["你好！有什么问题", "（候选 2）你好！有什么问题"]
    assert all(c.finish_reason == "stop" for c in result.choices)


def test_max_tokens_before_the_stop_sequence_still_means_length(server):
    body = {"model": SEED_MODEL, "messages": SEED_MESSAGES, "stop": "帮助", "max_tokens": 2}
    choice = post(server, body).json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("你好！", "length")
    body["max_tokens"] = 6  # exactly the tokens before "帮助": the stop wins
    choice = post(server, body).json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (
        "你好！有什么问题或者需要",
        "stop",
    )


# -- the server's building blocks --------------------------------------------------------------
@pytest.mark.parametrize("usage_mode", ["every", "null", "absent"])
@pytest.mark.parametrize("model", [SEED_MODEL, 'a "quoted" \\ 模型', "x\ud800"])
def test_chunk_bytes_are_exactly_the_encoded_chunk(usage_mode, model):
    builder = ChunkBuilder(model, prompt_tokens=30, usage_mode=usage_mode)
    deltas = [
        ({"content": "", "reasoning_content": None, "role": "assistant"}, None, 0),
        ({"content": '你好\n"引号"', "reasoning_content": None}, None, 1),
        ({"content": "半\udfff"}, None, 0),
        ({}, "stop", 3),
    ]
    for delta, finish, index in deltas:
        builder.completion_tokens += 1
        assert builder.chunk_bytes(delta, finish, index) == encode_json(
            builder.chunk(delta, finish, index)
        )
