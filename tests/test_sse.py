"""Spec tests for ``lesson_helpers.sse``.

The reference is the WHATWG HTML standard, section 9.2.6 "Interpreting an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
Its rules, in the words used by the comments below:

* The stream is decoded with "UTF-8 decode": one leading BOM is dropped, invalid bytes become
  U+FFFD (one per maximal invalid subpart).
* A line ends with CRLF, LF or CR.  An empty line dispatches the event.
* A line starting with ``:`` is a comment.  ``name:value`` drops one leading space of the value;
  a line without a colon is a field name with an empty value.  Field names are case-sensitive.
* ``data`` appends value + LF to the data buffer; ``event`` sets the event type buffer; ``id``
  sets the last event ID buffer unless the value contains NUL (the buffer is never reset by a
  dispatch); ``retry`` counts only when the value is all ASCII digits; other names are ignored.
* Dispatch: if the data buffer is empty, reset data and event type buffers and dispatch nothing;
  otherwise drop the final LF, type = event type buffer or "message", then reset both buffers.
* At the end of the stream, an event that was not terminated by an empty line is discarded.

``retry`` is a connection setting in the spec, not part of the event; the kit reports it on
``ServerSentEvent.retry`` as "the latest valid value seen since the previous dispatched event".

Every vector is checked under every chunking -- whole, 1-byte pieces, each 2-way split, and
arbitrary (hypothesis) splits with empty pieces -- because a streaming parser sees the bytes cut
wherever the network cut them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise

import httpx
import httpx_sse
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder as OpenAISSEDecoder

from lesson_helpers.sse import (
    MAX_EVENT_SIZE,
    ServerSentEvent,
    SSEError,
    SSEParser,
    iter_pieces,
    iter_sse,
)

E = ServerSentEvent
BOM = b"\xef\xbb\xbf"
TIMEOUT = 5.0  # seconds; an upper bound for waits, never a sleep


# --------------------------------------------------------------------------------------------
# Chunking helpers
# --------------------------------------------------------------------------------------------


def parse_pieces(pieces: Iterable[bytes]) -> list[ServerSentEvent]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events


def one_byte_pieces(blob: bytes) -> list[bytes]:
    return [blob[i : i + 1] for i in range(len(blob))]


def cut(blob: bytes, points: Iterable[int]) -> list[bytes]:
    """Cut ``blob`` at the (sorted, possibly repeated) points; repeats give empty pieces."""
    edges = [0, *sorted(points), len(blob)]
    return [blob[a:b] for a, b in pairwise(edges)]


@st.composite
def arbitrary_split(draw: st.DrawFn, blob: bytes) -> list[bytes]:
    points = draw(st.lists(st.integers(0, len(blob)), max_size=max(1, min(len(blob), 16))))
    return cut(blob, points)


# --------------------------------------------------------------------------------------------
# A literal, non-incremental reading of the spec, used as an oracle for random byte strings
# --------------------------------------------------------------------------------------------

_SPEC_EOL = re.compile(r"\r\n|\r|\n")


def spec_reference(stream: bytes) -> list[ServerSentEvent]:
    """Whole-stream interpretation, written step by step from the spec text."""
    text = stream.decode("utf-8", errors="replace")  # "UTF-8 decode" ...
    if text.startswith("\ufeff"):  # ... which strips one leading BOM
        text = text[1:]
    data_buffer, event_type, last_id, retry = "", "", "", None
    events: list[ServerSentEvent] = []
    position = 0
    while (match := _SPEC_EOL.search(text, position)) is not None:
        line = text[position : match.start()]
        position = match.end()
        if line == "":
            if data_buffer == "":
                data_buffer, event_type = "", ""
                continue
            if data_buffer.endswith("\n"):
                data_buffer = data_buffer[:-1]
            events.append(
                E(event=event_type or "message", data=data_buffer, id=last_id, retry=retry)
            )
            data_buffer, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "data":
            data_buffer += value + "\n"
        elif field == "event":
            event_type = value
        elif field == "id":
            if "\0" not in value:
                last_id = value
        elif field == "retry":
            if value and all(c in "0123456789" for c in value):
                retry = int(value)
    return events  # text after the last line end is an unterminated event: discarded


# --------------------------------------------------------------------------------------------
# The vector table: bytes -> expected events
# --------------------------------------------------------------------------------------------

ZH = "你好，世界"  # 3 bytes per character in UTF-8
ZH_BYTES = ZH.encode()

VECTORS = [
    # ---- basic fields -----------------------------------------------------------------------
    pytest.param(b"data: hello\n\n", [E(data="hello")], id="simple"),
    pytest.param(b"data:x\n\n", [E(data="x")], id="no-space-after-colon"),
    pytest.param(b"data:  x\n\n", [E(data=" x")], id="only-one-leading-space-removed"),
    pytest.param(b"data: x  \n\n", [E(data="x  ")], id="trailing-spaces-kept"),
    pytest.param(b"data:\tx\n\n", [E(data="\tx")], id="leading-tab-kept"),
    pytest.param(b"data: a:b\n\n", [E(data="a:b")], id="colon-in-value-kept"),
    pytest.param(b"data::x\n\n", [E(data=":x")], id="value-starting-with-colon"),
    pytest.param(b"data\n\n", [E(data="")], id="field-without-colon-dispatches-empty-data"),
    pytest.param(b"data:\n\n", [E(data="")], id="empty-data-value"),
    pytest.param(b"data: \n\n", [E(data="")], id="data-space-only"),
    pytest.param(b"data\ndata\n\n", [E(data="\n")], id="two-empty-data-lines"),
    pytest.param(
        b"data: a\ndata: b\ndata:\ndata: c\n\n", [E(data="a\nb\n\nc")], id="data-lines-joined-lf"
    ),
    pytest.param(b"data: a\ndata\n\n", [E(data="a\n")], id="trailing-empty-data-line-kept"),
    pytest.param(b"data: a\x00b\n\n", [E(data="a\x00b")], id="nul-in-data-kept"),
    pytest.param(
        "data: a\u2028b\x85c\x0bd\x0ce\x1cf\n\n".encode(),
        [E(data="a\u2028b\x85c\x0bd\x0ce\x1cf")],
        id="only-cr-lf-end-lines-not-unicode-separators",
    ),
    # ---- comments -----------------------------------------------------------------------------
    pytest.param(b": ping\n\n", [], id="comment-only"),
    pytest.param(b":ping\n\n", [], id="comment-no-space"),
    pytest.param(b":\n\n", [], id="bare-colon-line"),
    pytest.param(b":\ndata: x\n\n", [E(data="x")], id="bare-colon-then-data"),
    pytest.param(
        b"data: a\n: keep-alive\ndata: b\n\n", [E(data="a\nb")], id="comment-inside-event"
    ),
    pytest.param(b": data: x\n\n", [], id="comment-that-looks-like-data"),
    pytest.param(b": ping\n\n: ping\n\ndata: x\n\n", [E(data="x")], id="keepalives-then-data"),
    # ---- field names ------------------------------------------------------------------------
    pytest.param(b"Data: x\n\n", [], id="field-names-case-sensitive"),
    pytest.param(b"DATA: x\ndata: y\n\n", [E(data="y")], id="uppercase-field-ignored"),
    pytest.param(b"Event: e\ndata: y\n\n", [E(data="y")], id="uppercase-event-ignored"),
    pytest.param(b"data : x\n\n", [], id="space-before-colon-other-field"),
    pytest.param(b" data: x\n\n", [], id="leading-space-other-field"),
    pytest.param(b"foo: bar\ndata: x\nbaz\nfoo\n\n", [E(data="x")], id="unknown-fields-ignored"),
    pytest.param(b"foo: bar\n\n", [], id="unknown-field-only"),
    # ---- event type -------------------------------------------------------------------------
    pytest.param(b"event: add\ndata: 1\n\n", [E(event="add", data="1")], id="event-type"),
    pytest.param(
        b"event: add\ndata: 1\n\ndata: 2\n\n",
        [E(event="add", data="1"), E(data="2")],
        id="event-type-reset-after-dispatch",
    ),
    pytest.param(b"event:\ndata: x\n\n", [E(data="x")], id="empty-event-is-message"),
    pytest.param(b"event\ndata: x\n\n", [E(data="x")], id="bare-event-is-message"),
    pytest.param(
        b"event: a\nevent: b\ndata: x\n\n", [E(event="b", data="x")], id="last-event-wins"
    ),
    pytest.param(b"event: a\nevent:\ndata: x\n\n", [E(data="x")], id="event-cleared-by-empty"),
    pytest.param(b"data: x\nevent: late\n\n", [E(event="late", data="x")], id="event-after-data"),
    pytest.param(
        b"event:  a\ndata: x\n\n", [E(event=" a", data="x")], id="event-one-space-removed"
    ),
    pytest.param(
        b"event: a\n\ndata: x\n\n", [E(data="x")], id="event-without-data-not-dispatched-and-reset"
    ),
    # ---- empty data buffer ------------------------------------------------------------------
    pytest.param(b"\n", [], id="single-blank-line"),
    pytest.param(b"\n\n\n\n", [], id="blank-lines-only"),
    pytest.param(b"", [], id="empty-stream"),
    pytest.param(b"data: a\n\n\n\n", [E(data="a")], id="extra-blank-lines-no-extra-events"),
    # ---- id -----------------------------------------------------------------------------------
    pytest.param(b"id: 1\ndata: a\n\n", [E(data="a", id="1")], id="id"),
    pytest.param(
        b"id: 1\ndata: a\n\ndata: b\n\n",
        [E(data="a", id="1"), E(data="b", id="1")],
        id="id-persists-across-events",
    ),
    pytest.param(b"id: 7\n\ndata: a\n\n", [E(data="a", id="7")], id="id-set-by-undispatched-event"),
    pytest.param(b"id: 1\n\n", [], id="id-only-no-dispatch"),
    pytest.param(
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [E(data="a", id="1"), E(data="b", id="1")],
        id="id-with-nul-ignored",
    ),
    pytest.param(b"id: \x00\ndata: a\n\n", [E(data="a")], id="id-nul-only-ignored"),
    pytest.param(
        b"id: 1\ndata: a\n\nid:\ndata: b\n\n",
        [E(data="a", id="1"), E(data="b", id="")],
        id="empty-id-resets",
    ),
    pytest.param(
        b"id: 1\ndata: a\n\nid\ndata: b\n\n",
        [E(data="a", id="1"), E(data="b", id="")],
        id="bare-id-resets",
    ),
    pytest.param(b"id:  5\ndata: a\n\n", [E(data="a", id=" 5")], id="id-one-space-removed"),
    pytest.param(b"id: 1\nid: 2\ndata: a\n\n", [E(data="a", id="2")], id="last-id-wins"),
    pytest.param(b"id: a:b\ndata: a\n\n", [E(data="a", id="a:b")], id="id-with-colon"),
    pytest.param(
        "id: 编号\ndata: a\n\n".encode(), [E(data="a", id="编号")], id="id-non-ascii-allowed"
    ),
    # ---- retry --------------------------------------------------------------------------------
    pytest.param(b"retry: 1000\ndata: a\n\n", [E(data="a", retry=1000)], id="retry"),
    pytest.param(b"retry:10\ndata: a\n\n", [E(data="a", retry=10)], id="retry-no-space"),
    pytest.param(b"retry: 0\ndata: a\n\n", [E(data="a", retry=0)], id="retry-zero"),
    pytest.param(b"retry: 007\ndata: a\n\n", [E(data="a", retry=7)], id="retry-leading-zeros"),
    pytest.param(
        b"retry: 99999999999999999999\ndata: a\n\n",
        [E(data="a", retry=99999999999999999999)],
        id="retry-big",
    ),
    pytest.param(b"retry: 1a\ndata: a\n\n", [E(data="a")], id="retry-1a-ignored"),
    pytest.param(b"retry: -1\ndata: a\n\n", [E(data="a")], id="retry-negative-ignored"),
    pytest.param(b"retry: +1\ndata: a\n\n", [E(data="a")], id="retry-plus-ignored"),
    pytest.param(b"retry:\ndata: a\n\n", [E(data="a")], id="retry-empty-ignored"),
    pytest.param(b"retry\ndata: a\n\n", [E(data="a")], id="retry-bare-ignored"),
    pytest.param(b"retry:  1\ndata: a\n\n", [E(data="a")], id="retry-second-space-ignored"),
    pytest.param(b"retry: 1 \ndata: a\n\n", [E(data="a")], id="retry-trailing-space-ignored"),
    pytest.param(b"retry: 1.5\ndata: a\n\n", [E(data="a")], id="retry-decimal-ignored"),
    pytest.param(b"retry: 1_000\ndata: a\n\n", [E(data="a")], id="retry-underscore-ignored"),
    pytest.param(
        "retry: \u0661\u0662\ndata: a\n\n".encode(), [E(data="a")], id="retry-arabic-digits-ignored"
    ),
    pytest.param(
        "retry: \uff11\ndata: a\n\n".encode(), [E(data="a")], id="retry-fullwidth-digit-ignored"
    ),
    pytest.param("retry: \u00b2\ndata: a\n\n".encode(), [E(data="a")], id="retry-superscript"),
    pytest.param(
        b"retry: 5\nretry: x\ndata: a\n\n", [E(data="a", retry=5)], id="invalid-retry-keeps-valid"
    ),
    pytest.param(
        b"retry: 5\nretry: 6\ndata: a\n\n", [E(data="a", retry=6)], id="latest-retry-wins"
    ),
    pytest.param(
        b"retry: 3000\n\ndata: a\n\ndata: b\n\n",
        [E(data="a", retry=3000), E(data="b")],
        id="retry-carried-from-undispatched-event-then-reset",
    ),
    pytest.param(
        b"retry: 3000\ndata: a\n\ndata: b\n\n",
        [E(data="a", retry=3000), E(data="b")],
        id="retry-reset-after-dispatch",
    ),
    pytest.param(b"retry: 3000\n\n", [], id="retry-only-no-dispatch"),
    # ---- line ends ----------------------------------------------------------------------------
    pytest.param(b"data: a\r\n\r\n", [E(data="a")], id="crlf"),
    pytest.param(b"data: a\r\r", [E(data="a")], id="cr"),
    pytest.param(
        b"event: e\rdata: 1\r\rdata: 2\r\r",
        [E(event="e", data="1"), E(data="2")],
        id="cr-only-stream",
    ),
    pytest.param(b"data: a\rdata: b\r\n\r\n", [E(data="a\nb")], id="cr-then-crlf"),
    pytest.param(b"data: a\r\ndata: b\rdata: c\n\r\n", [E(data="a\nb\nc")], id="mixed-line-ends"),
    pytest.param(
        b"data: a\n\r\ndata: b\n\n", [E(data="a"), E(data="b")], id="lf-crlf-is-blank-line"
    ),
    pytest.param(b"data: a\n\rdata: b\n\n", [E(data="a"), E(data="b")], id="lf-cr-is-blank-line"),
    pytest.param(b"data: a\r\r\n", [E(data="a")], id="cr-then-crlf-blank"),
    pytest.param(b"data: a\r\n\n", [E(data="a")], id="crlf-then-lf-blank"),
    pytest.param(b"data: a\n\r", [E(data="a")], id="blank-line-ended-by-final-cr"),
    pytest.param(
        b"data: a\r\n\r\n\r\n\r\ndata: b\r\n\r\n",
        [E(data="a"), E(data="b")],
        id="crlf-blank-lines",
    ),
    pytest.param(b"\r\n\r\ndata: a\r\n\r\n", [E(data="a")], id="leading-crlf-blank-lines"),
    pytest.param(b"\r\r\r\r", [], id="cr-blank-lines-only"),
    # ---- unterminated final event ---------------------------------------------------------
    pytest.param(b"data: a", [], id="unterminated-line"),
    pytest.param(b"data: a\n", [], id="unterminated-event-lf"),
    pytest.param(b"data: a\r", [], id="unterminated-event-cr"),
    pytest.param(b"data: a\r\n", [], id="unterminated-event-crlf"),
    pytest.param(b"data: a\n\ndata: b\n", [E(data="a")], id="last-event-unterminated"),
    pytest.param(b"data: a\n\ndata: b", [E(data="a")], id="last-line-unterminated"),
    # ---- BOM -------------------------------------------------------------------------------------
    pytest.param(BOM + b"data: a\n\n", [E(data="a")], id="bom-stripped"),
    pytest.param(BOM, [], id="bom-only"),
    pytest.param(BOM + b"\n", [], id="bom-then-blank-line"),
    pytest.param(BOM + b"\r\ndata: a\r\n\r\n", [E(data="a")], id="bom-then-crlf"),
    pytest.param(BOM + b": c\ndata: a\n\n", [E(data="a")], id="bom-then-comment"),
    pytest.param(
        BOM + BOM + b"data: a\n\ndata: b\n\n", [E(data="b")], id="second-bom-is-part-of-field-name"
    ),
    pytest.param(
        b"data: a\n\n" + BOM + b"data: b\n\n", [E(data="a")], id="bom-mid-stream-not-stripped"
    ),
    pytest.param(
        BOM + b"data: a\n\n" + BOM + b"data: b\n\ndata: c\n\n",
        [E(data="a"), E(data="c")],
        id="bom-stripped-once-only",
    ),
    pytest.param(b"data: " + BOM + b"x\n\n", [E(data="\ufeffx")], id="bom-in-value-kept"),
    pytest.param(BOM + b"data:" + BOM + b"\n\n", [E(data="\ufeff")], id="bom-start-and-value"),
    pytest.param(b"\xef\xbbdata: a\n\ndata: b\n\n", [E(data="b")], id="truncated-bom-is-fffd"),
    pytest.param(b"\xff\xfedata: 1\n\ndata: 2\n\n", [E(data="2")], id="utf16-bom-is-not-a-bom-wpt"),
    # ---- UTF-8 -------------------------------------------------------------------------------
    pytest.param(b"data: " + ZH_BYTES + b"\n\n", [E(data=ZH)], id="chinese"),
    pytest.param(
        "event: 更新\nid: 七\ndata: 你\ndata: 好\n\n".encode(),
        [E(event="更新", data="你\n好", id="七")],
        id="chinese-in-every-field",
    ),
    pytest.param("data: 😀\n\n".encode(), [E(data="😀")], id="four-byte-emoji"),
    pytest.param(b"data: a\xffb\n\n", [E(data="a\ufffdb")], id="invalid-byte-ff"),
    pytest.param(b"data: \x80\n\n", [E(data="\ufffd")], id="lone-continuation-byte"),
    pytest.param(b"data: \xf5\n\n", [E(data="\ufffd")], id="byte-f5-never-valid"),
    pytest.param(b"data: \xc3\x28\n\n", [E(data="\ufffd(")], id="bad-continuation-reprocessed"),
    pytest.param(b"data: \xe4\xbd\n\n", [E(data="\ufffd")], id="truncated-3-byte-before-lf"),
    pytest.param(b"data: \xe4\xbd\r\r", [E(data="\ufffd")], id="truncated-3-byte-before-cr"),
    pytest.param(
        b"data: \xe4\xbd\ndata: x\n\n", [E(data="\ufffd\nx")], id="truncated-multibyte-keeps-lf"
    ),
    pytest.param(b"data: \xf0\x9f\x98A\n\n", [E(data="\ufffdA")], id="truncated-4-byte-one-fffd"),
    pytest.param(b"data: \xed\xa0\x80\n\n", [E(data="\ufffd" * 3)], id="surrogate-three-fffd"),
    pytest.param(b"data: \xc0\xaf\n\n", [E(data="\ufffd" * 2)], id="overlong-2-byte"),
    pytest.param(b"data: \xe0\x80\xaf\n\n", [E(data="\ufffd" * 3)], id="overlong-3-byte"),
    pytest.param(b"data: \xf4\x90\x80\x80\n\n", [E(data="\ufffd" * 4)], id="above-u10ffff"),
    pytest.param(
        b"da\xffta: a\ndata: b\n\n", [E(data="b")], id="invalid-byte-in-field-name-ignores-field"
    ),
    pytest.param(b"\xff\n\ndata: a\n\n", [E(data="a")], id="invalid-first-byte-not-a-bom"),
    pytest.param(b"id: \xff\ndata: a\n\n", [E(data="a", id="\ufffd")], id="invalid-byte-in-id"),
]


def _vector_blobs() -> list[tuple[bytes, list[ServerSentEvent]]]:
    return [(p.values[0], p.values[1]) for p in VECTORS]


def test_vector_ids_are_unique() -> None:
    ids = [p.id for p in VECTORS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("stream", "expected"), VECTORS)
def test_vector(stream: bytes, expected: list[ServerSentEvent]) -> None:
    # The oracle must agree with the hand-written table, or it would prove nothing below.
    assert spec_reference(stream) == expected, "spec reference"
    assert parse_pieces([stream]) == expected, "whole"
    assert parse_pieces(one_byte_pieces(stream)) == expected, "1-byte pieces"
    for point in range(len(stream) + 1):
        pieces = [stream[:point], stream[point:]]
        assert parse_pieces(pieces) == expected, f"split at {point}: {pieces!r}"


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_vector_arbitrary_splits(data: st.DataObject) -> None:
    stream, expected = data.draw(st.sampled_from(_vector_blobs()), label="vector")
    pieces = data.draw(arbitrary_split(stream), label="pieces")
    assert parse_pieces(pieces) == expected


# Bytes that matter to the parser, glued at random: line ends, field names, colons, spaces,
# BOMs, whole and partial multibyte characters, invalid bytes, NUL, digits.
_ATOMS = [
    b"\n", b"\r", b"\r\n", b"data", b"event", b"id", b"retry", b"Data", b":", b" ", b"x", b"1",
    b"-", b"\x00", BOM, b"\xef", b"\xbb", ZH_BYTES[:3], ZH_BYTES[:2], b"\xbd", b"\xa0", b"\xff",
    b"\xf0\x9f\x98\x80", "\u0661".encode(),
]  # fmt: skip
_soup = st.lists(st.sampled_from(_ATOMS), max_size=40).map(b"".join)


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data())
def test_random_streams_match_spec_reference_under_any_split(data: st.DataObject) -> None:
    stream = data.draw(_soup, label="stream")
    pieces = data.draw(arbitrary_split(stream), label="pieces")
    expected = spec_reference(stream)
    assert parse_pieces(pieces) == expected
    assert parse_pieces([stream]) == expected


# --------------------------------------------------------------------------------------------
# Explicit piece boundaries named in the brief (also covered by the splits above)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: \xe4", b"\xbd\xa0\n\n"],
        [b"data: \xe4\xbd", b"\xa0\n\n"],
        [b"data: \xe4", b"\xbd", b"\xa0", b"\n\n"],
    ],
)
def test_chinese_char_split_across_pieces(pieces: list[bytes]) -> None:
    parser = SSEParser()
    assert parser.feed(pieces[0]) == []
    events = [e for piece in pieces[1:] for e in parser.feed(piece)]
    assert events == [E(data="你")]


def test_truncated_multibyte_completes_in_next_piece_no_fffd() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\xe4\xbd") == []
    assert parser.feed(b"\xa0b\n\n") == [E(data="a你b")]


def test_invalid_bytes_split_across_pieces() -> None:
    # \xe4\xbd is a valid prefix; "(" then proves it truncated -> one U+FFFD, then "(".
    assert parse_pieces([b"data: \xe4", b"\xbd", b"(\n\n"]) == [E(data="\ufffd(")]
    # \xed then \xa0: invalid pair -> two U+FFFD, even when the pair straddles pieces.
    assert parse_pieces([b"data: \xed", b"\xa0\x80\n\n"]) == [E(data="\ufffd" * 3)]
    assert parse_pieces([b"data: \xff", b"\xfe\n\n"]) == [E(data="\ufffd\ufffd")]


def test_bom_split_across_pieces_is_stripped() -> None:
    assert parse_pieces([b"\xef", b"\xbb", b"\xbf", b"data: a\n\n"]) == [E(data="a")]
    assert parse_pieces([b"", b"\xef\xbb", b"", b"\xbfdata: a\n\n"]) == [E(data="a")]


def test_bom_split_after_first_piece_is_not_stripped() -> None:
    # The first piece already started the stream, so the BOM that follows is data.
    assert parse_pieces([b"data:", BOM[:1], BOM[1:] + b"\n\n"]) == [E(data="\ufeff")]


def test_cr_at_end_of_piece_then_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []  # the LF belongs to the CR: no blank line
    assert parser.feed(b"\n\r") == [E(data="a\nb")]
    assert parser.feed(b"\n") == []  # ...and this LF belongs to the CR before it


def test_cr_dispatches_without_waiting_for_next_byte() -> None:
    # A CR ends the line at once: a server using CR line ends must not see its event
    # held back until the next byte shows whether an LF follows.
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [E(data="a")]
    assert parser.feed(b"\ndata: b\n\n") == [E(data="b")]


def test_empty_feed_returns_nothing_and_keeps_state() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [E(data="a")]


def test_events_returned_by_the_feed_that_completes_them() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\ndata: 2\n\ndata: 3\n") == [E(data="1"), E(data="2")]
    assert parser.feed(b"\n") == [E(data="3")]


def test_long_stream_in_one_byte_pieces() -> None:
    blocks = [f"id: {i}\ndata: {'x' * i}\n\n" for i in range(200)]
    stream = "".join(blocks).encode()
    events = parse_pieces(one_byte_pieces(stream))
    assert events == [E(data="x" * i, id=str(i)) for i in range(200)]


# --------------------------------------------------------------------------------------------
# Size limits (the kit's own rule: the spec sets none)
# --------------------------------------------------------------------------------------------

LIMIT = 64 * 1024  # a small max_size, so that the tests stay fast


def feed_until_error(parser: SSEParser, piece: bytes, most: int) -> tuple[int, SSEError]:
    """Feed ``piece`` again and again; return the bytes fed before SSEError, and the error."""
    fed = 0
    while fed < most:
        try:
            parser.feed(piece)
        except SSEError as error:
            return fed, error
        fed += len(piece)
    raise AssertionError(f"no SSEError after {fed:,} bytes")


def test_max_event_size_is_16_mib_by_default() -> None:
    assert MAX_EVENT_SIZE == 16 * 1024 * 1024
    assert issubclass(SSEError, ValueError)
    parser = SSEParser()
    parser.feed(b"data: " + b"x" * (MAX_EVENT_SIZE - 10))  # no line end yet: still fine
    with pytest.raises(SSEError, match="16,777,216"):
        parser.feed(b"x" * 100)


@pytest.mark.parametrize("piece_size", [1, 1000, 65536])
def test_a_line_without_line_end_is_bounded(piece_size: int) -> None:
    import tracemalloc

    parser = SSEParser(max_size=LIMIT)
    tracemalloc.start()
    try:
        fed, error = feed_until_error(parser, b"x" * piece_size, most=200 * LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fed <= LIMIT + piece_size
    assert peak < 4 * LIMIT + 4 * piece_size + 100_000
    message = str(error)
    assert "\n" not in message
    assert "a line" in message and f"max_size={LIMIT:,} bytes" in message


@pytest.mark.parametrize(
    "line", [b"data: x\n", b"data\n", b"data:\n", b"data: \xe4\xbd\xa0\n", b"data: x\r\n"]
)
def test_millions_of_data_lines_without_a_blank_line_are_bounded(line: bytes) -> None:
    import tracemalloc

    parser = SSEParser(max_size=LIMIT)
    piece = line * 1000
    tracemalloc.start()
    try:
        fed, error = feed_until_error(parser, piece, most=1000 * LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    counted = len(line.rstrip(b"\r\n"))  # a data line counts its bytes without the line end
    assert fed <= LIMIT * len(line) / counted + len(piece)
    assert peak < 30 * LIMIT  # every data line counts at least 4 bytes ("data")
    assert "the data lines of one event" in str(error)


def test_limit_counts_the_data_lines_of_one_event_only() -> None:
    parser = SSEParser(max_size=100)
    for _ in range(100):  # many events, each small: fine
        assert parser.feed(b"data: " + b"x" * 90 + b"\n\n") == [E(data="x" * 90)]
    for _ in range(1000):  # comments and other fields never count
        assert parser.feed(b": keep-alive " + b"x" * 90 + b"\nevent: e\n") == []
    # Exactly at the limit (the data lines' bytes, without line ends): fine.
    assert parser.feed(b"data: " + b"y" * 44 + b"\ndata: " + b"z" * 44 + b"\n\n") == [
        E(event="e", data="y" * 44 + "\n" + "z" * 44)
    ]
    with pytest.raises(SSEError, match="the data lines of one event"):
        parser.feed(b"data: " + b"y" * 95 + b"\n\n")  # one line end included: one over


def test_events_before_the_limit_are_returned_then_the_next_feed_raises() -> None:
    parser = SSEParser(max_size=100)
    events = parser.feed(b"data: a\n\ndata: b\n\ndata: " + b"x" * 200 + b"\n")
    assert events == [E(data="a"), E(data="b")]
    with pytest.raises(SSEError):
        parser.feed(b"\n")


# --------------------------------------------------------------------------------------------
# iter_pieces: the one byte-reading loop
# --------------------------------------------------------------------------------------------


class FakeRaw:
    """Stands in for urllib3's response.raw: hands out the given pieces, then b""."""

    def __init__(self, pieces: list[bytes | BaseException]) -> None:
        self.pieces = list(pieces)
        self.calls: list[tuple[int, bool]] = []

    def read1(self, amt: int, decode_content: bool) -> bytes:
        self.calls.append((amt, decode_content))
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if isinstance(piece, BaseException):
            raise piece
        return piece


