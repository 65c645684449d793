"""Fuzzing the byte-to-answer path: random bytes, random splits, truncation, corruption.

Whatever arrives, the parser, the assembler and the client's stream raise only their
documented exceptions -- ``SSEParser.feed`` nothing at all, ``ChunkAssembler.add`` only
``ChunkError``, iterating a ``ChatStream`` only ``LLMError`` -- and never hang: every example
runs under a watchdog.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lesson_helpers.chunks import ChatResult, ChunkAssembler, ChunkError
from lesson_helpers.client import ChatStream
from lesson_helpers.errors import LLMError
from lesson_helpers.sse import ServerSentEvent, SSEParser

SEED_STREAM = (files("lesson_helpers") / "data" / "siliconflow_seed_stream.txt").read_bytes()
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
FAKE_KEY = "fake-key-for-tests-0123456789abcdef"
WATCHDOG_SECONDS = 5.0

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS) -> Iterator[None]:
    """Fail (instead of hanging the test run) if the block takes longer than ``seconds``."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {seconds} s: a hang?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (any order, duplicates allowed: empty pieces)."""
    bounds = [0, *sorted(min(max(c, 0), len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def parse(pieces: list[bytes]) -> list[ServerSentEvent]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events


cuts = st.lists(st.integers(min_value=0, max_value=len(SEED_STREAM)), max_size=40)
sse_alphabet = st.sampled_from(
    [b"data:", b"data: ", b"event:", b"id:", b"retry:", b": ping", b"\n", b"\r", b"\r\n", b":",
     b" ", b"{", b"}", b"\"", b"[DONE]", "你".encode(), b"\xe4", b"\xbd", b"\xff", b"\x00",
     b"\xef\xbb\xbf"]
)  # fmt: skip
sse_like = st.lists(sse_alphabet, max_size=60).map(b"".join)


# -- the SSE parser -----------------------------------------------------------------------------
@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), sse_like), where=st.lists(st.integers(0, 2000)))
def test_parser_never_raises_and_any_split_gives_the_same_events(data, where):
    with watchdog():
        whole = parse([data])
        assert parse(split(data, where)) == whole
        assert parse([bytes([b]) for b in data]) == whole
    for event in whole:
        assert isinstance(event, ServerSentEvent)
        assert isinstance(event.data, str) and isinstance(event.event, str)
        assert event.event and "\n" not in event.event and "\r" not in event.event


@FUZZ
@given(end=st.integers(0, len(SEED_STREAM)), where=cuts, crlf=st.booleans())
def test_truncated_stream_gives_a_prefix_of_the_events(end, where, crlf):
    stream = SEED_STREAM.replace(b"\n", b"\r\n") if crlf else SEED_STREAM
    end = min(end, len(stream))
    with watchdog():
        full = parse([stream])
        cut = parse(split(stream[:end], where))
    assert cut == full[: len(cut)]


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SEED_STREAM) - 1), st.integers(0, 255)),
                   max_size=8),
    where=cuts,
)  # fmt: skip
def test_corrupted_bytes_never_break_the_parser(flips, where):
    data = bytearray(SEED_STREAM)
    for position, value in flips:
        data[position] = value
    with watchdog():
        assert parse(split(bytes(data), where)) == parse([bytes(data)])


def test_a_megabyte_of_awkward_input_is_fast():
    data = (b"data: " + "你".encode()[:2] + b"\r" + b": ping\n" + b"\n" * 3) * 60_000
    with watchdog(10.0):
        events = parse(split(data, list(range(0, len(data), 4093))))
    assert len(events) == 60_000


# -- the chunk assembler ------------------------------------------------------------------------
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
loose = (
    scalars
    | st.lists(scalars, max_size=2)
    | st.dictionaries(st.text(max_size=3), scalars, max_size=2)
)


FIELDS = {  # where a field sits in a chunk, and a good value for it
    ("id",): st.text(max_size=4),
    ("created",): st.integers(0, 9),
    ("usage",): st.none() | st.just({"total_tokens": 1}),
    ("choices", 0, "index"): st.integers(0, 2),
    ("choices", 0, "finish_reason"): st.none() | st.sampled_from(["stop", "length"]),
    ("choices", 0, "delta", "role"): st.just("assistant"),
    ("choices", 0, "delta", "content"): st.none() | st.text(max_size=5),
    ("choices", 0, "delta", "reasoning_content"): st.none() | st.text(max_size=5),
    ("choices", 0, "delta", "tool_calls", 0, "index"): st.integers(0, 2),
    ("choices", 0, "delta", "tool_calls", 0, "id"): st.text(max_size=3),
    ("choices", 0, "delta", "tool_calls", 0, "function", "name"): st.text(max_size=4),
    ("choices", 0, "delta", "tool_calls", 0, "function", "arguments"): st.text(max_size=6),
}


