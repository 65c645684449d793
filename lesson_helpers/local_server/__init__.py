"""The local practice server: an OpenAI-compatible stand-in for SiliconFlow (stdlib only).

It never imports the client: it is a separate program that happens to live in the kit.
Besides the ordinary models it offers the fault lab (``fault-*`` models, see
:mod:`.scenarios`). Each :class:`LocalServer` has its own model table (``server.models``,
``server.register``), request log (``server.requests``) and routes (``add_route``).
"""

from . import scenarios  # registers the fault-* models
from .exchange import ChunkBuilder, Exchange, Memory
from .models import MODELS, ModelSpec, ModelTable, register
from .scenarios import SCENARIOS
from .server import (
    DEFAULT_API_KEY,
    DEFAULT_PACE,
    ROUTES,
    LocalServer,
    Request,
    RequestRecord,
    Route,
    add_route,
)

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PACE",
    "MODELS",
    "ROUTES",
    "SCENARIOS",
    "ChunkBuilder",
    "Exchange",
    "LocalServer",
    "Memory",
    "ModelSpec",
    "ModelTable",
    "Request",
    "RequestRecord",
    "Route",
    "add_route",
    "register",
    "scenarios",
]
