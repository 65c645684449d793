"""``POST /v1/responses``: OpenAI's Responses API on the local server.

The same scripted model as chat completions, in another wire format:

* the request: ``input`` (a string, or a list of messages, ``function_call`` and
  ``function_call_output`` items), ``instructions``, ``stream``, ``max_output_tokens``,
  ``tools`` (flat ``{"type": "function", "name", "description", "parameters"}``),
  ``tool_choice``, ``parallel_tool_calls``;
* the answer: a ``response`` object whose ``output`` holds a ``reasoning`` item (reasoning
  models), a ``message`` item with ``output_text`` content, or ``function_call`` items, and
  ``usage`` with ``input_tokens`` / ``output_tokens``;
* the stream: named events (``event: response.output_text.delta``), each with a
  ``sequence_number``, from ``response.created`` to ``response.completed`` (or
  ``response.incomplete`` when ``max_output_tokens`` cut it short). No ``[DONE]``.

Errors use the OpenAI shape, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    make_tool,
    openai_tool_choice,
    plan_reply,
    send_events,
    tool_list,
    unique_tools,
)

__all__ = [
    "FAULTS",
    "Event",
    "ResponsesError",
    "Turn",
    "encode",
    "events",
    "handle",
    "output_items",
    "parse_tools",
    "response_object",
    "serve",
]

# A stream before numbering: (event name, data without type and sequence_number, carries a token)
Event = tuple[str, dict[str, Any], bool]
# Fault models for this API (filled by api_faults): id -> handler(turn, exchange)
FAULTS: dict[str, Callable[[Turn, Exchange], None]] = {}


class ResponsesError(ValueError):
    """A request this API refuses (HTTP 400 unless ``status`` says otherwise)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclass
