"""The local server under load: 50 concurrent streams, and clients that hang up mid-stream.

A class of students all pressing "run" at once, or closing a notebook while an answer is still
streaming, must never break the server for the next request.
"""

from __future__ import annotations

import itertools
import json
import selectors
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lesson_helpers import seed
from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.local_server import Exchange, LocalServer, ModelSpec, exchange
from lesson_helpers.sse import SSEParser

SEED_TEXT = seed.ANSWER
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


# -- paced streams are written by the server's loop, not by a thread each ----------------------
def read_streams(sockets: list[socket.socket]) -> list[tuple[list[float], str, bytes]]:
    """Read every socket at once until the server closes it (HTTP/1.0: the body is the raw
    SSE stream): for each, the arrival time of each content token, the text, the bytes."""
    selector = selectors.DefaultSelector()
    parsers = {sock: SSEParser() for sock in sockets}
    data = {sock: b"" for sock in sockets}
    heads = {sock: b"" for sock in sockets}
    in_body: set[socket.socket] = set()
    times: dict[socket.socket, list[float]] = {sock: [] for sock in sockets}
    texts = dict.fromkeys(sockets, "")
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + 20
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            piece = sock.recv(65536)
            if not piece:
                selector.unregister(sock)
                continue
            if sock not in in_body:  # the response head first
                heads[sock] += piece
                if b"\r\n\r\n" not in heads[sock]:
                    continue
                piece = heads[sock].partition(b"\r\n\r\n")[2]
                in_body.add(sock)
            data[sock] += piece
            for event in parsers[sock].feed(piece):
                if event.data != "[DONE]":
                    content = event.json()["choices"][0]["delta"].get("content")
                    if content:
                        times[sock].append(time.monotonic())
                        texts[sock] += content
    selector.close()
    return [(times[sock], texts[sock], data[sock]) for sock in sockets]


def test_a_hundred_paced_streams_hold_no_thread_each_and_keep_their_pace():
    with LocalServer(pace=0.05) as server:
        before = handler_threads()
        sockets = []
        for i in range(100):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            model = ("Qwen/Qwen2.5-7B-Instruct", "gpt-4o-mini", "fault-keepalive")[i % 3]
            request = raw_stream_request(server, model, "你好")
            sock.sendall(request.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
            sockets.append(sock)
        started = time.monotonic()
        counted: list[int] = []  # while the streams run (read meanwhile, so timing is live)
        timer = threading.Timer(0.2, lambda: counted.append(handler_threads()))
        timer.start()
        results = read_streams(sockets)
        timer.join()
        for sock in sockets:
            sock.close()
    assert counted[0] - before <= 5  # the streams are running, the threads are not
    for times, text, data in results:
        assert text == SEED_TEXT
        assert data.endswith(b"data: [DONE]\n\n") or data.endswith(
            b"data: [DONE]\n\n: keep-alive\n\n"
        )
        assert times[0] - started < 0.5  # the first token comes at once, not at the end
        assert 0.05 * 9 * 0.9 <= times[-1] - times[0] < 2.0  # ten tokens, 0.05 s apart
        gaps = sorted(b - a for a, b in itertools.pairwise(times))
        assert gaps[len(gaps) // 2] > 0.03  # one by one, not all at once


def long_reply(ex: Exchange) -> None:
    """A model that streams ``max_tokens`` numbered pieces at the server's pace."""
    count = int(ex.body.get("max_tokens") or 10)
    padding = " " * int(ex.body.get("padding") or 0)
    ex.start_stream()
    for i in range(count):
        if i and not ex.sleep():
            ex.cut()
            LONG_REPLY_STOPPED.set()
            return
        ex.write(f"data: {i}{padding}\n\n".encode())
    ex.send_done()
    ex.end_stream()


LONG_REPLY_STOPPED = threading.Event()


def long_request(server: LocalServer, tokens: int, padding: int = 0) -> bytes:
    body = {"model": "test/long", "messages": HELLO, "stream": True, "max_tokens": tokens}
    body = json.dumps({**body, "padding": padding}).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_key}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_reply_longer_than_the_lookahead_is_written_in_parts_and_in_order():
    tokens = exchange.MAX_AHEAD * 3 + 7
    with LocalServer(pace=0.0002) as server:
        server.register(ModelSpec("test/long", "测试用：很长的回答。", long_reply))
        response = requests.post(
            server.base_url + "/chat/completions",
            data=long_request(server, tokens).split(b"\r\n\r\n", 1)[1],
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=TIMEOUT,
        )
    numbers = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert numbers == [str(i) for i in range(tokens)] + ["[DONE]"]


def test_a_client_hanging_up_stops_a_long_paced_reply():
    LONG_REPLY_STOPPED.clear()
    with LocalServer(pace=0.005) as server:
        server.register(ModelSpec("test/long", "测试用：很长的回答。", long_reply))
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(long_request(server, 100_000))  # 500 s of tokens
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert LONG_REPLY_STOPPED.wait(timeout=30)  # the handler learns of it and ends
        assert "".join(client_for(server).stream(HELLO).text()) == SEED_TEXT


def test_a_client_that_stops_reading_is_dropped_after_the_read_timeout():
    LONG_REPLY_STOPPED.clear()
    with LocalServer(pace=0.001, read_timeout=0.5) as server:
        server.register(ModelSpec("test/long", "测试用：很长的回答。", long_reply))
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # 10,000 pieces of 10 kB, 1 ms apart: far more than the socket buffers hold. The
        # client never reads: half a second after the buffers are full the server gives up.
        sock.sendall(long_request(server, 10_000, padding=10_000))
        try:
            assert LONG_REPLY_STOPPED.wait(timeout=10)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        assert "".join(client_for(server).stream(HELLO).text()) == SEED_TEXT
