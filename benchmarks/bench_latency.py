"""Event delivery delay: iter_sse(response) vs requests' iter_lines(), chunked and close-delimited.

Run from the repository root::

    python benchmarks/bench_latency.py            # about 10 s
    python benchmarks/bench_latency.py --quick

A small stdlib socket server on 127.0.0.1 (a thread of this process, TCP_NODELAY like a
real provider) answers one streaming request per connection: the response head, then
seed-shaped SSE events, one ``sendall`` each, ``GAP`` seconds apart. Just before each
write it notes ``time.perf_counter()``; the client notes the same clock when its loop gets
the event. Delay = client time - server time for the same event (events arrive in order,
so the k-th event received is the k-th written; the data is checked too).

Clients, both ``requests.get(..., stream=True)``:

* ``iter_sse(response)`` from lesson_helpers.sse -- reads ``response.raw.read1``;
* ``response.iter_lines()`` with default settings (``chunk_size=512``), an event being
  complete at its blank line.

Framings: ``Transfer-Encoding: chunked`` (one HTTP chunk per event), and close-delimited
(``Connection: close``, no length: the body ends when the server closes).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests
from common import machine, median, percentile, seed_shaped_stream, table

from lesson_helpers.sse import iter_sse

GAP = 0.010  # seconds between two events (the local server's default pace is 0.02)
EVENTS = 100  # per stream
TIMEOUT = 10.0  # seconds; an upper bound for every wait, never a sleep


class TimestampingServer:
    """Serves one streaming response on one connection and notes when each event is written."""

    def __init__(self, events: list[bytes], chunked: bool, gap: float) -> None:
        self.events = events
        self.chunked = chunked
        self.gap = gap
        self.sent_at: list[float] = []
        self.errors: list[BaseException] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1/chat/completions"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TimestampingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(TIMEOUT)
        self._listener.close()
        if self.errors:
            raise self.errors[0]

    def _head(self) -> bytes:
        lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache"]
        lines.append("Transfer-Encoding: chunked" if self.chunked else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(TIMEOUT)
                request = b""
                while b"\r\n\r\n" not in request:
                    part = conn.recv(65536)
                    if not part:
                        return
                    request += part
                conn.sendall(self._head())
                next_write = time.perf_counter()
                for event in self.events:
                    next_write += self.gap
                    time.sleep(max(0.0, next_write - time.perf_counter()))
                    wire = b"%x\r\n%s\r\n" % (len(event), event) if self.chunked else event
                    self.sent_at.append(time.perf_counter())
                    conn.sendall(wire)
                if self.chunked:
                    conn.sendall(b"0\r\n\r\n")
                conn.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)


def via_iter_sse(response: requests.Response) -> Iterator[str]:
    for event in iter_sse(response):
        yield event.data


def via_iter_lines(response: requests.Response) -> Iterator[str]:
    data: list[str] = []
    for line in response.iter_lines():  # default settings: chunk_size=512
        if line.startswith(b"data:"):
            data.append(line[5:].strip().decode("utf-8"))
        elif not line and data:
            yield "\n".join(data)
            data = []


Client = Callable[[requests.Response], Iterator[str]]


def run(client: Client, chunked: bool, events: list[bytes], expected: list[str]) -> list[float]:
    """Delays in seconds, one per event."""
    received_at: list[float] = []
    received: list[str] = []
    with TimestampingServer(events, chunked, GAP) as server, requests.Session() as session:
        session.trust_env = False  # no proxy from the environment for 127.0.0.1
        body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "你好"}]}
        with session.post(server.url, json=body, stream=True, timeout=TIMEOUT) as response:
            for data in client(response):
                received_at.append(time.perf_counter())
                received.append(data)
    if received != expected:
        raise SystemExit(f"{client.__name__}: got {len(received)} events, not the expected ones")
    return [got - sent for got, sent in zip(received_at, server.sent_at, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one stream per row, not three")
    args = parser.parse_args()
    repetitions = 1 if args.quick else 3

    blob, datas = seed_shaped_stream(EVENTS)
    events = [f"data: {data}\n\n".encode() for data in datas]
    assert b"".join(events) == blob

    print("Event delivery delay (" + machine() + ")")
    print(
        f"{EVENTS} seed-shaped events of about {len(blob) // EVENTS} bytes, one every "
        f"{GAP * 1000:g} ms; {repetitions} stream(s) per row. Delay = client's loop got the "
        "event - server started writing it."
    )
    rows = []
    for framing, chunked in (("chunked", True), ("close-delimited", False)):
        for name, client in (
            ("iter_sse(response)", via_iter_sse),
            ("iter_lines()", via_iter_lines),
        ):
            delays: list[float] = []
            for _ in range(repetitions):
                delays += run(client, chunked, events, datas)
            held = sum(1 for d in delays if d > GAP / 2) / len(delays)
            rows.append(
                [
                    framing,
                    name,
                    f"{median(delays) * 1000:.2f}",
                    f"{percentile(delays, 0.95) * 1000:.2f}",
                    f"{max(delays) * 1000:.1f}",
                    f"{held:.0%}",
                ]
            )
    headers = ["framing", "client", "median ms", "p95 ms", "max ms", f"> {GAP * 500:g} ms"]
    print()
    print(table(headers, rows, left=2))
    print(
        f"\n'> {GAP * 500:g} ms': events that arrived only about when the next one was "
        "written (held back)."
    )


if __name__ == "__main__":
    main()
