"""The self-checks of lessons 02 and 03 accept right answers and catch typical wrong ones.

Each wrong answer below is a mistake students really make. The test asserts that the check
prints a ``✗`` line and, more importantly, that its hint points at that mistake.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import routed_output

from grading.editions import student_notebook
from lesson_helpers.checks import lesson02, lesson03
from lesson_helpers.chunks import assemble
from lesson_helpers.sse import ServerSentEvent


def run_check(check: Callable[[Any], None], answer: Any, capsys: pytest.CaptureFixture) -> str:
    """Run a check; return what it printed. A check returns None, so a cell shows only its print."""
    assert check(answer) is None
    out = routed_output(capsys)
    assert out.startswith(("✓", "✗")), out
    return out


def assert_passes(check: Callable[[Any], None], answer: Any, capsys: pytest.CaptureFixture) -> None:
    out = run_check(check, answer, capsys)
    assert out.startswith("✓"), out
    assert out.count("\n") == 1, "a passing check prints exactly one line"


def assert_caught(
    check: Callable[[Any], None], answer: Any, hint: str, capsys: pytest.CaptureFixture
) -> str:
    out = run_check(check, answer, capsys)
    assert out.startswith("✗"), out
    assert "提示：" in out, out
    assert hint in out, f"expected the hint to mention {hint!r}, got:\n{out}"
    return out


# ============================================================================================
# Lesson 02: reference answers (the same as the notebook's collapsed solutions)
# ============================================================================================

_LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> tuple[list[str], str]:
    parts = _LINE_END.split(text)
    return parts[:-1], parts[-1]


def parse_field(line: str) -> tuple[str, str] | None:
    if line.startswith(":"):
        return None
    name, _, value = line.partition(":")
    if value.startswith(" "):
        value = value[1:]
    return name, value


class MyParser:
    """The lesson's reference parser; subclasses below break one rule each."""

    errors = "replace"

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors=self.errors)
        self.rest = ""
        self.after_cr = False
        self.data_lines: list[str] = []
        self.event_type = ""
        self.last_id = ""
        self.retry: int | None = None

    def decode(self, data: bytes) -> str:
        return self.decoder.decode(data)

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        text = self.decode(data)
        if self.after_cr and text.startswith("\n"):
            text = text[1:]
            self.after_cr = False
        if text:
            self.after_cr = text.endswith("\r")
        lines, self.rest = self.split(self.rest + text)
        events = []
        for line in lines:
            if line == "":
                event = self.dispatch()
                if event is not None:
                    events.append(event)
                continue
            field = parse_field(line)
            if field is None:
                continue
            name, value = field
            if name == "data":
                self.data_lines.append(value)
            elif name == "event":
                self.event_type = value
            elif name == "id" and "\0" not in value:
                self.last_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry = int(value)
        return events

    def split(self, text: str) -> tuple[list[str], str]:
        return split_lines(text)

    def dispatch(self) -> ServerSentEvent | None:
        if not self.data_lines:
            self.event_type = ""
            return None
        event = ServerSentEvent(
            event=self.event_type or "message",
            data="\n".join(self.data_lines),
            id=self.last_id,
            retry=self.retry,
        )
        self.data_lines, self.event_type, self.retry = [], "", None
        return event


# ---- lesson 02: right answers pass --------------------------------------------------------


def test_reference_split_lines_passes(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson02.check_split_lines, split_lines, capsys)


def test_reference_parse_field_passes(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson02.check_parse_field, parse_field, capsys)


def test_reference_parser_passes(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson02.check_parser, MyParser, capsys)


def test_the_kit_parser_itself_passes(capsys: pytest.CaptureFixture) -> None:
    from lesson_helpers.sse import SSEParser

    assert_passes(lesson02.check_parser, SSEParser, capsys)


def test_parser_check_accepts_dict_events(capsys: pytest.CaptureFixture) -> None:
    class DictEvents(MyParser):
        def feed(self, data: bytes) -> list[dict]:  # type: ignore[override]
            return [
                {"event": e.event, "data": e.data, "id": e.id, "retry": e.retry}
                for e in super().feed(data)
            ]

    assert_passes(lesson02.check_parser, DictEvents, capsys)


