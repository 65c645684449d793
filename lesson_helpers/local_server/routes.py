"""What the local server answers: a table of routes, and the built-in OpenAI endpoints.

``ROUTES`` maps ``(method, path)`` to a :class:`Route`. The server reads a request, checks the
key (unless the route is public), parses the JSON body and logs the request; then it calls
the route's handler with a :class:`Request` and an :class:`~.exchange.Exchange`. Other API
modules add their endpoints with :func:`add_route`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .exchange import Exchange, Memory
from .models import ModelSpec, ModelTable
from .validation import check_chat_request

__all__ = [
    "ROUTES",
    "ErrorWriter",
    "Request",
    "Route",
    "RouteHandler",
    "add_route",
    "make_route",
    "openai_error",
]


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
    err_type = "server_error" if status >= 500 else "invalid_request_error"
    ex.send_error(status, message, code, err_type=err_type, param=param)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # e.g. "/v1/chat/completions"; "{name}" matches a part (the last: the rest)
    handler: RouteHandler
    public: bool = False  # True: answered without the key (the health check)
    errors: ErrorWriter = openai_error  # how the server reports a bad request on this route
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if ``path`` is this route's, else None."""
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
        elif i == len(parts) - 2 and not parts[-1]:  # the last part: the rest of the path
            regex += f"(?P<{part}>.+)"
        else:
            regex += f"(?P<{part}>[^/]+)"
    return re.compile(regex)


def make_route(
    method: str,
    path: str,
    handler: RouteHandler,
    *,
    public: bool = False,
    errors: ErrorWriter = openai_error,
) -> Route:
    path = path.rstrip("/")
    return Route(method.upper(), path, handler, public, errors, _compile(path))


ROUTES: dict[tuple[str, str], Route] = {}  # every server's routes


def add_route(
    method: str,
    path: str,
    handler: RouteHandler,
    *,
    public: bool = False,
    errors: ErrorWriter = openai_error,
) -> Route:
    """Serve ``method path`` with ``handler(request, exchange)`` on every local server.

    The key guards the route unless ``public``; ``errors`` writes the server's own errors
    for it (no key, invalid JSON, ...) in that API's shape.
    """
    route = make_route(method, path, handler, public=public, errors=errors)
    ROUTES[(route.method, route.path)] = route
    return route


def find_route(
    routes: Mapping[tuple[str, str], Route], method: str, path: str
) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for ``method path``, its path parameters, and the methods the path allows."""
    exact = routes.get((method, path))
    if exact is not None and exact.pattern is None:
        return exact, {}, [method]
    found: tuple[Route | None, dict[str, str]] = (None, {})
    allowed: list[str] = []
    for route in routes.values():
        params = route.match(path)
        if params is None:
            continue
        allowed.append(route.method)
        if route.method == method and found[0] is None:
            found = (route, params)
    return found[0], found[1], allowed


# -- the built-in endpoints -------------------------------------------------------------------
def unknown_model(ex: Exchange, model: str) -> None:
    """The 404 for a model this server does not have (OpenAI's shape and code)."""
    ex.send_error(
        404,
        f"The model `{model}` does not exist. GET /v1/models lists the models.",
        "model_not_found",
        param="model",
    )


def chat_completions(request: Request, ex: Exchange) -> None:
    """``POST /v1/chat/completions``: check the request, then let the model answer."""
    problem = check_chat_request(request.body)
    if problem:
        ex.send_error(400, problem.message, problem.code, param=problem.param)
        return
    model = request.body["model"]
    spec = request.models.get(model)
    if spec is None:
        unknown_model(ex, model)
        return
    spec.handler(ex)


def model_entry(spec: ModelSpec) -> dict[str, Any]:
    """A model as ``GET /v1/models`` lists it."""
    return {
        "id": spec.id,
        "object": "model",
        "created": 1763350084,
        "owned_by": spec.owned_by,
        "description": spec.description,
    }


def list_models(request: Request, ex: Exchange) -> None:
    """``GET /v1/models``: every model of this server, with its one-line description."""
    data = [model_entry(spec) for spec in request.models.values()]
    ex.send_json(200, {"object": "list", "data": data})


def get_model(request: Request, ex: Exchange) -> None:
    """``GET /v1/models/{model}`` (an id may contain ``/``: Qwen/Qwen2.5-7B-Instruct)."""
    model = request.params["model"]
    spec = request.models.get(model)
    if spec is None:
        unknown_model(ex, model)
        return
    ex.send_json(200, model_entry(spec))


def health(request: Request, ex: Exchange) -> None:
    ex.send_json(200, {"status": "ok", "base_url": "/v1"})


for _route in (
    make_route("GET", "", health, public=True),
    make_route("GET", "/v1", health, public=True),
    make_route("GET", "/health", health, public=True),
    make_route("GET", "/v1/models", list_models),
    make_route("GET", "/v1/models/{model}", get_model),
    make_route("POST", "/v1/chat/completions", chat_completions),
):
    ROUTES[(_route.method, _route.path)] = _route
