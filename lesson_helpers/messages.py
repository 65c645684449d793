"""A streamed Anthropic Messages API answer, put back together by hand.

With ``stream: true`` ``POST /v1/messages`` sends named SSE events; the JSON ``data``
repeats the name as ``"type"``. The answer is a list of *content blocks*. The merge rules:

* ``message_start``: the message's ``id``, ``model``, ``role`` and the first ``usage``
  (``input_tokens``);
* ``content_block_start``: a new block at ``index`` (0, 1, 2 ... in order): ``text``,
  ``thinking`` (reasoning) or ``tool_use`` (a tool call with ``id`` and ``name``);
* ``content_block_delta``: ``text_delta`` adds to a text block, ``thinking_delta`` to a
  thinking block, ``signature_delta`` sets the thinking block's signature,
  ``input_json_delta`` adds a piece of the tool's input, as JSON text;
* ``content_block_stop``: the block is complete; a tool's JSON pieces are parsed into its
  ``input`` now (no pieces at all: ``{}``);
* ``message_delta``: ``stop_reason`` (``end_turn``, ``max_tokens``, ``stop_sequence``,
  ``tool_use``), ``stop_sequence``, and usage counts that *replace* the earlier ones
  (they are running totals); ``message_stop`` ends the stream;
* ``ping`` and events of other types are skipped; an ``error`` event raises
  :class:`MessagesStreamError`, and what was assembled before stays readable.

Malformed input (data that is not a JSON object, a type that disagrees with the ``event:``
line, a delta for a block that was not started or of another kind, a tool input that is not
valid JSON, a field of the wrong type) raises :class:`MessagesStreamError` (a
``ValueError``) with a one-line message, and changes nothing. It imports nothing from the
rest of the kit but the event type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .sse import ServerSentEvent

__all__ = [
    "MessageAssembler",
    "MessageDelta",
    "MessageResult",
    "MessagesStreamError",
    "ToolUse",
    "assemble",
]


class MessagesStreamError(ValueError):
    """An event that cannot be merged, or an error sent by the provider."""


@dataclass
class ToolUse:
    """One ``tool_use`` block: the model asks to run ``name(**input)``."""

    index: int
    id: str = ""  # send it back with the result: {"type": "tool_result", "tool_use_id": id}
    name: str = ""
    input: Any = None  # the parsed JSON (a dict), once the block is complete
    partial_json: str = ""  # the JSON text as it arrived


@dataclass(frozen=True)
class MessageDelta:
    """What one event added (for live display); all empty for most events."""

    text: str = ""
    thinking: str = ""
    partial_json: str = ""  # a piece of a tool's input
    index: int | None = None  # the content block it went to


_NOTHING = MessageDelta()


@dataclass
class MessageResult:
    """Everything assembled so far."""

    id: str = ""
    model: str = ""
    role: str = ""
    content: list[dict[str, Any]] = field(default_factory=list)  # the blocks, as the API has them
    text: str = ""  # every text block, in order
    thinking: str = ""  # every thinking block, in order
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    done: bool = False  # message_stop was seen

    def to_message(self) -> dict[str, Any]:
        """This answer as an ``assistant`` message for the next request."""
        return {"role": self.role or "assistant", "content": copy.deepcopy(self.content)}


@dataclass
class _Block:
    """One content block while it streams; its text is kept in parts (joined on read)."""

    kind: str
    start: dict[str, Any]  # the content_block of content_block_start
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    input: Any = None
    stopped: bool = False

    def as_dict(self) -> dict[str, Any]:
        block = copy.deepcopy(self.start)
        if self.kind == "text":
            block["text"] = block.get("text", "") + "".join(self.parts)
        elif self.kind == "thinking":
            block["thinking"] = block.get("thinking", "") + "".join(self.parts)
            block["signature"] = self.signature or block.get("signature", "")
        elif self.kind == "tool_use":
            block["input"] = self.input if self.stopped else block.get("input", {})
        return block


_DELTA_KINDS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "signature_delta": ("thinking", "signature"),
    "input_json_delta": ("tool_use", "partial_json"),
}


class MessageAssembler:
    """Merge events one at a time; read :meth:`result` (or ``text``) whenever you like."""

    def __init__(self) -> None:
        self._top = MessageResult()
        self._blocks: list[_Block] = []
        self._started = False
        self._count = 0

    @property
    def event_count(self) -> int:
        """How many events were merged (skipped and rejected ones do not count)."""
        return self._count

    @property
    def text(self) -> str:
        return "".join("".join(b.parts) for b in self._blocks if b.kind == "text")

    @property
    def thinking(self) -> str:
        return "".join("".join(b.parts) for b in self._blocks if b.kind == "thinking")

    def add(self, event: ServerSentEvent | dict[str, Any]) -> MessageDelta:
        """Merge one event (an SSE event or its parsed data); return what it added."""
        data = _data(event)
        kind = data["type"]
        if kind == "error":
            raise MessagesStreamError("the provider sent an error: " + _message(data.get("error")))
        handler = _HANDLERS.get(kind)
        if handler is None:
            return _NOTHING  # ping, and event types this assembler does not know
        if kind != "message_start" and not self._started:
            raise MessagesStreamError(f"{kind} before message_start")
        added = handler(self, data)
        self._count += 1
        return added or _NOTHING

    # -- one method per event type (each checks before it changes anything) -----------------
    def _message_start(self, data: dict[str, Any]) -> None:
        message = _field(data, "message", dict)
        for name in ("id", "model", "role"):
            _optional(message, name, str, "message_start.message")
        usage = _optional(message, "usage", dict, "message_start.message") or {}
        if self._started:
            raise MessagesStreamError("a second message_start in one stream")
        top = self._top
        top.id = message.get("id") or ""
        top.model = message.get("model") or ""
        top.role = message.get("role") or "assistant"
        top.usage = copy.deepcopy(usage)
        self._started = True

    def _block_start(self, data: dict[str, Any]) -> None:
        index = _index(data)
        block = _field(data, "content_block", dict)
        kind = _field(block, "type", str, "content_block_start.content_block")
        if index != len(self._blocks):
            raise MessagesStreamError(
                f"content_block_start for index {index}, expected {len(self._blocks)}"
            )
        if kind == "tool_use":
            _optional(block, "id", str, "tool_use")
            _optional(block, "name", str, "tool_use")
        self._blocks.append(_Block(kind, copy.deepcopy(block)))

    def _block_delta(self, data: dict[str, Any]) -> MessageDelta:
        block = self._block(data)
        delta = _field(data, "delta", dict)
        kind = _field(delta, "type", str, "content_block_delta.delta")
        if kind not in _DELTA_KINDS:
            return _NOTHING  # e.g. citations_delta: not assembled here
        wanted, name = _DELTA_KINDS[kind]
        if block.kind != wanted or block.stopped:
            state = "stopped" if block.stopped else block.kind
            raise MessagesStreamError(f"{kind} for content block {data['index']}, which is {state}")
        piece = _field(delta, name, str, "content_block_delta.delta")
        if kind == "signature_delta":
            block.signature = piece
            return _NOTHING
        block.parts.append(piece)
        return MessageDelta(**{name: piece, "index": data["index"]})

    def _block_stop(self, data: dict[str, Any]) -> None:
        block = self._block(data)
        if block.stopped:
            raise MessagesStreamError(f"content_block_stop for block {data['index']} twice")
        if block.kind == "tool_use":
            text = "".join(block.parts)
            try:
                value = json.loads(text) if text.strip() else {}
            except ValueError as error:
                name = block.start.get("name") or "?"
                raise MessagesStreamError(
                    f"tool_use block {data['index']} ({name}): the input is not valid JSON "
                    f"({error.msg} at character {error.pos}): {text[:80]!r}"
                ) from None
            block.input = value
        block.stopped = True

    def _message_delta(self, data: dict[str, Any]) -> None:
        delta = _field(data, "delta", dict)
        reason = _optional(delta, "stop_reason", str, "message_delta.delta")
        sequence = _optional(delta, "stop_sequence", str, "message_delta.delta")
        usage = _optional(data, "usage", dict, "message_delta") or {}
        top = self._top
        top.stop_reason = reason or top.stop_reason
        top.stop_sequence = sequence
        top.usage.update({k: copy.deepcopy(v) for k, v in usage.items() if v is not None})

    def _message_stop(self, data: dict[str, Any]) -> None:
        self._top.done = True

    def _block(self, data: dict[str, Any]) -> _Block:
        index = _index(data)
        if index >= len(self._blocks):
            raise MessagesStreamError(
                f"{data['type']} for content block {index} before its content_block_start"
            )
        return self._blocks[index]

    def result(self) -> MessageResult:
        """A copy of everything assembled so far."""
        result = copy.deepcopy(self._top)
        result.content = [b.as_dict() for b in self._blocks]
        result.text = self.text
        result.thinking = self.thinking
        result.tool_uses = [
            ToolUse(
                i,
                b.start.get("id") or "",
                b.start.get("name") or "",
                copy.deepcopy(b.input),
                "".join(b.parts),
            )
            for i, b in enumerate(self._blocks)
            if b.kind == "tool_use"
        ]
        return result


_HANDLERS = {
    "message_start": MessageAssembler._message_start,
    "content_block_start": MessageAssembler._block_start,
    "content_block_delta": MessageAssembler._block_delta,
    "content_block_stop": MessageAssembler._block_stop,
    "message_delta": MessageAssembler._message_delta,
    "message_stop": MessageAssembler._message_stop,
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
            raise MessagesStreamError(f"event data is not JSON: {shown!r}") from None
    else:
        data = event
    if not isinstance(data, dict):
        raise MessagesStreamError(f"event data must be a JSON object, got {_type_name(data)}")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MessagesStreamError("event data has no 'type'")
    if name is not None and name != kind:
        raise MessagesStreamError(f"the event line says {name!r} but the data says {kind!r}")
    return data


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _field(obj: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        where = where or str(obj.get("type"))
        raise MessagesStreamError(
            f"{where}: {name} must be {kind.__name__}, got {_type_name(value)}"
        )
    return value


def _optional(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name)
    if value is not None and not isinstance(value, kind):
        raise MessagesStreamError(
            f"{where}: {name} must be {kind.__name__}, got {_type_name(value)}"
        )
    return value


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise MessagesStreamError(f"{data['type']}: index must be a non-negative integer")
    return index


def _message(error: Any) -> str:
    if isinstance(error, dict):
        parts = [error.get("type"), error.get("message")]
        text = ": ".join(str(p) for p in parts if isinstance(p, str) and p.strip())
    else:
        text = ""
    return " ".join(text.split())[:300] or "no message"


def assemble(events: Iterable[ServerSentEvent | dict[str, Any]]) -> MessageResult:
    """Merge a whole stream of events into one result."""
    assembler = MessageAssembler()
    for event in events:
        assembler.add(event)
    return assembler.result()