def test_iter_pieces_reads_until_empty() -> None:
    raw = FakeRaw([b"da", b"ta: 1\n", b"\n"])
    assert list(iter_pieces(raw, piece_size=7)) == [b"da", b"ta: 1\n", b"\n"]
    assert raw.calls == [(7, True)] * 4  # decode_content=True: gzip is undone
    assert list(iter_pieces(FakeRaw([]))) == []


def test_iter_pieces_lets_exceptions_through_unchanged() -> None:
    failure = TimeoutError("read timed out")
    pieces = iter_pieces(FakeRaw([b"data: 1\n\n", failure]))
    assert next(pieces) == b"data: 1\n\n"
    with pytest.raises(TimeoutError) as caught:
        next(pieces)
    assert caught.value is failure


def test_iter_sse_reads_through_iter_pieces() -> None:
    class Response:
        raw = FakeRaw([b"data: a\r", b"\n\r\ndata: b\n\n"])

    assert list(iter_sse(Response(), piece_size=3)) == [E(data="a"), E(data="b")]
    assert Response.raw.calls[0] == (3, True)


def test_server_sent_event_is_frozen_with_defaults() -> None:
    event = E()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", "", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert E(data='{"a": [1, "二"]}').json() == {"a": [1, "二"]}
    with pytest.raises(json.JSONDecodeError):
        E(data="[DONE]").json()


