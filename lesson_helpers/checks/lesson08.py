"""Self-checks for lesson 08 (the Responses and Messages wire formats).

* :func:`check_assemble_responses` -- ``assemble_responses(events) -> dict``: an OpenAI
  Responses API stream (a list of :class:`~lesson_helpers.sse.ServerSentEvent`) put together
  as ``{"text", "reasoning", "calls": [{"call_id", "name", "arguments"}], "usage",
  "status"}``; an ``error`` or ``response.failed`` event raises ``ValueError``.
* :func:`check_assemble_messages` -- ``assemble_messages(events) -> dict``: an Anthropic
  Messages API stream put together as ``{"text", "thinking", "tool_uses": [{"id", "name",
  "input"}], "usage", "stop_reason"}``; an ``error`` event raises ``ValueError``.

The streams are small, hand-written ones in the shapes the real APIs send (the seed's
answer, reasoning, parallel tool calls, a cut stream, an error in the middle, event types
an assembler does not know). The expected results come from the kit's own assemblers,
:mod:`lesson_helpers.responses` and :mod:`lesson_helpers.messages`, on the same events.
Every check prints one ``✓`` line, or ``✗`` lines with the case, what was expected, what
came back and a hint; it returns nothing and never raises because of the student's code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import messages as kit_messages
from .. import responses as kit_responses
from .. import seed
from ..sse import ServerSentEvent
from .report import check, crash, same, short

__all__ = [
    "StreamCase",
    "check_assemble_messages",
    "check_assemble_responses",
    "expected_messages",
    "expected_responses",
    "messages_cases",
    "responses_cases",
]


@dataclass(frozen=True)
class StreamCase:
    what: str
    events: list[ServerSentEvent]
    hint: str  # what this case is about
    error: str = ""  # the provider's message, when the stream carries an error


def _event(kind: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(kind, json.dumps({"type": kind, **data}, ensure_ascii=False))


# --------------------------------------------------------------------------------------------
# Responses streams
# --------------------------------------------------------------------------------------------


class _Responses:
    """A Responses stream, written the way the API numbers it (``sequence_number``)."""

    def __init__(self) -> None:
        self.events: list[ServerSentEvent] = []

    def add(self, kind: str, **data: Any) -> _Responses:
        self.events.append(_event(kind, {"sequence_number": len(self.events), **data}))
        return self

    @staticmethod
    def response(status: str, usage: dict | None = None, reason: str | None = None) -> dict:
        return {
            "id": "resp_lesson08",
            "object": "response",
            "model": "lesson-model",
            "status": status,
            "output": [],
            "error": None,
            "incomplete_details": {"reason": reason} if reason else None,
            "usage": usage,
        }

    def start(self) -> _Responses:
        self.add("response.created", response=self.response("in_progress"))
        return self.add("response.in_progress", response=self.response("in_progress"))

    def message(self, index: int, pieces: list[str], *, finished: bool = True) -> _Responses:
        item_id = f"msg_{index}"
        item = {"id": item_id, "type": "message", "status": "in_progress", "content": []}
        self.add("response.output_item.added", output_index=index, item=item)
        at = {"item_id": item_id, "output_index": index, "content_index": 0}
        self.add("response.content_part.added", **at, part={"type": "output_text", "text": ""})
        for piece in pieces:
            self.add("response.output_text.delta", **at, delta=piece)
        if finished:
            text = "".join(pieces)
            part = {"type": "output_text", "text": text}
            self.add("response.output_text.done", **at, text=text)
            self.add("response.content_part.done", **at, part=part)
            done = {**item, "status": "completed", "content": [part]}
            self.add("response.output_item.done", output_index=index, item=done)
        return self

    def reasoning(self, index: int, pieces: list[str]) -> _Responses:
        item_id = f"rs_{index}"
        item = {"id": item_id, "type": "reasoning", "summary": []}
        self.add("response.output_item.added", output_index=index, item=item)
        at = {"item_id": item_id, "output_index": index, "summary_index": 0}
        part = {"type": "summary_text", "text": ""}
        self.add("response.reasoning_summary_part.added", **at, part=part)
        for piece in pieces:
            self.add("response.reasoning_summary_text.delta", **at, delta=piece)
        text = "".join(pieces)
        self.add("response.reasoning_summary_text.done", **at, text=text)
        done = {**item, "summary": [{"type": "summary_text", "text": text}]}
        return self.add("response.output_item.done", output_index=index, item=done)

    def call(self, index: int, call_id: str, name: str, pieces: list[str]) -> _Responses:
        item_id = f"fc_{index}"
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": name,
        }
        self.add("response.output_item.added", output_index=index, item=item)
        for piece in pieces:
            self.add(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=piece,
            )
        arguments = "".join(pieces)
        self.add(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=index,
            name=name,
            arguments=arguments,
        )
        done = {**item, "status": "completed", "arguments": arguments}
        return self.add("response.output_item.done", output_index=index, item=done)

    def completed(self, output: int, status: str = "completed", reason: str | None = None):
        usage = {"input_tokens": 30, "output_tokens": output, "total_tokens": 30 + output}
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self.add(kind, response=self.response(status, usage, reason))


def responses_cases() -> list[StreamCase]:
    """Small Responses streams, each testing one rule."""
    weather = ['{"', "city", '":"', "北京", '"}']
    shanghai = ['{"', "city", '":"', "上海", '"}']
    failed = _Responses().start().message(0, ["你好", "！"], finished=False)
    error = {"code": "server_error", "message": "The model failed to generate a response."}
    failed.add("response.failed", response={**failed.response("failed"), "error": error})
    broken = _Responses().start().message(0, ["你好", "！"], finished=False)
    broken.add("error", code="server_error", message="Something went wrong.", param=None)
    unknown = _Responses().start().reasoning(0, ["先查", "天气。"])
    unknown.add("response.web_search_call.in_progress", output_index=1, item_id="ws_1")
    unknown.add("response.output_text.annotation.added", output_index=2, annotation={})
    unknown.call(1, "call_bj", "get_weather", weather).completed(8)
    return [
        StreamCase(
            "作业示例流的回答（一个 message，10 段文字）",
            _Responses().start().message(0, list(seed.PIECES)).completed(10).events,
            "按顺序把 response.output_text.delta 的 delta 拼起来。",
        ),
        StreamCase(
            "推理模型：先是推理摘要（reasoning），再是回答（message）",
            _Responses()
            .start()
            .reasoning(0, ["用户", "在打", "招呼。"])
            .message(1, ["你好", "！"])
            .completed(5)
            .events,
            "推理摘要是 response.reasoning_summary_text.delta，单独拼进 reasoning。",
        ),
        StreamCase(
            "同时调用两次 get_weather（参数分几段到达）",
            _Responses()
            .start()
            .call(0, "call_bj", "get_weather", weather)
            .call(1, "call_sh", "get_weather", shanghai)
            .completed(10)
            .events,
            "每个 function_call 在 response.output_item.added 里带着 call_id 和 name；"
            "参数按 output_index 接到对应的调用上。",
        ),
        StreamCase(
            "不认识的事件类型（web_search_call、annotation）夹在中间",
            unknown.events,
            "不认识的事件类型直接跳过：新功能总会带来新的事件，别因为它们出错。",
        ),
        StreamCase(
            "max_output_tokens 不够：以 response.incomplete 结束",
            _Responses()
            .start()
            .message(0, ["你好", "！", "有什么", "问题"])
            .completed(4, "incomplete", "max_output_tokens")
            .events,
            "response.incomplete 也是结束事件：status 是 incomplete，usage 在它的 response 里。",
        ),
        StreamCase(
            "流在中途断开（没有 response.completed）",
            _Responses().start().message(0, ["你好", "！", "有什么"], finished=False).events,
            "没收到结束事件时，status 还是 in_progress，usage 是 None；已经收到的文字要保留。",
        ),
        StreamCase(
            "流中途收到 error 事件",
            broken.events,
            "event: error 说明服务器出错了：raise ValueError，说明里带上它的 message。",
            error="Something went wrong.",
        ),
        StreamCase(
            "流中途收到 response.failed",
            failed.events,
            "response.failed 说明回答失败了：raise ValueError，说明里带上 response.error.message。",
            error="The model failed to generate a response.",
        ),
    ]


def expected_responses(events: list[ServerSentEvent]) -> dict[str, Any]:
    """What ``assemble_responses`` must return, from the kit's assembler (which raises
    :class:`~lesson_helpers.responses.ResponsesStreamError` where it must raise)."""
    result = kit_responses.assemble(events)
    return {
        "text": result.text,
        "reasoning": result.reasoning,
        "calls": [
            {"call_id": c.call_id, "name": c.name, "arguments": c.arguments}
            for c in result.function_calls
        ],
        "usage": result.usage,
        "status": result.status,
    }


_RESPONSES_HINTS = {
    "text": "只有 response.output_text.delta 是回答的文字，按顺序拼起来；"
    "response.output_text.done 和 response.output_item.done 里是重复的全文，不要再加一遍。",
    "reasoning": "response.reasoning_summary_text.delta 是推理摘要：拼进 reasoning，不算进 text。",
    "calls": "response.output_item.added 里 type 为 function_call 的 item 带着 call_id 和 name；"
    "之后 response.function_call_arguments.delta 按 output_index 把参数接到那个调用上。",
    "usage": "usage 在 response.completed（或 response.incomplete）的 response.usage 里；"
    "流没有正常结束时是 None。",
    "status": "status 取最后一个 response.created / in_progress / completed / incomplete "
    "事件里 response.status 的值。",
}

# --------------------------------------------------------------------------------------------
# Messages streams
# --------------------------------------------------------------------------------------------


class _Messages:
    """A Messages stream, block by block."""

    def __init__(self, usage: dict | None = None) -> None:
        self.events: list[ServerSentEvent] = []
        self.blocks = 0
        usage = usage or {"input_tokens": 30, "output_tokens": 1}
        message = {
            "id": "msg_lesson08",
            "type": "message",
            "role": "assistant",
            "model": "lesson-model",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        self.add("message_start", message=message)

    def add(self, kind: str, **data: Any) -> _Messages:
        self.events.append(_event(kind, data))
        return self

    def _start(self, block: dict[str, Any]) -> int:
        index = self.blocks
        self.blocks += 1
        self.add("content_block_start", index=index, content_block=block)
        if index == 0:
            self.add("ping")
        return index

    def text(self, pieces: list[str]) -> _Messages:
        index = self._start({"type": "text", "text": ""})
        for piece in pieces:
            self.add(
                "content_block_delta", index=index, delta={"type": "text_delta", "text": piece}
            )
        return self.add("content_block_stop", index=index)

    def thinking(self, pieces: list[str]) -> _Messages:
        index = self._start({"type": "thinking", "thinking": "", "signature": ""})
        for piece in pieces:
            delta = {"type": "thinking_delta", "thinking": piece}
            self.add("content_block_delta", index=index, delta=delta)
        delta = {"type": "signature_delta", "signature": "bG9jYWwtc2lnbmF0dXJl"}
        self.add("content_block_delta", index=index, delta=delta)
        return self.add("content_block_stop", index=index)

    def tool(self, tool_id: str, name: str, pieces: list[str], *, stop: bool = True):
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        index = self._start(block)
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece}
            self.add("content_block_delta", index=index, delta=delta)
        return self.add("content_block_stop", index=index) if stop else self

    def end(self, reason: str, usage: dict[str, Any], sequence: str | None = None):
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        self.add("message_delta", delta=delta, usage=usage)
        return self.add("message_stop")


def messages_cases() -> list[StreamCase]:
    """Small Messages streams, each testing one rule."""
    beijing = ["", '{"', "city", '": "', "北京", '"}']
    shanghai = ['{"city": ', '"上海"}']
    odd = _Messages().text(["你好"])
    odd.add("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {}})
    odd.add("future_event", note="an event type this assembler does not know")
    odd.end("end_turn", {"output_tokens": 1})
    overloaded = _Messages().text(["你好", "！"])
    overloaded.add("error", error={"type": "overloaded_error", "message": "Overloaded"})
    nulls = {"input_tokens": None, "output_tokens": 10, "cache_read_input_tokens": None}
    return [
        StreamCase(
            "作业示例流的回答（一个 text 块，10 段文字）",
            _Messages().text(list(seed.PIECES)).end("end_turn", {"output_tokens": 10}).events,
            "按顺序把 text_delta 的 text 拼起来。",
        ),
        StreamCase(
            "推理模型：先是 thinking 块（带 signature），再是 text 块",
            _Messages()
            .thinking(["用户", "在打", "招呼。"])
            .text(["你好", "！"])
            .end("end_turn", {"output_tokens": 6})
            .events,
            "thinking_delta 拼进 thinking；signature_delta 是签名，不是思考的文字。",
        ),
        StreamCase(
            "先说一句话，再同时调用两次 get_weather",
            _Messages()
            .text(["我来查一下。"])
            .tool("toolu_bj", "get_weather", beijing)
            .tool("toolu_sh", "get_weather", shanghai)
            .end("tool_use", {"output_tokens": 30})
            .events,
            "tool_use 块的 id 和 name 在 content_block_start 里；input_json_delta 的 "
            "partial_json 按块（index）拼起来，content_block_stop 时再 json.loads。",
        ),
        StreamCase(
            "调用一个没有参数的工具（没有 input_json_delta）",
            _Messages()
            .tool("toolu_now", "get_current_time", [])
            .end("tool_use", {"output_tokens": 8})
            .events,
            "一段 partial_json 都没有时，input 是 {}（json.loads('') 会出错）。",
        ),
        StreamCase(
            "message_delta 的 usage 里有 null",
            _Messages().text(["你好"]).end("end_turn", nulls).events,
            "message_delta 的 usage 是到目前为止的总数，要覆盖 message_start 里的同名数字；"
            "但值为 null（None）的项表示“没有新数字”，不要拿它覆盖。",
        ),
        StreamCase(
            "碰到 stop_sequences 里的字符串停下",
            _Messages()
            .text(["你好", "！", "有什么"])
            .end("stop_sequence", {"output_tokens": 3}, "问题")
            .events,
            "stop_reason 在 message_delta 的 delta 里。",
        ),
        StreamCase(
            "ping、不认识的事件、不认识的 delta 类型",
            odd.events,
            "ping、不认识的事件类型和 delta 类型（例如 citations_delta）直接跳过。",
        ),
        StreamCase(
            "流在工具参数的中途断开（没有 content_block_stop，也没有 message_delta）",
            _Messages().tool("toolu_cut", "get_weather", ['{"city', '": "北'], stop=False).events,
            "工具块没等到 content_block_stop，参数就不完整：input 是 None（绝不能拿半截去运行）；"
            "没有 message_delta，stop_reason 也是 None。",
        ),
        StreamCase(
            "流中途收到 error 事件（overloaded_error）",
            overloaded.events,
            "event: error 说明服务器出错了（例如过载）：raise ValueError，说明里带上它的 message。",
            error="Overloaded",
        ),
    ]


def expected_messages(events: list[ServerSentEvent]) -> dict[str, Any]:
    """What ``assemble_messages`` must return, from the kit's assembler (which raises
    :class:`~lesson_helpers.messages.MessagesStreamError` where it must raise)."""
    result = kit_messages.assemble(events)
    return {
        "text": result.text,
        "thinking": result.thinking,
        "tool_uses": [{"id": t.id, "name": t.name, "input": t.input} for t in result.tool_uses],
        "usage": result.usage,
        "stop_reason": result.stop_reason,
    }


_MESSAGES_HINTS = {
    "text": "只有 text_delta 是回答的文字：按顺序拼起来。",
    "thinking": "thinking_delta 的 thinking 拼进 thinking；signature_delta 不是文字。",
    "tool_uses": "tool_use 块：id、name 在 content_block_start 的 content_block 里；"
    "partial_json 拼好后在 content_block_stop 时 json.loads（什么都没有就是 {}）。",
    "usage": "usage 先取 message_start 的 message.usage，再用 message_delta 的 usage 里"
    "不是 None 的项覆盖同名的项。",
    "stop_reason": "stop_reason 在 message_delta 的 delta 里；流没有正常结束时是 None。",
}

# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def _run_case(
    assemble: Callable[[list[ServerSentEvent]], Any],
    case: StreamCase,
    expected: Callable[[list[ServerSentEvent]], dict[str, Any]],
    hints: dict[str, str],
) -> bool:
    try:
        want: dict[str, Any] | None = expected(list(case.events))
    except ValueError:
        want = None  # the kit refuses this stream: so must the student's function
    try:
        got = assemble(list(case.events))
    except ValueError as exc:
        if want is None:
            if case.error and case.error not in str(exc):
                print(f"✗ {case.what}：抛出了 ValueError，但说明里没有服务器的原话。")
                print(f"  期望说明里有：{case.error!r}")
                print(f"  得到：{short(str(exc))}")
                print(f"  提示：{case.hint}")
                return False
            return True
        return crash(case.what, exc, case.hint)
    except Exception as exc:  # the student's code may raise anything (the stub: 还没完成)
        return crash(case.what, exc, case.hint)
    if want is None:
        print(f"✗ {case.what}：流里有错误，你的函数却正常返回了。")
        print(f"  得到：{short(got)}")
        print(f"  提示：{case.hint}")
        return False
    if not isinstance(got, dict):
        print(
            f"✗ {case.what}：返回的是 {type(got).__name__}，应该是 dict（键：{', '.join(want)}）。"
        )
        return False
    for key, value in want.items():
        if key not in got:
            print(f"✗ {case.what}：返回的 dict 里没有 {key!r}。")
            print(f"  提示：要有这些键：{', '.join(want)}。")
            return False
        if not same(got[key], value):
            print(f"✗ {case.what}：{key} 不对。")
            print(f"  期望：{short(value)}")
            print(f"  得到：{short(got[key])}")
            print(f"  提示：{hints[key]}（这个用例：{case.hint}）")
            return False
    return True


@check
def check_assemble_responses(assemble_responses: Callable[[list[ServerSentEvent]], dict]) -> None:
    """Compare ``assemble_responses`` with :mod:`lesson_helpers.responses` on every case."""
    cases = responses_cases()
    for case in cases:
        if not _run_case(assemble_responses, case, expected_responses, _RESPONSES_HINTS):
            return
    print(
        f"✓ assemble_responses：{len(cases)} 段 Responses 流都和 lesson_helpers.responses 一致"
        "（文字、推理摘要、并行的函数调用、不认识的事件、incomplete、断开、error、failed）。"
    )


@check
def check_assemble_messages(assemble_messages: Callable[[list[ServerSentEvent]], dict]) -> None:
    """Compare ``assemble_messages`` with :mod:`lesson_helpers.messages` on every case."""
    cases = messages_cases()
    for case in cases:
        if not _run_case(assemble_messages, case, expected_messages, _MESSAGES_HINTS):
            return
    print(
        f"✓ assemble_messages：{len(cases)} 段 Messages 流都和 lesson_helpers.messages 一致"
        "（文字、thinking 与签名、并行的 tool_use、没有参数的工具、usage 里的 null、"
        "stop_sequence、ping 和不认识的事件、断开、error）。"
    )
