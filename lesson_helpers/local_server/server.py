"""An OpenAI-compatible HTTP server on 127.0.0.1, built on the standard library only.

It speaks real HTTP/1.1 over real sockets (keep-alive, chunked bodies both ways, CORS), so
``requests``, the official ``openai`` SDK and a web page all talk to it just as they talk to
SiliconFlow. Only the answers are scripted.

Every request it can read gets an answer: a malformed one gets a 4xx JSON error in OpenAI's
shape that names the parameter. The parts:

* :mod:`.connections` -- sockets: idle and read timeouts, one loop for waiting connections
  and for writing paced streams, a thread (:mod:`.workers`) only while a request is answered;
* :mod:`.bodies` -- reading a body (Content-Length or chunked) and parsing its JSON;
* :mod:`.routes` -- what is answered (``add_route``); :mod:`.validation` -- chat requests;
* :mod:`.request_log` -- ``server.requests``; this module -- HTTP itself and ``LocalServer``.
"""

from __future__ import annotations

import errno
import hmac
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from .bodies import BadBodyError, parse_json, read_body
from .connections import (
    CLOSE,
    HANDED_OVER,
    KEEP,
    Connection,
    ConnectionLoop,
    RequestTimeoutError,
)
from .exchange import Exchange, Memory, Timetable, encode_json, random_id
from .models import ModelSpec, ModelTable
from .request_log import REQUEST_LOG_SIZE, RequestLog, RequestRecord, masked_headers
from .routes import (
    ROUTES,
    ErrorWriter,
    Request,
    Route,
    RouteHandler,
    add_route,
    find_route,
    make_route,
    openai_error,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_PACE",
    "DEFAULT_READ_TIMEOUT",
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
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds a connection may stay silent before a request
DEFAULT_READ_TIMEOUT = 30.0  # seconds a request may take to arrive, head and body
_TOKEN_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
# A web page may read every response (sent when the request has an Origin, as a browser's
# always has); the key still guards every endpoint.
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "X-Request-Id, Retry-After",
}
_PREFLIGHT_HEADERS = "Authorization, Content-Type, X-Api-Key, Anthropic-Version, OpenAI-Beta"
_STDLIB_CODES = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large"}


