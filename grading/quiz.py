"""What the grader asks, and models whose answers only a real streaming client can show.

Nothing a grading run uses is fixed: the questions, the model names and the wrong keys are
random, and the answers contain a secret drawn per question. The grader's models (registered
on its own :class:`~lesson_helpers.local_server.LocalServer` only) answer a question with the
local server's reply to that question's *secret* stand-in, through one of the server's wire
formats -- the normal stream or a fault (``fault-split-utf8``, ``fault-crlf``, ...). So an
``app.py`` that recognises the grading run still cannot know what to print: it has to send
the request and read the stream.

The expected text of a check is what the kit's own SSE reader receives from the same model
for the same question (:func:`reference_reply`).
"""

from __future__ import annotations

import contextlib
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests

from lesson_helpers.local_server import MODELS, Exchange, LocalServer, ModelSpec
from lesson_helpers.sse import iter_sse

__all__ = [
    "GraderModel",
    "Reply",
    "is_grader_model",
    "random_key",
    "random_model_name",
    "random_question",
    "reference_reply",
]

_rng = random.SystemRandom()  # unpredictable: nothing a student's program can reproduce

# Characters that trigger none of the local server's topic rules (流式, token, 密钥, 你好, ...).
_CHARS = "山水云雨风花草木石月星光春夏秋冬红黄蓝绿白桥船灯窗门书笔纸茶米鱼鸟马牛羊竹松梅兰菊"
_EMOJI = "🌱🌊🍵🐟🌙🎐"  # four bytes in UTF-8: the hardest case for a split read
_ORGS = ("Qwen", "deepseek-ai", "THUDM", "internlm", "01-ai", "meta-llama", "mistralai")
_FAMILIES = ("Chat", "Instruct", "Lite", "Pro", "Air", "Flash", "Turbo")
WIRE = {  # the wire format of each kind of grader model: which of the server's models it copies
    "normal": "Qwen/Qwen2.5-7B-Instruct",
    "cut": "fault-cut-mid-stream",
    "split-utf8": "fault-split-utf8",
    "crlf": "fault-crlf",
    "close-delimited": "fault-close-delimited",
}


def _word(length: int) -> str:
    return "".join(_rng.choice(_CHARS) for _ in range(length))


def random_question() -> str:
    """A question no program can expect: e.g. ``雨竹桥 4821 号的灯？``."""
    return f"{_word(3)} {_rng.randrange(1000, 9999)} 号的{_word(2)}？"


def _secret() -> str:
    return f"{_word(4)}{_rng.choice(_EMOJI)}{_rng.randrange(10, 99)}{_word(3)}"


def random_model_name() -> str:
    """A model id like ``THUDM/THUDM4-32B-Chat-1a2b3c``: never the same twice."""
    org = _rng.choice(_ORGS)
    size = f"{_rng.randrange(2, 9)}-{_rng.randrange(3, 72)}B"
    return f"{org}/{org.split('-')[0]}{size}-{_rng.choice(_FAMILIES)}-{secrets.token_hex(3)}"


def random_key() -> str:
    """A wrong key for this run only (not shaped like a real one)."""
    return f"wrong-key-{secrets.token_hex(12)}"


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    return ""


_ids: set[str] = set()  # every grader model of this run


def is_grader_model(model_id: str | None) -> bool:
    return model_id in _ids


@dataclass
class GraderModel:
    """A model with a random name that answers each question with a secret reply."""

    wire: str  # a key of WIRE
    id: str = field(default_factory=random_model_name)
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _ids.add(self.id)

    def spec(self) -> ModelSpec:
        base = MODELS[WIRE[self.wire]]
        return ModelSpec(self.id, "对话模型。", self._handler(base.handler))

    def _handler(self, base):
        def handle(exchange: Exchange) -> None:
            if not exchange.stream:
                exchange.send_error(
                    400,
                    'This model only streams: send "stream": true.',
                    "invalid_request",
                    param="stream",
                )
                return
            question = _last_user_text(exchange.messages)
            secret = self._secrets.setdefault(question, _secret())
            exchange.messages = [{"role": "user", "content": secret}]
            base(exchange)

        return handle

    @contextlib.contextmanager
    def on(self, *servers: LocalServer) -> Iterator[GraderModel]:
        """Offer this model on ``servers`` (only) while the block runs."""
        spec = self.spec()
        for server in servers:
            server.register(spec)
        try:
            yield self
        finally:
            for server in servers:
                server.unregister(self.id)


@dataclass(frozen=True)
class Reply:
    text: str
    complete: bool  # ended with data: [DONE]


def reference_reply(server: LocalServer, model: str, messages: list[dict]) -> Reply:
    """What the kit's own streaming reader gets for ``messages`` (the expected answer)."""
    session = requests.Session()
    session.trust_env = False  # the server is on this machine: no proxy, no .netrc
    response = session.post(
        f"{server.base_url}/chat/completions",
        json={"model": model, "messages": messages, "stream": True},
        headers={"Authorization": f"Bearer {server.api_key}"},
        stream=True,
        timeout=10,
    )
    text: list[str] = []
    try:
        for event in iter_sse(response):
            if event.data == "[DONE]":
                return Reply("".join(text), True)
            for choice in event.json().get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
    except Exception:  # the cut of fault-cut-mid-stream: what it sent before is the answer
        pass
    finally:
        response.close()
        session.close()
    return Reply("".join(text), False)
