"""Shared helpers for the benchmark scripts: seed-shaped test data, timing, tables.

The scripts are run from the repository root (``python benchmarks/bench_sse.py``); they
print what they measured and never assert anything about timing.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lesson_helpers import seed

# Varied Chinese (and some English) text, cut into token-sized pieces below, so that the
# events have the seed's shape but not twenty thousand copies of the same bytes.
_TEXT = (
    "流式输出的意思是：模型每生成一小段文字，服务器就立刻把它发过来，而不是等整段回答写完。"
    "浏览器和 Python 程序收到的是 Server-Sent Events 字节流，每个事件以 data: 开头，"
    "以一个空行结束。我们把每个 chat.completion.chunk 里的 delta 拼起来，就得到完整的回答。"
    "网络可能在任何地方把字节切开，甚至切在一个汉字的中间，所以解析器必须记住没读完的部分。"
    "Token 是模型处理文字的基本单位，一个汉字大约是一到两个 token。API 密钥要保存在 .env 文件里，"
    "千万不要提交到 Git 仓库。HTTP/1.1 的分块传输编码让服务器不必事先知道响应有多长。"
)


def token_pieces(count: int) -> list[str]:
    """``count`` token-like pieces of ``_TEXT`` (1 to 4 characters), cycling through it."""
    pieces: list[str] = []
    position = 0
    sizes = (1, 2, 1, 3, 2, 4, 1, 2)
    while len(pieces) < count:
        size = sizes[len(pieces) % len(sizes)]
        piece = (_TEXT * 2)[position : position + size]
        pieces.append(piece)
        position = (position + size) % len(_TEXT)
    return pieces


def seed_chunks() -> list[dict[str, Any]]:
    """The chunks of the recorded SiliconFlow seed stream, in order."""
    chunks = []
    for line in seed.stream_bytes().decode("utf-8").splitlines():
        if line.startswith("data: {"):
            chunks.append(json.loads(line[len("data: ") :]))
    return chunks


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def seed_shaped_stream(
    events: int, line_end: str = "\n", keepalive: str = ""
) -> tuple[bytes, list[str]]:
    """A stream of ``events`` SSE events shaped like the seed, and the expected data strings.

    First the seed's role chunk, then content chunks with varied Chinese pieces and growing
    usage, then the seed's ``finish_reason: "stop"`` chunk and ``data: [DONE]``. Lines end
    with ``line_end``; a non-empty ``keepalive`` comment (e.g. ``": keep-alive"``) goes,
    with its blank line, before every event.
    """
    seed = seed_chunks()
    first, middle, last = seed[0], seed[1], seed[-1]
    content = token_pieces(events - 3)
    datas = [_dumps(first)]
    prompt = middle["usage"]["prompt_tokens"]
    for number, piece in enumerate(content, start=1):
        middle["choices"][0]["delta"]["content"] = piece
        middle["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": number,
            "total_tokens": prompt + number,
        }
        datas.append(_dumps(middle))
    last["usage"] = middle["usage"]
    datas.append(_dumps(last))
    datas.append("[DONE]")
    before = keepalive + line_end * 2 if keepalive else ""
    blob = "".join(f"{before}data: {data}{line_end * 2}" for data in datas).encode("utf-8")
    return blob, datas


def cut(blob: bytes, size: int) -> list[bytes]:
    """``blob`` in pieces of ``size`` bytes (cut anywhere, even inside a character)."""
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def time_once(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (garbage collected before, not during)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile by nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A plain-text table (Markdown pipes, so it can be pasted into the README).

    The first ``left`` columns are text (left-aligned); the others are numbers.
    """
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - _width(cell))
            padded.append(cell + pad if i < left else pad + cell)
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *[line(row) for row in cells[1:]]])


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if "\u2e80" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)


def machine() -> str:
    """One line saying what the figures were measured on."""
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s)"
    )


def stamp() -> str:
    """Date, commit and machine, for the top of a table: what makes it reproducible."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    today = datetime.date.today().isoformat()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{today}, commit {commit}, nproc {cpus}, Python {platform.python_version()}"