# -- HTTP ---------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """One request on a :class:`~.connections.Connection` whose head has arrived."""

    protocol_version = "HTTP/1.1"
    server_version = "lesson-helpers-local/1.0"
    server: _Server  # type: ignore[assignment]
    request: Connection  # type: ignore[assignment]
    request_id = ""  # a fresh one per request, sent back as X-Request-Id
    _hanging_up = False  # True when this server decided to close after the response

    def _hang_up(self) -> None:
        self.close_connection = self._hanging_up = True

    def setup(self) -> None:
        self.connection = self.request.sock
        self.rfile = self.request  # type: ignore[assignment]
        self.wfile = self.request  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        if self._last_exchange is not None:  # what the loop is still to write, and when
            self.timetable = self._last_exchange.take_timetable()

    def finish(self) -> None:
        """The connection outlives the request (keep-alive): nothing to close here."""

    def parse_request(self) -> bool:
        self.request_id = random_id()
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def _http11(self) -> bool:
        return self.request_version not in ("HTTP/0.9", "HTTP/1.0")

    # -- writing ----------------------------------------------------------------------------
    def _origin(self) -> str:
        """The request's Origin header (a web page's request has one), or ""."""
        headers = getattr(self, "headers", None)  # not there when the head was unreadable
        return headers.get("Origin", "") if headers is not None else ""

    def _render_head(self, status: int, headers: dict[str, str]) -> bytes:
        """The status line and headers of a response, as bytes (sent by the Exchange)."""
        self.log_request(status)
        phrase = self.responses.get(status, ("",))[0]
        head = {
            "Server": self.version_string(),
            "Date": self.date_time_string(),
            **(_CORS if self._origin() else {}),
            **headers,
        }
        if self._hanging_up and not any(k.lower() == "connection" for k in head):
            head["Connection"] = "close"  # tell the client: no next request on this one
        if self.request_id:
            head["X-Request-Id"] = self.request_id
        lines = [f"{self.protocol_version} {status} {phrase}"]
        for name, value in head.items():
            lines.append(f"{name}: {value}")
            if name.lower() == "connection":  # as send_header does
                if value.lower() == "close":
                    self.close_connection = True
                elif value.lower() == "keep-alive":
                    self.close_connection = False
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.wfile.write(self._render_head(status, headers))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own errors (bad request line, too long, unknown method),
        as OpenAI-shaped JSON like every other error of this server."""
        short, _ = self.responses.get(code, ("Error", ""))
        text = (message or short).rstrip(".") + "."
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # the request line was unreadable: answer
            self.request_version = "HTTP/1.1"  # with a status line and headers all the same
        body = encode_json(
            {
                "error": {
                    "message": text,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": _STDLIB_CODES.get(code, "not_implemented" if code == 501 else None),
                }
            }
        )
        self.send_response(code, short)
        headers = {
            **(_CORS if self._origin() else {}),
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _exchange(self, body: Any, head_only: bool = False) -> Exchange:
        self._last_exchange = Exchange(
            body if isinstance(body, dict) else {},
            self.wfile,  # type: ignore[arg-type]
            self._send_head,
            self.server.pace,
            self.server.stopping,
            memory=self.server.memory,
            request_id=self.request_id,
            request_headers=self.headers,
            chunked_allowed=self._http11,
            render_head=self._render_head,
            deliver=self._deliver_partly,
            head_only=head_only,
        )
        return self._last_exchange

    def _deliver_partly(self, timetable: Timetable) -> bool:
        return self.server.loop.deliver(self.request, timetable, None)

    # -- the key ----------------------------------------------------------------------------
    def _authorized(self) -> bool:
        expected = self.server.api_key
        if expected is None:
            return True
        wanted = expected.encode()
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        # Header values arrive as latin-1 text: compare the bytes that were sent.
        offered = [token.strip()] if scheme.lower() == "bearer" else []
        offered.append(self.headers.get("X-Api-Key", ""))
        return any(
            hmac.compare_digest(key.encode("latin-1", errors="replace"), wanted)
            for key in offered
            if key
        )

    def _unauthorized_message(self) -> str:
        if self.headers.get("Authorization") or self.headers.get("X-Api-Key"):
            return "Incorrect API key provided."
        return "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."

    # -- one request ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        target, _, query = self.path.partition("?")
        path = target.rstrip("/")
        method = "GET" if self.command == "HEAD" else self.command
        route, params, allowed = find_route(self.server.routes(), method, path)
        write_error = route.errors if route is not None else openai_error
        exchange = self._exchange({}, head_only=self.command == "HEAD")
        try:
            raw = read_body(self.request, self.headers)
        except BadBodyError as bad:
            self._hang_up()  # the rest of the body cannot be told from what follows
            write_error(exchange, bad.status, bad.message, bad.code, None)
            return
        except RequestTimeoutError:
            self._hang_up()
            message = "The request body did not arrive in time: the server closed the connection."
            write_error(exchange, 408, message, "request_timeout", None)
            return
        if raw is None:  # the client hung up in the middle of its body
            self.close_connection = True
            return
        self.request.deadline = None  # the whole request is in
        body, problem = parse_json(raw) if raw else (None, None)
        self.server.log_request(self.command, path, self.headers, body)
        exchange = self._exchange(body, head_only=self.command == "HEAD")
        if self.command == "OPTIONS":
            self._preflight(exchange, path, allowed)
            return
        if route is None:
            if allowed:
                message = f"Method {self.command} is not allowed on {path!r}."
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
        self._run(route, request, exchange)

    timetable: Timetable | None = None  # the rest of the response, for the loop to write
    _last_exchange: Exchange | None = None

    def _run(self, route: Route, request: Request, exchange: Exchange) -> None:
        try:
            route.handler(request, exchange)
        except OSError as exc:  # the client went away or stopped reading: nothing to say
            if not isinstance(exc, ConnectionError | TimeoutError) and exc.errno not in (
                errno.EPIPE,
                errno.ECONNRESET,
                errno.EBADF,
                errno.ENOTCONN,
            ):
                log.debug("writing to %s failed", self.address_string(), exc_info=True)
            exchange.close_connection = True
        except Exception as exc:  # a bug in a handler: still an answer, never a dropped socket
            log.debug("the handler of %s %s failed", request.method, request.path, exc_info=True)
            if not exchange.head_sent:
                message = f"The local server failed on this request ({type(exc).__name__})."
                route.errors(exchange, 500, message, "internal_error", None)
            exchange.close_connection = True
        if exchange.close_connection:
            self.close_connection = True

    def _preflight(self, exchange: Exchange, path: str, allowed: list[str]) -> None:
        """A CORS preflight: which methods and headers a web page may use (no key needed)."""
        if not allowed:
            message = f"Unknown path {path!r}: try GET /v1/models."
            openai_error(exchange, 404, message, "not_found", None)
            return
        asked = self.headers.get("Access-Control-Request-Headers", "").strip()
        methods = ", ".join(dict.fromkeys([*allowed, "OPTIONS"]))
        headers = {
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": asked
            if _TOKEN_LIST.fullmatch(asked)
            else _PREFLIGHT_HEADERS,
            "Access-Control-Max-Age": "600",
            "Allow": methods,
        }
        self._send_head(204, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815


class _Server:
    """A server's settings and state, shared by its requests."""

    def __init__(
        self,
        port: int,
        api_key: str | None,
        pace: float,
        models: ModelTable,
        request_log_size: int,
        idle_timeout: float,
        read_timeout: float,
    ) -> None:
        self.loop = ConnectionLoop(
            ("127.0.0.1", port),
            self._answer,
            idle_timeout=idle_timeout,
            read_timeout=read_timeout,
        )
        self.server_address = self.loop.server_address
        self.api_key = api_key
        self.pace = pace
        self.models = models
        self.own_routes: dict[tuple[str, str], Route] = {}
        self.request_log = RequestLog(request_log_size)
        self.memory = Memory()  # per-server state for scenarios such as fault-429-retry-after
        self._stopping = threading.Event()
        self.stopping = self._stopping.is_set

    def _answer(self, connection: Connection) -> str:
        """Answer one request: KEEP or CLOSE the connection, or HANDED_OVER to the loop."""
        handler = _Handler(connection, connection.address, self)  # type: ignore[arg-type]
        outcome = CLOSE if handler.close_connection else KEEP
        if handler.timetable is None:
            return outcome
        self.loop.deliver(connection, handler.timetable, outcome)
        return HANDED_OVER

    def routes(self) -> dict[tuple[str, str], Route]:
        """This server's own routes, then every server's (ROUTES)."""
        return {**ROUTES, **self.own_routes}

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

    def begin_stop(self) -> None:
        self._stopping.set()


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return float(value)


