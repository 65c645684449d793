"""The models the local server offers, and how the ordinary ones stream their replies.

Every model is a :class:`ModelSpec`: an id, a one-line description (shown by
``GET /v1/models``) and a handler that writes the response through an
:class:`~lesson_helpers.local_server.exchange.Exchange`. Fault scenarios register more
models the same way (ids starting with ``fault-``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from .exchange import ChunkBuilder, Exchange
from .replies import prompt_tokens, reasoning_pieces, reply_pieces, tokenize
from .tools import chat_tool_calls, tool_answer

__all__ = [
    "MODELS",
    "ModelSpec",
    "ModelTable",
    "completion_body",
    "cut_at_stop",
    "register",
    "stop_sequences",
    "stream_reply",
]

Handler = Callable[[Exchange], None]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    description: str
    handler: Handler
    owned_by: str = "lesson-helpers"


MODELS: dict[str, ModelSpec] = {}  # the built-in table: scripted and fault-* models


def register(spec: ModelSpec) -> ModelSpec:
    """Add a built-in model (at import time). One server's own models: ``server.register``."""
    MODELS[spec.id] = spec
    return spec


class ModelTable(MutableMapping[str, ModelSpec]):
    """The models of one server: a copy of a table, changed only through this object.

    ``ModelTable()`` copies the built-in :data:`MODELS` and also finds a model that
    :func:`register` adds to it later (older code, e.g. the grader, registers while a server
    runs), unless this table removed that id. ``ModelTable(models)`` is exactly ``models``.
    """

    def __init__(self, models: Mapping[str, ModelSpec] | None = None) -> None:
        self._own: dict[str, ModelSpec] = dict(MODELS if models is None else models)
        self._follow_builtins = models is None
        self._removed: set[str] = set()

    def _late(self) -> Iterator[str]:
        """Built-in ids registered after this table was made (and not removed here)."""
        if self._follow_builtins:
            for model_id in list(MODELS):
                if model_id not in self._own and model_id not in self._removed:
                    yield model_id

    def __getitem__(self, model_id: str) -> ModelSpec:
        spec = self._own.get(model_id)
        if spec is not None:
            return spec
        if self._follow_builtins and model_id not in self._removed and model_id in MODELS:
            return MODELS[model_id]
        raise KeyError(model_id)

    def __setitem__(self, model_id: str, spec: ModelSpec) -> None:
        self._own[model_id] = spec
        self._removed.discard(model_id)

    def __delitem__(self, model_id: str) -> None:
        if model_id not in self:
            raise KeyError(model_id)
        self._own.pop(model_id, None)
        self._removed.add(model_id)

    def __iter__(self) -> Iterator[str]:
        yield from list(self._own)
        yield from self._late()

    def __len__(self) -> int:
        return len(self._own) + sum(1 for _ in self._late())

    def __repr__(self) -> str:
        return f"ModelTable({list(self)!r})"


@dataclass
class _Plan:
    """What each choice will say: reasoning pieces, content pieces, and why it stops."""

    reasoning: list[str]
    content: list[str]
    finish_reason: str


def stop_sequences(body: dict[str, Any]) -> list[str]:
    """The request's ``stop`` as a list of non-empty strings (validated before)."""
    stop = body.get("stop")
    items = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    return [s for s in items if isinstance(s, str) and s]


