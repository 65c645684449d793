"""How many concurrent streams the local server holds at its pace, with async clients.

Run from the repository root::

    python benchmarks/bench_concurrency.py             # 50, 200 and 500 streams, ~1 min
    python benchmarks/bench_concurrency.py --quick     # 50 and 200, one client
    python benchmarks/bench_concurrency.py --streams 50 500 1000 --pace 0.02 --clients raw

The server runs in its own process (this script with ``--serve``), at the default pace of
0.02 s per token. The clients run in this process, in one asyncio event loop, so no client
thread competes for the GIL. For N streams, N requests start together; stream i asks its own
question (``第 i 位同学的问题：……``) with ``max_tokens`` 80, so every stream needs exactly
80 token slots: ideally 80 × pace = 1.6 s. Every reply is checked against the scripted text
(``replies.reply_pieces``), token for token, ending with ``finish_reason: "length"`` and
``data: [DONE]``.

Two clients, so that a client limit is not mistaken for a server limit:

* ``httpx.AsyncClient`` -- ``client.stream("POST", ...)``, ``aiter_raw()`` into
  ``lesson_helpers.sse.SSEParser``, ``json.loads`` per event (a realistic async client);
* ``raw asyncio`` -- the request written by hand on ``asyncio.open_connection``, the chunked
  body read with ``readuntil``/``readexactly``, then the same parser and ``json.loads`` (the
  cheapest honest client).

Each run twice: all requests at once (the worst case: a class pressing "run" in the same
millisecond), and spread evenly over ``--ramp`` seconds (1 s).

Reported per run: each stream's completion time (median, p95, max) and as a ratio of the
ideal, the 95th percentile time to the first token and of the pace after it, how many replies
were exact, and the CPU each process used (100% = one core) -- which side was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import machine, median, percentile, table

from lesson_helpers.local_server import DEFAULT_API_KEY, DEFAULT_PACE, LocalServer
from lesson_helpers.local_server.replies import reply_pieces
from lesson_helpers.sse import SSEParser

MODEL = "Qwen/Qwen2.5-7B-Instruct"
TOKENS = 80  # max_tokens of every stream: the ideal time is TOKENS × pace
TIMEOUT = 120.0  # seconds; an upper bound for every wait, never a sleep


def question(i: int) -> list[dict[str, str]]:
    text = (
        f"第 {i} 位同学的问题：请解释一下本地练习服务器是怎样在同一时间回答很多位同学的提问的呢？"
    )
    return [{"role": "user", "content": text}]


def expected_text(i: int) -> str:
    pieces = reply_pieces(question(i))
    if len(pieces) < TOKENS:
        raise SystemExit(f"the scripted reply has only {len(pieces)} tokens, not {TOKENS}")
    return "".join(pieces[:TOKENS])


def request_body(i: int) -> bytes:
    body = {"model": MODEL, "messages": question(i), "stream": True, "max_tokens": TOKENS}
    return json.dumps(body, ensure_ascii=False).encode()


# -- the server process -------------------------------------------------------------------------
class ServerProcess:
    """This script with ``--serve``: prints its base URL, then answers each line of stdin
    with its CPU seconds and thread count so far."""

    def __init__(self, pace: float) -> None:
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "--pace", str(pace)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        self.base_url = self._child.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.close()
            raise SystemExit(f"the server process did not start: {self.base_url!r}")
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def ask(self) -> tuple[float, int]:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write("\n")
        self._child.stdin.flush()
        cpu, threads = self._child.stdout.readline().split()
        return float(cpu), int(threads)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


def serve(pace: float) -> None:
    import threading

    with LocalServer(pace=pace) as server:
        print(server.base_url, flush=True)
        for _ in sys.stdin:
            print(time.process_time(), threading.active_count(), flush=True)


# -- one stream ---------------------------------------------------------------------------------
@dataclass
class Stream:
    started: float = 0.0
    first_token: float = 0.0
    ended: float = 0.0
    text: str = ""
    finish: str | None = None
    done: bool = False


def take_events(parser: SSEParser, piece: bytes, stream: Stream) -> None:
    for event in parser.feed(piece):
        if event.data == "[DONE]":
            stream.done = True
            continue
        for choice in json.loads(event.data).get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                if not stream.text:
                    stream.first_token = time.perf_counter()
                stream.text += content
            stream.finish = choice.get("finish_reason") or stream.finish


async def starting(go: asyncio.Event, delay: float) -> None:
    await go.wait()
    if delay:
        await asyncio.sleep(delay)


async def with_httpx(
    client: httpx.AsyncClient, base_url: str, i: int, go: asyncio.Event, delay: float
) -> Stream:
    stream = Stream()
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Content-Type": "application/json"}
    await starting(go, delay)
    stream.started = time.perf_counter()
    parser = SSEParser()
    async with client.stream(
        "POST", base_url + "/chat/completions", content=request_body(i), headers=headers
    ) as response:
        async for piece in response.aiter_raw():
            take_events(parser, piece, stream)
    stream.ended = time.perf_counter()
    return stream


async def with_raw_asyncio(port: int, i: int, go: asyncio.Event, delay: float) -> Stream:
    stream = Stream()
    body = request_body(i)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {DEFAULT_API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        await starting(go, delay)
        stream.started = time.perf_counter()
        writer.write(head + body)
        status = await reader.readuntil(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 200") or b"chunked" not in status.lower():
            raise SystemExit(f"unexpected response head: {status[:200]!r}")
        parser = SSEParser()
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            take_events(parser, (await reader.readexactly(size + 2))[:-2], stream)
        stream.ended = time.perf_counter()
    finally:
        writer.close()
    return stream


# -- one run of N streams -----------------------------------------------------------------------
@dataclass
class Run:
    client: str
    arrival: str
    streams: list[Stream]
    wall: float
    client_cpu: float
    server_cpu: float
    server_threads: int


async def run_streams(client: str, server: ServerProcess, count: int, ramp: float) -> Run:
    """``count`` streams; stream i starts ``i / count * ramp`` seconds after the first."""
    go = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    delays = [i / count * ramp for i in range(count)]
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT, trust_env=False) as http:
        if client == "httpx":
            jobs = [with_httpx(http, server.base_url, i, go, delays[i]) for i in range(count)]
        else:
            jobs = [with_raw_asyncio(server.port, i, go, delays[i]) for i in range(count)]
        tasks = [asyncio.ensure_future(job) for job in jobs]
        await asyncio.sleep(0.5)  # raw clients connect first; httpx connects when it starts
        server_cpu, _ = server.ask()
        cpu, wall = time.process_time(), time.perf_counter()
        go.set()
        peak = 0
        while not all(task.done() for task in tasks):
            await asyncio.sleep(0.25)
            peak = max(peak, (await asyncio.to_thread(server.ask))[1])
        streams = [await task for task in tasks]
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        server_cpu = server.ask()[0] - server_cpu
    arrival = f"over {ramp:g} s" if ramp else "at once"
    return Run(client, arrival, streams, wall, cpu, server_cpu, peak)


def report(run: Run, pace: float) -> list[str]:
    ideal = TOKENS * pace
    exact = sum(
        s.done and s.finish == "length" and s.text == expected_text(i)
        for i, s in enumerate(run.streams)
    )
    took = [s.ended - s.started for s in run.streams]
    first = [s.first_token - s.started for s in run.streams]
    # After the first token: TOKENS - 1 more slots, ideally (TOKENS - 1) × pace.
    paced = [(s.ended - s.first_token) / ((TOKENS - 1) * pace) for s in run.streams]
    return [
        run.client,
        run.arrival,
        f"{len(run.streams)}",
        f"{exact}/{len(run.streams)}",
        f"{median(took):.2f}",
        f"{percentile(took, 0.95):.2f}",
        f"{max(took):.2f}",
        f"{median(took) / ideal:.2f}×",
        f"{percentile(took, 0.95) / ideal:.2f}×",
        f"{percentile(first, 0.95) * 1000:.0f}",
        f"{percentile(paced, 0.95):.2f}×",
        f"{run.server_cpu / run.wall:.0%}",
        f"{run.client_cpu / run.wall:.0%}",
        f"{run.server_threads}",
    ]


HEADERS = [
    "client",
    "requests arrive",
    "streams",
    "exact",
    "median s",
    "p95 s",
    "max s",
    "median ÷ ideal",
    "p95 ÷ ideal",
    "p95 first token ms",
    "p95 pace after it",
    "server CPU",
    "client CPU",
    "server threads",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 200 streams, raw client")
    parser.add_argument("--streams", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--pace", type=float, default=DEFAULT_PACE)
    parser.add_argument(
        "--ramp", type=float, default=1.0, help="also start the streams spread over this many s"
    )
    parser.add_argument("--clients", nargs="+", choices=["raw", "httpx"], default=["raw", "httpx"])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.pace)
        return
    counts = [50, 200] if args.quick else args.streams
    names = {"raw": "raw asyncio", "httpx": "httpx"}
    clients = ["raw asyncio"] if args.quick else [names[c] for c in args.clients]
    print(f"Concurrent streams at pace {args.pace:g} s ({machine()})")
    print(f"Each stream: {TOKENS} tokens, ideal {TOKENS * args.pace:.2f} s.\n")
    rows = []
    server = ServerProcess(args.pace)
    try:
        for count in counts:
            for client in clients:
                for ramp in (0.0, args.ramp) if args.ramp else (0.0,):
                    run = asyncio.run(run_streams(client, server, count, ramp))
                    rows.append(report(run, args.pace))
                    print(table(HEADERS, rows[-1:], left=2).splitlines()[-1], flush=True)
    finally:
        server.close()
    print()
    print(table(HEADERS, rows, left=2))
    print(
        "p95 pace after it: (last token - first token) ÷ ((tokens - 1) × pace) at the 95th "
        "percentile; server CPU / client CPU: the share of one core each process used during "
        "the run; server threads: the most seen at once in the server process."
    )


if __name__ == "__main__":
    main()
