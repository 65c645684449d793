"""The local practice server: an OpenAI-compatible stand-in for SiliconFlow (stdlib only).

It never imports the client: it is a separate program that happens to live in the kit.
"""

from .exchange import ChunkBuilder, Exchange
from .models import MODELS, ModelSpec, register
from .server import DEFAULT_API_KEY, DEFAULT_PACE, LocalServer

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_PACE",
    "MODELS",
    "ChunkBuilder",
    "Exchange",
    "LocalServer",
    "ModelSpec",
    "register",
]
