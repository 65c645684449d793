"""An OpenAI-compatible HTTP server on 127.0.0.1, built on the standard library only.

It speaks real HTTP/1.1 over real sockets (keep-alive, chunked streaming, one thread per
connection), so ``requests``, the official ``openai`` SDK and a browser all talk to it just
as they talk to SiliconFlow. Only the answers are scripted.

What a server answers is a table of routes, ``{(method, path): Route}``: the chat completions
route and the models list live here; other API modules add theirs with :func:`add_route`.
Each server has its own model table (``server.models``) and request log
(``server.requests``).
"""

from __future__ import annotations

import collections
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from .exchange import Exchange, Memory
from .models import ModelSpec, ModelTable

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PACE",
    "ROUTES",
    "LocalServer",
    "Request",
    "RequestRecord",
    "Route",
    "add_route",
]

log = logging.getLogger("lesson_helpers.local_server")

DEFAULT_API_KEY = "local-practice-key"  # not a secret: it only opens this local server
DEFAULT_PACE = 0.02  # seconds between streamed tokens
REQUEST_LOG_SIZE = 1000  # requests a server remembers (the oldest are forgotten first)
_MAX_BODY = 8 * 1024 * 1024
_ROLES = {"system", "user", "assistant", "tool", "developer"}


# -- requests and routes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """One HTTP request, as a route handler sees it."""

    method: str
    path: str  # without the query string and without a trailing slash
    query: str
    headers: Mapping[str, str]
    raw: bytes  # the body's bytes
    body: Any  # the body parsed as JSON (None when there is no body)
    params: Mapping[str, str]  # the ``{name}`` parts of the route's path
    models: ModelTable  # this server's models
    memory: Memory  # this server's counters (see Memory)


RouteHandler = Callable[[Request, Exchange], None]
# Writes an error in a route's own API shape: (exchange, status, message, code, param).
ErrorWriter = Callable[[Exchange, int, str, "str | None", "str | None"], None]


def openai_error(
    ex: Exchange, status: int, message: str, code: str | None, param: str | None
) -> None:
    """The default error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    ex.send_error(status, message, code, param=param)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # e.g. "/v1/chat/completions"; "{name}" matches a part (the last: the rest)
    handler: RouteHandler
    public: bool = False  # True: answered without the key (the health check)
    errors: ErrorWriter = openai_error  # how the server reports a bad request on this route
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {} if path == self.path else None
        found = self.pattern.fullmatch(path)
        return {k: unquote(v) for k, v in found.groupdict().items()} if found else None


def _compile(path: str) -> re.Pattern[str] | None:
    if "{" not in path:
        return None
    parts = re.split(r"\{(\w+)\}", path)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        else:  # a name: one path segment, or everything that is left if it comes last
            regex += (
                f"(?P<{part}>.+)" if i == len(parts) - 2 and not parts[-1] else f"(?P<{part}>[^/]+)"
            )
    return re.compile(regex)


def make_route(
    method: str,
    path: str,
    handler: RouteHandler,
    *,
    public: bool = False,
    errors: ErrorWriter = openai_error,
) -> Route:
    return Route(method.upper(), path.rstrip("/"), handler, public, errors, _compile(path))


ROUTES: dict[tuple[str, str], Route] = {}  # every server's routes (add more with add_route)


def add_route(
    method: str,
    path: str,
    handler: RouteHandler,
    *,
    public: bool = False,
    errors: ErrorWriter = openai_error,
) -> Route:
    """Serve ``method path`` with ``handler(request, exchange)`` on every local server.

    The server reads the body, checks the key (unless ``public``), parses JSON and logs the
    request before the handler runs; ``errors`` writes its errors in the route's API shape.
    """
    route = make_route(method, path, handler, public=public, errors=errors)
    ROUTES[(route.method, route.path)] = route
    return route


# -- the request log ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestRecord:
    """One request the server received (the key masked)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON; the text when it is not JSON; None without a body
    model: str | None  # the body's "model", when it is a string
    time: float  # time.time() when the request had been read