def cut_at_stop(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """The pieces up to the first stop sequence (not included; it may span pieces, and the
    piece it starts in is cut), and whether a stop sequence was found."""
    text = "".join(pieces)
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not found:
        return pieces, False
    end, kept, used = min(found), [], 0
    for piece in pieces:
        if used + len(piece) >= end:
            if end > used:
                kept.append(piece[: end - used])
            break
        kept.append(piece)
        used += len(piece)
    return kept, True


def _plans(ex: Exchange, reasoning: bool) -> list[_Plan]:
    n = int(ex.body.get("n") or 1)
    limit = ex.body.get("max_tokens") or ex.body.get("max_completion_tokens")
    stops = stop_sequences(ex.body)
    plans = []
    for i in range(n):
        think = reasoning_pieces(ex.messages) if reasoning else []
        say = tool_answer(ex) or reply_pieces(ex.messages)  # tools.py: after tool results
        if i:
            say = tokenize(f"（候选 {i + 1}）") + say
        say, _ = cut_at_stop(say, stops)  # a model stops as soon as it writes a stop sequence
        finish = "stop"
        if limit is not None and len(think) + len(say) > limit:
            think, say = think[:limit], say[: max(0, limit - len(think))]
            finish = "length"
        plans.append(_Plan(think, say, finish))
    return plans


def completion_body(ex: Exchange, plans: list[_Plan], style: str) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` response."""
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    builder.completion_tokens = sum(len(p.reasoning) + len(p.content) for p in plans)
    choices = []
    for index, plan in enumerate(plans):
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content)}
        if style == "siliconflow":
            message["reasoning_content"] = "".join(plan.reasoning) if plan.reasoning else None
        choices.append({"index": index, "message": message, "finish_reason": plan.finish_reason})
    return {
        "id": builder.id,
        "object": "chat.completion",
        "created": builder.created,
        "model": builder.model,
        "choices": choices,
        "system_fingerprint": "",
        "usage": builder.usage(),
    }


def _deltas(plan: _Plan, style: str) -> list[tuple[dict[str, Any], str | None, int]]:
    """(delta, finish_reason, tokens it adds) for every chunk of one choice, in order."""
    if style == "siliconflow":
        first = {"content": "", "reasoning_content": None, "role": "assistant"}
        out = [(first, None, 0)]
        out += [({"content": None, "reasoning_content": p}, None, 1) for p in plan.reasoning]
        out += [({"content": p, "reasoning_content": None}, None, 1) for p in plan.content]
        out.append(({"content": "", "reasoning_content": None}, plan.finish_reason, 0))
    else:  # openai
        out = [({"role": "assistant", "content": "", "refusal": None}, None, 0)]
        out += [({"content": p}, None, 1) for p in plan.content]
        out.append(({}, plan.finish_reason, 0))
    return out


def stream_reply(ex: Exchange, plans: list[_Plan], style: str) -> None:
    """Stream the planned reply as SSE, one chunk per token, at the server's pace."""
    include_usage = bool((ex.body.get("stream_options") or {}).get("include_usage"))
    if style == "siliconflow":
        usage_mode = "every"
    else:
        usage_mode = "null" if include_usage else "absent"
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages), usage_mode)
    per_choice = [_deltas(plan, style) for plan in plans]
    ex.start_stream()
    # n > 1: the choices' chunks take turns, each chunk carrying one choice.
    for step, items in enumerate(itertools.zip_longest(*per_choice)):
        for index, item in enumerate(items):
            if item is None:
                continue
            delta, finish_reason, tokens = item
            if step and tokens and not ex.sleep():
                ex.cut()
                return
            builder.completion_tokens += tokens
            ex.write(b"data: " + builder.chunk_bytes(delta, finish_reason, index) + b"\n\n")
    if include_usage:
        ex.send_event(builder.usage_chunk())
    ex.send_done()
    ex.end_stream()


def scripted(style: str = "siliconflow", reasoning: bool = False) -> Handler:
    """The handler of an ordinary model: ``style`` "siliconflow" or "openai" chunks."""

    def handle(ex: Exchange) -> None:
        if chat_tool_calls(ex, style, reasoning):  # tools.py: the model calls tools instead
            return
        plans = _plans(ex, reasoning)
        if ex.stream:
            stream_reply(ex, plans, style)
        else:
            ex.send_json(200, completion_body(ex, plans, style))

    return handle


for _spec in (
    ModelSpec(
        "Qwen/Qwen2.5-7B-Instruct",
        "对话模型（本地模拟，SiliconFlow 格式）：对“你好”的回答与作业示例流逐块一致。",
        scripted(),
    ),
    ModelSpec(
        "deepseek-ai/DeepSeek-R1",
        "推理模型（本地模拟，SiliconFlow 格式）：先流式输出 reasoning_content，再输出回答。",
        scripted(reasoning=True),
    ),
    ModelSpec("deepseek-chat", "对话模型（本地模拟，DeepSeek 的默认模型名）。", scripted()),
    ModelSpec(
        "deepseek-reasoner",
        "推理模型（本地模拟，DeepSeek 的推理模型名）：先输出 reasoning_content。",
        scripted(reasoning=True),
    ),
    ModelSpec(
        "gpt-4o-mini",
        "对话模型（本地模拟，OpenAI 格式）："
        "没有 reasoning_content；usage 只在 include_usage 时给出。",
        scripted(style="openai"),
    ),
):
    register(_spec)