# ---- lesson 02: split_lines mistakes ------------------------------------------------------


def split_on_lf_only(text: str) -> tuple[list[str], str]:
    parts = text.split("\n")
    return parts[:-1], parts[-1]


def split_with_splitlines(text: str) -> tuple[list[str], str]:
    parts = text.splitlines(keepends=True)
    if parts and not parts[-1].endswith(("\r", "\n")):
        rest = parts.pop()
    else:
        rest = ""
    return [p.rstrip("\r\n") for p in parts], rest


def split_cr_before_crlf(text: str) -> tuple[list[str], str]:
    parts = re.split(r"\r|\n|\r\n", text)  # "\r\n" never matches: CR wins first
    return parts[:-1], parts[-1]


def split_returns_only_lines(text: str) -> list[str]:
    return _LINE_END.split(text)


def split_tail_as_line(text: str) -> tuple[list[str], str]:
    parts = _LINE_END.split(text)
    if parts[-1] == "":
        parts.pop()
    return parts, ""


def split_drops_blank_lines(text: str) -> tuple[list[str], str]:
    lines, rest = split_lines(text)
    return [line for line in lines if line], rest


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (split_on_lf_only, "只按 \\n 切了"),
        (split_with_splitlines, "splitlines"),
        (split_cr_before_crlf, "CRLF（\\r\\n）是一个换行"),
        (split_returns_only_lines, "要返回两个值"),
        (split_tail_as_line, "应该是 rest"),
        (split_drops_blank_lines, "空行被丢掉了"),
        (lambda text: ([], ""), "返回的是空结果"),
    ],
)
def test_split_lines_mistakes_are_caught(
    wrong: Callable, hint: str, capsys: pytest.CaptureFixture
) -> None:
    assert_caught(lesson02.check_split_lines, wrong, hint, capsys)


def test_split_lines_failure_shows_input_expected_and_got(capsys: pytest.CaptureFixture) -> None:
    out = assert_caught(lesson02.check_split_lines, split_on_lf_only, "\\r", capsys)
    assert "split_lines('data: a\\r\\ndata: b\\r\\n\\r\\n')" in out
    assert "期望：(['data: a', 'data: b', ''], '')" in out
    assert "得到：(['data: a\\r', 'data: b\\r', '\\r'], '')" in out


# ---- lesson 02: parse_field mistakes ------------------------------------------------------


def field_strips_value(line: str) -> tuple[str, str] | None:
    if line.startswith(":"):
        return None
    name, _, value = line.partition(":")
    return name, value.strip()


def field_splits_every_colon(line: str) -> tuple[str, str] | None:
    if line.startswith(":"):
        return None
    if ":" not in line:
        return line, ""
    name, value = line.split(":")
    return name, value.removeprefix(" ")


def field_needs_a_colon(line: str) -> tuple[str, str] | None:
    if line.startswith(":"):
        return None
    name, value = line.split(":", 1)
    return name, value.removeprefix(" ")


def field_no_comments(line: str) -> tuple[str, str] | None:
    name, _, value = line.partition(":")
    return name, value.removeprefix(" ")


def field_lowercases_name(line: str) -> tuple[str, str] | None:
    result = parse_field(line)
    return None if result is None else (result[0].lower(), result[1])


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (field_strips_value, "只去掉一个空格"),
        (field_splits_every_colon, "只在第一个冒号处分开"),
        (field_needs_a_colon, "这一行没有冒号"),
        (field_no_comments, "注释行应该返回 None"),
        (field_lowercases_name, "区分大小写"),
        (lambda line: None, "只有注释才返回 None"),
    ],
)
def test_parse_field_mistakes_are_caught(
    wrong: Callable, hint: str, capsys: pytest.CaptureFixture
) -> None:
    assert_caught(lesson02.check_parse_field, wrong, hint, capsys)


# ---- lesson 02: parser mistakes -----------------------------------------------------------


