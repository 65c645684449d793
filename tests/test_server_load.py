"""The local server under load: 50 concurrent streams, and clients that hang up mid-stream.

A class of students all pressing "run" at once, or closing a notebook while an answer is still
streaming, must never break the server for the next request.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.local_server import LocalServer

SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
HELLO = [{"role": "user", "content": "你好"}]
TIMEOUT = (5, 10)


@pytest.fixture
def busy_server():
    """A server with a small pause between tokens, so that streams overlap in time."""
    with LocalServer(pace=0.01) as server:
        yield server


def client_for(server: LocalServer, timeout: float = 10.0) -> ChatClient:
    settings = Settings(
        api_key=Secret(server.api_key or ""),
        base_url=server.base_url,
        model="Qwen/Qwen2.5-7B-Instruct",
        timeout=timeout,
        connect_timeout=5.0,
        provider="local",
    )
    return ChatClient(settings, max_retries=0)


def handler_threads() -> int:
    return sum(t.name == "lesson-helpers-request" for t in threading.enumerate())


def wait_for_handlers(at_most: int, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while handler_threads() > at_most and time.monotonic() < deadline:
        time.sleep(0.02)
    return handler_threads()


def raw_stream_request(server: LocalServer, model: str, content: str = "你好") -> bytes:
    messages = [{"role": "user", "content": content}]
    body = json.dumps({"model": model, "stream": True, "messages": messages}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


MIXED = [
    ("Qwen/Qwen2.5-7B-Instruct", SEED_TEXT),
    ("deepseek-ai/DeepSeek-R1", SEED_TEXT),
    ("gpt-4o-mini", SEED_TEXT),
    ("fault-keepalive", SEED_TEXT),
    ("fault-split-utf8", SEED_TEXT),
    ("fault-close-delimited", SEED_TEXT),
    ("fault-crlf", SEED_TEXT),
]


def test_fifty_concurrent_streams_each_get_exactly_their_answer(busy_server):
    client = client_for(busy_server)
    start = threading.Barrier(50)

    def one(i: int) -> tuple[str, str, str]:
        model, expected = MIXED[i % len(MIXED)]
        question = f"第 {i} 位同学的问题" if i % 2 else "你好"
        if question != "你好":
            expected = client.chat([{"role": "user", "content": question}]).content
        start.wait(timeout=10)
        text = "".join(client.stream([{"role": "user", "content": question}], model=model).text())
        return model, text, expected

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert time.monotonic() - started < 30
    for model, text, expected in results:
        assert text == expected, model
    assert any(f"第 {i} 位同学" in text for i in (1, 3) for _, text, _ in results)


def test_fifty_concurrent_streams_from_separate_connections(busy_server):
    def one(i: int) -> str:
        with requests.Session() as session:
            response = session.post(
                busy_server.base_url + "/chat/completions",
                json={"model": "Qwen/Qwen2.5-7B-Instruct", "messages": HELLO, "stream": True},
                headers={"Authorization": f"Bearer {busy_server.api_key}"},
                timeout=TIMEOUT,
            )
            return response.content.decode("utf-8")

    with ThreadPoolExecutor(max_workers=50) as pool:
        bodies = list(pool.map(one, range(50)))
    for body in bodies:
        assert body.endswith("data: [DONE]\n\n")
        assert body.count("data: ") == 13  # role chunk, 10 tokens, finish chunk, [DONE]


def test_clients_hanging_up_mid_stream_do_not_hurt_the_server(busy_server):
    before = handler_threads()
    sockets = []
    for i in range(30):
        model = ["Qwen/Qwen2.5-7B-Instruct", "fault-keepalive", "fault-close-delimited"][i % 3]
        sock = socket.create_connection(("127.0.0.1", busy_server.port), timeout=5)
        sock.sendall(raw_stream_request(busy_server, model, "什么是流式输出？"))
        assert b"200 OK" in sock.recv(200)  # the stream has started...
        sockets.append(sock)
    for i, sock in enumerate(sockets):  # ...and every client goes away before it ends
        if i % 2:  # half of them abruptly (RST), the others politely (FIN)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert wait_for_handlers(before) <= before, "handler threads left behind"
    assert "".join(client_for(busy_server).stream(HELLO).text()) == SEED_TEXT


def test_closing_a_chat_stream_early_and_then_streaming_again(busy_server):
    client = client_for(busy_server)
    before = handler_threads()
    for _ in range(20):
        stream = client.stream([{"role": "user", "content": "什么是 token？"}])
        first = next(stream.text())
        assert first
        stream.close()
    assert wait_for_handlers(before + 1) <= before + 1  # the session may keep one connection
    assert "".join(client.stream(HELLO).text()) == SEED_TEXT


def test_hanging_up_during_a_stall_frees_the_server(busy_server):
    client = client_for(busy_server, timeout=0.3)
    before = handler_threads()
    for _ in range(3):
        stream = client.stream(HELLO, model="fault-stall", fault_delay=0.6)
        with pytest.raises(Exception, match="没有新数据"):
            list(stream)
    assert wait_for_handlers(before, seconds=5) <= before
    assert "".join(client_for(busy_server).stream(HELLO).text()) == SEED_TEXT


def test_half_sent_requests_and_garbage_do_not_block_others(busy_server):
    idle = socket.create_connection(("127.0.0.1", busy_server.port), timeout=5)
    idle.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    garbage = socket.create_connection(("127.0.0.1", busy_server.port), timeout=5)
    garbage.sendall(b"\x16\x03\x01\x00\xa5 not http at all\r\n\r\n")
    try:
        assert "".join(client_for(busy_server).stream(HELLO).text()) == SEED_TEXT
    finally:
        idle.close()
        garbage.close()


def test_mixed_load_with_half_of_the_clients_hanging_up(busy_server):
    client = client_for(busy_server)

    def one(i: int) -> str | None:
        stream = client.stream([{"role": "user", "content": "什么是流式输出？"}])
        if i % 2:
            next(stream.text())
            stream.close()
            return None
        return "".join(stream.text())

    expected = client.chat([{"role": "user", "content": "什么是流式输出？"}]).content
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    assert all(r == expected for r in results if r is not None)
    assert sum(r is None for r in results) == 25