class Turn:
    """One request to /v1/responses, understood."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]  # the input as chat messages (for the scripted replies)
    tools: list[Tool]
    choice: ToolChoice
    reasoning: bool
    key: str  # a digest of the request: the ids are made from it
    created_at: int = field(default_factory=lambda: int(time.time()))

    def plan(self) -> Reply:
        return plan_reply(
            self.messages,
            self.tools,
            self.choice,
            reasoning=self.reasoning,
            limit=self.body.get("max_output_tokens"),
            json_style="compact",
        )


# -- reading the request ------------------------------------------------------------------
def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ResponsesError(f"Invalid '{where}': expected a string or an array of parts.", where)
    texts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ResponsesError(f"Invalid '{where}[{i}]': expected a content part.", where)
        if part["type"] in ("input_text", "output_text", "text", "summary_text"):
            if not isinstance(part.get("text"), str):
                raise ResponsesError(f"Missing '{where}[{i}].text'.", f"{where}[{i}].text")
            texts.append(part["text"])
    return "".join(texts)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ResponsesError("Invalid 'instructions': expected a string.", "instructions")
        messages.append({"role": "system", "content": instructions})
    raw = body.get("input")
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise ResponsesError(
            "Missing required parameter: 'input' (a string, or an array of input items).", "input"
        )
    calls: set[str] = set()
    # A run of function_call / function_call_output items with no message between them is one
    # assistant turn, however the calls and outputs alternate (OpenAI's docs append each call
    # and then its output): one assistant message with every call, then the tool results.
    turn: dict[str, Any] | None = None
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ResponsesError(f"Invalid '{where}': expected an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ResponsesError(
                    f"Invalid '{where}.role': expected 'user', 'assistant', 'system' or "
                    "'developer'.",
                    where + ".role",
                )
            text = _text(item.get("content"), where + ".content")
            messages.append({"role": "system" if role == "developer" else role, "content": text})
            turn = None
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    raise ResponsesError(f"Missing '{where}.{name}'.", f"{where}.{name}")
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            calls.add(item["call_id"])
            if turn is not None:
                turn["tool_calls"].append(call)
            else:
                turn = {"role": "assistant", "content": None, "tool_calls": [call]}
                messages.append(turn)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if call_id not in calls:
                raise ResponsesError(
                    f"No tool call found for function call output with call_id {call_id}.",
                    "input",
                )
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output, where + ".output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # earlier reasoning sent back: nothing to do with it here
        else:
            raise ResponsesError(
                f"Invalid '{where}.type' {kind!r}: the local server understands 'message', "
                "'function_call', 'function_call_output' and 'reasoning' items.",
                where + ".type",
            )
    return messages


def parse_tools(body: dict[str, Any]) -> tuple[list[Tool], ToolChoice]:
    """``tools`` and ``tool_choice`` of a Responses API request (flat function tools)."""
    tools = []
    for i, item in enumerate(tool_list(body.get("tools"), "tools")):
        where = f"tools[{i}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind != "function":
            raise ToolError(
                f"Invalid '{where}.type' {kind!r}: the local server offers only 'function' tools.",
                where + ".type",
            )
        tools.append(
            make_tool(item.get("name"), item.get("description"), item.get("parameters"), where)
        )
    tools = unique_tools(tools, "tools")
    return tools, openai_tool_choice(body, tools, nested=False)


def _check_numbers(body: dict[str, Any]) -> None:
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ResponsesError(
            "Invalid 'max_output_tokens': expected an integer of at least 1.", "max_output_tokens"
        )
    for name, high in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high
        ):
            raise ResponsesError(f"Invalid '{name}': expected a number from 0 to {high}.", name)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ResponsesError("Invalid 'stream': expected true or false.", "stream")


def read_turn(request: Request) -> Turn:
    """The request understood, or ResponsesError saying what is wrong with it."""
    body = request.body
    if not isinstance(body, dict):
        raise ResponsesError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ResponsesError("Missing required parameter: 'model'.", "model")
    if body.get("previous_response_id") is not None:
        raise ResponsesError(
            "The local server keeps no conversations: send the whole conversation in 'input' "
            "instead of 'previous_response_id'.",
            "previous_response_id",
        )
    _check_numbers(body)
    messages = _messages(body)
    try:
        tools, choice = parse_tools(body)
    except ToolError as error:
        raise ResponsesError(str(error), error.param) from None
    if model not in request.models:
        raise ResponsesError(
            f"The model `{model}` does not exist or you do not have access to it.", "model", 404
        )
    return Turn(
        body,
        model,
        messages,
        tools,
        choice,
        model in REASONING_MODELS,
        digest("responses", {k: v for k, v in body.items() if k != "stream"}),
    )


# -- the answer -----------------------------------------------------------------------------
def _ids(turn: Turn) -> tuple[str, str, str]:
    """The response, message and reasoning item ids."""
    return (
        call_key("resp_", turn.key, 32),
        call_key("msg_", digest(turn.key, "message"), 32),
        call_key("rs_", digest(turn.key, "reasoning"), 32),
    )


def _status(reply: Reply) -> str:
    return "incomplete" if reply.finish == "length" else "completed"


def output_items(turn: Turn, reply: Reply) -> list[dict[str, Any]]:
    """The complete ``output`` of the response: reasoning, then the message or the calls."""
    _, message_id, reasoning_id = _ids(turn)
    items: list[dict[str, Any]] = []
    if reply.reasoning:
        summary = [{"type": "summary_text", "text": "".join(reply.reasoning)}]
        items.append({"id": reasoning_id, "type": "reasoning", "summary": summary})
    if reply.calls:
        for call, fragments in zip(reply.calls, reply.fragments, strict=True):
            items.append(
                {
                    "id": call_key("fc_", call.key, 32),
                    "type": "function_call",
                    "status": _status(reply),
                    "arguments": "".join(fragments),
                    "call_id": call_key("call_", call.key),
                    "name": call.name,
                }
            )
    elif reply.text or reply.finish != "length":
        part = {
            "type": "output_text",
            "annotations": [],
            "logprobs": [],
            "text": "".join(reply.text),
        }
        items.append(
            {
                "id": message_id,
                "type": "message",
                "status": _status(reply),
                "content": [part],
                "role": "assistant",
            }
        )
    return items


def _usage(reply: Reply) -> dict[str, Any]:
    output = reply.output_tokens
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": len(reply.reasoning)},
        "total_tokens": reply.prompt_tokens + output,
    }


def _tool_echo(tool: Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description or None,
        "parameters": tool.parameters,
        "strict": False,
    }


def _choice_echo(turn: Turn) -> Any:
    raw = turn.body.get("tool_choice")
    return raw if raw is not None else "auto"


def response_object(
    turn: Turn, reply: Reply | None, status: str = "", error: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``response`` object: ``reply=None`` gives the in-progress one (no output yet)."""
    body = turn.body
    status = status or ("in_progress" if reply is None else _status(reply))
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": _ids(turn)[0],
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": turn.model,
        "output": output_items(turn, reply) if reply is not None else [],
        "parallel_tool_calls": turn.choice.parallel,
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": _choice_echo(turn),
        "tools": [_tool_echo(t) for t in turn.tools],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(reply) if reply is not None and status != "failed" else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