# --------------------------------------------------------------------------------------------
# The seed stream: what an OpenAI-style chat server actually sends
# --------------------------------------------------------------------------------------------

SEED_CONTENT = [
    "你", "好", "！", " This", " is", " a", " streamed", " reply", " in", " twelve", " chunks", ".",
]  # fmt: skip


def seed_chunks() -> list[dict]:
    chunks = []
    for index, piece in enumerate(SEED_CONTENT):
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        last = index == len(SEED_CONTENT) - 1
        chunks.append(
            {
                "id": "chatcmpl-lesson",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "lesson-model",
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                ],
            }
        )
    return chunks


def seed_stream() -> bytes:
    """One ``data: {json}`` line per event, a blank line after each, ``data: [DONE]`` last."""
    out = []
    for chunk in seed_chunks():
        line = json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
        out.append(f"data: {line}\n\n")
    out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def test_seed_stream_format() -> None:
    stream = seed_stream()
    assert len(SEED_CONTENT) == 12
    assert stream.endswith(b"\n\ndata: [DONE]\n\n")
    blocks = stream.decode().split("\n\n")
    assert blocks[-1] == ""  # the stream ends with a blank line
    for block in blocks[:-1]:
        assert "\n" not in block, "one data line per event: JSON must not be pretty-printed"
        assert block.startswith("data: ")