class DecodesEachPiece(MyParser):
    def decode(self, data: bytes) -> str:
        return data.decode("utf-8")


class StrictDecoder(MyParser):
    errors = "strict"


class NoRestBuffer(MyParser):
    def split(self, text: str) -> tuple[list[str], str]:
        lines, rest = split_lines(text)
        return ([*lines, rest] if rest else lines), ""


class ForgetsTrailingCR(MyParser):
    def feed(self, data: bytes) -> list[ServerSentEvent]:
        self.after_cr = False
        return super().feed(data)


class KeepsEventType(MyParser):
    def dispatch(self) -> ServerSentEvent | None:
        event_type = self.event_type
        event = super().dispatch()
        self.event_type = event_type
        return event


class DispatchesEmptyData(MyParser):
    def dispatch(self) -> ServerSentEvent | None:
        if not self.data_lines:
            self.data_lines = [""]
        return super().dispatch()


class ResetsId(MyParser):
    def dispatch(self) -> ServerSentEvent | None:
        event = super().dispatch()
        if event is not None:
            self.last_id = ""
        return event


class KeepsOneSpaceTooMany(MyParser):
    def feed(self, data: bytes) -> list[ServerSentEvent]:
        events = super().feed(data)
        return [ServerSentEvent(e.event, " " + e.data, e.id, e.retry) for e in events]


class ReturnsNone(MyParser):
    def feed(self, data: bytes) -> None:  # type: ignore[override]
        super().feed(data)


class NeverDispatches(MyParser):
    def feed(self, data: bytes) -> list[ServerSentEvent]:
        super().feed(data)
        return []


class DropsLFOnlyWhenAlone(MyParser):
    """Handles a CR/LF split only when the LF arrives as a piece of its own."""

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        if data != b"\n":
            self.after_cr = False
        return super().feed(data)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (DecodesEachPiece, "停在一个汉字的中间"),
        (StrictDecoder, "errors='replace'"),
        (NoRestBuffer, "rest（没有换行结尾的半行）要存起来"),
        (ForgetsTrailingCR, "正好停在 \\r\\n 的中间"),
        (KeepsEventType, "都要把类型清空"),
        (DispatchesEmptyData, "data 缓冲为空"),
        (ResetsId, "id 设置后一直保留"),
        (KeepsOneSpaceTooMany, "空格没有去掉"),
        (ReturnsNone, "feed() 返回了 None"),
        (NeverDispatches, "一个事件都没有返回"),
    ],
)
def test_parser_mistakes_are_caught(wrong: type, hint: str, capsys: pytest.CaptureFixture) -> None:
    assert_caught(lesson02.check_parser, wrong, hint, capsys)


def test_random_chunkings_catch_what_whole_and_byte_by_byte_miss(
    capsys: pytest.CaptureFixture,
) -> None:
    out = assert_caught(lesson02.check_parser, DropsLFOnlyWhenAlone, "\\r\\n 的中间", capsys)
    assert "次随机切块" in out and "长度" in out


def test_parser_check_names_the_failing_input(capsys: pytest.CaptureFixture) -> None:
    out = assert_caught(lesson02.check_parser, KeepsEventType, "不管分发了没有", capsys)
    assert "用例「没有 data 的空行」整块喂入 b'event: ping\\n\\ndata: x\\n\\n'" in out
    assert "期望：[\"Event(data='x')\"]" in out
    assert "得到：[\"Event(event='ping', data='x')\"]" in out


# ---- lesson 02: the student edition's stubs -----------------------------------------------
def _not_written(text: str) -> Any:
    raise NotImplementedError("还没完成")


class StubParser:
    """The student edition's MyParser: __init__ is given, the methods are stubs."""

    def __init__(self) -> None:
        self.rest = ""

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        raise NotImplementedError("还没完成")


class HalfWrittenParser(MyParser):
    """feed is written, dispatch is still the stub: the check still says 还没完成."""

    def dispatch(self) -> ServerSentEvent | None:
        raise NotImplementedError("还没完成")


