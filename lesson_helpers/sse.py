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

It imports nothing from the rest of the kit, so it can be read on its own.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["SSEParser", "ServerSentEvent", "iter_sse"]

# CRLF must come first so that b"\r\n" is one line end, not two.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = codecs.BOM_UTF8  # b"\xef\xbb\xbf", the UTF-8 encoding of U+FEFF
# Line end bytes as ints: "10 in data" asks memchr directly, while "b'\n' in data" first
# sets up a substring search -- ten times slower, which shows when pieces are 1 byte long.
_LF, _CR = 0x0A, 0x0D


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


# Fast path for the parser only. ServerSentEvent is a frozen dataclass: "event.data = x"
# raises on purpose, so its generated __init__ has to store each field with
# object.__setattr__ -- about 2 microseconds per event, as much as all the parsing of
# the event. The slot descriptors below store the same four fields directly, three to
# four times faster; the result is an ordinary ServerSentEvent, equal to one built with
# ServerSentEvent(...).
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
    """

    def __init__(self) -> None:
        self._started = False  # has the first line (which may start with a BOM) ended yet?
        self._after_cr = False  # the previous piece ended with CR: a leading LF belongs to it
        self._unfinished = bytearray()  # the line not ended yet, carried over between pieces
        self._data: list[str] = []  # data buffer, one item per data line
        self._event = ""  # event type buffer
        self._last_id = ""  # last event ID buffer (persists across events)
        self._retry: int | None = None

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
            self._unfinished += data
            return []
        if _CR in data:
            lines = _LINE_END.split(data)
            self._after_cr = data[-1] == _CR
        else:  # LF-only streams (almost every server) need no regular expression
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
        for line in lines:
            if line[:6] == b"data: ":
                # Fast path for the line an LLM stream is made of ("data: {json}"): the
                # same as _process_field would do with it, minus a method call and a split.
                self._data.append(line[6:].decode("utf-8", "replace"))
            elif line:
                self._process_field(line)
            elif self._data:
                events.append(self._dispatch())
            else:
                self._event = ""  # a blank line with an empty data buffer dispatches nothing
        return events

    def _process_field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if not name:
            return  # the line starts with ":": a comment, e.g. a keep-alive ": ping"
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit() accepts ASCII digits only, as the spec says
                self._retry = int(value)
        # any other field name is ignored

    def _dispatch(self) -> ServerSentEvent:
        """The event for a blank line; called only when the data buffer is not empty."""
        event = _new_event(
            self._event or "message", "\n".join(self._data), self._last_id, self._retry
        )
        self._data = []
        self._event = ""
        self._retry = None
        return event


class _Readable(Protocol):
    def read1(self, amt: int, decode_content: bool) -> bytes: ...


class _StreamingResponse(Protocol):
    raw: _Readable


def iter_sse(response: _StreamingResponse, piece_size: int = 65536) -> Iterator[ServerSentEvent]:
    """Yield the events of a streaming ``requests`` response as soon as their bytes arrive.

    ``response.raw.read1`` returns whatever bytes are already there (at most
    ``piece_size``) instead of waiting for a full buffer or the end of the body. That
    matters for close-delimited responses, where ``iter_lines()`` and
    ``iter_content()`` wait for the connection to close. Content-Encoding (gzip) is
    undone by urllib3; the text is always decoded as UTF-8, never with
    ``response.encoding`` (which ``requests`` guesses as ISO-8859-1 here).
    """
    parser = SSEParser()
    raw = response.raw
    while True:
        piece = raw.read1(piece_size, decode_content=True)
        if not piece:
            return
        yield from parser.feed(piece)
