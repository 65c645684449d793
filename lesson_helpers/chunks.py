"""Streamed ``chat.completion.chunk`` objects, put back together by hand.

With ``stream=True`` an OpenAI-compatible server sends one chunk per SSE ``data:`` line
(until ``data: [DONE]``); each chunk holds a *delta* per choice. The merge rules:

* ``role`` comes in the first delta only; ``finish_reason``: the last non-null one wins;
* ``content`` / ``reasoning_content`` pieces are concatenated; missing, null and "" all
  mean "nothing new" (SiliconFlow sends ``"reasoning_content": null`` every time);
* tool calls come as fragments keyed by ``index``; names and arguments are concatenated;
* choices (``n > 1``) are told apart by ``choices[i].index`` and may come interleaved;
* ``usage``: the latest non-null one. SiliconFlow sends it in every chunk, OpenAI's
  ``include_usage`` in a last chunk with ``choices: []``;
* ``id``, ``model``, ``created``, ``system_fingerprint``: the first non-empty value.

Malformed input raises :class:`ChunkError` (a ``ValueError``), never anything else.
It imports nothing from the rest of the kit, so it can be read on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class ChunkError(ValueError):
    """A chunk that cannot be merged: a wrong shape, or an error sent by the provider."""


@dataclass
class ToolCall:
    """One tool call requested by the model."""

    index: int
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""  # argument fragments concatenated (a JSON string when complete)


@dataclass
class Choice:
    """One complete (or, while streaming, partial) answer."""

    index: int
    role: str | None = None
    content: str = ""
    reasoning_content: str = ""
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)  # ordered by index

    def to_message(self) -> dict:
        """This answer as a chat message for the history; never with ``reasoning_content``."""
        message: dict = {"role": self.role or "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": c.type, "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


@dataclass
class ChoiceDelta:
    """What one chunk added to one choice (for live display)."""

    index: int
    content: str = ""
    reasoning_content: str = ""
    finish_reason: str | None = None


@dataclass
class ChatResult:
    """Everything assembled so far. The properties read the first choice (index 0)."""

    id: str = ""
    model: str = ""
    created: int | None = None
    system_fingerprint: str | None = None
    choices: list[Choice] = field(default_factory=list)  # ordered by index
    usage: dict | None = None  # the latest non-null usage seen

    def _first(self) -> Choice:
        return self.choices[0] if self.choices else Choice(index=0)

    @property
    def content(self) -> str:
        return self._first().content

    @property
    def reasoning_content(self) -> str:
        return self._first().reasoning_content

    @property
    def finish_reason(self) -> str | None:
        return self._first().finish_reason

    @property
    def role(self) -> str | None:
        return self._first().role

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self._first().tool_calls

    def to_message(self) -> dict:
        """The first choice as a chat message (see :meth:`Choice.to_message`)."""
        return self._first().to_message()


class ChunkAssembler:
    """Merge chunks one at a time; ask for the :meth:`result` whenever you like."""

    def __init__(self) -> None:
        self._top = ChatResult()  # id, model, created, system_fingerprint, usage
        self._choices: dict[int, Choice] = {}
        self._count = 0

    @property
    def chunk_count(self) -> int:
        """How many chunks were merged (a rejected chunk does not count)."""
        return self._count

    def add(self, chunk: dict) -> list[ChoiceDelta]:
        """Merge one chunk; return what it added per choice, skipping choices that got no
        content, reasoning or finish reason. A chunk that raises changes nothing."""
        _check_chunk(chunk)  # check everything before changing anything
        top = self._top
        top.id = top.id or chunk.get("id") or ""
        top.model = top.model or chunk.get("model") or ""
        top.created = chunk.get("created") if top.created is None else top.created
        top.system_fingerprint = top.system_fingerprint or chunk.get("system_fingerprint") or None
        if chunk.get("usage") is not None:
            top.usage = copy.deepcopy(chunk["usage"])
        self._count += 1
        news = [self._merge_choice(raw) for raw in chunk.get("choices") or []]
        return [n for n in news if n.content or n.reasoning_content or n.finish_reason]

    def _merge_choice(self, raw: dict) -> ChoiceDelta:
        delta = raw.get("delta") or {}
        news = ChoiceDelta(
            index=raw["index"],
            content=delta.get("content") or "",
            reasoning_content=delta.get("reasoning_content") or "",
            finish_reason=raw.get("finish_reason") or None,
        )
        choice = self._choices.setdefault(news.index, Choice(index=news.index))
        choice.role = choice.role or delta.get("role") or None
        choice.content += news.content
        choice.reasoning_content += news.reasoning_content
        choice.finish_reason = news.finish_reason or choice.finish_reason
        for fragment in delta.get("tool_calls") or []:
            call = next((c for c in choice.tool_calls if c.index == fragment["index"]), None)
            if call is None:
                call = ToolCall(index=fragment["index"])
                choice.tool_calls.append(call)
                choice.tool_calls.sort(key=lambda c: c.index)
            function = fragment.get("function") or {}
            call.id = call.id or fragment.get("id") or None
            call.type = fragment.get("type") or call.type
            call.name += function.get("name") or ""
            call.arguments += function.get("arguments") or ""
        return news

    def result(self) -> ChatResult:
        """A copy of everything assembled so far; changing it does not affect the assembler."""
        snapshot = copy.deepcopy(self._top)
        snapshot.choices = [copy.deepcopy(self._choices[i]) for i in sorted(self._choices)]
        return snapshot


def assemble(chunks: Iterable[dict]) -> ChatResult:
    """Merge a whole stream of chunks (without the ``[DONE]`` marker) into one result."""
    assembler = ChunkAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.result()


def from_completion(body: dict) -> ChatResult:
    """Turn a non-streaming ``chat.completion`` body into the same :class:`ChatResult`.

    Each ``message`` is merged as one big delta. Its tool calls get their list position
    as ``index``: a streamed tool call fragment has one, a complete tool call does not.
    """
    _check(body, {"choices": list}, "completion")
    choices = []
    for i, choice in enumerate(body.get("choices") or []):
        _check(choice, {"message": dict}, f"choices[{i}]")
        message = dict(choice.get("message") or {})
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [
                {**call, "index": j} if isinstance(call, dict) else call
                for j, call in enumerate(message["tool_calls"])
            ]
        choices.append({**choice, "delta": message})
    return assemble([{**body, "choices": choices}])


# --- checking the shape of a chunk ----------------------------------------------------
# Which type each field must have when it is present; null is always allowed.

_CHUNK = {
    "id": str,
    "model": str,
    "created": int,
    "system_fingerprint": str,
    "usage": dict,
    "choices": list,
}
_CHOICE = {"index": int, "delta": dict, "finish_reason": str}
_DELTA = {"role": str, "content": str, "reasoning_content": str, "tool_calls": list}
_TOOL_CALL = {"index": int, "id": str, "type": str, "function": dict}
_FUNCTION = {"name": str, "arguments": str}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check(obj: Any, fields: dict[str, type], where: str) -> None:
    """Raise ChunkError unless ``obj`` is a dict whose ``fields`` have the right types."""
    if not isinstance(obj, dict):
        raise ChunkError(f"{where} must be an object (dict), got {_type_name(obj)}")
    for key, kind in fields.items():
        value = obj.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ChunkError(f"{where}.{key} must be {kind.__name__}, got {_type_name(value)}")


def _check_index(obj: dict, where: str) -> None:
    index = obj.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ChunkError(f"{where}.index must be a non-negative integer")


def _check_chunk(chunk: Any) -> None:
    error = chunk.get("error") if isinstance(chunk, dict) else None
    if error is not None:  # e.g. {"error": {"message": "rate limit reached"}} mid-stream
        message = error.get("message") if isinstance(error, dict) else error
        if not isinstance(message, str) or not message.strip():
            message = f"{_type_name(error)} without a message"
        raise ChunkError("the provider sent an error: " + " ".join(message.split())[:300])
    _check(chunk, _CHUNK, "chunk")
    for i, choice in enumerate(chunk.get("choices") or []):  # the usage-only chunk has none
        _check(choice, _CHOICE, f"choices[{i}]")
        _check_index(choice, f"choices[{i}]")
        delta = choice.get("delta") or {}
        _check(delta, _DELTA, f"choices[{i}].delta")
        for j, call in enumerate(delta.get("tool_calls") or []):
            where = f"choices[{i}].delta.tool_calls[{j}]"
            _check(call, _TOOL_CALL, where)
            _check_index(call, where)
            _check(call.get("function") or {}, _FUNCTION, where + ".function")
