"""The local practice server: an OpenAI-compatible stand-in for SiliconFlow (stdlib only).

It never imports the client: it is a separate program that happens to live in the kit.
Besides the ordinary models it offers the fault lab (``fault-*`` models, see
:mod:`.scenarios`).
"""

from . import scenarios  # registers the fault-* models
from .exchange import ChunkBuilder, Exchange, Memory
from .models import MODELS, ModelSpec, register
from .scenarios import SCENARIOS
from .server import DEFAULT_API_KEY, DEFAULT_PACE, LocalServer

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PACE",
    "MODELS",
    "SCENARIOS",
    "ChunkBuilder",
    "Exchange",
    "LocalServer",
    "Memory",
    "ModelSpec",
    "register",
    "scenarios",
]
