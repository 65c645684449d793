"""SSE parser throughput: lesson_helpers.sse vs openai vs httpx-sse vs a bytes-split floor.

Run from the repository root::

    python benchmarks/bench_sse.py               # about a minute on 2 cores
    python benchmarks/bench_sse.py --quick       # fewer rounds, about 20 s
    python benchmarks/bench_sse.py --sizes 512 --streams crlf   # only some tables
    python benchmarks/bench_sse.py --ablation    # adds lesson_helpers.sse without its
                                                 # slot-descriptor fast path
    python benchmarks/bench_sse.py --profile     # cProfile of lesson_helpers.sse, then stop
    git show f5a3a17:lesson_helpers/sse.py > /tmp/sse_before.py
    python benchmarks/bench_sse.py --against /tmp/sse_before.py   # adds that SSEParser

The data: 20,000 events shaped like the recorded SiliconFlow seed stream (one compact
``chat.completion.chunk`` JSON per event, varied Chinese content, ``data: [DONE]`` last),
written three ways -- LF line ends, CRLF line ends, and LF with a ``: keep-alive`` comment
before every event -- and cut into 512-byte, 64 KiB and 1-byte pieces (the cuts land
anywhere, also inside a Chinese character; the 1-byte runs use 2,000 events). Every parser
gets the same pieces (cut before timing) and must produce the same data strings; the first
timed round checks that. Two untimed warm-up rounds first, then interleaved rounds (each
parser once per round); garbage collection runs between timings, not during them.

The contenders, each fed the list of pieces with nothing in between:

* ``lesson_helpers.sse``: ``SSEParser().feed(piece)`` per piece;
* ``openai SSEDecoder``: ``openai._streaming.SSEDecoder().iter_bytes(pieces)``, what
  ``openai.Stream`` runs;
* ``httpx-sse decoder``: httpx-sse's own ``SSELineDecoder`` and ``SSEDecoder``, fed directly
  by an incremental UTF-8 decoder (what httpx's ``iter_text`` does) -- no response object,
  no wrapper around them;
* ``bytes split floor``: not an SSE parser -- keep the bytes in a ``bytearray``, and when a
  piece brings a line end, ``split`` the buffer on the blank line (``b"\\n\\n"``, or
  ``b"\\r\\n\\r\\n"`` for the CRLF stream) and decode what follows ``data: ``. No multi-line
  data, event, id, retry, CR line ends, BOM or spec rules: the fastest honest data-only
  splitter, the floor a parser is measured against.
"""

from __future__ import annotations

import argparse
import codecs
import cProfile
import importlib.util
import pstats
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cut, machine, median, seed_shaped_stream, stamp, table, time_once
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder as HttpxSSELineDecoder
from openai._streaming import SSEDecoder as OpenAISSEDecoder

import lesson_helpers.sse as sse
from lesson_helpers.sse import ServerSentEvent, SSEParser

EVENTS = 20_000
ONE_BYTE_EVENTS = 2_000
OURS = "lesson_helpers.sse"
FLOOR = "bytes split floor"

Parse = Callable[[list[bytes]], list[str]]  # pieces in, the events' data strings out


# -- the contenders -------------------------------------------------------------------------


def ours(pieces: list[bytes]) -> list[str]:
    parser = SSEParser()
    feed = parser.feed
    return [event.data for piece in pieces for event in feed(piece)]


def ours_without_slot_trick(pieces: list[bytes]) -> list[str]:
    """The same parser, building each event through ServerSentEvent's own __init__."""
    fast = sse._new_event
    sse._new_event = ServerSentEvent  # the same four positional fields
    try:
        return ours(pieces)
    finally:
        sse._new_event = fast


def other_parser(path: str) -> Parse:
    """The SSEParser of another sse.py (e.g. an older version), fed the same way."""
    spec = importlib.util.spec_from_file_location("sse_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)

    def parse(pieces: list[bytes]) -> list[str]:
        feed = module.SSEParser().feed
        return [event.data for piece in pieces for event in feed(piece)]

    return parse


def openai_sdk(pieces: list[bytes]) -> list[str]:
    return [event.data for event in OpenAISSEDecoder().iter_bytes(iter(pieces))]


def httpx_sse_decoder(pieces: list[bytes]) -> list[str]:
    text = codecs.getincrementaldecoder("utf-8")("replace")
    lines, events = HttpxSSELineDecoder(), HttpxSSEDecoder()
    out = []
    for piece in pieces:
        decoded = text.decode(piece)
        if decoded:  # httpx never hands its line decoder an empty string
            for line in lines.decode(decoded):
                event = events.decode(line)
                if event is not None:
                    out.append(event.data)
    for line in lines.decode(text.decode(b"", final=True) or "\n") + lines.flush():
        event = events.decode(line)
        if event is not None:
            out.append(event.data)
    return out


def bytes_floor(separator: bytes) -> Parse:
    def floor(pieces: list[bytes]) -> list[str]:
        buffer = bytearray()
        out: list[str] = []
        for piece in pieces:
            buffer += piece
            if 10 in piece:  # a blank line can only be complete once an LF arrives
                blocks = buffer.split(separator)
                buffer = blocks.pop()
                out += [b[6:].decode() for b in blocks if b[:6] == b"data: "]
        return out

    return floor


# -- measuring ------------------------------------------------------------------------------


def measure(
    contenders: list[tuple[str, Parse]],
    pieces: list[bytes],
    expected: list[str],
    rounds: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Warm-up rounds, then interleaved timed rounds (every parser once per round)."""
    for _ in range(warmup):
        for _, parse in contenders:
            parse(pieces)
    samples: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for round_number in range(rounds):
        for name, parse in contenders:
            got: list[str] = []
            samples[name].append(time_once(lambda parse=parse, got=got: got.extend(parse(pieces))))
            if round_number == 0 and got != expected:
                raise SystemExit(f"{name} parsed the stream differently: {len(got)} events")
    return samples


def report(title: str, blob: bytes, events: int, samples: dict[str, list[float]]) -> None:
    """One table; "÷ ours" is the parser's time divided by ours (above 1: ours is faster)."""
    ours_best, ours_median = min(samples[OURS]), median(samples[OURS])
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
                f"{best / ours_best:.2f}×",
                f"{mid / ours_median:.2f}×",
            ]
        )
    headers = ["parser", "best ms", "median ms", "MB/s", "events/s", "÷ ours (best)", "(median)"]
    print(f"\n{title}")
    print(table(headers, rows))