def test_seed_stream_one_byte_pieces_round_trip_json() -> None:
    events = parse_pieces(one_byte_pieces(seed_stream()))
    assert len(events) == 13
    assert all(e.event == "message" and e.id == "" and e.retry is None for e in events)
    assert [e.json() for e in events[:12]] == seed_chunks()
    assert events[-1].data == "[DONE]"
    text = "".join(e.json()["choices"][0]["delta"]["content"] for e in events[:12])
    assert text == "你好！ This is a streamed reply in twelve chunks."
    assert events[11].json()["choices"][0]["finish_reason"] == "stop"


def test_pretty_printed_json_is_not_an_sse_payload() -> None:
    chunk = seed_chunks()[0]
    pretty = json.dumps(chunk, indent=2, ensure_ascii=False)
    # Wrong: only the first line is a data line; '  "id": ...' lines are unknown fields.
    (wrong,) = parse_pieces([f"data: {pretty}\n\n".encode()])
    assert wrong.data == "{"
    with pytest.raises(json.JSONDecodeError):
        wrong.json()
    # A multi-line payload needs "data: " on every line; the lines are joined with LF.
    framed = "".join(f"data: {line}\n" for line in pretty.splitlines()) + "\n"
    (right,) = parse_pieces(one_byte_pieces(framed.encode()))
    assert right.data == pretty
    assert right.json() == chunk


