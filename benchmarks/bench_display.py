"""How much does the live view cost? 5,000 deltas at full speed, with and without a display.

    python benchmarks/bench_display.py [--deltas 5000] [--repeat 5]

A local server (pace 0) streams one answer of N deltas over real HTTP. Each variant reads the
same stream; the table shows the median wall and CPU time, their ratios against reading it
with no display, how many times the view was drawn, and whether the last drawing is exactly
the final text.
Nothing is asserted: this is a measurement, not a test (timings depend on the machine).

Variants:
  no display       iterate the ChatStream, nothing else (the baseline)
  LiveView silent  the view's bookkeeping and throttling, drawing nothing
  LiveView widget  real ipywidgets, no front end attached (every change is serialized and
                   handed to a dummy comm, as a kernel would before sending it)
  LiveView text    printing the new text at each render (into memory)
  naive widget     an HTML widget updated on every delta: what the view's throttling avoids.
                   It looks cheap here only because no front end receives its N messages; in a
                   browser each one is a websocket message and a re-render (see lesson 04).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable

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


def variants(client: ChatClient) -> dict[str, Callable[[], tuple[str, int | None]]]:
    """name -> run once, returning (final text shown, renders)."""
    messages = [{"role": "user", "content": "bench"}]

    def stream():
        return client.stream(messages, model=MODEL)

    def no_display() -> tuple[str, int | None]:
        chat_stream = stream()
        for _chunk in chat_stream:
            pass
        return chat_stream.result.content, None

    def view(mode: str) -> Callable[[], tuple[str, int | None]]:
        def run() -> tuple[str, int | None]:
            live = LiveView(mode=mode, out=io.StringIO())
            live.run(stream)
            if live.error:
                raise RuntimeError(live.error)
            return live.rendered_text, live.renders

        return run

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
        "LiveView silent": view("silent"),
        "LiveView widget": view("widget"),
        "LiveView text": view("text"),
        "naive widget": naive_widget,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    register(many_deltas_model(args.deltas))
    want = expected_text(args.deltas)
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
        runs = variants(client)
        runs["no display"]()  # warm up: imports, the first connection
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        last: dict[str, tuple[str, int | None]] = {}
        for _ in range(args.repeat):  # round-robin, so a busy moment hits every variant alike
            for name, run in runs.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                last[name] = run()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)

    base_wall = statistics.median(wall["no display"])
    base_cpu = statistics.median(cpu["no display"])
    print(f"{args.deltas} deltas at full speed over local HTTP, median of {args.repeat} runs")
    print("(CPU = this process, server thread included; steadier than wall time on a busy box)")
    header = f"{'variant':<17}{'wall s':>8}{'ratio':>8}{'CPU s':>8}{'ratio':>8}{'renders':>9}"
    print(header + "  final text exact")
    for name in runs:
        shown, renders = last[name]
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<17}{w:>8.3f}{w / base_wall:>7.2f}x{c:>8.3f}{c / base_cpu:>7.2f}x"
            f"{'-' if renders is None else renders:>9}  {shown == want}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
