"""One request and its response, as a model handler sees it.

A handler gets an :class:`Exchange`: the parsed request body plus small, explicit ways to
write the response -- a JSON answer, or a stream written piece by piece, chunked or
close-delimited. Fault scenarios use the same methods to misbehave on purpose.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

__all__ = ["ChunkBuilder", "Exchange", "Memory", "dumps", "encode_json"]


def dumps(obj: Any) -> str:
    """Compact JSON with real UTF-8 characters, the way SiliconFlow and OpenAI send it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


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
        self.id = uuid.uuid4().hex  # one id per response, shared by all its chunks
        self.created = int(time.time())
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.usage_mode = usage_mode

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
    ) -> None:
        """``chunked_allowed=False`` (an HTTP/1.0 client): streams are close-delimited."""
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

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self._head_sent = True
        self._send_head_to_client(status, headers)

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
        self._wfile.write(data)
        self._wfile.flush()

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
        self._wfile.flush()

    def write(self, data: bytes) -> None:
        """Send bytes now (as one HTTP chunk when chunked)."""
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self._wfile.write(data)
        self._wfile.flush()

    def send_event(self, obj: Any) -> None:
        """One SSE event: ``data: <compact JSON>`` and a blank line."""
        self.write(b"data: " + encode_json(obj) + b"\n\n")

    def send_done(self) -> None:
        self.write(b"data: [DONE]\n\n")

    def end_stream(self) -> None:
        """Finish the body properly (the zero-length chunk, or closing the connection)."""
        if self._chunked:
            self._wfile.write(b"0\r\n\r\n")
            self._wfile.flush()
        else:
            self.close_connection = True

    def cut(self) -> None:
        """Drop the connection without finishing the body (a broken stream)."""
        self.close_connection = True
        self._chunked = False

    def sleep(self, seconds: float | None = None) -> bool:
        """Wait ``seconds``, or by default until the next token's slot. Returns False if the
        server is shutting down.

        Token slots are on a fixed schedule (first call + k * pace), so the time spent writing
        and waking up late does not add up over a long reply.
        """
        now = time.monotonic()
        if seconds is None:
            self._next_slot = (self._next_slot or now) + self.pace
            deadline = self._next_slot
        else:
            deadline = now + seconds
        while not self._stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False
