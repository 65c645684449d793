"""End-to-end chunks per second: local server -> ChatClient.stream -> ChunkAssembler.

Run from the repository root::

    python benchmarks/bench_throughput.py            # about 30 s on 2 cores
    python benchmarks/bench_throughput.py --quick

The script registers a benchmark-only model, ``bench/long-reply``, with the local server
(``lesson_helpers.local_server.models.register``): it streams ``max_tokens`` seed-shaped
chunks (SiliconFlow style, one token of varied Chinese text each) at the server's pace,
then ``finish_reason: "stop"`` and ``data: [DONE]``.

1. One long stream (pace 0): how many chunks per second reach the caller of
   ``ChatClient.stream`` (SSE parsing, ``json.loads`` and the assembler included), with the
   server as a thread of the same process (as in a lesson) and as a separate process. A
   reference row reads the same stream with read1() + SSEParser only (no JSON, no
   assembler), to show what the parser costs within the whole.
2. 50 concurrent streams (one thread and one ChatClient each) against a server in its own
   process: total chunks per second at pace 0, and whether the server keeps its default
   pace (0.02 s per token) for 50 streams at once. Every stream's text is checked
   against the expected reply, token for token.

CPU time per chunk is given for both processes (user + system, from time.process_time),
so it is visible which side was the limit; with the server as a thread, its CPU time is
counted in the client's column.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, median, table, token_pieces

from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.local_server import ChunkBuilder, Exchange, LocalServer, ModelSpec, register
from lesson_helpers.sse import SSEParser

MODEL = "bench/long-reply"
MESSAGES = [{"role": "user", "content": "请写一篇很长的文章，介绍流式输出。"}]
TIMEOUT = 60.0  # seconds: the read timeout of every request (an upper bound, never a wait)


# -- the benchmark-only model -----------------------------------------------------------------


def long_reply(ex: Exchange) -> None:
    """Stream ``max_tokens`` token pieces, shaped like the seed (SiliconFlow style)."""
    builder = ChunkBuilder(ex.model, prompt_tokens=30)
    ex.start_stream()
    ex.send_event(builder.chunk({"content": "", "reasoning_content": None, "role": "assistant"}))
    for piece in token_pieces(int(ex.body.get("max_tokens") or 1000)):
        if not ex.sleep():  # the server's pace; False when it is shutting down
            ex.cut()
            return
        builder.completion_tokens += 1
        ex.send_event(builder.chunk({"content": piece, "reasoning_content": None}))
    ex.send_event(builder.chunk({"content": "", "reasoning_content": None}, "stop"))
    ex.send_done()
    ex.end_stream()


def register_model() -> None:
    register(ModelSpec(MODEL, "Benchmark only: streams max_tokens chunks.", long_reply))


# -- the server: a thread of this process, or a child process ---------------------------------


class ServerProcess:
    """``python benchmarks/bench_throughput.py --serve`` in a child process.

    Its first line of output is the base URL. Each line written to its stdin is answered
    with its CPU seconds so far; a line ``pace <seconds>`` sets the pace first.
    """

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        self.base_url = self._child.stdout.readline().strip()
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.close()
            raise SystemExit(f"the server process did not start: {self.base_url!r}")

    def ask(self, line: str = "") -> float:
        """Send one command line; return the server's CPU seconds."""
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(line + "\n")
        self._child.stdin.flush()
        return float(self._child.stdout.readline())

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()  # end of input: the child stops its server and exits
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


def serve() -> None:
    """The child process: a local server with the benchmark model, controlled by stdin."""
    register_model()
    with LocalServer(pace=0) as server:
        print(server.base_url, flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[:1] == ["pace"]:
                server.pace = float(command[1])
            print(time.process_time(), flush=True)


# -- clients ----------------------------------------------------------------------------------


def client_for(base_url: str, api_key: str) -> ChatClient:
    settings = Settings(
        api_key=Secret(api_key), base_url=base_url, model=MODEL, timeout=TIMEOUT, provider="local"
    )
    client = ChatClient(settings, max_retries=0)
    client.session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return client


def stream_chunks(client: ChatClient, tokens: int) -> int:
    """Stream one reply through ChatClient.stream (parser + JSON + assembler); check it."""
    stream = client.stream(MESSAGES, max_tokens=tokens)
    chunks = sum(1 for _ in stream)
    result = stream.result
    expected = "".join(token_pieces(tokens))
    if not stream.done or result.finish_reason != "stop" or result.content != expected:
        raise SystemExit(f"incomplete stream: {len(result.content)} of {len(expected)} chars")
    return chunks


def parser_only(client: ChatClient, tokens: int) -> int:
    """Reference: read1() + SSEParser, no JSON, no assembler."""
    response = client.session.post(
        client.settings.base_url + "/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": tokens},
        headers=client.settings.auth_headers(),
        stream=True,
        timeout=TIMEOUT,
    )
    parser = SSEParser()
    events = 0
    with response:
        while piece := response.raw.read1(65536, decode_content=True):
            events += len(parser.feed(piece))
    return events - 1  # without data: [DONE]


@dataclass
class Measured:
    seconds: float
    chunks: int
    client_cpu: float
    server_cpu: float | None  # None: the server runs in this process (counted as client)
    stream_seconds: list[float] = field(default_factory=list)  # each stream's own duration


def measure(
    run: Callable[[], int], server: ServerProcess | None, repetitions: int
) -> list[Measured]:
    results = []
    for _ in range(repetitions):
        server_cpu = server.ask() if server else 0.0
        cpu, start = time.process_time(), time.perf_counter()
        chunks = run()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        server_cpu = server.ask() - server_cpu if server else None
        results.append(Measured(seconds, chunks, cpu, server_cpu))
    return results


