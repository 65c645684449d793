"""A streamed OpenAI Responses API answer, put back together by hand.

With ``stream: true`` ``POST /v1/responses`` sends named SSE events: the ``event:`` line says
what happened and the JSON ``data`` repeats it as ``"type"``, with a growing
``sequence_number``. The merge rules:

* ``response.created`` / ``response.in_progress``: the response's ``id``, ``model`` and
  ``status``; the answer itself comes as *output items*, each opened by
  ``response.output_item.added`` at its ``output_index``: ``message`` (the text),
  ``reasoning`` (a summary of the thinking) or ``function_call`` (a tool call);
* ``response.output_text.delta``: a piece of a message's text;
  ``response.reasoning_summary_text.delta``: a piece of the reasoning summary;
  ``response.function_call_arguments.delta``: a piece of a call's arguments (JSON text);
  the pieces are concatenated per output item, in order;
* ``...done`` events and ``response.output_item.done`` repeat what the deltas built (the
  item's ``status`` is taken from them); ``response.completed`` or ``response.incomplete``
  ends the stream with the final ``status``, ``usage`` and ``incomplete_details``;
* ``error`` and ``response.failed`` raise :class:`ResponsesStreamError`; what was assembled
  before stays readable;
* events of other types (annotations, new features) are skipped; so are keep-alives.

Malformed input (data that is not a JSON object, a type that disagrees with the
``event:`` line, a delta before its item, a ``sequence_number`` going backwards, a field of
the wrong type) raises :class:`ResponsesStreamError` (a ``ValueError``) with a one-line
message, and changes nothing. It imports nothing from the rest of the kit but the event type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .sse import ServerSentEvent

__all__ = [
    "FunctionCall",
    "ResponseAssembler",
    "ResponseDelta",
    "ResponseResult",
    "ResponsesStreamError",
    "assemble",
]


class ResponsesStreamError(ValueError):
    """An event that cannot be merged, or an error sent by the provider."""


@dataclass
class FunctionCall:
    """One ``function_call`` output item: the model asks to run ``name(arguments)``."""

    output_index: int
    item_id: str = ""
    call_id: str = ""  # send it back with the result: {"type": "function_call_output", ...}
    name: str = ""
    arguments: str = ""  # JSON text (complete once status is "completed")
    status: str = "in_progress"

    def to_input(self) -> dict[str, Any]:
        """This call as an ``input`` item of the next request (before its output)."""
        return {
            "type": "function_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
        }


@dataclass(frozen=True)
class ResponseDelta:
    """What one event added (for live display); all empty for most events."""

    text: str = ""
    reasoning: str = ""
    arguments: str = ""  # a piece of a function call's arguments
    output_index: int | None = None  # the output item it went to


_NOTHING = ResponseDelta()


@dataclass
class ResponseResult:
    """Everything assembled so far."""

    id: str = ""
    model: str = ""
    status: str = ""  # in_progress, then completed / incomplete
    text: str = ""  # every output_text of every message item, in order
    reasoning: str = ""  # the reasoning summaries, in order
    function_calls: list[FunctionCall] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    incomplete_reason: str | None = None  # e.g. "max_output_tokens"


@dataclass
class _Item:
    """One output item while it streams; its text is kept in parts (joined on read)."""

    kind: str
    item_id: str
    parts: list[str] = field(default_factory=list)
    status: str = "in_progress"
    call_id: str = ""
    name: str = ""


class ResponseAssembler:
    """Merge events one at a time; read :meth:`result` (or ``text``) whenever you like."""

    def __init__(self) -> None:
        self._top = ResponseResult()
        self._items: dict[int, _Item] = {}
        self._sequence = -1
        self._count = 0

    @property
    def event_count(self) -> int:
        """How many events were merged (skipped and rejected ones do not count)."""
        return self._count

    @property
    def text(self) -> str:
        return "".join("".join(i.parts) for i in self._sorted() if i.kind == "message")

    @property
    def reasoning(self) -> str:
        return "".join("".join(i.parts) for i in self._sorted() if i.kind == "reasoning")

    def _sorted(self) -> list[_Item]:
        return [self._items[k] for k in sorted(self._items)]

    def add(self, event: ServerSentEvent | dict[str, Any]) -> ResponseDelta:
        """Merge one event (an SSE event or its parsed data); return what it added."""
        data = _data(event)
        kind = data["type"]
        number = data.get("sequence_number")
        if number is not None:
            if not isinstance(number, int) or isinstance(number, bool):
                raise ResponsesStreamError(f"{kind}: sequence_number must be an integer")
            if number <= self._sequence:
                raise ResponsesStreamError(
                    f"{kind}: sequence_number {number} after {self._sequence} (out of order)"
                )
        handler = _HANDLERS.get(kind)
        if kind == "error":
            raise ResponsesStreamError("the provider sent an error: " + _message(data))
        if kind == "response.failed":
            error = (data.get("response") or {}).get("error")
            raise ResponsesStreamError("the response failed: " + _message(error or {}))
        added = handler(self, data) if handler is not None else None
        if number is not None:
            self._sequence = number
        if handler is None:
            return _NOTHING
        self._count += 1
        return added or _NOTHING

    # -- one method per event type (each checks before it changes anything) -----------------
    def _lifecycle(self, data: dict[str, Any]) -> None:
        response = _field(data, "response", dict)
        for name in ("id", "model", "status"):
            _optional(response, name, str, data["type"])
        usage = _optional(response, "usage", dict, data["type"])
        details = _optional(response, "incomplete_details", dict, data["type"]) or {}
        top = self._top
        top.id = top.id or response.get("id") or ""
        top.model = top.model or response.get("model") or ""
        top.status = response.get("status") or top.status
        if data["type"] in ("response.completed", "response.incomplete"):
            top.usage = copy.deepcopy(usage) if usage is not None else top.usage
            reason = details.get("reason")
            top.incomplete_reason = reason if isinstance(reason, str) else None

    def _item_added(self, data: dict[str, Any]) -> None:
        index = _index(data)
        item = _field(data, "item", dict)
        kind = _field(item, "type", str, data["type"] + ".item")
        if index in self._items:
            raise ResponsesStreamError(f"{data['type']}: output_index {index} was already added")
        new = _Item(kind, item.get("id") if isinstance(item.get("id"), str) else "")
        if kind == "function_call":
            new.call_id = _optional(item, "call_id", str, "function_call") or ""
            new.name = _optional(item, "name", str, "function_call") or ""
            new.parts = [_optional(item, "arguments", str, "function_call") or ""]
        self._items[index] = new

    def _delta(self, data: dict[str, Any], kind: str) -> str:
        item = self._item(data, kind)
        delta = _field(data, "delta", str)
        item.parts.append(delta)
        return delta

    def _text_delta(self, data: dict[str, Any]) -> ResponseDelta:
        return ResponseDelta(text=self._delta(data, "message"), output_index=data["output_index"])

    def _reasoning_delta(self, data: dict[str, Any]) -> ResponseDelta:
        piece = self._delta(data, "reasoning")
        return ResponseDelta(reasoning=piece, output_index=data["output_index"])

    def _arguments_delta(self, data: dict[str, Any]) -> ResponseDelta:
        piece = self._delta(data, "function_call")
        return ResponseDelta(arguments=piece, output_index=data["output_index"])

    def _item_done(self, data: dict[str, Any]) -> None:
        index = _index(data)
        item = _field(data, "item", dict)
        status = _optional(item, "status", str, data["type"] + ".item")
        name = _optional(item, "name", str, data["type"] + ".item")
        arguments = _optional(item, "arguments", str, data["type"] + ".item")
        if index not in self._items:
            self._item_added(data)  # a done item without an added one: take it as it is
        target = self._items[index]
        if target.kind == "function_call":
            target.name = name or target.name
            if arguments is not None:
                target.parts = [arguments]  # the finished arguments are authoritative
        target.status = status or "completed"

    def _item(self, data: dict[str, Any], kind: str) -> _Item:
        index = _index(data)
        item = self._items.get(index)
        if item is None:
            raise ResponsesStreamError(
                f"{data['type']} for output_index {index} before its response.output_item.added"
            )
        if item.kind != kind:
            raise ResponsesStreamError(
                f"{data['type']} for output_index {index}, which is a {item.kind} item"
            )
        return item

    def result(self) -> ResponseResult:
        """A copy of everything assembled so far."""
        result = copy.deepcopy(self._top)
        result.text = self.text
        result.reasoning = self.reasoning
        result.function_calls = [
            FunctionCall(index, i.item_id, i.call_id, i.name, "".join(i.parts), i.status)
            for index, i in sorted(self._items.items())
            if i.kind == "function_call"
        ]
        return result


_HANDLERS = {
    "response.created": ResponseAssembler._lifecycle,
    "response.queued": ResponseAssembler._lifecycle,
    "response.in_progress": ResponseAssembler._lifecycle,
    "response.completed": ResponseAssembler._lifecycle,
    "response.incomplete": ResponseAssembler._lifecycle,
    "response.output_item.added": ResponseAssembler._item_added,
    "response.output_item.done": ResponseAssembler._item_done,
    "response.output_text.delta": ResponseAssembler._text_delta,
    "response.reasoning_summary_text.delta": ResponseAssembler._reasoning_delta,
    "response.function_call_arguments.delta": ResponseAssembler._arguments_delta,
}


# -- checking an event ------------------------------------------------------------------------
def _data(event: ServerSentEvent | dict[str, Any]) -> dict[str, Any]:
    """The event's data as a dict whose "type" agrees with the ``event:`` line."""
    name = None
    if isinstance(event, ServerSentEvent):
        name = event.event if event.event != "message" else None
        try:
            data = json.loads(event.data)
        except ValueError:
            shown = " ".join(event.data.split())[:80]
            raise ResponsesStreamError(f"event data is not JSON: {shown!r}") from None
    else:
        data = event
    if not isinstance(data, dict):
        raise ResponsesStreamError(f"event data must be a JSON object, got {_type_name(data)}")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise ResponsesStreamError("event data has no 'type'")
    if name is not None and name != kind:
        raise ResponsesStreamError(f"the event line says {name!r} but the data says {kind!r}")
    return data


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _field(obj: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        where = where or str(obj.get("type"))
        raise ResponsesStreamError(
            f"{where}: {name} must be {kind.__name__}, got {_type_name(value)}"
        )
    return value


def _optional(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if value is not None and not isinstance(value, kind):
        raise ResponsesStreamError(
            f"{where}: {name} must be {kind.__name__}, got {_type_name(value)}"
        )
    return value


def _index(data: dict[str, Any]) -> int:
    index = data.get("output_index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ResponsesStreamError(f"{data['type']}: output_index must be a non-negative integer")
    return index


def _message(error: Any) -> str:
    if isinstance(error, dict):
        parts = [error.get("code"), error.get("message")]
        text = ": ".join(str(p) for p in parts if isinstance(p, str) and p.strip())
    else:
        text = ""
    return " ".join(text.split())[:300] or "no message"


def assemble(events: Iterable[ServerSentEvent | dict[str, Any]]) -> ResponseResult:
    """Merge a whole stream of events into one result."""
    assembler = ResponseAssembler()
    for event in events:
        assembler.add(event)
    return assembler.result()