# -- the stream -------------------------------------------------------------------------------
def _item_events(index: int, item: dict[str, Any], pieces: list[str]) -> list[Event]:
    """The events of one output item: added, its parts and deltas, done."""
    kind = item["type"]
    where = {"output_index": index}
    at = {"item_id": item["id"], "output_index": index}
    if kind == "reasoning":
        text = item["summary"][0]["text"]
        added = {**item, "summary": []}
        part = {"type": "summary_text", "text": ""}
        out: list[Event] = [
            ("response.output_item.added", {**where, "item": added}, False),
            (
                "response.reasoning_summary_part.added",
                {**at, "summary_index": 0, "part": part},
                False,
            ),
        ]
        out += [
            ("response.reasoning_summary_text.delta", {**at, "summary_index": 0, "delta": p}, True)
            for p in pieces
        ]
        full = {"type": "summary_text", "text": text}
        out += [
            (
                "response.reasoning_summary_text.done",
                {**at, "summary_index": 0, "text": text},
                False,
            ),
            (
                "response.reasoning_summary_part.done",
                {**at, "summary_index": 0, "part": full},
                False,
            ),
        ]
    elif kind == "message":
        final = item["content"][0]
        added = {**item, "status": "in_progress", "content": []}
        part = {**final, "text": ""}
        at0 = {**at, "content_index": 0}
        out = [
            ("response.output_item.added", {**where, "item": added}, False),
            ("response.content_part.added", {**at0, "part": part}, False),
        ]
        out += [
            ("response.output_text.delta", {**at0, "delta": p, "logprobs": []}, True)
            for p in pieces
        ]
        out += [
            (
                "response.output_text.done",
                {**at0, "text": final["text"], "logprobs": []},
                False,
            ),
            ("response.content_part.done", {**at0, "part": final}, False),
        ]
    else:  # function_call
        added = {**item, "status": "in_progress", "arguments": ""}
        out = [("response.output_item.added", {**where, "item": added}, False)]
        out += [
            ("response.function_call_arguments.delta", {**at, "delta": p}, True) for p in pieces
        ]
        done = {**at, "name": item["name"], "arguments": item["arguments"]}
        out.append(("response.function_call_arguments.done", done, False))
    out.append(("response.output_item.done", {**where, "item": item}, False))
    return out


def events(turn: Turn, reply: Reply) -> list[Event]:
    """Every event of the streamed response, in order (not numbered yet)."""
    start = response_object(turn, None)
    out: list[Event] = [
        ("response.created", {"response": start}, False),
        ("response.in_progress", {"response": start}, False),
    ]
    items = output_items(turn, reply)
    pieces_by_item: list[list[str]] = []
    for item in items:
        if item["type"] == "reasoning":
            pieces_by_item.append(reply.reasoning)
        elif item["type"] == "message":
            pieces_by_item.append(reply.text)
    pieces_by_item += reply.fragments
    for index, (item, pieces) in enumerate(zip(items, pieces_by_item, strict=True)):
        out += _item_events(index, item, pieces)
    final = response_object(turn, reply)
    name = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    out.append((name, {"response": final}, False))
    return out


def encode(stream: list[Event]) -> list[tuple[bytes, bool]]:
    """Number the events and write each as ``event: <type>`` + ``data: <json>``."""
    out = []
    for number, (name, data, token) in enumerate(stream):
        obj = {"type": name, "sequence_number": number, **data}
        out.append((f"event: {name}\ndata: {dumps(obj)}\n\n".encode(), token))
    return out


def serve(turn: Turn, ex: Exchange, reply: Reply | None = None) -> None:
    """Answer with the planned reply (or ``reply``): the JSON object, or the event stream."""
    reply = reply or turn.plan()
    if not turn.body.get("stream"):
        ex.send_json(200, response_object(turn, reply))
        return
    ex.start_stream()
    if send_events(ex, encode(events(turn, reply))):
        ex.end_stream()


def handle(request: Request, ex: Exchange) -> None:
    """``POST /v1/responses``."""
    try:
        turn = read_turn(request)
    except ResponsesError as error:
        code = "model_not_found" if error.status == 404 else "invalid_request_error"
        ex.send_error(error.status, str(error), code, param=error.param)
        return
    fault = FAULTS.get(turn.model)
    if fault is not None:
        fault(turn, ex)
    elif turn.model.startswith("fault-"):
        ex.send_error(
            400,
            f"The fault model `{turn.model}` does not work with POST /v1/responses: "
            "GET /v1/models describes which API each fault model is for.",
            "model_not_supported",
            param="model",
        )
    else:
        serve(turn, ex)


add_route("POST", "/v1/responses", handle)