# --------------------------------------------------------------------------------------------
# Differential tests against httpx-sse and openai's decoder
# --------------------------------------------------------------------------------------------
#
# Both libraries agree with the spec on well-formed streams where every event has data.
# Known divergences (installed httpx-sse and openai, checked in test_known_divergences):
#
# * Both dispatch on a blank line whenever event, id or retry is set, even with an empty data
#   buffer: "event: x\n\n" gives an event with data "", "retry: 1000\n\n" gives a retry-only
#   event, and once an id was seen EVERY extra blank line ("data: a\n\n\n") yields an extra
#   empty event.  Spec: "If the data buffer is an empty string, ... return."
# * Both parse retry with int(), so "-1", "+1", " 1" (after the one space), "1_0" and
#   non-ASCII digits such as "١٢" are accepted.  Spec: only ASCII digits, else ignore.
# * Neither strips a leading BOM (httpx decodes with "utf-8", openai decodes each line with
#   "utf-8"), so a first "\ufeffdata: ..." line is an unknown field and the event is lost.
# * openai decodes each line strictly and raises UnicodeDecodeError on invalid UTF-8; the
#   spec replaces invalid bytes with U+FFFD (httpx-sse, via httpx's text decoder, does).
# * httpx-sse's SSELineDecoder holds back a CR at the end of a piece until the next piece
#   arrives, so with CR line ends an event is delivered one piece late (same events, later).
# * Representation only (normalised before comparing): openai reports the default type as
#   None and an unset id as None.
#
# Checked and NOT a divergence in the installed versions (httpx-sse 0.4.3, openai 3.57.0): both
# split CR / LF / CRLF correctly, also across pieces, and read "\n\r\n" as a line end plus a
# blank line (test_differential_on_line_end_edge_cases).  Older openai 1.x releases grouped the
# bytes into events by looking for b"\n\n", b"\r\r" or b"\r\n\r\n" endings first; re-check
# these edge cases if the installed version changes.

