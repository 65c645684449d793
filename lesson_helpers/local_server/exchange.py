"""One request and its response, as a model handler sees it.

A handler gets an :class:`Exchange`: the parsed request body plus small, explicit ways to
write the response -- a JSON answer, or a stream written piece by piece, chunked or
close-delimited. Fault scenarios use the same methods to misbehave on purpose.

Pacing without a thread per token: on the local server, the first wait for a token's slot
turns the exchange into a *timetable*. From then on ``write`` notes the bytes with the time
they are due, ``sleep`` only moves that time on, and the server's connection loop writes
each piece at its time -- one thread for every paced stream, instead of each stream's
thread waking up for every token. A handler that gets far ahead of the wire (``LOOKAHEAD``
seconds or ``MAX_AHEAD`` pieces) hands over what it has and waits until half of it has gone
out, so a very long reply is never held in memory at once. So a handler waits with
``ex.sleep``, never with ``time.sleep`` (its writes would then all leave at its end).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

__all__ = [
    "LOOKAHEAD",
    "MAX_AHEAD",
    "ChunkBuilder",
    "Exchange",
    "Memory",
    "Timetable",
    "dumps",
    "encode_json",
    "random_id",
]

LOOKAHEAD = 10.0  # seconds of a paced response a handler may write ahead of the wire
MAX_AHEAD = 1000  # pieces of a paced response a handler may write ahead of the wire
Timetable = list[tuple[float, bytes]]  # (time.monotonic() when due, bytes), in order
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """Compact JSON with real UTF-8 characters, the way SiliconFlow and OpenAI send it."""
    return _ENCODER.encode(obj)


def random_id() -> str:
    """32 random hex digits, like a uuid4's (no system call: cheap under load)."""
    return f"{random.getrandbits(128):032x}"


