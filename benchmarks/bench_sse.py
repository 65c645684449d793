"""SSE parser throughput: lesson_helpers.sse vs openai vs httpx-sse vs a naive split.

Run from the repository root::

    python benchmarks/bench_sse.py               # about 45 s on 2 cores
    python benchmarks/bench_sse.py --quick       # fewer rounds, about 15 s
    python benchmarks/bench_sse.py --sizes 512   # only some piece sizes
    python benchmarks/bench_sse.py --profile     # cProfile of lesson_helpers.sse, 512 B and 1 B

The data: 20,000 events shaped like the recorded SiliconFlow seed stream (one compact
``chat.completion.chunk`` JSON per event, varied Chinese content, ``data: [DONE]`` last),
cut into 512-byte, 64 KiB and 1-byte pieces -- the cuts land anywhere, also inside a
Chinese character. Every parser gets the same pieces (cut before timing) and must
produce the same data strings; the first round checks that. Rounds are interleaved (each
parser once per round); garbage collection runs between timings, not during them.

The 1-byte run uses a 2,000-event stream of the same shape (still 0.66 MB, that is
665,000 calls per parser), so that the script stays under a minute; MB/s and the
ratios are comparable across piece sizes.
"""

from __future__ import annotations

import argparse
import codecs
import cProfile
import pstats
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx_sse
from common import cut, machine, median, seed_shaped_stream, table, time_once
from httpx._decoders import LineDecoder, TextChunker, TextDecoder
from openai._streaming import SSEDecoder as OpenAISSEDecoder

from lesson_helpers.sse import SSEParser

EVENTS = 20_000
ONE_BYTE_EVENTS = 2_000

Parse = Callable[[list[bytes]], list[str]]  # pieces in, the events' data strings out


# -- the contenders -------------------------------------------------------------------------


def ours(pieces: list[bytes]) -> list[str]:
    """lesson_helpers.sse.SSEParser, fed piece by piece (what ChatStream and iter_sse do)."""
    parser = SSEParser()
    feed = parser.feed
    return [event.data for piece in pieces for event in feed(piece)]


def openai_sdk(pieces: list[bytes]) -> list[str]:
    """openai's SSEDecoder.iter_bytes -- what openai.Stream runs on response.iter_bytes()."""
    return [event.data for event in OpenAISSEDecoder().iter_bytes(iter(pieces))]


class _FakeHttpxResponse:
    """Just enough of httpx.Response for httpx_sse.EventSource: headers and iter_text().

    ``iter_text`` is httpx's own (``Response.iter_text`` with ``chunk_size=None``): an
    incremental UTF-8 ``TextDecoder`` and a ``TextChunker``, on the raw byte pieces.
    """

    headers: ClassVar[dict[str, str]] = {"content-type": "text/event-stream"}

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def iter_text(self) -> Iterator[str]:
        decoder = TextDecoder(encoding="utf-8")
        chunker = TextChunker(chunk_size=None)
        for piece in self._pieces:
            yield from chunker.decode(decoder.decode(piece))
        yield from chunker.decode(decoder.flush())
        yield from chunker.flush()

    def iter_lines(self) -> Iterator[str]:
        """httpx's ``Response.iter_lines``: its ``LineDecoder`` on ``iter_text()``."""
        decoder = LineDecoder()
        for text in self.iter_text():
            yield from decoder.decode(text)
        yield from decoder.flush()


def httpx_sse_current(pieces: list[bytes]) -> list[str]:
    """httpx_sse.EventSource.iter_sse, unmodified (0.4.2+: its own SSELineDecoder)."""
    source = httpx_sse.EventSource(_FakeHttpxResponse(pieces))  # type: ignore[arg-type]
    return [event.data for event in source.iter_sse()]


def httpx_sse_iter_lines(pieces: list[bytes]) -> list[str]:
    """httpx-sse <= 0.4.1: ``response.iter_lines()`` (httpx's LineDecoder) + SSEDecoder."""
    decoder = httpx_sse._decoders.SSEDecoder()
    out = []
    for line in _FakeHttpxResponse(pieces).iter_lines():
        event = decoder.decode(line.rstrip("\n"))
        if event is not None:
            out.append(event.data)
    return out