def profile(blob: bytes, one_byte: bytes) -> None:
    for label, pieces in (("512-byte pieces", cut(blob, 512)), ("1-byte pieces", cut(one_byte, 1))):
        print(f"\ncProfile: lesson_helpers.sse, {label}")
        profiler = cProfile.Profile()
        profiler.runcall(ours, pieces)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)


STREAMS = {
    "lf": ("LF", "\n", ""),
    "crlf": ("CRLF", "\r\n", ""),
    "keepalive": ("LF + keep-alive comments", "\n", ": keep-alive"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--profile", action="store_true", help="cProfile ours, then stop")
    parser.add_argument("--ablation", action="store_true", help="add ours without slot trick")
    parser.add_argument("--against", metavar="FILE", help="add the SSEParser of another sse.py")
    parser.add_argument("--sizes", default="512,65536,1", help="piece sizes (512,65536,1)")
    parser.add_argument("--streams", default="lf,crlf,keepalive", help="lf,crlf,keepalive")
    args = parser.parse_args()

    if args.profile:
        profile(seed_shaped_stream(EVENTS)[0], seed_shaped_stream(ONE_BYTE_EVENTS)[0])
        return

    print(f"SSE parser throughput ({stamp()}; {machine()})")
    print("MB/s and events/s: best run. '÷ ours': that parser's time divided by ours (>1: slower).")
    sizes = [int(size) for size in args.sizes.split(",")]
    against = other_parser(args.against) if args.against else ours
    summary: list[list[str]] = []
    for key in args.streams.split(","):
        label, line_end, keepalive = STREAMS[key]
        floor = bytes_floor((line_end * 2).encode())
        contenders: list[tuple[str, Parse]] = [
            (OURS, ours),
            ("openai SSEDecoder", openai_sdk),
            ("httpx-sse decoder", httpx_sse_decoder),
            (FLOOR, floor),
        ]
        if args.ablation:
            contenders.insert(1, (OURS + " without slot trick", ours_without_slot_trick))
        if args.against:
            contenders.insert(1, (f"SSEParser of {Path(args.against).name}", against))
        for size in sizes:
            events = ONE_BYTE_EVENTS if size == 1 else EVENTS
            blob, expected = seed_shaped_stream(events, line_end, keepalive)
            if size == 1:
                rounds, warmup = (1, 1) if args.quick else (3, 1)
            else:
                rounds, warmup = (3, 1) if args.quick else (9, 2)
            pieces = cut(blob, size)
            title = (
                f"{label}, {size:,}-byte pieces: {len(expected):,} events, "
                f"{len(blob):,} bytes, {rounds} rounds after {warmup} warm-up"
            )
            samples = measure(contenders, pieces, expected, rounds, warmup)
            report(title, blob, len(expected), samples)
            best = {name: min(runs) for name, runs in samples.items()}
            row = [
                label,
                f"{size:,} B",
                f"{best['openai SSEDecoder'] / best[OURS]:.2f}×",
                f"{best['httpx-sse decoder'] / best[OURS]:.2f}×",
                f"{best[FLOOR] / best[OURS]:.0%}",
            ]
            if args.ablation:
                row.append(f"{best[OURS + ' without slot trick'] / best[OURS]:.2f}×")
            if args.against:
                row.append(f"{best[f'SSEParser of {Path(args.against).name}'] / best[OURS]:.2f}×")
            summary.append(row)
    print("\nSummary (best of rounds): how many times ours is as fast as each, and the floor")
    headers = ["stream", "pieces", "vs openai", "vs httpx-sse", "ours at % of floor's speed"]
    if args.ablation:
        headers.append("slot trick saves")
    if args.against:
        headers.append(f"vs {Path(args.against).name}")
    print(table(headers, summary, left=2))
    print("\nAll parsers produced the same data strings in every table.")


if __name__ == "__main__":
    main()