@pytest.mark.parametrize(
    ("check", "answer", "name"),
    [
        (lesson02.check_split_lines, _not_written, "_not_written"),
        (lesson02.check_parse_field, _not_written, "_not_written"),
        (lesson02.check_parser, StubParser, "StubParser"),
        (lesson02.check_parser, HalfWrittenParser, "HalfWrittenParser"),
    ],
)
def test_stubs_are_reported_as_not_done(
    check: Callable[[Any], None], answer: Any, name: str, capsys: pytest.CaptureFixture
) -> None:
    out = run_check(check, answer, capsys)
    assert out.startswith(f"✗ 还没完成：{name} "), out
    assert out.count("\n") == 1 and "Traceback" not in out


# ============================================================================================
# Lesson 03: reference answers
# ============================================================================================


def assemble_content(chunks: list[dict]) -> str:
    parts = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index") == 0:
                content = (choice.get("delta") or {}).get("content")
                if isinstance(content, list):  # Mistral: a list of parts
                    content = "".join(
                        p.get("text") or "" for p in content if p.get("type") == "text"
                    )
                parts.append(content or "")
    return "".join(parts)


def merge_tool_calls(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}  # index -> call, in the order the calls started
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index") != 0:
                continue
            for fragment in (choice.get("delta") or {}).get("tool_calls") or []:
                call_id = fragment.get("id") or None  # "" is no id
                index = fragment.get("index")
                if index is None:  # Mistral: a new id starts the next call
                    known = [i for i, call in calls.items() if call["id"] == call_id]
                    if known:
                        index = known[0]
                    elif call_id:
                        index = max(calls, default=-1) + 1
                    else:
                        index = list(calls)[-1] if calls else 0
                call = calls.setdefault(
                    index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call_id and not call["id"]:
                    call["id"] = call_id
                if fragment.get("type"):
                    call["type"] = fragment["type"]
                function = fragment.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def assemble_content_before_lists(chunks: list[dict]) -> str:
    """The reference before providers sent content as a list (a string is assumed)."""
    parts = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index") == 0:
                parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def merge_tool_calls_by_index_only(chunks: list[dict]) -> list[dict]:
    """The reference before providers left out the index (every fragment has one)."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index") != 0:
                continue
            for fragment in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(fragment["index"], _new_call())
                if fragment.get("id"):
                    call["id"] = fragment["id"]
                function = fragment.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def test_reference_assemble_content_passes(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson03.check_assemble_content, assemble_content, capsys)


def test_reference_merge_tool_calls_passes(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson03.check_merge_tool_calls, merge_tool_calls, capsys)


def test_kit_based_answers_pass(capsys: pytest.CaptureFixture) -> None:
    assert_passes(lesson03.check_assemble_content, lambda c: assemble(c).content, capsys)
    assert_passes(
        lesson03.check_merge_tool_calls,
        lambda c: assemble(c).to_message().get("tool_calls", []),
        capsys,
    )


def test_cases_cover_what_the_lesson_promises() -> None:
    assert assemble(lesson03.seed_chunks()).content == "你好！有什么问题或者需要帮助的吗？"
    names = [name for name, _, _ in lesson03.content_cases()]
    assert any("OpenAI" in n for n in names) and any("n=2" in n for n in names)
    cases = {name.split("（")[0]: chunks for name, chunks, _ in lesson03.content_cases()}
    groq = assemble(cases["Groq 格式"])
    assert (groq.content, groq.reasoning_content) == ("你好！", "用户在打招呼。")
    assert groq.usage == {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    mistral = assemble(cases["Mistral 格式"])
    assert (mistral.content, mistral.reasoning_content) == ("答案是 42。", "先想一想。")
    calls = {name.split("（")[0]: chunks for name, chunks, _ in lesson03.tool_call_cases()}
    for name in ("片段没有 index", "两个完整的调用在同一块里一次到达"):
        merged = assemble(calls[name]).tool_calls
        assert [(c.id, json.loads(c.arguments)) for c in merged] == [
            ("call_bj", {"city": "北京"}),
            ("call_sh", {"city": "上海"}),
        ]
    empty = assemble(calls['后面的片段带着 "id": ""']).tool_calls
    assert [(c.id, c.arguments) for c in empty] == [("call_bj", '{"city": "北京"}')]
    for _, chunks, _ in lesson03.tool_call_cases()[:-1]:
        result = assemble(chunks)
        assert result.finish_reason == "tool_calls"
        assert result.tool_calls, "every tool-call case but the last has calls"


# ---- lesson 03: assemble_content mistakes -------------------------------------------------


def content_first_choice_key(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"]["content"] for c in chunks)


def content_first_choice_get(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        text += chunk["choices"][0]["delta"].get("content") or ""
    return text


def content_no_none_guard(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            text += choice["delta"].get("content", "")
    return text


def content_str_of_none(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["delta"]:
                text += str(choice["delta"].get("content"))
    return text


def content_with_reasoning(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += (delta.get("reasoning_content") or "") + (delta.get("content") or "")
    return text


def content_every_choice(chunks: list[dict]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def content_by_list_position(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def content_str_of_list(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["index"] == 0:
                content = choice["delta"].get("content") or ""
                text += content if isinstance(content, str) else str(content)
    return text


def content_with_thinking_parts(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            content = choice["delta"].get("content") if choice["index"] == 0 else None
            for part in content if isinstance(content, list) else [{"text": content or ""}]:
                text += part.get("text") or "".join(t["text"] for t in part.get("thinking", []))
    return text


def content_with_groq_reasoning(chunks: list[dict]) -> str:
    text = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["index"] == 0:
                text += choice["delta"].get("reasoning") or ""
    return text + assemble_content(chunks)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (content_first_choice_key, "delta.get('content')"),
        (content_first_choice_get, "choices 是空列表"),
        (content_no_none_guard, "or ''"),
        (content_str_of_none, "'None'"),
        (content_with_reasoning, "reasoning_content"),
        (content_every_choice, "choice['index'] == 0"),
        (content_by_list_position, "choice['index'] == 0"),
        (assemble_content_before_lists, "content 也可能是一个列表"),
        (content_str_of_list, "不要 str(列表)"),
        (content_with_thinking_parts, "把 thinking 部分"),
        (content_with_groq_reasoning, "reasoning_content 或 reasoning"),
        (lambda chunks: "", "还没补全"),
    ],
)
def test_assemble_content_mistakes_are_caught(
    wrong: Callable, hint: str, capsys: pytest.CaptureFixture
) -> None:
    assert_caught(lesson03.check_assemble_content, wrong, hint, capsys)


def test_assemble_content_failure_names_the_case(capsys: pytest.CaptureFixture) -> None:
    out = assert_caught(lesson03.check_assemble_content, content_every_choice, "index", capsys)
    assert "用例「n=2，两个回答的块交替到达」" in out
    assert "期望：'春天来了'" in out


# ---- lesson 03: merge_tool_calls mistakes -------------------------------------------------


def _fragments(chunks: list[dict]):
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            yield from (choice.get("delta") or {}).get("tool_calls") or []


def _new_call() -> dict:
    return {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}


def tools_overwrite_arguments(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        call = calls.setdefault(f["index"], _new_call())
        call["id"] = call["id"] or f.get("id")
        call["function"]["name"] += f["function"].get("name") or ""
        call["function"]["arguments"] = f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_overwrite_id(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        call = calls.setdefault(f["index"], _new_call())
        call["id"] = f.get("id")
        call["function"]["name"] += f["function"].get("name") or ""
        call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_overwrite_name(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        call = calls.setdefault(f["index"], _new_call())
        call["id"] = call["id"] or f.get("id")
        call["function"]["name"] = f["function"].get("name")
        call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_one_call_per_fragment(chunks: list[dict]) -> list[dict]:
    return [
        {
            "id": f.get("id"),
            "type": "function",
            "function": {
                "name": f["function"].get("name") or "",
                "arguments": f["function"].get("arguments") or "",
            },
        }
        for f in _fragments(chunks)
    ]


def tools_by_list_position(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            for position, f in enumerate((choice.get("delta") or {}).get("tool_calls") or []):
                call = calls.setdefault(position, _new_call())
                call["id"] = call["id"] or f.get("id")
                call["function"]["name"] += f["function"].get("name") or ""
                call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_unsorted(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        call = calls.setdefault(f["index"], _new_call())
        call["id"] = call["id"] or f.get("id")
        call["function"]["name"] += f["function"].get("name") or ""
        call["function"]["arguments"] += f["function"].get("arguments") or ""
    return list(calls.values())


def tools_returns_dict(chunks: list[dict]) -> dict:
    return dict(enumerate(merge_tool_calls(chunks)))


def tools_first_choice(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for f in chunk["choices"][0]["delta"].get("tool_calls") or []:
            call = calls.setdefault(f["index"], _new_call())
            call["id"] = call["id"] or f.get("id")
            call["function"]["name"] += f["function"].get("name") or ""
            call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_no_index_is_zero(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        call = calls.setdefault(f.get("index", 0), _new_call())
        call["id"] = call["id"] or f.get("id")
        call["function"]["name"] += f["function"].get("name") or ""
        call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_empty_id_overwrites(chunks: list[dict]) -> list[dict]:
    calls: dict[int, dict] = {}
    for f in _fragments(chunks):
        index = f.get("index")
        if index is None:
            index = len(calls) if f.get("id") else len(calls) - 1
        call = calls.setdefault(index, _new_call())
        if "id" in f:
            call["id"] = f["id"]
        call["function"]["name"] += f["function"].get("name") or ""
        call["function"]["arguments"] += f["function"].get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def tools_flat_shape(chunks: list[dict]) -> list[dict]:
    return [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in merge_tool_calls(chunks)
    ]


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (tools_overwrite_arguments, "+= 拼接"),
        (tools_overwrite_id, "不要用 None 覆盖"),
        (tools_overwrite_name, "name 不对"),
        (tools_one_call_per_fragment, "不要把每个片段都当成新调用"),
        (tools_by_list_position, "按片段里的 'index' 分开收集"),
        (tools_unsorted, "按 index 从小到大"),
        (tools_returns_dict, "而不是字典"),
        (tools_first_choice, "choices 是空列表"),
        (tools_flat_shape, "name 和 arguments 在 function 里面"),
        (merge_tool_calls_by_index_only, "fragment.get('index')"),
        (tools_no_index_is_zero, "带着一个新 id 的片段开始下一个调用"),
        (tools_empty_id_overwrites, "id 成了空字符串"),
        (lambda chunks: [], "一个调用都没有收集到"),
    ],
)
def test_merge_tool_calls_mistakes_are_caught(
    wrong: Callable, hint: str, capsys: pytest.CaptureFixture
) -> None:
    assert_caught(lesson03.check_merge_tool_calls, wrong, hint, capsys)


def test_checks_survive_answers_that_raise(capsys: pytest.CaptureFixture) -> None:
    def boom(_: object) -> None:
        raise RuntimeError("not written yet")

    for check in (
        lesson02.check_split_lines,
        lesson02.check_parse_field,
        lesson03.check_assemble_content,
        lesson03.check_merge_tool_calls,
    ):
        out = assert_caught(check, boom, "", capsys)
        assert "RuntimeError" in out and "not written yet" in out

    class Boom:
        def feed(self, data: bytes) -> None:
            raise RuntimeError("not written yet")

    out = assert_caught(lesson02.check_parser, Boom, "", capsys)
    assert "RuntimeError" in out


# ---- lesson 03: the student edition's stubs ------------------------------------------------


def stub_assemble_content(chunks: list[dict]) -> str:
    raise NotImplementedError("还没完成")


def stub_merge_tool_calls(chunks: list[dict]) -> list[dict]:
    raise NotImplementedError("还没完成")


@pytest.mark.parametrize(
    ("check", "stub"),
    [
        (lesson03.check_assemble_content, stub_assemble_content),
        (lesson03.check_merge_tool_calls, stub_merge_tool_calls),
    ],
)
def test_lesson03_stub_is_reported_as_not_done(
    check: Callable[[Any], None], stub: Callable, capsys: pytest.CaptureFixture
) -> None:
    out = run_check(check, stub, capsys)
    assert out.startswith(f"✗ 还没完成：{stub.__name__} 里还是 raise NotImplementedError"), out
    assert out.count("\n") == 1


# ---- lesson 03: the notebook ----------------------------------------------------------------

LESSON03 = Path(__file__).resolve().parent.parent / "notebooks" / "03_chunk_assembly.ipynb"
LESSON03_EXERCISES = [  # (grade_id, function, points)
    ("l03-assemble-content", "assemble_content", 2),
    ("l03-merge-tool-calls", "merge_tool_calls", 3),
]


def test_lesson03_follows_the_exercise_pattern() -> None:
    nb = nbformat.read(LESSON03, as_version=4)
    cells = nb.cells
    assert "练习怎么做" in cells[0].source and "python -m grading" in cells[0].source
    solutions = [i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(solutions) == len(LESSON03_EXERCISES)
    for i, (grade_id, name, points) in zip(solutions, LESSON03_EXERCISES, strict=True):
        solution, check = cells[i], cells[i + 1]
        assert solution.metadata == {
            "nbgrader": {
                "solution": True,
                "grade": False,
                "locked": False,
                "grade_id": grade_id,
                "schema_version": 3,
            }
        }
        assert f"def {name}(" in solution.source
        assert "    ### BEGIN SOLUTION\n" in solution.source
        assert check.metadata == {
            "nbgrader": {
                "solution": False,
                "grade": True,
                "locked": True,
                "points": points,
                "grade_id": f"{grade_id}-check",
                "schema_version": 3,
            }
        }
        assert f"check_{name}({name})" in check.source
        assert [o["name"] for o in check.outputs] == ["stdout"]
        assert check.outputs[0]["text"].startswith("✓")
    for cell in cells:
        assert "solution" not in cell.metadata.get("tags", [])
        assert "source_hidden" not in cell.metadata.get("jupyter", {})
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
        for output in cell.get("outputs", []):
            assert output.output_type != "error", cell.source[:80]
            assert output.get("name") != "stderr", cell.source[:80]
    assert "种子" not in LESSON03.read_text(encoding="utf-8")


def test_lesson03_student_edition_calls_exercises_only_where_it_may() -> None:
    """In the student edition, code outside the exercise and check cells uses the students'
    functions only inside ``uses_exercise`` (so Run All has no traceback)."""
    student = student_notebook(nbformat.read(LESSON03, as_version=4))
    for cell in student.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution") or meta.get("grade"):
            continue
        for number, line in enumerate(cell.source.splitlines()):
            if re.search(r"\b(assemble_content|merge_tool_calls)\(", line):
                before = cell.source.splitlines()[:number]
                assert any("with uses_exercise(" in b for b in before), cell.source


def test_lesson03_teaches_every_provider_shape_with_a_runnable_cell() -> None:
    """Issue 14's rules, each with hand-written chunks in a code cell and its stored output."""
    nb = nbformat.read(LESSON03, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    shapes = {
        "reasoning": '{"reasoning": ',
        "content parts": '"type": "thinking"',
        "x_groq usage": '"x_groq"',
        "refusal": '"refusal": "',
        "no index": 'tool_chunk({"function": {"arguments"',
        "empty id": '"id": ""',
    }
    for shape, text in shapes.items():
        cells = [c for c in code if text in c.source]
        assert cells, f"no cell shows {shape}"
        assert any(c.outputs for c in cells), f"the {shape} cell has no stored output"
    printed = "\n".join(o.get("text", "") for c in code for o in c.outputs)
    assert "用户在打招呼。 | 你好！" in printed  # `reasoning` kept as the reasoning
    assert "回答： '答案是 42。'  思考： '先想一想。'" in printed  # content parts
    assert "'refusal': '抱歉，这个我不能帮忙。'" in printed
    assert 'Mistral   1 call_sh get_weather {"city": "上海"}' in printed
    assert "DashScope 0 call_bj get_weather" in printed
