"""Server-Sent Events, parsed by hand.

This module follows the WHATWG HTML standard, section "Interpreting an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html), rule by rule:

* the bytes are UTF-8; invalid sequences become U+FFFD; one leading BOM is dropped;
* a line ends with CRLF, LF or CR -- also when the CR is the last byte of one piece
  and the LF the first byte of the next;
* an empty line dispatches the event; a line starting with ``:`` is a comment;
* ``field:value`` (one leading space of the value removed) or ``field`` alone (empty value);
* ``data`` lines are joined with ``\\n``; ``event`` sets the type; ``id`` sets the
  last event ID unless it contains NUL, and it persists across events; ``retry``
  counts only when it is all ASCII digits;
* an event whose data buffer is empty is not dispatched; an unterminated event at
  the end of the stream is dropped.

One rule is the kit's own, because the standard sets no limit: a line may not grow past
``max_size`` bytes (:data:`MAX_EVENT_SIZE`, 16 MiB) without a line end, and the data lines
of one event may not add up to more than ``max_size`` bytes. Either raises
:class:`SSEError`, so a broken server cannot fill the memory.

It imports nothing from the rest of the kit, so it can be read on its own.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["MAX_EVENT_SIZE", "SSEError", "SSEParser", "ServerSentEvent", "iter_pieces", "iter_sse"]

MAX_EVENT_SIZE = 16 * 1024 * 1024
"""The default ``max_size`` of :class:`SSEParser`: 16 MiB, far more than any chat chunk."""

_BOM = codecs.BOM_UTF8  # b"\xef\xbb\xbf", the UTF-8 encoding of U+FEFF
# Line end bytes as ints: "10 in data" asks memchr directly, while "b'\n' in data" first
# sets up a substring search -- ten times slower, which shows when pieces are 1 byte long.
_LF, _CR, _COLON = 0x0A, 0x0D, 0x3A


class SSEError(ValueError):
    """The stream broke the parser's size limit; the stream cannot be read any further."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON (raises ``json.JSONDecodeError`` if it is not JSON)."""
        return json.loads(self.data)


# Fast path for the parser only. ServerSentEvent is frozen ("event.data = x" raises on
# purpose), so its generated __init__ stores each field through object.__setattr__. The
# slot descriptors below store the same four fields directly: 0.27 instead of 0.48 µs per
# event. On an LLM stream in 512-byte or 64 KiB pieces the parser without this trick
# needs 1.12-1.32 times the time; at 1-byte pieces, where the feeds cost more than the
# events, it makes no difference (``python benchmarks/bench_sse.py --ablation`` measures
# it). The result is an ordinary ServerSentEvent, equal to one built with ServerSentEvent().
_set_event, _set_data, _set_id, _set_retry = (
    ServerSentEvent.__dict__[name].__set__ for name in ("event", "data", "id", "retry")
)


def _new_event(event: str, data: str, last_id: str, retry: int | None) -> ServerSentEvent:
    new = object.__new__(ServerSentEvent)
    _set_event(new, event)
    _set_data(new, data)
    _set_id(new, last_id)
    _set_retry(new, retry)
    return new


