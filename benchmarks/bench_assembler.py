"""ChunkAssembler.add: cost per chunk at 10k, 100k, 200k and 1M chunks.

Run from the repository root::

    python benchmarks/bench_assembler.py            # about 40 s on 2 cores
    python benchmarks/bench_assembler.py --quick    # 10k, 100k, 200k only, fewer rounds
    git show f5a3a17:lesson_helpers/chunks.py > /tmp/chunks_before.py
    python benchmarks/bench_assembler.py --quick --against /tmp/chunks_before.py

Two streams, both merged by one ``ChunkAssembler``:

* **content**: seed-shaped chunks (the recorded SiliconFlow stream's keys, varied Chinese
  token pieces, a cumulative ``usage`` dict in every chunk, as SiliconFlow sends it);
* **tool-call arguments**: one tool call whose ``arguments`` arrive 1 to 4 characters per
  chunk (``{"index": 0, "function": {"arguments": ...}}``), as OpenAI streams them.

The chunks are decoded JSON dicts built before timing; 1,000 distinct ones are cycled so
that a million chunks need no gigabytes (``add`` keeps references to the text pieces, never
changes a chunk). The sizes run interleaved, 5 rounds after a warm-up, so that a busy
spell on a shared machine hits every size alike; garbage collection runs between runs,
not during them. Each run times its adds in segments of 1,000 chunks:

* **whole run, best**: the fastest run's add time / chunks;
* **median segment**: the median cost of a 1,000-chunk segment over all rounds -- steady
  under bursts of load -- and the same for the last 10 % of each run (the cost once
  the answer is already long);
* **÷ 10k**: the median-segment cost divided by the 10k figure (1.00 = flat).

``result()`` once at the end is timed apart: it joins the text, so it costs O(text), and
a stream calls it rarely.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, seed_chunks, stamp, table, time_once, token_pieces

from lesson_helpers.chunks import ChunkAssembler

POOL = 1000


def content_pool() -> list[dict]:
    """1,000 seed-shaped content chunks with growing usage."""
    middle = seed_chunks()[1]
    prompt = middle["usage"]["prompt_tokens"]
    pool = []
    for number, piece in enumerate(token_pieces(POOL), start=1):
        chunk = copy.deepcopy(middle)
        chunk["choices"][0]["delta"]["content"] = piece
        chunk["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": number,
            "total_tokens": prompt + number,
        }
        pool.append(chunk)
    return pool


def tool_call_pool() -> list[dict]:
    """1,000 argument fragments of one tool call (the first chunk names it)."""
    pool = []
    for piece in token_pieces(POOL):
        fragment = {"index": 0, "function": {"arguments": piece}}
        delta = {"tool_calls": [fragment]}
        pool.append(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1763350084,
                "model": "bench-model",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
        )
    return pool


def first_tool_chunk() -> dict:
    call = {"index": 0, "id": "call_0", "type": "function", "function": {"name": "f"}}
    return {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]}


SEGMENT = 1000  # chunks per timed segment


def run(
    cls: type, pool: list[dict], count: int, first: dict | None
) -> tuple[float, list[float], float, int]:
    """One ``cls()`` assembler, ``count`` chunks: (seconds for all the adds, seconds per
    segment of SEGMENT chunks, seconds for one result() at the end, the text's length)."""
    assembler = cls()
    if first is not None:
        assembler.add(first)
    add = assembler.add
    chunks = itertools.cycle(pool)
    segments: list[float] = []

    def loop() -> None:
        clock = time.perf_counter
        for _ in range(count // SEGMENT):
            start = clock()
            for chunk in itertools.islice(chunks, SEGMENT):
                add(chunk)
            segments.append(clock() - start)

    adding = time_once(loop)
    holder: list = []
    reading = time_once(lambda: holder.append(assembler.result()))
    result = holder[0]
    text = result.content or (result.tool_calls[0].arguments if result.tool_calls else "")
    return adding, segments, reading, len(text)


def expected_length(pool: list[dict], count: int, read: Callable[[dict], str]) -> int:
    per_cycle = sum(len(read(c)) for c in pool)
    full, rest = divmod(count, len(pool))
    return full * per_cycle + sum(len(read(c)) for c in pool[:rest])


def load_assembler(path: str) -> type:
    spec = importlib.util.spec_from_file_location("chunks_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.ChunkAssembler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="up to 200k chunks, 2 rounds")
    parser.add_argument(
        "--against",
        metavar="FILE",
        help="time the ChunkAssembler of another chunks.py instead (e.g. an older version)",
    )
    args = parser.parse_args()
    counts = [10_000, 100_000, 200_000] + ([] if args.quick else [1_000_000])
    rounds = 2 if args.quick else 5
    cls = load_assembler(args.against) if args.against else ChunkAssembler
    where = args.against or "lesson_helpers/chunks.py"

    print(f"ChunkAssembler.add per chunk, {where} ({stamp()}; {machine()})")
    streams = [
        ("content", content_pool(), None, lambda c: c["choices"][0]["delta"]["content"]),
        (
            "tool-call arguments",
            tool_call_pool(),
            first_tool_chunk(),
            lambda c: c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        ),
    ]
    for name, pool, first, read in streams:
        run(cls, pool, 10_000, first)  # warm-up
        best_add = dict.fromkeys(counts, float("inf"))
        best_read = dict.fromkeys(counts, float("inf"))
        segments: dict[int, list[float]] = {count: [] for count in counts}
        tails: dict[int, list[float]] = {count: [] for count in counts}
        for _ in range(rounds):  # interleaved: a busy spell hits every size alike
            for count in counts:
                adding, times, reading, length = run(cls, pool, count, first)
                if length != expected_length(pool, count, read):
                    raise SystemExit(f"{name}: wrong text length at {count} chunks")
                best_add[count] = min(best_add[count], adding)
                best_read[count] = min(best_read[count], reading)
                segments[count] += times
                tails[count] += times[-max(1, len(times) // 10) :]
        rows = []
        base = statistics.median(segments[counts[0]])
        for count in counts:
            typical = statistics.median(segments[count])
            tail = statistics.median(tails[count])
            rows.append(
                [
                    f"{count:,}",
                    f"{best_add[count] / count * 1e6:.2f}",
                    f"{typical / SEGMENT * 1e6:.2f}",
                    f"{tail / SEGMENT * 1e6:.2f}",
                    f"{typical / base:.2f}×",
                    f"{best_read[count] * 1000:.1f}",
                ]
            )
        print(f"\n{name} ({rounds} interleaved rounds after a warm-up)")
        headers = [
            "chunks",
            "µs/chunk (whole run, best)",
            "µs/chunk (median segment)",
            "(last 10 % of run)",
            "÷ 10k (median)",
            "result() ms",
        ]
        print(table(headers, rows))
    print("\nEvery run's assembled text had the expected length.")


if __name__ == "__main__":
    main()