@st.composite
def chunk_like(draw: st.DrawFn) -> Any:
    """A well-formed chunk with up to three fields replaced by anything (or removed)."""
    chunk: dict = {"choices": [{"delta": {"tool_calls": [{"function": {}}]}}]}
    bad = draw(st.lists(st.sampled_from(sorted(FIELDS, key=len)), max_size=3))
    for path, good in FIELDS.items():
        value = draw(loose) if path in bad else draw(good)
        parent: Any = chunk
        for step in path[:-1]:
            parent = parent[step]
        if path in bad and draw(st.booleans()):
            continue  # removed
        parent[path[-1]] = value
    if draw(st.integers(0, 9)) == 0:
        chunk["error"] = draw(loose)
    if draw(st.integers(0, 9)) == 0:
        chunk["choices"] = draw(loose)
    return chunk


def snapshot(result: ChatResult) -> Any:
    return repr(result)


@FUZZ
@given(chunks=st.lists(st.one_of(chunk_like(), json_values), max_size=8))
def test_assembler_raises_only_chunk_error_and_a_rejected_chunk_changes_nothing(chunks):
    assembler = ChunkAssembler()
    with watchdog():
        for chunk in chunks:
            before = snapshot(assembler.result())
            try:
                assembler.add(chunk)
            except ChunkError as exc:
                assert isinstance(exc, ValueError)
                assert snapshot(assembler.result()) == before
        result = assembler.result()
    assert isinstance(result.content, str) and isinstance(result.reasoning_content, str)
    for choice in result.choices:
        assert isinstance(choice.index, int)


# -- the whole path: bytes -> events -> chunks -> answer ----------------------------------------
def assemble_bytes(pieces: list[bytes]) -> tuple[str, bool]:
    """The text the pieces give, and whether [DONE] came; only documented errors escape."""
    assembler = ChunkAssembler()
    for event in parse(pieces):
        if event.data == "[DONE]":
            return assembler.result().content, True
        try:
            assembler.add(event.json())
        except (ValueError, ChunkError):  # json.JSONDecodeError is a ValueError
            continue
    return assembler.result().content, False


@FUZZ
@given(end=st.integers(0, len(SEED_STREAM)), where=cuts)
def test_truncated_seed_gives_a_prefix_of_the_answer(end, where):
    with watchdog():
        text, done = assemble_bytes(split(SEED_STREAM[:end], where))
    assert SEED_TEXT.startswith(text)
    assert done == (end == len(SEED_STREAM) or SEED_STREAM[:end].endswith(b"[DONE]\n\n"))
    if done:
        assert text == SEED_TEXT


# -- the client's stream over fuzzed bytes ------------------------------------------------------
class FakeRaw:
    def __init__(self, pieces: list[bytes], fail: BaseException | None) -> None:
        self._pieces = list(pieces)
        self._fail = fail

    def read1(self, amt: int = -1, decode_content: bool = True) -> bytes:
        if self._pieces:
            return self._pieces.pop(0)
        if self._fail is not None:
            raise self._fail
        return b""


class FakeResponse:
    """Just enough of a ``requests.Response`` for ``ChatStream``."""

    def __init__(self, pieces: list[bytes], fail: BaseException | None = None) -> None:
        self.raw = FakeRaw(pieces, fail)
        self.headers = {"x-request-id": "req-fuzz"}
        self.closed = False

    def close(self) -> None:
        self.closed = True


endings = st.sampled_from([None, ConnectionResetError("reset"), TimeoutError("timed out")])


@FUZZ
@given(
    end=st.integers(0, len(SEED_STREAM)),
    where=cuts,
    flips=st.lists(st.tuples(st.integers(0, len(SEED_STREAM) - 1), st.integers(0, 255)),
                   max_size=3),
    ending=endings,
)  # fmt: skip
def test_chat_stream_raises_only_llm_errors_and_keeps_the_text(end, where, flips, ending):
    data = bytearray(SEED_STREAM[:end])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    response = FakeResponse(split(bytes(data), where), ending)
    stream = ChatStream(response, FAKE_KEY, 1.0)  # type: ignore[arg-type]
    shown = ""
    with watchdog():
        try:
            for piece in stream.text():
                shown += piece
        except LLMError as error:
            assert error.partial_text == shown == error.result.content
            assert error.request_id == "req-fuzz"
            assert "\n" not in str(error) and FAKE_KEY not in str(error)
        else:
            assert stream.done or stream.result.finish_reason
    assert response.closed
    assert stream.result.content == shown
    if not flips:
        assert SEED_TEXT.startswith(shown)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_chat_stream_over_fixed_piece_sizes(size):
    pieces = [SEED_STREAM[i : i + size] for i in range(0, len(SEED_STREAM), size)]
    stream = ChatStream(FakeResponse(pieces), FAKE_KEY, 1.0)  # type: ignore[arg-type]
    assert "".join(stream.text()) == SEED_TEXT
    assert stream.done


def test_seed_is_what_the_fuzzers_start_from():
    events = parse([SEED_STREAM])
    assert events[-1].data == "[DONE]"
    assert (
        "".join(
            (json.loads(e.data)["choices"][0]["delta"].get("content") or "") for e in events[:-1]
        )
        == SEED_TEXT
    )