class SSEParser:
    """Incremental parser: feed it bytes in pieces of any size, get events back.

    >>> parser = SSEParser()
    >>> parser.feed(b'data: {"a": 1}\\n')
    []
    >>> parser.feed(b"\\n")
    [ServerSentEvent(event='message', data='{"a": 1}', id='', retry=None)]

    Lines are cut as bytes and each field value is decoded on its own. That is exactly
    "decode the stream, then cut it into lines": CR and LF are ASCII bytes, and in UTF-8
    an ASCII byte is never part of a multibyte character, so an invalid or truncated
    sequence before a line end becomes the same U+FFFD either way. A character cut between
    two pieces simply waits, as bytes, in the unfinished line.

    ``max_size`` bounds the memory: see :class:`SSEError`. Events completed before the
    limit was crossed are still returned; the error comes from the next ``feed``. After
    an ``SSEError`` the parser's state is undefined: abandon the stream.
    """

    def __init__(self, max_size: int = MAX_EVENT_SIZE) -> None:
        self._max_size = max_size
        self._started = False  # has the first line (which may start with a BOM) ended yet?
        self._after_cr = False  # the previous piece ended with CR: a leading LF belongs to it
        self._unfinished = bytearray()  # the line not ended yet, carried over between pieces
        self._data: list[str] = []  # data buffer, one item per data line
        self._size = 0  # bytes of the data lines in self._data
        self._event = ""  # event type buffer
        self._last_id = ""  # last event ID buffer (persists across events)
        self._retry: int | None = None
        self._line_limit = max_size  # -1 once a limit was broken: every feed raises
        self._broken = ""  # the SSEError message, once a limit was broken

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next piece of the stream; return the events it completes."""
        if self._after_cr and data:
            self._after_cr = False
            if data[0] == _LF:
                data = data[1:]
        # Fast path: a small piece (1-byte feeds, the middle of a long line) often holds no
        # line end at all. Appending to a bytearray costs time in proportion to the piece
        # only, so a long line fed byte by byte stays linear (``str += str`` would copy the
        # whole line again for every byte).
        if _LF not in data and _CR not in data:
            unfinished = self._unfinished
            unfinished += data
            if len(unfinished) > self._line_limit:
                raise self._fail("a line", "without a line end")
            return []
        if self._broken:
            raise SSEError(self._broken)
        if _CR in data:
            # CRLF or CR line ends. bytes.splitlines() cuts at exactly the SSE line ends
            # (CRLF, LF, CR -- unlike str.splitlines, no other characters) in one C pass.
            # A CR that ends the piece has ended its line already; an LF starting the next
            # piece is dropped above.
            self._after_cr = data[-1] == _CR
            lines = data.splitlines()
            if data[-1] == _CR or data[-1] == _LF:
                lines.append(b"")  # as split() would: the (empty) text after the line end
        else:  # LF only (almost every server): split() is faster still
            lines = data.split(b"\n")
        # The first line continues the unfinished one; the text after the last line end
        # is not a line yet.
        self._unfinished += lines[0]
        lines[0] = bytes(self._unfinished)
        self._unfinished = bytearray(lines.pop())
        if not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        events: list[ServerSentEvent] = []
        buffer, size, max_size = self._data, self._size, self._max_size
        for line in lines:
            if line[:6] == b"data: ":
                # Fast path for the line an LLM stream is made of ("data: {json}"): the
                # same as _process_field would do with it, minus a method call and a split.
                buffer.append(line[6:].decode("utf-8", "replace"))
                size += len(line)
            elif not line:  # a blank line: dispatch
                if not buffer:
                    self._event = ""  # an empty data buffer dispatches nothing
                    continue
                if size > max_size:
                    break  # an event too large: reported below
                event = self._event or "message"
                events.append(_new_event(event, "\n".join(buffer), self._last_id, self._retry))
                buffer.clear()
                size = 0
                self._event = ""
                self._retry = None
            elif line[0] != _COLON:
                size += self._process_field(line)
            # else: a comment, such as a keep-alive ": ping" -- nothing to do
        self._size = size
        if size > max_size:
            error = self._fail("the data lines of one event", "before a blank line")
        elif len(self._unfinished) > max_size:
            error = self._fail("a line", "without a line end")
        else:
            return events
        if events:
            return events  # the events before the limit still count; the next feed raises
        raise error

    def finish(self) -> None:
        """The stream has ended. Raises the :class:`SSEError` still pending when a limit was
        broken by the last piece (its complete events were returned first). An unterminated
        event at the end is dropped, as the spec says: nothing else to do."""
        if self._broken:
            raise SSEError(self._broken)

    def _process_field(self, line: bytes) -> int:
        """Apply one field line (not blank, not a comment); return how many data bytes it
        added (0 for the other fields)."""
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
            return len(line)
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit() accepts ASCII digits only, as the spec says
                self._retry = int(value)
        return 0  # any other field name is ignored

    def _fail(self, what: str, how: str) -> SSEError:
        """Note that a limit was broken (for good: the stream is abandoned); the error."""
        if not self._broken:
            self._broken = (
                f"SSE stream too large: {what} grew past max_size={self._max_size:,} bytes {how}"
            )
            self._line_limit = -1
        return SSEError(self._broken)


class _Readable(Protocol):
    def read1(self, amt: int, decode_content: bool) -> bytes: ...


class _StreamingResponse(Protocol):
    raw: _Readable


def iter_pieces(raw: _Readable, piece_size: int = 65536) -> Iterator[bytes]:
    """The byte-reading loop: yield what has arrived, as soon as it arrives, until the end.

    ``raw`` is a streaming ``requests`` response's ``response.raw`` (urllib3).
    ``raw.read1`` returns whatever bytes are already there (at most ``piece_size``)
    instead of waiting for a full buffer or the end of the body. That matters for
    close-delimited responses, where ``iter_lines()`` and ``iter_content()`` wait for the
    connection to close. ``decode_content=True``: Content-Encoding (gzip) is undone.
    Exceptions from ``raw`` (timeouts, a cut connection) propagate unchanged.
    """
    read1 = raw.read1
    while piece := read1(piece_size, decode_content=True):
        yield piece


def iter_sse(response: _StreamingResponse, piece_size: int = 65536) -> Iterator[ServerSentEvent]:
    """Yield the events of a streaming ``requests`` response as soon as their bytes arrive.

    The bytes come from :func:`iter_pieces`; the text is always decoded as UTF-8, never
    with ``response.encoding`` (which ``requests`` guesses as ISO-8859-1 here).
    """
    parser = SSEParser()
    for piece in iter_pieces(response.raw, piece_size):
        yield from parser.feed(piece)
