"""The course seed: one real SiliconFlow stream, the one place its data and paths are spelled.

The seed asked ``Qwen/Qwen2.5-7B-Instruct`` "你好" with ``stream: true`` and recorded the
answer as it travelled on the wire (``data/siliconflow_seed_stream.txt``), plus the same
chunks pretty-printed the way the seed shows them (``data/siliconflow_seed_reference.txt``).
The lessons, the local server, the tests and the benchmarks all read it from here.

Standard library only, so anything in the kit (or outside it) can import it.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = [
    "ANSWER",
    "PIECES",
    "PROMPT",
    "REFERENCE_FILE",
    "STREAM_FILE",
    "reference_text",
    "stream_bytes",
]

PROMPT = "你好"
"""What the seed asked."""

PIECES = ("你好", "！", "有什么", "问题", "或者", "需要", "帮助", "的", "吗", "？")
"""The answer's ten content pieces, one per chunk, in order (the first and last chunks of
the stream carry empty content: 12 chunks in all)."""

ANSWER = "".join(PIECES)
"""The whole answer: ``你好！有什么问题或者需要帮助的吗？``."""

STREAM_FILE: Traversable = files("lesson_helpers") / "data" / "siliconflow_seed_stream.txt"
"""The stream as it travels on the wire: ``data: {compact JSON}`` lines, blank lines, ``[DONE]``."""

REFERENCE_FILE: Traversable = files("lesson_helpers") / "data" / "siliconflow_seed_reference.txt"
"""The same chunks pretty-printed, as the seed shows them (not what a server sends)."""


def stream_bytes() -> bytes:
    """The wire bytes of the seed stream."""
    return STREAM_FILE.read_bytes()


def reference_text() -> str:
    """The seed's pretty-printed reference text."""
    return REFERENCE_FILE.read_text(encoding="utf-8")