Fields = tuple[str, str, str, int | None]


def ours(pieces: list[bytes]) -> list[Fields]:
    return [(e.event, e.data, e.id, e.retry) for e in parse_pieces(pieces)]


def via_httpx_sse(pieces: list[bytes]) -> list[Fields]:
    """httpx-sse the way it runs for real: an httpx response, iter_text(), its line decoder."""
    response = httpx.Response(
        200, headers={"Content-Type": "text/event-stream"}, content=iter(pieces)
    )
    source = httpx_sse.EventSource(response)
    return [(e.event, e.data, e.id, e.retry) for e in source.iter_sse()]


def via_openai(pieces: list[bytes]) -> list[Fields]:
    decoder = OpenAISSEDecoder()
    return [
        (e.event or "message", e.data, e.id or "", e.retry)
        for e in decoder.iter_bytes(iter(pieces))
    ]


_safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=12,
)
_field_line = st.one_of(
    _safe_text.map(lambda v: f"event: {v}"),
    _safe_text.map(lambda v: f"event:{v}"),
    _safe_text.map(lambda v: f"id: {v}"),
    st.integers(0, 10**6).map(lambda n: f"retry: {n}"),
    _safe_text.map(lambda v: f": {v}"),
    _safe_text.map(lambda v: f":{v}"),
    _safe_text.map(lambda v: f"data: {v}"),
)
_data_line = st.one_of(
    _safe_text.map(lambda v: f"data: {v}"),
    _safe_text.map(lambda v: f"data:{v}"),
    st.just("data"),
)


_eol = st.sampled_from(["\n", "\r\n"])


