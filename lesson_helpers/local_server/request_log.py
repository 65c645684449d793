"""What a local server received: the newest requests, credentials masked (thread-safe)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REQUEST_LOG_SIZE", "RequestLog", "RequestRecord", "masked_headers"]

REQUEST_LOG_SIZE = 1000  # requests a server remembers (the oldest are forgotten first)


@dataclass(frozen=True)
class RequestRecord:
    """One request the server received (credentials masked)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON; the text when it is not JSON; None without a body
    model: str | None  # the body's "model", when it is a string
    time: float  # time.time() when the request had been read


_SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key"}


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with every credential replaced by ``***`` (an auth scheme is kept)."""
    out = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS and value:
            scheme, sep, _ = value.partition(" ")
            keep_scheme = sep and name.lower().endswith("authorization")
            value = f"{scheme} ***" if keep_scheme else "***"
        out[name] = value
    return out


class RequestLog:
    """The newest requests of one server, thread-safe."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=size)

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
