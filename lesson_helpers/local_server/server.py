"""An OpenAI-compatible HTTP server on 127.0.0.1, built on the standard library only.

It speaks real HTTP/1.1 over real sockets (keep-alive, chunked streaming, one thread per
connection), so ``requests``, the official ``openai`` SDK and a browser all talk to it just
as they talk to SiliconFlow. Only the answers are scripted.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .exchange import Exchange, Memory
from .models import MODELS

__all__ = ["DEFAULT_API_KEY", "DEFAULT_PACE", "LocalServer"]

log = logging.getLogger("lesson_helpers.local_server")

DEFAULT_API_KEY = "local-practice-key"  # not a secret: it only opens this local server
DEFAULT_PACE = 0.02  # seconds between streamed tokens
_MAX_BODY = 8 * 1024 * 1024
_ROLES = {"system", "user", "assistant", "tool", "developer"}


def _validate(body: Any) -> str | None:
    """The problem with a chat request body, or None when it is fine."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "Missing required field 'model' (a string, e.g. 'Qwen/Qwen2.5-7B-Instruct')."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Field 'messages' must be a non-empty list of {'role': ..., 'content': ...}."
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return f"messages[{i}] needs a 'role' of {sorted(_ROLES)}."
        content = message.get("content")
        if content is None and message.get("role") == "assistant":
            continue
        if not isinstance(content, str | list):
            return f"messages[{i}].content must be a string."
    if "stream" in body and not isinstance(body["stream"], bool):
        return "Field 'stream' must be true or false."
    for name, low, high in (("max_tokens", 1, 1_000_000), ("n", 1, 8)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high
        ):
            return f"Field '{name}' must be an integer from {low} to {high}."
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lesson-helpers-local/1.0"
    disable_nagle_algorithm = True  # small SSE writes leave at once, as from a real provider
    server: _Server
    request_id = ""  # a fresh one per request, sent back as X-Request-Id

    def parse_request(self) -> bool:
        self.request_id = uuid.uuid4().hex
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    # -- helpers --------------------------------------------------------------------------
    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.request_id:
            self.send_header("X-Request-Id", self.request_id)
        self.end_headers()

    def _exchange(self, body: dict[str, Any]) -> Exchange:
        return Exchange(
            body,
            self.wfile,
            self._send_head,
            self.server.pace,
            self.server.stopping,
            memory=self.server.memory,
            request_id=self.request_id,
            request_headers=self.headers,
        )

    def _error(self, status: int, message: str, code: str | None, **extra: Any) -> None:
        self._exchange({}).send_error(status, message, code, **extra)

    def _authorized(self) -> bool:
        expected = self.server.api_key
        if expected is None:
            return True
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected):
            return True
        message = (
            "Incorrect API key provided."
            if auth
            else "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
        self._error(401, message, "invalid_api_key")
        return False

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            self._error(400, "Invalid Content-Length.", "invalid_request")
            return None
        return self.rfile.read(length)

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("", "/v1", "/health"):
            self._exchange({}).send_json(200, {"status": "ok", "base_url": "/v1"})
            return
        if not self._authorized():
            return
        if path == "/v1/models":
            data = [
                {
                    "id": spec.id,
                    "object": "model",
                    "created": 1763350084,
                    "owned_by": spec.owned_by,
                    "description": spec.description,
                }
                for spec in MODELS.values()
            ]
            self._exchange({}).send_json(200, {"object": "list", "data": data})
            return
        self._error(404, f"Unknown path {path!r}: try GET /v1/models.", "not_found")

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        raw = self._read_body()
        if raw is None:
            return
        if path != "/v1/chat/completions":
            self._error(404, f"Unknown path {path!r}: use POST /v1/chat/completions.", "not_found")
            return
        if not self._authorized():
            return
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, f"Request body is not valid JSON: {exc}.", "invalid_json")
            return
        problem = _validate(body)
        if problem:
            self._error(400, problem, "invalid_request")
            return
        spec = MODELS.get(body["model"])
        if spec is None:
            self._error(
                404,
                f"The model `{body['model']}` does not exist. GET /v1/models lists the models.",
                "model_not_found",
                param="model",
            )
            return
        exchange = self._exchange(body)
        try:
            spec.handler(exchange)
        except (BrokenPipeError, ConnectionResetError):
            exchange.close_connection = True  # the client went away mid-stream: fine
        if exchange.close_connection:
            self.close_connection = True

    def do_PUT(self) -> None:
        self._error(405, f"Method {self.command} is not allowed here.", "method_not_allowed")

    do_DELETE = do_PATCH = do_PUT  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the stdlib's 5 resets connections when a class connects at once

    def __init__(self, port: int, api_key: str | None, pace: float) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api_key = api_key
        self.pace = pace
        self.memory = Memory()  # per-server state for scenarios such as fault-429-retry-after
        self._stopping = threading.Event()
        self.stopping = self._stopping.is_set

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def begin_stop(self) -> None:
        self._stopping.set()


class LocalServer:
    """The local practice server, running in a background thread.

    >>> with LocalServer() as server:          # doctest: +SKIP
    ...     print(server.base_url)              # http://127.0.0.1:PORT/v1
    """

    def __init__(
        self,
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        pace: float = DEFAULT_PACE,
    ) -> None:
        self._server = _Server(port, api_key, pace)
        self.api_key = api_key
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    @property
    def pace(self) -> float:
        return self._server.pace

    @pace.setter
    def pace(self, seconds: float) -> None:
        self._server.pace = seconds

    def start(self) -> LocalServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="lesson-helpers-server", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the current thread until interrupted (used by ``python -m ... serve``)."""
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.begin_stop()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer(base_url={self.base_url!r})"