def _event_block(parts: tuple[list[tuple[str, str]], tuple[str, str], int, str]) -> str:
    fields, data_line, where, blank_eol = parts
    lines = list(fields)
    # Every event carries data, so no blank line ever meets an empty data buffer.
    lines.insert(min(where, len(lines)), data_line)
    return "".join(line + eol for line, eol in lines) + blank_eol


_event_blocks = st.lists(
    st.tuples(
        st.lists(st.tuples(_field_line, _eol), max_size=3),
        st.tuples(_data_line, _eol),
        st.integers(0, 3),
        _eol,
    ).map(_event_block),
    max_size=4,
)
# An unterminated event at the end: its lines end, but no blank line follows.
_unterminated = st.lists(st.tuples(st.one_of(_field_line, _data_line), _eol), max_size=3)
well_formed_stream = st.tuples(_event_blocks, _unterminated).map(
    lambda parts: ("".join(parts[0]) + "".join(line + eol for line, eol in parts[1])).encode()
)


@settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_differential_against_httpx_sse_and_openai(data: st.DataObject) -> None:
    stream = data.draw(well_formed_stream, label="stream")
    pieces = data.draw(arbitrary_split(stream), label="pieces")
    expected = ours([stream])
    assert ours(pieces) == expected
    assert via_httpx_sse(pieces) == expected
    assert via_openai(pieces) == expected
    assert len(expected) == stream.count(b"\n\n") + stream.count(b"\n\r\n")


# input, what the spec says, what httpx-sse gives, what openai gives (normalised Fields)
KNOWN_DIVERGENCES = [
    pytest.param(
        b"event: x\n\ndata: a\n\n",
        [("message", "a", "", None)],
        [("x", "", "", None), ("message", "a", "", None)],
        [("x", "", "", None), ("message", "a", "", None)],
        id="event-without-data-dispatched-by-them",
    ),
    pytest.param(
        b"id: 1\ndata: a\n\n\n",
        [("message", "a", "1", None)],
        [("message", "a", "1", None), ("message", "", "1", None)],
        [("message", "a", "1", None), ("message", "", "1", None)],
        id="extra-blank-line-after-id-dispatched-by-them",
    ),
    pytest.param(
        b"retry: 1000\n\ndata: a\n\n",
        [("message", "a", "", 1000)],
        [("message", "", "", 1000), ("message", "a", "", None)],
        [("message", "", "", 1000), ("message", "a", "", None)],
        id="retry-only-event-dispatched-by-them",
    ),
    pytest.param(
        b"retry: -1\ndata: a\n\n",
        [("message", "a", "", None)],
        [("message", "a", "", -1)],
        [("message", "a", "", -1)],
        id="negative-retry-accepted-by-them",
    ),
    pytest.param(
        b"retry:  1\ndata: a\n\n",
        [("message", "a", "", None)],
        [("message", "a", "", 1)],
        [("message", "a", "", 1)],
        id="retry-with-space-accepted-by-them",
    ),
    pytest.param(
        "retry: \u0661\u0662\ndata: a\n\n".encode(),
        [("message", "a", "", None)],
        [("message", "a", "", 12)],
        [("message", "a", "", 12)],
        id="arabic-digit-retry-accepted-by-them",
    ),
    pytest.param(
        BOM + b"data: a\n\ndata: b\n\n",
        [("message", "a", "", None), ("message", "b", "", None)],
        [("message", "b", "", None)],
        [("message", "b", "", None)],
        id="bom-not-stripped-by-them",
    ),
    pytest.param(
        b"data: a\xffb\n\n",
        [("message", "a\ufffdb", "", None)],
        [("message", "a\ufffdb", "", None)],
        UnicodeDecodeError,
        id="invalid-utf8-raises-in-openai",
    ),
]


@pytest.mark.parametrize(("stream", "spec", "httpx_sse_gives", "openai_gives"), KNOWN_DIVERGENCES)
def test_known_divergences(
    stream: bytes,
    spec: list[Fields],
    httpx_sse_gives: list[Fields],
    openai_gives: list[Fields] | type[Exception],
) -> None:
    assert ours([stream]) == spec
    assert ours(one_byte_pieces(stream)) == spec
    # Pin what the libraries do, so this table stays true; if one of these fails, that
    # library changed: update the table and the comment above.
    assert via_httpx_sse([stream]) == httpx_sse_gives
    if isinstance(openai_gives, type):
        with pytest.raises(openai_gives):
            via_openai([stream])
    else:
        assert via_openai([stream]) == openai_gives


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\n\r\ndata: b\n\n",
        b"data: a\r\rdata: b\r\n\r\n",
        b"data: a\n\rdata: b\r\r",
        b"data: a\r\ndata: b\rdata: c\n\r\n",
    ],
)
def test_differential_on_line_end_edge_cases(stream: bytes) -> None:
    expected = ours([stream])
    assert len(expected) >= 1
    for pieces in ([stream], one_byte_pieces(stream)):
        assert via_httpx_sse(pieces) == expected
        assert via_openai(pieces) == expected


def test_httpx_sse_holds_back_trailing_cr_but_we_do_not() -> None:
    line_decoder = httpx_sse._decoders.SSELineDecoder()
    assert line_decoder.decode("data: a\r\r") == ["data: a"]  # the blank line waits
    assert line_decoder.decode("data: b") == [""]
    assert SSEParser().feed(b"data: a\r\r") == [E(data="a")]


# --------------------------------------------------------------------------------------------
# iter_sse against a real HTTP server on 127.0.0.1
# --------------------------------------------------------------------------------------------