def naive(pieces: list[bytes]) -> list[str]:
    """What a quick script does: split lines, keep those starting with "data:".

    Not an SSE parser (no multi-line data, event types, ids, CR line ends, comments or
    BOM), but the floor the others are compared with.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail = ""
    out = []
    for piece in pieces:
        lines = (tail + decoder.decode(piece)).splitlines(keepends=True)
        tail = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        for line in lines:
            if line.startswith("data:"):
                out.append(line[5:].strip())
    return out


CONTENDERS: list[tuple[str, Parse]] = [
    ("lesson_helpers.sse", ours),
    ("openai SSEDecoder", openai_sdk),
    ("httpx-sse 0.4.3", httpx_sse_current),
    ("httpx-sse + httpx LineDecoder", httpx_sse_iter_lines),
    ("naive splitlines", naive),
]


# -- measuring ------------------------------------------------------------------------------


def measure(pieces: list[bytes], expected: list[str], rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds (every parser once per round), so drift hits all rows alike.

    The first round also checks that every parser produced the expected data strings.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in CONTENDERS}
    for round_number in range(rounds):
        for name, parse in CONTENDERS:
            got: list[str] = []
            samples[name].append(time_once(lambda parse=parse, got=got: got.extend(parse(pieces))))
            if round_number == 0 and got != expected:
                raise SystemExit(f"{name} parsed the stream differently: {len(got)} events")
    return samples


def report(title: str, blob: bytes, events: int, samples: dict[str, list[float]]) -> None:
    """One table; "÷ ours" is the parser's time divided by ours (above 1: ours is faster)."""
    ours_runs = samples["lesson_helpers.sse"]
    rows: list[list[Any]] = []
    for name, runs in samples.items():
        best, mid = min(runs), median(runs)
        rows.append(
            [
                name,
                f"{best * 1000:.1f}",
                f"{mid * 1000:.1f}",
                f"{len(blob) / best / 1e6:.1f}",
                f"{events / best / 1000:.0f}k",
                f"{best / min(ours_runs):.2f}×",
                f"{mid / median(ours_runs):.2f}×",
            ]
        )
    headers = ["parser", "best ms", "median ms", "MB/s", "events/s", "÷ ours (best)", "(median)"]
    print(f"\n{title}")
    print(table(headers, rows))
    naive_share = min(samples["naive splitlines"]) / min(ours_runs)
    if naive_share < 1:
        print(f"lesson_helpers.sse runs at {naive_share:.0%} of the naive split's speed (best).")
    else:
        print(f"lesson_helpers.sse is {naive_share:.1f}× as fast as the naive split (best).")


def profile(blob: bytes, one_byte: bytes) -> None:
    for label, pieces in (("512-byte pieces", cut(blob, 512)), ("1-byte pieces", cut(one_byte, 1))):
        print(f"\ncProfile: lesson_helpers.sse, {label}")
        profiler = cProfile.Profile()
        profiler.runcall(ours, pieces)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--profile", action="store_true", help="cProfile ours, then stop")
    parser.add_argument(
        "--sizes", default="512,65536,1", help="piece sizes to run (default: 512,65536,1)"
    )
    args = parser.parse_args()

    blob, datas = seed_shaped_stream(EVENTS)
    small_blob, small_datas = seed_shaped_stream(ONE_BYTE_EVENTS)
    if args.profile:
        profile(blob, small_blob)
        return

    print("SSE parser throughput (" + machine() + ")")
    print(f"{EVENTS:,} seed-shaped events, {len(blob):,} bytes; times are per whole stream.")
    print("MB/s and events/s: best run. '÷ ours': that parser's time divided by ours (>1: slower).")
    runs = [
        ("512-byte pieces", blob, datas, 512, 3 if args.quick else 15),
        ("64 KiB pieces", blob, datas, 65536, 3 if args.quick else 15),
        ("1-byte pieces", small_blob, small_datas, 1, 1 if args.quick else 3),
    ]
    sizes = {int(size) for size in args.sizes.split(",")}
    for label, data, expected, size, repetitions in runs:
        if size not in sizes:
            continue
        pieces = cut(data, size)
        title = f"{label}: {len(expected):,} events, {len(data):,} bytes, {repetitions} rounds"
        report(title, data, len(expected), measure(pieces, expected, repetitions))
    print("\nAll parsers produced the same data strings for every piece size.")


if __name__ == "__main__":
    main()