def row(label: str, where: str, results: list[Measured]) -> list[str]:
    best = min(results, key=lambda m: m.seconds)
    mid = median([m.chunks / m.seconds for m in results])
    per_chunk = 1e6 / best.chunks  # seconds -> microseconds per chunk
    server_cpu = "-" if best.server_cpu is None else f"{best.server_cpu * per_chunk:.0f}"
    return [
        label,
        where,
        f"{best.chunks:,}",
        f"{best.seconds:.2f}",
        f"{best.chunks / best.seconds:,.0f}",
        f"{mid:,.0f}",
        f"{best.client_cpu * per_chunk:.0f}",
        server_cpu,
    ]


HEADERS = [
    "what",
    "server",
    "chunks",
    "best s",
    "chunks/s (best)",
    "chunks/s (median)",
    "client CPU µs/chunk",
    "server CPU µs/chunk",
]


# -- part 1: one long stream ------------------------------------------------------------------


def one_stream(tokens: int, repetitions: int) -> None:
    rows = []
    with LocalServer(pace=0) as local:  # a thread of this process, as in a lesson
        client = client_for(local.base_url, local.api_key or "")
        results = measure(lambda: stream_chunks(client, tokens), None, repetitions)
        rows.append(row("ChatClient.stream", "thread", results))
    remote = ServerProcess()
    try:
        client = client_for(remote.base_url, "local-practice-key")
        for label, run in (
            ("SSEParser only", parser_only),
            ("ChatClient.stream", stream_chunks),
        ):
            results = measure(lambda run=run: run(client, tokens), remote, repetitions)
            rows.append(row(label, "process", results))
    finally:
        remote.close()
    print(f"\n1. One stream of {tokens:,} tokens, pace 0, {repetitions} runs per row")
    print(table(HEADERS, rows, left=2))
    print("With the server as a thread, the client column includes the server's CPU time.")


# -- part 2: 50 concurrent streams ------------------------------------------------------------


def concurrent(server: ServerProcess, streams: int, tokens: int) -> Measured:
    """``streams`` threads, each with its own ChatClient, start together; all must finish."""
    clients = [client_for(server.base_url, "local-practice-key") for _ in range(streams)]
    counts = [0] * streams
    durations = [0.0] * streams
    errors: list[BaseException] = []
    start_together = threading.Barrier(streams + 1)

    def one(index: int) -> None:
        try:
            start_together.wait(TIMEOUT)
            started = time.perf_counter()
            counts[index] = stream_chunks(clients[index], tokens)
            durations[index] = time.perf_counter() - started
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    server_cpu = server.ask()
    cpu = time.process_time()
    start_together.wait(TIMEOUT)
    start = time.perf_counter()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server_cpu = server.ask() - server_cpu
    if errors:
        raise SystemExit(f"{len(errors)} of {streams} streams failed: {errors[0]}")
    if any(thread.is_alive() for thread in threads):
        raise SystemExit("a stream did not finish in time")
    return Measured(seconds, sum(counts), cpu, server_cpu, durations)


def many_streams(streams: int, tokens: int, paced_tokens: int, repetitions: int) -> None:
    server = ServerProcess()
    try:
        server.ask("pace 0")
        fast = [concurrent(server, streams, tokens) for _ in range(repetitions)]
        server.ask("pace 0.02")
        paced = concurrent(server, streams, paced_tokens)
    finally:
        server.close()
    print(
        f"\n2. {streams} concurrent streams (threads), server in its own process; "
        "every stream's text checked complete"
    )
    rows = [row(f"{streams} × {tokens:,} tokens, pace 0", "process", fast)]
    rows.append(row(f"{streams} × {paced_tokens} tokens, pace 0.02", "process", [paced]))
    print(table(HEADERS, rows, left=2))
    best = min(fast, key=lambda m: m.seconds)
    server_cpu = best.server_cpu or 0.0
    print(
        f"Pace 0: the server process was busy {server_cpu / best.seconds:.0%} of the time "
        f"and the client process {best.client_cpu / best.seconds:.0%} (100% = one core); "
        f"at {server_cpu / best.chunks * 1e6:.0f} µs per chunk one core would serve about "
        f"{best.chunks / max(server_cpu, 1e-9):,.0f} chunks/s."
    )
    print(
        f"Pace 0: each stream took {min(best.stream_seconds):.2f} to "
        f"{max(best.stream_seconds):.2f} s (median {median(best.stream_seconds):.2f} s)."
    )
    ideal = paced_tokens * 0.02
    print(
        f"Pace 0.02: each stream needs at least {ideal:.1f} s ({paced_tokens} tokens × 0.02 s); "
        f"they took {min(paced.stream_seconds):.2f} to {max(paced.stream_seconds):.2f} s "
        f"(median {median(paced.stream_seconds):.2f} s, "
        f"{median(paced.stream_seconds) / ideal - 1:+.0%}), "
        f"all {streams} together {paced.seconds:.2f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    register_model()
    print("End-to-end throughput (" + machine() + ")")
    one_stream(tokens=5_000 if args.quick else 20_000, repetitions=1 if args.quick else 3)
    many_streams(
        streams=50,
        tokens=200 if args.quick else 1_000,
        paced_tokens=50 if args.quick else 100,
        repetitions=1 if args.quick else 2,
    )


if __name__ == "__main__":
    main()