_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "proxy-authorization"}


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with every credential replaced by ``***`` (the scheme kept)."""
    out = {}
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS and value:
            scheme, sep, _ = value.partition(" ")
            value = f"{scheme} ***" if sep and name.lower().endswith("authorization") else "***"
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


# -- the built-in routes ----------------------------------------------------------------------
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


def chat_completions(request: Request, ex: Exchange) -> None:
    """``POST /v1/chat/completions``: check the request, then let the model answer."""
    problem = _validate(request.body)
    if problem:
        ex.send_error(400, problem, "invalid_request")
        return
    model = request.body["model"]
    spec = request.models.get(model)
    if spec is None:
        ex.send_error(
            404,
            f"The model `{model}` does not exist. GET /v1/models lists the models.",
            "model_not_found",
            param="model",
        )
        return
    spec.handler(ex)


def _model_entry(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "object": "model",
        "created": 1763350084,
        "owned_by": spec.owned_by,
        "description": spec.description,
    }


def list_models(request: Request, ex: Exchange) -> None:
    """``GET /v1/models``: every model of this server, with its one-line description."""
    data = [_model_entry(spec) for spec in request.models.values()]
    ex.send_json(200, {"object": "list", "data": data})


def health(request: Request, ex: Exchange) -> None:
    ex.send_json(200, {"status": "ok", "base_url": "/v1"})


for _route in (
    make_route("GET", "", health, public=True),
    make_route("GET", "/v1", health, public=True),
    make_route("GET", "/health", health, public=True),
    make_route("GET", "/v1/models", list_models),
    make_route("POST", "/v1/chat/completions", chat_completions),
):
    ROUTES[(_route.method, _route.path)] = _route


# -- HTTP -------------------------------------------------------------------------------------
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

    def _exchange(self, body: Any) -> Exchange:
        return Exchange(
            body if isinstance(body, dict) else {},
            self.wfile,
            self._send_head,
            self.server.pace,
            self.server.stopping,
            memory=self.server.memory,
            request_id=self.request_id,
            request_headers=self.headers,
        )

    def _authorized(self) -> bool:
        expected = self.server.api_key
        if expected is None:
            return True
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected):
            return True
        return False

    def _unauthorized_message(self) -> str:
        if self.headers.get("Authorization"):
            return "Incorrect API key provided."
        return "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length)

    def _find_route(self, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route for this method and path, its path parameters, and the methods the
        path allows (for a 405)."""
        routes = self.server.routes()
        exact = routes.get((self.command, path))
        if exact is not None and exact.pattern is None:
            return exact, {}, [exact.method]
        allowed: list[str] = []
        for route in routes.values():
            params = route.match(path)
            if params is None:
                continue
            if route.method == self.command:
                return route, params, [route.method]
            allowed.append(route.method)
        return None, {}, allowed

    # -- one request ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        path = path.rstrip("/")
        route, params, allowed = self._find_route(path)
        raw = self._read_body()
        write_error = route.errors if route is not None else openai_error
        if raw is None:
            write_error(self._exchange({}), 400, "Invalid Content-Length.", "invalid_request", None)
            self.close_connection = True
            return
        body: Any = None
        problem = None
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                problem = f"Request body is not valid JSON: {exc}."
                body = raw.decode("utf-8", errors="replace")
        self.server.log_request(self.command, path, self.headers, body)
        exchange = self._exchange(body)
        if route is None:
            if allowed:
                message = f"Method {self.command} is not allowed here."
                write_error(exchange, 405, message, "method_not_allowed", None)
            else:
                message = f"Unknown path {path!r}: try GET /v1/models."
                write_error(exchange, 404, message, "not_found", None)
            return
        if not route.public and not self._authorized():
            write_error(exchange, 401, self._unauthorized_message(), "invalid_api_key", None)
            return
        if problem is not None:
            write_error(exchange, 400, problem, "invalid_json", None)
            return
        request = Request(
            self.command,
            path,
            query,
            self.headers,
            raw,
            body,
            params,
            self.server.models,
            self.server.memory,
        )
        try:
            route.handler(request, exchange)
        except (BrokenPipeError, ConnectionResetError):
            exchange.close_connection = True  # the client went away mid-stream: fine
        if exchange.close_connection:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the stdlib's 5 resets connections when a class connects at once

    def __init__(
        self,
        port: int,
        api_key: str | None,
        pace: float,
        models: ModelTable,
        request_log_size: int,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api_key = api_key
        self.pace = pace
        self.models = models
        self.own_routes: dict[tuple[str, str], Route] = {}
        self.request_log = RequestLog(request_log_size)
        self.memory = Memory()  # per-server state for scenarios such as fault-429-retry-after
        self._stopping = threading.Event()
        self.stopping = self._stopping.is_set

    def routes(self) -> dict[tuple[str, str], Route]:
        """This server's own routes, then every server's (ROUTES)."""
        return {**self.own_routes, **{k: v for k, v in ROUTES.items() if k not in self.own_routes}}

    def log_request(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> None:
        model = body.get("model") if isinstance(body, dict) else None
        record = RequestRecord(
            method,
            path,
            masked_headers(headers),
            body,
            model if isinstance(model, str) else None,
            time.time(),
        )
        self.request_log.add(record)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def begin_stop(self) -> None:
        self._stopping.set()


class LocalServer:
    """The local practice server, running in a background thread.

    >>> with LocalServer() as server:          # doctest: +SKIP
    ...     print(server.base_url)              # http://127.0.0.1:PORT/v1

    ``models``: this server's model table (default: a copy of the built-in one, see
    :class:`~lesson_helpers.local_server.models.ModelTable`); change it with
    :meth:`register` and :meth:`unregister`. ``server.requests`` lists what it received.
    """

    def __init__(
        self,
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        pace: float = DEFAULT_PACE,
        *,
        models: Mapping[str, ModelSpec] | None = None,
        request_log_size: int = REQUEST_LOG_SIZE,
    ) -> None:
        self._server = _Server(port, api_key, pace, ModelTable(models), request_log_size)
        self.api_key = api_key
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    # -- models, routes, requests -----------------------------------------------------------
    @property
    def models(self) -> ModelTable:
        """This server's models, by id (changing it changes only this server)."""
        return self._server.models

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Offer one more model on this server only."""
        self._server.models[spec.id] = spec
        return spec

    def unregister(self, model_id: str) -> ModelSpec | None:
        """Stop offering ``model_id`` on this server; the removed spec, or None."""
        return self._server.models.pop(model_id, None)

    def add_route(
        self,
        method: str,
        path: str,
        handler: RouteHandler,
        *,
        public: bool = False,
        errors: ErrorWriter = openai_error,
    ) -> Route:
        """Serve one more route on this server only (see the module's :func:`add_route`)."""
        route = make_route(method, path, handler, public=public, errors=errors)
        self._server.own_routes[(route.method, route.path)] = route
        return route

    @property
    def routes(self) -> dict[tuple[str, str], Route]:
        return self._server.routes()

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests received so far, oldest first (a copy; the key masked)."""
        return self._server.request_log.snapshot()

    def clear_requests(self) -> None:
        self._server.request_log.clear()

    # -- pace, start, stop -------------------------------------------------------------------
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
