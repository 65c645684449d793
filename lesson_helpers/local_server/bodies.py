"""Reading a request's body (Content-Length or chunked) and parsing it as JSON.

Every way a body can be wrong is a :class:`BadBodyError` with the HTTP status, message and
code to answer with; a client that hangs up in the middle gives None.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from .connections import Connection

__all__ = ["MAX_BODY", "BadBodyError", "parse_json", "read_body"]

MAX_BODY = 8 * 1024 * 1024
_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,12}")


class BadBodyError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _too_large() -> BadBodyError:
    return BadBodyError(
        413, f"Request body too large: at most {MAX_BODY} bytes.", "request_too_large"
    )


def _read_chunked(conn: Connection) -> bytes | None:
    """A ``Transfer-Encoding: chunked`` body (None if the client hung up in the middle)."""
    parts, total = [], 0
    while True:
        line = conn.readline(1024)
        if not line:
            return None
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
            raise BadBodyError(
                400, f"Malformed chunked body: bad chunk size line {line[:40]!r}.", "bad_chunk"
            )
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise _too_large()
        data = conn.read(size)
        if len(data) < size:
            return None
        parts.append(data)
        if conn.readline(3) not in (b"\r\n", b"\n"):
            raise BadBodyError(
                400, "Malformed chunked body: a chunk must end with CRLF.", "bad_chunk"
            )
    for _ in range(100):  # trailer lines, up to the blank line
        line = conn.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return b"".join(parts)
    raise BadBodyError(400, "Malformed chunked body: too many trailer lines.", "bad_chunk")


def read_body(conn: Connection, headers: Any) -> bytes | None:
    """The request body by Content-Length or chunked framing; None if the client hung up."""
    encodings = headers.get_all("Transfer-Encoding") or []
    lengths = headers.get_all("Content-Length") or []
    if encodings:
        if lengths:
            raise BadBodyError(
                400,
                "Send either Content-Length or Transfer-Encoding: chunked, not both.",
                "invalid_request",
            )
        if ",".join(encodings).strip().lower() != "chunked":
            raise BadBodyError(
                501,
                f"Transfer-Encoding {', '.join(encodings)!r} is not supported: "
                "send the body with Content-Length or Transfer-Encoding: chunked.",
                "unsupported_transfer_encoding",
            )
        return _read_chunked(conn)
    if not lengths:
        return b""
    if len(set(lengths)) > 1 or not _DIGITS.fullmatch(lengths[0].strip()):
        raise BadBodyError(400, "Invalid Content-Length.", "invalid_request")
    length = int(lengths[0])
    if length > MAX_BODY:
        raise _too_large()
    data = conn.read(length)
    return data if len(data) == length else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """JSON allows 1e999; Python reads it as inf, which no parameter can use."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {_shorten(text)} is too large")
    return value


def _bounded_int(text: str) -> int:
    """Python refuses integers of more than 4300 digits; say so without its advice."""
    digits, limit = len(text.lstrip("-")), sys.get_int_max_str_digits()  # 0: no limit
    if limit and digits > limit:
        raise ValueError(f"an integer of {digits} digits is too large")
    return int(text)


def _shorten(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "…"


def parse_json(raw: bytes) -> tuple[Any, str | None]:
    """(the parsed body, None) or (the body as text, what is wrong with it)."""
    try:
        body = json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
        return body, None
    except UnicodeDecodeError as exc:
        problem = f"Request body is not UTF-8 ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        problem = f"Request body is not valid JSON: {exc}"
    except RecursionError:
        problem = "Request body is not valid JSON: it is nested too deeply"
    except ValueError as exc:  # NaN, Infinity, 1e999, an integer of more than 4300 digits
        problem = f"Request body is not valid JSON: {str(exc).splitlines()[0]}"
    return raw.decode("utf-8", errors="replace"), problem + "."
