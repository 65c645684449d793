"""lesson_helpers: the small package the streaming-chat lessons stand on.

The data path, one module per arrow::

    .env --config--> request --client--> bytes --sse--> events
         --chunks--> message --display--> widget

``connect()`` is where every lesson starts: it reads `.env`, or starts the local practice
server when no key is configured.
"""

from .chunks import ChatResult, ChunkAssembler, ChunkError, assemble, completion_to_chunk
from .client import ChatClient, ChatStream
from .config import PROVIDERS, ConfigError, Settings, load_settings, mask_key
from .errors import LLMError
from .local_server import LocalServer
from .session import chat_client, connect, local_server
from .sse import MAX_EVENT_SIZE, ServerSentEvent, SSEError, SSEParser, iter_pieces, iter_sse

__all__ = [
    "MAX_EVENT_SIZE",
    "PROVIDERS",
    "ChatClient",
    "ChatResult",
    "ChatStream",
    "ChunkAssembler",
    "ChunkError",
    "ConfigError",
    "LLMError",
    "LocalServer",
    "SSEError",
    "SSEParser",
    "ServerSentEvent",
    "Settings",
    "assemble",
    "chat_client",
    "completion_to_chunk",
    "connect",
    "iter_pieces",
    "iter_sse",
    "load_settings",
    "local_server",
    "mask_key",
]
