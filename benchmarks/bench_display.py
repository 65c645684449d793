"""How much does the live view cost? 5,000 deltas at full speed, with and without a display.

    python benchmarks/bench_display.py [--deltas 5000] [--repeat 5]

Two tables. Nothing is asserted: this is a measurement, not a test (timings depend on the
machine); each table gives ratios against its own baseline.

1. Over HTTP: a local server (pace 0) streams one answer of N deltas; each variant reads the
   same stream. Median wall and CPU time, their ratios against reading it with no display,
   renders, ``ChunkAssembler.add`` calls per chunk (1.00 = every chunk merged once, by the
   stream's own assembler), and whether the last drawing is exactly the final text.

   no display       iterate the ChatStream, nothing else (the baseline)
   LiveView silent  the view's bookkeeping and throttling, drawing nothing
   LiveView widget  real ipywidgets, no front end attached (every change is serialized and
                    handed to a dummy comm, as a kernel would before sending it)
   LiveView text    printing the new text at each render (into memory)
   naive widget     an HTML widget updated on every delta: what the view's throttling avoids.
                    It looks cheap here only because no front end receives its N messages; in
                    a browser each one is a websocket message and a re-render (see lesson 04).

2. In memory: the same N+2 chunk dicts, already parsed, so only the view's own work is left.
   The baseline merges them into one ChunkAssembler; "LiveView silent" reads them through a
   view (its one assembler); "+ key" also hides a configured key from what it shows.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable

from lesson_helpers.chunks import ChunkAssembler
from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.display import LiveView
from lesson_helpers.local_server import (
    ChunkBuilder,
    Exchange,
    LocalServer,
    ModelSpec,
    register,
)

MODEL = "bench-many-deltas"
PIECES = ["流式", "输出", "，", "一个", "delta", " ", "接", "一个", "。", "\n"]
FAKE_KEY = "not-a-real-key-for-the-benchmark-0000"

Run = Callable[[], tuple[str, int | None]]  # one run: (final text shown, renders)


def expected_text(deltas: int) -> str:
    return "".join(PIECES[i % len(PIECES)] for i in range(deltas))


def many_deltas_model(deltas: int) -> ModelSpec:
    def handle(ex: Exchange) -> None:
        builder = ChunkBuilder(ex.model, prompt_tokens=12)
        ex.start_stream()
        ex.send_event(builder.chunk({"role": "assistant", "content": ""}))
        for i in range(deltas):
            builder.completion_tokens += 1
            ex.send_event(builder.chunk({"content": PIECES[i % len(PIECES)]}))
        ex.send_event(builder.chunk({"content": ""}, "stop"))
        ex.send_done()
        ex.end_stream()

    return ModelSpec(MODEL, f"benchmark: {deltas} deltas at full speed", handle)


def view_run(source: Callable[[], object], mode: str, secret: str = "") -> Run:
    def run() -> tuple[str, int | None]:
        live = LiveView(mode=mode, out=io.StringIO(), secret=secret)
        live.run(source)  # type: ignore[arg-type]
        if live.error:
            raise RuntimeError(live.error)
        return live.rendered_text, live.renders

    return run


def http_variants(client: ChatClient) -> dict[str, Run]:
    messages = [{"role": "user", "content": "bench"}]

    def stream():
        return client.stream(messages, model=MODEL)

    def no_display() -> tuple[str, int | None]:
        chat_stream = stream()
        for _chunk in chat_stream:
            pass
        return chat_stream.result.content, None

    def naive_widget() -> tuple[str, int | None]:
        import ipywidgets

        answer = ipywidgets.HTML()
        text, renders = "", 0
        for piece in stream().text():
            text += piece
            answer.value = text
            renders += 1
        return answer.value, renders

    return {
        "no display": no_display,
        "LiveView silent": view_run(stream, "silent"),
        "LiveView widget": view_run(stream, "widget"),
        "LiveView text": view_run(stream, "text"),
        "naive widget": naive_widget,
    }


def memory_variants(chunks: list[dict]) -> dict[str, Run]:
    def assemble_only() -> tuple[str, int | None]:
        assembler = ChunkAssembler()
        for chunk in chunks:
            assembler.add(chunk)
        return assembler.content(), None

    return {
        "assembler only": assemble_only,
        "LiveView silent": view_run(lambda: chunks, "silent"),
        "LiveView silent + key": view_run(lambda: chunks, "silent", FAKE_KEY),
        "LiveView widget": view_run(lambda: chunks, "widget"),
    }


def merges_per_chunk(run: Run, chunks: int) -> float:
    """ChunkAssembler.add calls per chunk during one (untimed) run."""
    calls = 0
    add = ChunkAssembler.add

    def counted(self: ChunkAssembler, chunk: dict) -> object:
        nonlocal calls
        calls += 1
        return add(self, chunk)

    ChunkAssembler.add = counted  # type: ignore[method-assign]
    try:
        run()
    finally:
        ChunkAssembler.add = add  # type: ignore[method-assign]
    return calls / chunks


def measure(runs: dict[str, Run], repeat: int, chunks: int, want: str, title: str) -> None:
    first = next(iter(runs.values()))
    first()  # warm up: imports, the first connection
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    last: dict[str, tuple[str, int | None]] = {}
    for _ in range(repeat):  # round-robin, so a busy moment hits every variant alike
        for name, run in runs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            last[name] = run()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    merges = {name: merges_per_chunk(run, chunks) for name, run in runs.items()}

    base = next(iter(runs))
    base_wall, base_cpu = statistics.median(wall[base]), statistics.median(cpu[base])
    print(title)
    header = f"{'variant':<22}{'wall s':>8}{'ratio':>8}{'CPU s':>8}{'ratio':>8}{'renders':>9}"
    print(header + f"{'merges/chunk':>14}  final text exact")
    for name in runs:
        shown, renders = last[name]
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<22}{w:>8.3f}{w / base_wall:>7.2f}x{c:>8.3f}{c / base_cpu:>7.2f}x"
            f"{'-' if renders is None else renders:>9}{merges[name]:>14.2f}  {shown == want}"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    register(many_deltas_model(args.deltas))
    want = expected_text(args.deltas)
    chunks = args.deltas + 2  # the role chunk, the deltas, the finish chunk
    with LocalServer(pace=0) as server:
        settings = Settings(
            api_key=Secret(server.api_key or ""),
            base_url=server.base_url,
            model=MODEL,
            timeout=30.0,
            connect_timeout=5.0,
            provider="local",
        )
        client = ChatClient(settings)
        measure(
            http_variants(client),
            args.repeat,
            chunks,
            want,
            f"1. {args.deltas} deltas at full speed over local HTTP, median of {args.repeat} runs\n"
            "   (CPU = this process, server thread included: steadier than wall time)",
        )
        recorded = list(client.stream([{"role": "user", "content": "bench"}], model=MODEL))
    measure(
        memory_variants(recorded),
        args.repeat,
        chunks,
        want,
        f"2. the same {len(recorded)} chunks already in memory (no HTTP, no parsing): "
        "the view's own cost",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