def encode_json(obj: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes. Text that UTF-8 cannot carry (a lone surrogate such as
    ``\\ud800``) is sent as a JSON ``\\u`` escape instead, so a response never breaks on it."""
    text = dumps(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()


class ChunkBuilder:
    """Builds ``chat.completion.chunk`` dicts with the seed's keys, in the seed's order."""

    def __init__(self, model: str, prompt_tokens: int, usage_mode: str = "every") -> None:
        """``usage_mode``: "every" -- cumulative usage in every chunk (SiliconFlow);
        "null" -- ``"usage": null`` in every chunk (OpenAI with include_usage); "absent"."""
        self.id = random_id()  # one id per response, shared by all its chunks
        self.created = int(time.time())
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.usage_mode = usage_mode
        self._head: str | None = None  # the start of every chunk's JSON, once encoded

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason}
        return self.chunk_with_choices([choice])

    def chunk_with_choices(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "system_fingerprint": "",
        }
        if self.usage_mode == "every":
            chunk["usage"] = self.usage()
        elif self.usage_mode == "null":
            chunk["usage"] = None
        return chunk

    def usage_chunk(self) -> dict[str, Any]:
        """OpenAI's ``stream_options.include_usage`` final chunk: no choices, just usage."""
        chunk = self.chunk_with_choices([])
        chunk["usage"] = self.usage()
        return chunk

    def chunk_bytes(
        self, delta: dict[str, Any], finish_reason: str | None = None, index: int = 0
    ) -> bytes:
        """``encode_json(self.chunk(...))``, byte for byte, at a third of the cost: the parts
        that are the same in every chunk of this response are encoded once."""
        if self._head is None:
            head = dumps({"id": self.id, "object": "chat.completion.chunk"})[:-1]
            head += f',"created":{self.created},"model":{dumps(self.model)},"choices":['
            self._head = head
        text = (
            f'{self._head}{{"index":{index},"delta":{dumps(delta)},'
            f'"finish_reason":{dumps(finish_reason)}}}],"system_fingerprint":""'
        )
        if self.usage_mode == "every":
            used = self.completion_tokens
            text += (
                f',"usage":{{"prompt_tokens":{self.prompt_tokens},"completion_tokens":{used},'
                f'"total_tokens":{self.prompt_tokens + used}}}}}'
            )
        else:
            text += ',"usage":null}' if self.usage_mode == "null" else "}"
        try:
            return text.encode()
        except UnicodeEncodeError:  # a lone surrogate: encode_json escapes it
            return encode_json(self.chunk(delta, finish_reason, index))


class Memory:
    """Counters shared by all requests to one server (thread-safe).

    Lets a scenario behave differently the second time it sees the same request, e.g.
    "429 the first time, success on the retry".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def bump(self, key: str) -> int:
        """Count one more request for ``key``; return how many there have been (1, 2, ...)."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class Exchange:
    """The request (``body``) and the response writer for one call to a model."""

    def __init__(
        self,
        body: dict[str, Any],
        wfile: BinaryIO,
        send_head: Callable[[int, dict[str, str]], None],
        pace: float,
        stop: Callable[[], bool],
        *,
        memory: Memory | None = None,
        request_id: str = "",
        request_headers: Mapping[str, str] | None = None,
        chunked_allowed: bool = True,
        render_head: Callable[[int, dict[str, str]], bytes] | None = None,
        deliver: Callable[[Timetable], bool] | None = None,
        head_only: bool = False,
    ) -> None:
        """``chunked_allowed=False`` (an HTTP/1.0 client): streams are close-delimited.

        ``render_head`` (the bytes of a status line and headers) and ``deliver`` (hand a
        timetable to whoever writes it; False when the client is gone) make waits cheap:
        see the module's docstring. Without them every wait is a real ``time.sleep``.
        ``head_only`` (a HEAD request): the status line and headers go out, no body.
        """
        self.body = body
        self.memory = memory if memory is not None else Memory()
        self.request_id = request_id  # also sent as the X-Request-Id header
        self.request_headers: Mapping[str, str] = request_headers or {}
        model, messages = body.get("model"), body.get("messages")
        self.model: str = model if isinstance(model, str) else ""
        self.messages: list[dict[str, Any]] = messages if isinstance(messages, list) else []
        self.stream: bool = body.get("stream") is True
        self.pace = pace
        self._wfile = wfile
        self._send_head_to_client = send_head
        self._stop = stop
        self._chunked = False
        self._chunked_allowed = chunked_allowed
        self._head_sent = False
        self.close_connection = False
        self._next_slot: float | None = None
        self._render_head = render_head
        self._deliver = deliver if render_head is not None else None
        self._head_only = head_only
        # With a deliverer, the response starts as a timetable of pieces due at once (so the
        # handler's thread makes no system call); a first wait of zero (pace 0) switches to
        # writing directly, a first real wait to a timetable on a virtual clock.
        self._timetable: Timetable | None = [] if self._deliver is not None else None
        self._virtual = False  # True: _clock is when the next piece is due
        self._clock = 0.0

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self._head_sent = True
        if self._render_head is None:
            self._send_head_to_client(status, headers)
        else:
            self._emit(self._render_head(status, headers), head=True)

    def _emit(self, data: bytes, head: bool = False) -> None:
        if self._head_only and not head:
            return
        if self._timetable is not None:
            self._timetable.append((self._clock, data))
        else:
            self._wfile.write(data)
            self._wfile.flush()

    def take_timetable(self) -> Timetable | None:
        """What is still to be written and when (None: everything went out directly)."""
        timetable, self._timetable = self._timetable, ([] if self._timetable is not None else None)
        return timetable

    @property
    def head_sent(self) -> bool:
        """True once the status line and headers have gone out (a body may follow)."""
        return self._head_sent

    # -- plain JSON -------------------------------------------------------------------------
    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, encode_json(obj), "application/json", headers)

    def send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        head = {"Content-Type": content_type, "Content-Length": str(len(data))}
        head.update(headers or {})
        self._send_head(status, head)
        self._emit(data)

    def send_error(
        self,
        status: int,
        message: str,
        code: str | None = None,
        err_type: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """An OpenAI-shaped error body."""
        error = {"message": message, "type": err_type, "param": param, "code": code}
        self.send_json(status, {"error": error}, headers)

    # -- streaming --------------------------------------------------------------------------
    def start_stream(
        self,
        chunked: bool = True,
        content_type: str = "text/event-stream; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send the status line and headers of a 200 streaming response.

        ``chunked=False`` gives a close-delimited body: no length, the end of the body is
        the server closing the connection (what some proxies and old servers do). An
        HTTP/1.0 client always gets that: chunked framing does not exist in HTTP/1.0.
        """
        chunked = chunked and self._chunked_allowed
        head = {"Content-Type": content_type, "Cache-Control": "no-cache"}
        if chunked:
            head["Transfer-Encoding"] = "chunked"
        else:
            head["Connection"] = "close"
            self.close_connection = True
        head.update(headers or {})
        self._chunked = chunked
        self._send_head(200, head)

    def write(self, data: bytes) -> None:
        """Send bytes now (as one HTTP chunk when chunked)."""
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._emit(data)

    def send_event(self, obj: Any) -> None:
        """One SSE event: ``data: <compact JSON>`` and a blank line."""
        self.write(b"data: " + encode_json(obj) + b"\n\n")

    def send_done(self) -> None:
        self.write(b"data: [DONE]\n\n")

    def end_stream(self) -> None:
        """Finish the body properly (the zero-length chunk, or closing the connection)."""
        if self._chunked:
            self._emit(b"0\r\n\r\n")
        else:
            self.close_connection = True

    def cut(self) -> None:
        """Drop the connection without finishing the body (a broken stream)."""
        self.close_connection = True
        self._chunked = False

    def sleep(self, seconds: float | None = None) -> bool:
        """Wait ``seconds``, or by default until the next token's slot. Returns False if the
        server is shutting down (or the client has gone).

        Token slots are on a fixed schedule (first call + k * pace), so the time spent writing
        and waking up late does not add up over a long reply.
        """
        if self._stop():
            return False
        now = self._clock if self._virtual else time.monotonic()
        if seconds is None:
            self._next_slot = (self._next_slot or now) + self.pace
            deadline = self._next_slot
        else:
            deadline = now + seconds
        if deadline <= now:
            if self._timetable is not None and not self._virtual:
                self._write_directly()  # no pace: the handler's thread writes it all
            return True
        if self._deliver is None:
            return self._wait_until(deadline)
        if not self._virtual:  # from now on: a timetable the server's loop writes
            self._timetable = self._timetable if self._timetable is not None else []
            self._virtual = True
        self._clock = deadline
        ahead = deadline - time.monotonic()
        if ahead > LOOKAHEAD or len(self._timetable) >= MAX_AHEAD:  # hand over, then wait
            if not self._deliver(self.take_timetable() or []):
                return False
            return self._wait_until(deadline - ahead / 2)
        return True

    def _write_directly(self) -> None:
        pieces, self._timetable = self._timetable or [], None
        for _, data in pieces:
            self._wfile.write(data)
        self._wfile.flush()

    def _wait_until(self, deadline: float) -> bool:
        while not self._stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False
