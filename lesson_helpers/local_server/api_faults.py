"""More of the fault lab: broken tool calls, and faults of the Responses and Messages APIs.

Each ``fault-*`` model here is listed by ``GET /v1/models`` with a one-line description and
works with the APIs named in :data:`API_FAULTS` (another API answers 400, saying so):

* tool call faults (chat completions, ``/v1/responses`` and ``/v1/messages``): the model
  calls one of the offered tools (``get_weather`` when none are offered) and the call is
  broken -- arguments that are not JSON, arguments that do not fit the schema, a tool that
  was never offered, a stream cut inside the arguments, or a model that never stops calling;
* Responses API faults: ``response.failed``, an ``error`` event, a cut stream;
* Messages API faults: an ``overloaded_error`` event mid-stream, HTTP 529, a cut stream.

Mid-stream faults strike after three tokens, like the chat faults in :mod:`.scenarios`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import messages_api, responses_api
from . import scenarios as _chat_faults  # noqa: F401 -- registered first, so listed first
from .exchange import Exchange, dumps
from .models import ModelSpec, register
from .replies import prompt_tokens
from .tools import (
    PlannedCall,
    Reply,
    Tool,
    ToolChoice,
    ToolError,
    chat_call_completion,
    chat_call_events,
    cut_arguments,
    decide,
    digest,
    last_question,
    parse_chat_tools,
    send_events,
)

__all__ = ["API_FAULTS", "ApiFault"]

_CUT_AFTER = 3  # tokens sent before a mid-stream fault
_UNKNOWN_TOOL = "search_web"
_FALLBACK = ("get_weather", {"city": "北京", "unit": "celsius"})  # when no tools are offered

ChatHandler = Callable[[Exchange], None]
ResponsesHandler = Callable[[responses_api.Turn, Exchange], None]
MessagesHandler = Callable[[messages_api.Turn, Exchange], None]


@dataclass(frozen=True)
class ApiFault:
    id: str
    description: str
    apis: tuple[str, ...]  # "chat", "responses", "messages"


API_FAULTS: dict[str, ApiFault] = {}
_PATHS = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}


def _wrong_api(model_id: str, apis: Sequence[str]) -> ChatHandler:
    def handle(ex: Exchange) -> None:
        where = " or ".join(f"POST {_PATHS[a]}" for a in apis)
        ex.send_error(
            400,
            f"The fault model `{model_id}` is for {where}.",
            "model_not_supported",
            param="model",
        )

    return handle


def _fault(
    model_id: str,
    description: str,
    chat: ChatHandler | None = None,
    responses: ResponsesHandler | None = None,
    messages: MessagesHandler | None = None,
) -> None:
    apis = tuple(
        name for name, h in (("chat", chat), ("responses", responses), ("messages", messages)) if h
    )
    API_FAULTS[model_id] = ApiFault(model_id, description, apis)
    register(ModelSpec(model_id, description, chat or _wrong_api(model_id, apis), "fault-lab"))
    if responses is not None:
        responses_api.FAULTS[model_id] = responses
    if messages is not None:
        messages_api.FAULTS[model_id] = messages


# -- the calls a fault model makes -----------------------------------------------------------------
def _calls(messages: list[dict[str, Any]], tools: list[Tool], json_style: str) -> list[PlannedCall]:
    """What the model calls when it must call something (``tool_choice: required``)."""
    if tools:
        return decide(messages, tools, ToolChoice("required"), json_style).calls
    name, args = _FALLBACK
    separators = (",", ":") if json_style == "compact" else (", ", ": ")
    arguments = json.dumps(args, ensure_ascii=False, separators=separators)
    return [PlannedCall(digest(messages, name), name, arguments)]


def _not_json(calls: list[PlannedCall], messages: list[dict[str, Any]]) -> list[PlannedCall]:
    """Single quotes and no closing brace: what a weak model (or a cut) produces."""
    return [replace(c, arguments=c.arguments.replace('"', "'")[:-1]) for c in calls]


def _off_schema(calls: list[PlannedCall], messages: list[dict[str, Any]]) -> list[PlannedCall]:
    """Valid JSON, wrong names: every required argument missing, unknown ones instead."""
    out = []
    for call in calls:
        args = json.loads(call.arguments)
        wrong = {f"{k}_name": v for k, v in args.items()} or {"unexpected_argument": 42}
        out.append(replace(call, arguments=json.dumps(wrong, ensure_ascii=False)))
    return out


def _not_offered(calls: list[PlannedCall], messages: list[dict[str, Any]]) -> list[PlannedCall]:
    arguments = json.dumps({"query": last_question(messages)}, ensure_ascii=False)
    return [PlannedCall(digest(messages, _UNKNOWN_TOOL), _UNKNOWN_TOOL, arguments)]


def _same(calls: list[PlannedCall], messages: list[dict[str, Any]]) -> list[PlannedCall]:
    return calls


Tweak = Callable[[list[PlannedCall], list[dict[str, Any]]], list[PlannedCall]]


def _tool_reply(messages: list[dict[str, Any]], calls: list[PlannedCall]) -> Reply:
    fragments = [cut_arguments(c.arguments) for c in calls]
    return Reply([], [], calls, "tool_calls", prompt_tokens(messages), fragments=fragments)


def _prefix(events: list[Any], tokens: int) -> list[Any]:
    """The events up to and including the ``tokens``-th one that carries a token."""
    seen = 0
    for i, event in enumerate(events):
        seen += bool(event[-1])
        if seen >= tokens:
            return events[: i + 1]
    return events


def _cut_json_body(ex: Exchange, body: dict[str, Any]) -> None:
    """A non-streaming answer whose connection drops in the middle of the JSON."""
    data = dumps(body).encode()
    ex.start_stream(chunked=False, content_type="application/json")
    ex.write(data[: len(data) // 2])
    ex.cut()


def _tool_fault(
    tweak: Tweak, cut: bool = False
) -> tuple[ChatHandler, ResponsesHandler, MessagesHandler]:
    """The same broken calls in each API's wire format."""

    def chat(ex: Exchange) -> None:
        try:
            tools, _ = parse_chat_tools(ex.body)
        except ToolError as error:
            ex.send_error(400, str(error), "invalid_request_error", param=error.param)
            return
        calls = tweak(_calls(ex.messages, tools, "spaced"), ex.messages)
        if not ex.stream:
            body = chat_call_completion(ex, calls)
            if cut:
                _cut_json_body(ex, body)
            else:
                ex.send_json(200, body)
            return
        events = chat_call_events(ex, calls)
        ex.start_stream()
        if cut:
            half = max(1, len(cut_arguments(calls[0].arguments)) // 2)
            if send_events(ex, _prefix(events, half)):
                ex.cut()
        elif send_events(ex, events):
            ex.end_stream()

    def responses(turn: responses_api.Turn, ex: Exchange) -> None:
        calls = tweak(_calls(turn.messages, turn.tools, "compact"), turn.messages)
        reply = _tool_reply(turn.messages, calls)
        if not cut:
            responses_api.serve(turn, ex, reply)
        elif not turn.body.get("stream"):
            _cut_json_body(ex, responses_api.response_object(turn, reply))
        else:
            ex.start_stream()
            events = responses_api.encode(responses_api.events(turn, reply))
            if send_events(ex, _prefix(events, max(1, len(reply.fragments[0]) // 2))):
                ex.cut()

    def messages(turn: messages_api.Turn, ex: Exchange) -> None:
        calls = tweak(_calls(turn.messages, turn.tools, "spaced"), turn.messages)
        reply = _tool_reply(turn.messages, calls)
        if not cut:
            messages_api.serve(turn, ex, reply)
        elif not turn.body.get("stream"):
            _cut_json_body(ex, messages_api.message_object(turn, reply))
        else:
            messages_api.start_stream(ex)
            events = messages_api.encode(messages_api.events(turn, reply))
            if send_events(ex, _prefix(events, max(1, len(reply.fragments[0]) // 2))):
                ex.cut()

    return chat, responses, messages


def _tool_faults() -> None:
    for model_id, description, tweak, cut in (
        (
            "fault-tool-bad-json",
            "工具调用的参数不是合法 JSON（单引号、缺了右括号），json.loads 会失败。",
            _not_json,
            False,
        ),
        (
            "fault-tool-bad-arguments",
            "工具调用的参数是合法 JSON，却不符合 schema：缺了必填参数，多了没定义的参数。",
            _off_schema,
            False,
        ),
        (
            "fault-tool-not-offered",
            f"模型调用了请求里根本没有提供的工具（{_UNKNOWN_TOOL}），千万不能照做。",
            _not_offered,
            False,
        ),
        (
            "fault-tool-cut-arguments",
            "工具调用的参数流到一半连接断开：没有结束原因，参数 JSON 不完整。",
            _same,
            True,
        ),
        (
            "fault-tool-loop",
            "不管收到什么工具结果都再调用一次工具，永不停止（Agent 循环要设上限）。",
            _same,
            False,
        ),
    ):
        chat, responses, messages = _tool_fault(tweak, cut)
        _fault(model_id, description, chat, responses, messages)


_tool_faults()


# -- faults of the Responses API ------------------------------------------------------------------
_FAILURE = "The model failed to generate a response (local fault lab)."


def _responses_failure(ex: Exchange) -> None:
    ex.send_error(500, _FAILURE, "server_error", err_type="server_error")


def _responses_failed(turn: responses_api.Turn, ex: Exchange) -> None:
    if not turn.body.get("stream"):
        _responses_failure(ex)
        return
    reply = turn.plan()
    head = _prefix(responses_api.events(turn, reply), _CUT_AFTER)
    partial = replace(reply, reasoning=reply.reasoning[:_CUT_AFTER], finish="length")
    partial.text = reply.text[: max(0, _CUT_AFTER - len(reply.reasoning))]
    error = {"code": "server_error", "message": _FAILURE}
    failed = responses_api.response_object(turn, partial, status="failed", error=error)
    ex.start_stream()
    if send_events(
        ex, responses_api.encode([*head, ("response.failed", {"response": failed}, False)])
    ):
        ex.end_stream()


def _responses_error_event(turn: responses_api.Turn, ex: Exchange) -> None:
    if not turn.body.get("stream"):
        _responses_failure(ex)
        return
    head = _prefix(responses_api.events(turn, turn.plan()), _CUT_AFTER)
    error = {"code": "server_error", "message": _FAILURE, "param": None}
    ex.start_stream()
    if send_events(ex, responses_api.encode([*head, ("error", error, False)])):
        ex.end_stream()


def _responses_cut(turn: responses_api.Turn, ex: Exchange) -> None:
    reply = turn.plan()
    if not turn.body.get("stream"):
        _cut_json_body(ex, responses_api.response_object(turn, reply))
        return
    ex.start_stream()
    if send_events(
        ex, _prefix(responses_api.encode(responses_api.events(turn, reply)), _CUT_AFTER)
    ):
        ex.cut()


_fault(
    "fault-responses-failed",
    "Responses API：文字流到一半，收到 response.failed（status: failed，带 error）。",
    responses=_responses_failed,
)
_fault(
    "fault-responses-error-event",
    "Responses API：流到一半收到 event: error，之后再也没有 response.completed。",
    responses=_responses_error_event,
)
_fault(
    "fault-responses-cut",
    "Responses API：流到一半连接断开，没有 response.completed。",
    responses=_responses_cut,
)


# -- faults of the Messages API -----------------------------------------------------------------
def _overloaded(turn: messages_api.Turn, ex: Exchange) -> None:
    if not turn.body.get("stream"):
        messages_api.send_api_error(ex, 529, "Overloaded")
        return
    head = _prefix(messages_api.events(turn, turn.plan()), _CUT_AFTER)
    error = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
    messages_api.start_stream(ex)
    if send_events(ex, messages_api.encode([*head, ("error", error, False)])):
        ex.end_stream()


def _http_529(turn: messages_api.Turn, ex: Exchange) -> None:
    messages_api.send_api_error(ex, 529, "Overloaded")


def _messages_cut(turn: messages_api.Turn, ex: Exchange) -> None:
    reply = turn.plan()
    if not turn.body.get("stream"):
        _cut_json_body(ex, messages_api.message_object(turn, reply))
        return
    messages_api.start_stream(ex)
    if send_events(ex, _prefix(messages_api.encode(messages_api.events(turn, reply)), _CUT_AFTER)):
        ex.cut()


_fault(
    "fault-messages-overloaded",
    "Messages API：流到一半收到 event: error（overloaded_error，服务过载）。",
    messages=_overloaded,
)
_fault(
    "fault-messages-529",
    "Messages API：HTTP 529 overloaded_error，还没开始回答就说服务过载。",
    messages=_http_529,
)
_fault(
    "fault-messages-cut",
    "Messages API：流到一半连接断开，没有 message_stop。",
    messages=_messages_cut,
)