class OneShotServer:
    """Serves one HTTP connection: reads the request head, then calls ``respond(conn)``."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self._respond = respond
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream"
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OneShotServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(TIMEOUT)
        self._listener.close()
        assert not self._thread.is_alive(), "server thread did not finish"
        if self.errors:
            raise self.errors[0]

    def _run(self) -> None:
        try:
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                head = b""
                while b"\r\n\r\n" not in head:
                    part = conn.recv(4096)
                    if not part:
                        return
                    head += part
                self._respond(conn)
                conn.shutdown(socket.SHUT_WR)
        except BaseException as exc:  # reported by __exit__
            self.errors.append(exc)


def http_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return session


class Framing:
    """How the body goes on the wire: chunked or close-delimited, optionally gzip."""

    def __init__(self, chunked: bool, gzipped: bool) -> None:
        self.chunked = chunked
        self.gzipped = gzipped
        self._zip = zlib.compressobj(wbits=31) if gzipped else None  # 31: gzip container

    def head(self) -> bytes:
        lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache"]
        lines.append("Transfer-Encoding: chunked" if self.chunked else "Connection: close")
        if self.gzipped:
            lines.append("Content-Encoding: gzip")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _frame(self, body: bytes) -> bytes:
        if not body:
            return b""
        return b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body

    def piece(self, payload: bytes) -> bytes:
        if self._zip is not None:  # a sync flush makes the bytes so far decodable now
            payload = self._zip.compress(payload) + self._zip.flush(zlib.Z_SYNC_FLUSH)
        return self._frame(payload)

    def end(self) -> bytes:
        tail = self._frame(self._zip.flush()) if self._zip is not None else b""
        return tail + (b"0\r\n\r\n" if self.chunked else b"")


STREAM_EVENTS = [
    ("id: 1\ndata: " + ZH + "\n\n").encode(),
    ("event: delta\ndata: 第二个事件\n\n").encode(),
    b": keep-alive\n\n",
    ("data: 最后\ndata: [DONE]\n\n").encode(),
]
STREAM_EXPECTED = [
    E(data=ZH, id="1"),
    E(event="delta", data="第二个事件", id="1"),
    E(data="最后\n[DONE]", id="1"),
]

FRAMINGS = [
    pytest.param(True, False, id="chunked"),
    pytest.param(False, False, id="close-delimited"),
    pytest.param(True, True, id="chunked-gzip"),
    pytest.param(False, True, id="close-delimited-gzip"),
]


@pytest.mark.parametrize(("chunked", "gzipped"), FRAMINGS)
def test_iter_sse_yields_each_event_before_the_next_is_sent(chunked: bool, gzipped: bool) -> None:
    framing = Framing(chunked, gzipped)
    client_got_first = threading.Event()
    second_sent = threading.Event()

    def respond(conn: socket.socket) -> None:
        conn.sendall(framing.head())
        first = STREAM_EVENTS[0]
        # Split inside a Chinese character: with chunked framing read1() returns the two
        # halves separately, so the parser must carry the partial character over.
        cut_at = first.index(ZH_BYTES) + 1
        conn.sendall(framing.piece(first[:cut_at]))
        conn.sendall(framing.piece(first[cut_at:]))
        client_got_first.wait(TIMEOUT)  # if the client buffers, go on anyway after TIMEOUT
        second_sent.set()
        for event in STREAM_EVENTS[1:]:
            conn.sendall(framing.piece(event))
        conn.sendall(framing.end())

    received: list[ServerSentEvent] = []
    second_sent_before_first_event = None
    with OneShotServer(respond) as server, http_session() as session:
        with session.get(server.url, stream=True, timeout=TIMEOUT) as resp:
            assert resp.status_code == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            # The trap: no charset, so requests guesses ISO-8859-1 for any text/* type.
            assert resp.encoding == "ISO-8859-1"
            assert ("Transfer-Encoding" in resp.headers) == chunked
            assert resp.headers.get("Content-Encoding") == ("gzip" if gzipped else None)
            for event in iter_sse(resp):
                if not received:
                    second_sent_before_first_event = second_sent.is_set()
                    client_got_first.set()
                received.append(event)
    assert second_sent_before_first_event is False, "first event arrived only after the second"
    assert received == STREAM_EXPECTED


@pytest.mark.parametrize("piece_size", [1, 2, 7])
def test_iter_sse_small_read_sizes(piece_size: int) -> None:
    framing = Framing(chunked=True, gzipped=False)
    body = seed_stream()

    def respond(conn: socket.socket) -> None:
        conn.sendall(framing.head() + framing.piece(body) + framing.end())

    with OneShotServer(respond) as server, http_session() as session:
        with session.get(server.url, stream=True, timeout=TIMEOUT) as resp:
            events = list(iter_sse(resp, piece_size=piece_size))
    assert [e.json() for e in events[:-1]] == seed_chunks()
    assert events[-1].data == "[DONE]"


def test_iter_sse_gzip_whole_body() -> None:
    # A gzip body written in one go (no sync flushes), as a plain compressing proxy would.
    body = b"".join(STREAM_EVENTS)
    compressed = gzip.compress(body)

    def respond(conn: socket.socket) -> None:
        head = Framing(chunked=False, gzipped=True).head()
        conn.sendall(head + compressed[:10])
        conn.sendall(compressed[10:])

    with OneShotServer(respond) as server, http_session() as session:
        with session.get(server.url, stream=True, timeout=TIMEOUT) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            events = list(iter_sse(resp))
    assert events == STREAM_EXPECTED


def test_requests_text_decoding_is_the_trap() -> None:
    # Documents why iter_sse decodes UTF-8 itself: requests' own text is mojibake here.
    body = b"".join(STREAM_EVENTS)

    def respond(conn: socket.socket) -> None:
        conn.sendall(Framing(chunked=False, gzipped=False).head() + body)

    with OneShotServer(respond) as server, http_session() as session:
        resp = session.get(server.url, timeout=TIMEOUT)
    assert resp.encoding == "ISO-8859-1"
    assert resp.content == body
    assert ZH not in resp.text
    assert resp.text == body.decode("iso-8859-1")
    assert parse_pieces([resp.content]) == STREAM_EXPECTED


def _iter_bytes(blob: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def test_iter_bytes_helper_and_parser_agree_on_seed() -> None:
    # Sanity check of the differential plumbing on the seed stream, at several piece sizes.
    stream = seed_stream()
    expected = ours([stream])
    for size in (1, 3, 64, len(stream)):
        pieces = list(_iter_bytes(stream, size))
        assert ours(pieces) == expected
        assert via_httpx_sse(pieces) == expected
        assert via_openai(pieces) == expected


def test_finish_raises_the_limit_broken_by_the_last_piece():
    """The events before the limit come back first; the end of the stream still reports it."""
    parser = SSEParser(max_size=64)
    events = parser.feed(b"data: a\n\n" + b"data: " + b"x" * 100)
    assert [e.data for e in events] == ["a"]
    with pytest.raises(SSEError, match="max_size=64"):
        parser.finish()


def test_finish_is_quiet_on_a_normal_end():
    parser = SSEParser()
    parser.feed(b"data: a\n\ndata: unterminated")
    assert parser.finish() is None