class LocalServer:
    """The local practice server, running in a background thread.

    >>> with LocalServer() as server:          # doctest: +SKIP
    ...     print(server.base_url)              # http://127.0.0.1:PORT/v1

    ``models``: this server's model table (default: a copy of the built-in one, see
    :class:`~lesson_helpers.local_server.models.ModelTable`); change it with
    :meth:`register` and :meth:`unregister`. ``server.requests`` lists what it received.
    ``idle_timeout`` / ``read_timeout``: see :mod:`.connections`.

    A port outside 0-65535 raises OSError (EINVAL), like a port that is taken; a pace or
    timeout that is not a finite number of seconds >= 0 raises ValueError.
    """

    def __init__(
        self,
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        pace: float = DEFAULT_PACE,
        *,
        models: Mapping[str, ModelSpec] | None = None,
        request_log_size: int = REQUEST_LOG_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise OSError(
                errno.EINVAL, f"the port must be an integer from 0 to 65535, not {port!r}"
            )
        self._server = _Server(
            port,
            api_key,
            _seconds("pace", pace),
            ModelTable(models),
            request_log_size,
            _seconds("idle_timeout", idle_timeout),
            _seconds("read_timeout", read_timeout),
        )
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
        """Serve one more route on this server only (see :func:`.routes.add_route`)."""
        route = make_route(method, path, handler, public=public, errors=errors)
        self._server.own_routes[(route.method, route.path)] = route
        return route

    @property
    def routes(self) -> dict[tuple[str, str], Route]:
        return self._server.routes()

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests received so far, oldest first (a copy; credentials masked)."""
        return self._server.request_log.snapshot()

    def clear_requests(self) -> None:
        self._server.request_log.clear()

    # -- pace, start, stop -------------------------------------------------------------------
    @property
    def pace(self) -> float:
        return self._server.pace

    @pace.setter
    def pace(self, seconds: float) -> None:
        self._server.pace = _seconds("pace", seconds)

    def start(self) -> LocalServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.loop.serve_forever, name="lesson-helpers-server", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the current thread until interrupted (used by ``python -m ... serve``)."""
        try:
            self._server.loop.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.begin_stop()
        self._server.loop.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._server.loop.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer(base_url={self.base_url!r})"
