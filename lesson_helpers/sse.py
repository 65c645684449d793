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

__all__ = ["ServerSentEvent", "SSEParser", "iter_sse"]

# CRLF must come first so that "\r\n" is one line end, not two.
_LINE_END = re.compile(r"\r\n|\r|\n")


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


class SSEParser:
    """Incremental parser: feed it bytes in pieces of any size, get events back.

    >>> parser = SSEParser()
    >>> parser.feed(b'data: {"a": 1}\\n')
    []
    >>> parser.feed(b"\\n")
    [ServerSentEvent(event='message', data='{"a": 1}', id='', retry=None)]
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # has the first character (maybe a BOM) been seen?
        self._skip_lf = False  # the previous piece ended with CR: a leading LF belongs to it
        self._line = ""  # the unfinished line carried over from the previous piece
        self._data: list[str] = []  # data buffer, one item per data line
        self._event = ""  # event type buffer
        self._last_id = ""  # last event ID buffer (persists across events)
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Parse the next piece of the stream; return the events it completes."""
        text = self._decoder.decode(data)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        # Fast path: most pieces in a 1-byte or mid-line feed hold no line end at all.
        if "\n" not in text and "\r" not in text:
            self._line += text
            return []
        # Fast path: LF-only streams (almost every server) need no regular expression.
        lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
        if text[-1] == "\r":
            self._skip_lf = True
        lines[0] = self._line + lines[0]
        self._line = lines.pop()  # the text after the last line end is not a line yet
        events: list[ServerSentEvent] = []
        for line in lines:
            if line:
                self._process_field(line)
            else:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
        return events

    def _process_field(self, line: str) -> None:
        if line[0] == ":":
            return  # a comment, e.g. a keep-alive ": ping"
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # any other field name is ignored

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._last_id,
            retry=self._retry,
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
