"""``POST /v1/messages``: the Anthropic Messages API on the local server.

DeepSeek, Moonshot and Qwen offer this wire format too. The same scripted model answers:

* the request: the key in ``x-api-key`` (or ``Authorization: Bearer``), an
  ``anthropic-version`` header, ``model``, ``max_tokens`` (required), ``messages`` (roles
  ``user`` / ``assistant``; content a string or blocks: ``text``, ``tool_use``,
  ``tool_result``, ``thinking``), ``system``, ``stop_sequences``, ``stream``, ``tools``
  (``name``, ``description``, ``input_schema``), ``tool_choice``, ``thinking``;
* the answer: a ``message`` whose ``content`` is a list of blocks -- ``thinking`` (reasoning
  models, or ``thinking: {"type": "enabled"}``), ``text`` or ``tool_use`` -- with
  ``stop_reason`` ``end_turn`` / ``max_tokens`` / ``stop_sequence`` / ``tool_use``;
* the stream: ``message_start``, then per block ``content_block_start``,
  ``content_block_delta`` (``text_delta``, ``thinking_delta`` then one ``signature_delta``,
  ``input_json_delta``) and ``content_block_stop``; a ``ping`` after the first block starts;
  ``message_delta`` (``stop_reason``, ``usage.output_tokens``) and ``message_stop``.

Errors: ``{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}``,
in the body of an HTTP error or as an ``event: error`` in the middle of a stream.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .exchange import Exchange, dumps
from .routes import Request, add_route
from .tools import (
    REASONING_MODELS,
    Reply,
    Tool,
    ToolChoice,
    ToolError,
    call_key,
    digest,
    make_choice,
    make_tool,
    plan_reply,
    send_events,
    tool_list,
    unique_tools,
)

__all__ = [
    "ERROR_TYPES",
    "FAULTS",
    "MessagesError",
    "Turn",
    "content_blocks",
    "encode",
    "error_body",
    "events",
    "handle",
    "message_object",
    "parse_tools",
    "send_api_error",
    "serve",
    "start_stream",
]

# A stream before encoding: (event name, data without "type", carries a token)
Event = tuple[str, dict[str, Any], bool]
# Fault models for this API (filled by api_faults): id -> handler(turn, exchange)
FAULTS: dict[str, Callable[[Turn, Exchange], None]] = {}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}


class MessagesError(ValueError):
    """A request this API refuses (HTTP 400 unless ``status`` says otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- errors -------------------------------------------------------------------------------------
def error_body(status: int, message: str, request_id: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def send_api_error(
    ex: Exchange, status: int, message: str, code: str | None = None, param: str | None = None
) -> None:
    """The route's error writer: every error of /v1/messages in Anthropic's shape."""
    if status == 401:  # Anthropic's own words
        sent = ex.request_headers.get("x-api-key") or ex.request_headers.get("Authorization")
        message = "invalid x-api-key" if sent else "x-api-key header is required"
    ex.send_json(status, error_body(status, message, ex.request_id), _headers(ex))


def _headers(ex: Exchange) -> dict[str, str]:
    return {"request-id": ex.request_id} if ex.request_id else {}


# -- reading the request -------------------------------------------------------------------------
@dataclass
class Turn:
    """One request to /v1/messages, understood."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]  # as chat messages (for the scripted replies)
    tools: list[Tool]
    choice: ToolChoice
    reasoning: bool
    key: str  # a digest of the request: the ids are made from it

    def plan(self) -> Reply:
        return plan_reply(
            self.messages,
            self.tools,
            self.choice,
            reasoning=self.reasoning,
            limit=self.body["max_tokens"],
            stop_sequences=self.body.get("stop_sequences") or (),
        )


def _block_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise MessagesError(f"{where}: Input should be a valid string or list of content blocks")
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise MessagesError(f"{where}.{i}: Input should be a content block object")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                raise MessagesError(f"{where}.{i}.text: Field required")
            texts.append(block["text"])
    return "".join(texts)


def _user(message: dict[str, Any], where: str, open_calls: set[str]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise MessagesError(f"{where}.content: Input should be a valid string or list")
    out: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "tool_result":
            call_id = block.get("tool_use_id")
            if call_id not in open_calls:
                raise MessagesError(
                    f"{where}.content.{i}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {call_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
            text = _block_text(block.get("content", ""), f"{where}.content.{i}.content")
            if block.get("is_error") and not text.lower().startswith("error"):
                text = "error: " + text
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
    text = _block_text(
        [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")],
        where + ".content",
    )
    if text or not out:
        out.append({"role": "user", "content": text})
    return out


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise MessagesError(f"{where}.content: Input should be a valid string or list")
    calls = []
    for i, block in enumerate(content):
        if isinstance(block, dict) and block.get("type") == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise MessagesError(f"{where}.content.{i}: a tool_use block needs id and name")
            if not isinstance(block.get("input", {}), dict):
                raise MessagesError(f"{where}.content.{i}.input: Input should be an object")
            arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
            function = {"name": block["name"], "arguments": arguments}
            calls.append({"id": block["id"], "type": "function", "function": function})
    out: dict[str, Any] = {"role": "assistant", "content": _block_text(content, where + ".content")}
    if calls:
        out["tool_calls"] = calls
    return out


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        out.append({"role": "system", "content": _block_text(system, "system")})
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise MessagesError("messages: Field required (a list of user and assistant messages)")
    if not raw:
        raise MessagesError("messages: at least one message is required")
    open_calls: set[str] = set()
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            out += _user(message, where, open_calls)
            open_calls = set()
        elif role == "assistant":
            out.append(_assistant(message, where))
            open_calls = {c["id"] for c in out[-1].get("tool_calls", [])}
        elif role == "system":
            raise MessagesError(
                f'{where}.role: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        else:
            raise MessagesError(f"{where}.role: Input should be 'user' or 'assistant'")
    return out


def parse_tools(body: dict[str, Any]) -> tuple[list[Tool], ToolChoice]:
    """``tools`` and ``tool_choice`` of an Anthropic Messages request (``input_schema``)."""
    tools = []
    for i, item in enumerate(tool_list(body.get("tools"), "tools")):
        where = f"tools.{i}"
        if not isinstance(item, dict) or item.get("type", "custom") != "custom":
            kind = item.get("type") if isinstance(item, dict) else None
            raise ToolError(
                f"{where}: tool type {kind!r} is not supported by the local server "
                "(only custom tools with name, description and input_schema).",
                where,
            )
        if not isinstance(item.get("input_schema"), dict):
            raise ToolError(f"{where}.input_schema: Field required", where + ".input_schema")
        tools.append(
            make_tool(item.get("name"), item.get("description"), item["input_schema"], where)
        )
    raw = body.get("tool_choice")
    named = mode = None
    parallel = None
    if isinstance(raw, dict):
        kind = raw.get("type")
        modes = {"auto": "auto", "any": "required", "none": "none"}
        if kind == "tool":
            named = raw.get("name")
            if not isinstance(named, str):
                raise ToolError("tool_choice.name: Field required", "tool_choice.name")
        elif kind in modes:
            mode = modes[kind]
        else:
            raise ToolError(
                "tool_choice.type: expected 'auto', 'any', 'tool' or 'none'.", "tool_choice.type"
            )
        disable = raw.get("disable_parallel_tool_use")
        if disable is not None:
            if not isinstance(disable, bool):
                raise ToolError(
                    "tool_choice.disable_parallel_tool_use: expected a boolean.", "tool_choice"
                )
            parallel = not disable
    elif raw is not None:
        raise ToolError("tool_choice: expected an object such as {'type': 'auto'}.", "tool_choice")
    tools = unique_tools(tools, "tools")
    return tools, make_choice(raw, tools, named, mode, parallel)


def _check(body: dict[str, Any]) -> None:
    limit = body.get("max_tokens")
    if limit is None:
        raise MessagesError("max_tokens: Field required")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise MessagesError("max_tokens: Input should be an integer greater than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise MessagesError("stop_sequences: Input should be a list of non-empty strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise MessagesError("stream: Input should be a valid boolean")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1
        ):
            raise MessagesError(f"{name}: Input should be a number from 0 to 1")
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled"):
            raise MessagesError("thinking.type: Input should be 'enabled' or 'disabled'")
        budget = thinking.get("budget_tokens")
        if kind == "enabled" and (not isinstance(budget, int) or budget >= limit):
            raise MessagesError(
                "thinking.budget_tokens: an integer smaller than max_tokens is required"
            )


def read_turn(request: Request) -> Turn:
    """The request understood, or MessagesError saying what is wrong with it."""
    if not request.headers.get("anthropic-version"):
        raise MessagesError("anthropic-version: header is required (for example 2023-06-01)")
    body = request.body
    if not isinstance(body, dict):
        raise MessagesError("The request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MessagesError("model: Field required")
    _check(body)
    messages = _messages(body)
    try:
        tools, choice = parse_tools(body)
    except ToolError as error:
        raise MessagesError(str(error)) from None
    if model not in request.models:
        raise MessagesError(f"model: {model}", 404)
    thinking = isinstance(body.get("thinking"), dict) and body["thinking"]["type"] == "enabled"
    reasoning = model in REASONING_MODELS or thinking
    return Turn(
        body,
        model,
        messages,
        tools,
        choice,
        reasoning,
        digest("messages", {k: v for k, v in body.items() if k != "stream"}),
    )


# -- the answer ----------------------------------------------------------------------------------
def _signature(thinking: str) -> str:
    """A stand-in for the opaque signature that proves the thinking was not edited."""
    raw = hashlib.sha256(thinking.encode()).digest()
    return base64.b64encode(b"local" + raw + raw).decode()


def _tool_input(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return {}  # cut short by max_tokens


def content_blocks(turn: Turn, reply: Reply) -> list[dict[str, Any]]:
    """The complete ``content`` of the message."""
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        thinking = "".join(reply.reasoning)
        blocks.append({"type": "thinking", "thinking": thinking, "signature": _signature(thinking)})
    for call, fragments in zip(reply.calls, reply.fragments, strict=True):
        blocks.append(
            {
                "type": "tool_use",
                "id": call_key("toolu_01", call.key, 22),
                "name": call.name,
                "input": _tool_input("".join(fragments)),
            }
        )
    if not reply.calls and (reply.text or reply.finish != "length"):
        blocks.append({"type": "text", "text": "".join(reply.text)})
    return blocks


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _message_id(turn: Turn) -> str:
    return call_key("msg_01", turn.key, 24)


def message_object(turn: Turn, reply: Reply) -> dict[str, Any]:
    """The non-streaming answer."""
    return {
        "id": _message_id(turn),
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content_blocks(turn, reply),
        "stop_reason": _STOP_REASONS[reply.finish],
        "stop_sequence": reply.stop_sequence,
        "usage": _usage(reply.prompt_tokens, reply.output_tokens),
    }


# -- the stream ------------------------------------------------------------------------------------
def _block_events(index: int, block: dict[str, Any], pieces: list[str]) -> list[Event]:
    kind = block["type"]
    if kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
    elif kind == "tool_use":
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces]
    out: list[Event] = [("content_block_start", {"index": index, "content_block": start}, False)]
    out += [
        ("content_block_delta", {"index": index, "delta": d}, bool(j or kind != "tool_use"))
        for j, d in enumerate(deltas)
    ]
    if kind == "thinking":
        signature = {"type": "signature_delta", "signature": block["signature"]}
        out.append(("content_block_delta", {"index": index, "delta": signature}, False))
    out.append(("content_block_stop", {"index": index}, False))
    return out


def events(turn: Turn, reply: Reply) -> list[Event]:
    """Every event of the streamed message, in order."""
    start = message_object(turn, reply)
    start |= {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = _usage(reply.prompt_tokens, 1)
    out: list[Event] = [("message_start", {"message": start}, False)]
    blocks = content_blocks(turn, reply)
    pieces = ([reply.reasoning] if reply.reasoning else []) + (
        list(reply.fragments) if reply.calls else [reply.text]
    )
    for index, (block, block_pieces) in enumerate(zip(blocks, pieces, strict=False)):
        block_events = _block_events(index, block, block_pieces)
        if index == 0:  # Anthropic sends one ping right after the first block starts
            block_events.insert(1, ("ping", {}, False))
        out += block_events
    if not blocks:
        out.append(("ping", {}, False))
    delta = {"stop_reason": _STOP_REASONS[reply.finish], "stop_sequence": reply.stop_sequence}
    out.append(
        ("message_delta", {"delta": delta, "usage": {"output_tokens": reply.output_tokens}}, False)
    )
    out.append(("message_stop", {}, False))
    return out


def encode(stream: list[Event]) -> list[tuple[bytes, bool]]:
    """Write each event as ``event: <type>`` + ``data: <json>`` (the type inside too)."""
    return [
        (f"event: {name}\ndata: {dumps({'type': name, **data})}\n\n".encode(), token)
        for name, data, token in stream
    ]


def serve(turn: Turn, ex: Exchange, reply: Reply | None = None) -> None:
    """Answer with the planned reply (or ``reply``), as JSON or as the event stream."""
    reply = reply or turn.plan()
    if not turn.body.get("stream"):
        ex.send_json(200, message_object(turn, reply), _headers(ex))
        return
    ex.start_stream(headers=_headers(ex))
    if send_events(ex, encode(events(turn, reply))):
        ex.end_stream()


def start_stream(ex: Exchange) -> None:
    """The head of an event stream of this API (for the fault models)."""
    ex.start_stream(headers=_headers(ex))


def handle(request: Request, ex: Exchange) -> None:
    """``POST /v1/messages``."""
    try:
        turn = read_turn(request)
    except MessagesError as error:
        send_api_error(ex, error.status, str(error))
        return
    fault = FAULTS.get(turn.model)
    if fault is not None:
        fault(turn, ex)
    elif turn.model.startswith("fault-"):
        send_api_error(
            ex,
            400,
            f"model: the fault model `{turn.model}` does not work with POST /v1/messages: "
            "GET /v1/models describes which API each fault model is for",
        )
    else:
        serve(turn, ex)


def _doubled_v1(request: Request, ex: Exchange) -> None:
    send_api_error(
        ex,
        404,
        "Not found: /v1/v1/messages. The Anthropic SDK adds /v1 itself: use "
        "base_url='http://127.0.0.1:PORT' (without /v1).",
    )


add_route("POST", "/v1/messages", handle, errors=send_api_error)
add_route("POST", "/v1/v1/messages", _doubled_v1, errors=send_api_error)
