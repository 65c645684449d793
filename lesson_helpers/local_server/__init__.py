"""The local practice server: an OpenAI-compatible stand-in for SiliconFlow (stdlib only).

It never imports the client: it is a separate program that happens to live in the kit.
Besides the ordinary models it offers the fault lab (``fault-*`` models, see
:mod:`.scenarios`). Each :class:`LocalServer` has its own model table (``server.models``,
``server.register``), request log (``server.requests``) and routes (``add_route``).
"""

# Importing these registers the fault-* models and the /v1/responses and /v1/messages routes.
from . import api_faults, messages_api, responses_api, scenarios  # noqa: F401
from .exchange import ChunkBuilder, Exchange, Memory
from .models import MODELS, ModelSpec, ModelTable, register
from .routes import ROUTES, Request, Route, add_route
from .scenarios import SCENARIOS
from .server import DEFAULT_API_KEY, DEFAULT_PACE, LocalServer, RequestRecord
from .validation import Problem, check_chat_request

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
    "Problem",
    "Request",
    "RequestRecord",
    "Route",
    "add_route",
    "check_chat_request",
    "register",
    "scenarios",
]
