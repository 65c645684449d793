"""Self-checks for lesson 03 (putting ``chat.completion.chunk`` deltas back together).

* :func:`check_assemble_content` -- ``assemble_content(chunks) -> str``: the answer text of
  choice 0;
* :func:`check_merge_tool_calls` -- ``merge_tool_calls(chunks) -> list[dict]``: the tool calls
  of choice 0 as they go into the history,
  ``[{"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}, ...]``.

The expected values come from :func:`lesson_helpers.chunks.assemble` on the same chunks. Every
check prints one ``✓`` line, or a ``✗`` line with the case, expected, got and a hint; it returns
nothing (so a check cell shows only that line) and never raises because of the student's
code.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from .. import seed
from ..chunks import assemble
from ..sse import SSEParser
from .report import check, same
from .report import crash as _crash
from .report import fail as _fail

__all__ = [
    "check_assemble_content",
    "check_merge_tool_calls",
    "content_cases",
    "seed_chunks",
    "tool_call_cases",
]


# --------------------------------------------------------------------------------------------
# Test data: small, hand-written streams in the shapes real providers send
# --------------------------------------------------------------------------------------------


def seed_chunks() -> list[dict]:
    """The chunks of the seed's SiliconFlow stream (without the ``[DONE]`` marker)."""
    return [e.json() for e in SSEParser().feed(seed.stream_bytes()) if e.data != "[DONE]"]


def _chunk(choices: list[dict], usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-lesson03",
        "object": "chat.completion.chunk",
        "created": 1763350084,
        "model": "lesson-model",
        "choices": choices,
        "usage": usage,
    }


def _choice(index: int, delta: dict, finish_reason: str | None = None) -> dict:
    return {"index": index, "delta": delta, "finish_reason": finish_reason}


def _openai_style() -> list[dict]:
    pieces = ["流式", "输出", "很", "简单", "。"]
    chunks = [_chunk([_choice(0, {"role": "assistant", "content": "", "refusal": None})])]
    chunks += [_chunk([_choice(0, {"content": p})]) for p in pieces]
    chunks.append(_chunk([_choice(0, {}, "stop")]))
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    chunks.append(_chunk([], usage))  # stream_options.include_usage: no choices at all
    return chunks


def _reasoning_style() -> list[dict]:
    first = {"content": "", "reasoning_content": None, "role": "assistant"}
    chunks = [_chunk([_choice(0, first)])]
    for piece in ["先想", "一想", "。"]:
        chunks.append(_chunk([_choice(0, {"content": None, "reasoning_content": piece})]))
    for piece in ["答案", "是 42", "。"]:
        chunks.append(_chunk([_choice(0, {"content": piece, "reasoning_content": None})]))
    chunks.append(_chunk([_choice(0, {"content": "", "reasoning_content": None}, "stop")]))
    return chunks


def _two_choices_interleaved() -> list[dict]:
    chunks = []
    for i in (0, 1):
        chunks.append(_chunk([_choice(i, {"role": "assistant", "content": ""})]))
    for zero, one in [("春", "夏"), ("天", "天"), ("来了", "到了")]:
        chunks.append(_chunk([_choice(1, {"content": one})]))  # choice 1 happens to come first
        chunks.append(_chunk([_choice(0, {"content": zero})]))
    chunks.append(_chunk([_choice(0, {}, "stop")]))
    chunks.append(_chunk([_choice(1, {}, "stop")]))
    return chunks


def _two_choices_in_one_chunk() -> list[dict]:
    return [
        _chunk([_choice(1, {"role": "assistant", "content": "乙"}), _choice(0, {"content": "甲"})]),
        _chunk([_choice(1, {"content": "二"}), _choice(0, {"content": "一"})]),
        _chunk([_choice(0, {}, "stop"), _choice(1, {}, "stop")]),
    ]


def _groq_style() -> list[dict]:
    """Groq (also OpenRouter, vLLM, Ollama): the reasoning as ``delta.reasoning``, the usage
    in ``x_groq.usage`` of the last chunk."""
    chunks = [_chunk([_choice(0, {"role": "assistant", "content": ""})])]
    for piece in ["用户在", "打招呼。"]:
        chunks.append(_chunk([_choice(0, {"reasoning": piece})]))
    for piece in ["你好", "！"]:
        chunks.append(_chunk([_choice(0, {"content": piece})]))
    last = _chunk([_choice(0, {}, "stop")])
    del last["usage"]
    last["x_groq"] = {
        "id": "req_lesson03",
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
    chunks.append(last)
    return chunks


def _thinking_part(text: str) -> dict:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def _content_parts() -> list[dict]:
    """Mistral's reasoning models: ``content`` as a list of parts, thinking before text."""
    chunks = [_chunk([_choice(0, {"role": "assistant", "content": ""})])]
    for piece in ["先想", "一想。"]:
        chunks.append(_chunk([_choice(0, {"content": [_thinking_part(piece)]})]))
    chunks.append(_chunk([_choice(0, {"content": [{"type": "text", "text": "答案"}]})]))
    chunks.append(_chunk([_choice(0, {"content": "是 42。"})]))  # a plain string is fine too
    chunks.append(_chunk([_choice(0, {"content": ""}, "stop")]))
    return chunks


def content_cases() -> list[tuple[str, list[dict], str]]:
    """(name, chunks, hint) for :func:`check_assemble_content`."""
    return [
        ("SiliconFlow 的作业示例流", seed_chunks(), "把每块 choices[0].delta.content 依次拼起来。"),
        (
            "OpenAI 格式（最后一块 delta 是 {}，usage 块的 choices 是 []）",
            _openai_style(),
            "delta 里不一定有 content；usage 块没有任何 choice。",
        ),
        (
            "推理模型（content 经常是 null）",
            _reasoning_style(),
            "null 的 content 表示“这块没有回答文字”；reasoning_content 是思考过程，不属于回答。",
        ),
        (
            "n=2，两个回答的块交替到达",
            _two_choices_interleaved(),
            "只拼 index 为 0 的那个回答：按 choice['index'] 挑，而不是按列表位置。",
        ),
        (
            "n=2，一块里有两个 choice（列表顺序是 1、0）",
            _two_choices_in_one_chunk(),
            "choices 列表的顺序不代表 index：遍历 choices，挑出 choice['index'] == 0 的那个。",
        ),
        (
            "Groq 格式（思考过程在 delta.reasoning 里）",
            _groq_style(),
            "reasoning（和 reasoning_content 一样）是思考过程，不属于回答。",
        ),
        (
            "Mistral 格式（content 是一个列表：先是 thinking 部分，再是 text 部分）",
            _content_parts(),
            "content 是列表时，只把 type 为 'text' 的部分的 'text' 拼进回答；"
            "type 为 'thinking' 的是思考过程，不属于回答。",
        ),
        ("空流（一块都没有）", [], "没有块时，回答是空字符串 ''。"),
    ]


def _fragment(
    index: int | None,
    arguments: str | None = None,
    *,
    call_id: str | None = None,
    name: str | None = None,
) -> dict:
    """One tool-call fragment as it appears in ``delta.tool_calls`` (``index=None``: none)."""
    fragment: dict[str, Any] = {} if index is None else {"index": index}
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
    function: dict[str, str] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    fragment["function"] = function
    return fragment


def _tool_chunk(*fragments: dict) -> dict:
    return _chunk([_choice(0, {"tool_calls": list(fragments)})])


def _tool_start() -> dict:
    return _chunk([_choice(0, {"role": "assistant", "content": None})])


def _tool_end() -> dict:
    return _chunk([_choice(0, {}, "tool_calls")])


def tool_call_cases() -> list[tuple[str, list[dict], str]]:
    """(name, chunks, hint) for :func:`check_merge_tool_calls`."""
    one = [
        _tool_start(),
        _tool_chunk(_fragment(0, "", call_id="call_bj", name="get_weather")),
        _tool_chunk(_fragment(0, '{"ci')),
        _tool_chunk(_fragment(0, 'ty": "北')),
        _tool_chunk(_fragment(0, '京"}')),
        _tool_end(),
    ]
    sequential = [
        _tool_start(),
        _tool_chunk(_fragment(0, "", call_id="call_bj", name="get_weather")),
        _tool_chunk(_fragment(0, '{"city": ')),
        _tool_chunk(_fragment(0, '"北京"}')),
        _tool_chunk(_fragment(1, "", call_id="call_sh", name="get_weather")),
        _tool_chunk(_fragment(1, '{"city": ')),
        _tool_chunk(_fragment(1, '"上海"}')),
        _tool_end(),
    ]
    interleaved = [
        _tool_start(),
        _tool_chunk(_fragment(0, "", call_id="call_bj", name="get_weather")),
        _tool_chunk(_fragment(1, "", call_id="call_t", name="get_time")),
        _tool_chunk(_fragment(0, '{"city": ')),
        _tool_chunk(_fragment(1, '{"tz": ')),
        _tool_chunk(_fragment(1, '"Asia/Shanghai"}')),
        _tool_chunk(_fragment(0, '"北京"}')),
        _tool_end(),
    ]
    reversed_in_one_delta = [
        _tool_start(),
        _tool_chunk(
            _fragment(1, '{"city": "上', call_id="call_sh", name="get_weather"),
            _fragment(0, '{"city": "北', call_id="call_bj", name="get_weather"),
        ),
        _tool_chunk(_fragment(1, '海"}'), _fragment(0, '京"}')),
        _tool_end(),
    ]
    usage = {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}
    with_usage_chunk = [*copy.deepcopy(one), _chunk([], usage)]
    whole = [  # Groq, xAI: every call complete in one fragment
        _tool_start(),
        _tool_chunk(
            _fragment(0, '{"city": "北京"}', call_id="call_bj", name="get_weather"),
            _fragment(1, '{"city": "上海"}', call_id="call_sh", name="get_weather"),
        ),
        _tool_end(),
    ]
    no_index = [  # Mistral: no index; a fragment with a new id starts the next call
        _tool_start(),
        _tool_chunk(_fragment(None, '{"city": "北京"}', call_id="call_bj", name="get_weather")),
        _tool_chunk(_fragment(None, '{"city": ', call_id="call_sh", name="get_weather")),
        _tool_chunk(_fragment(None, '"上海"}')),
        _tool_end(),
    ]
    empty_id = _fragment(0, '"北京"}')
    empty_id["id"] = ""  # DashScope (Qwen): later fragments say "id": ""
    empty_ids = [
        _tool_start(),
        _tool_chunk(_fragment(0, "", call_id="call_bj", name="get_weather")),
        _tool_chunk({**_fragment(0, '{"city": '), "id": "", "type": "function"}),
        _tool_chunk(empty_id),
        _tool_end(),
    ]
    return [
        ("一个调用，arguments 分 4 段到达", one, "同一个 index 的 arguments 片段要依次拼接。"),
        (
            "两个调用，先后到达",
            sequential,
            "每个 index 是一个独立的调用；第一个片段带 id 和 name，后面的片段只有 arguments。",
        ),
        (
            "两个调用，片段交替到达",
            interleaved,
            "片段按 index 归类，而不是按到达顺序：用一个 {index: 调用} 的字典收集。",
        ),
        (
            "同一块里有两个片段，列表顺序是 index 1、0",
            reversed_in_one_delta,
            "delta.tool_calls 里片段的位置不代表 index，要看片段自己的 'index'。",
        ),
        (
            "最后还有一个 usage 块（choices 为 []）",
            with_usage_chunk,
            "usage 块没有任何 choice，跳过它。",
        ),
        (
            "两个完整的调用在同一块里一次到达",
            whole,
            "一个片段也可以一次带齐 id、name 和完整的 arguments。",
        ),
        (
            "片段没有 index（Mistral）",
            no_index,
            "片段没有 'index' 时：带着一个新 id 的片段开始下一个调用，"
            "不带 id 的接在最后一个调用后面。",
        ),
        (
            '后面的片段带着 "id": ""（通义千问 DashScope）',
            empty_ids,
            '空字符串 "" 不是 id：不要让它覆盖第一个片段里的真 id。',
        ),
        (
            "普通回答，没有工具调用",
            seed_chunks(),
            "没有工具调用时返回空列表 []。",
        ),
    ]


# --------------------------------------------------------------------------------------------
# assemble_content
# --------------------------------------------------------------------------------------------


def _content_crash_hint(exc: BaseException, default: str) -> str:
    if isinstance(exc, IndexError):
        return (
            "有的块 choices 是空列表（OpenAI 的 include_usage 最后一块只有 usage）："
            "chunk['choices'][0] 会出错，先判断 choices 是否为空，或者直接遍历 choices。"
        )
    if isinstance(exc, KeyError):
        return (
            f"字典里没有键 {exc}：delta 不一定带 content（例如最后一块的 delta 是 {{}}），"
            "用 delta.get('content')。"
        )
    if isinstance(exc, TypeError) and "NoneType" in str(exc):
        return (
            "content 可能是 null（Python 里是 None），不能直接拼接：用 delta.get('content') or ''。"
        )
    if isinstance(exc, TypeError) and "list" in str(exc):
        return "content 也可能是一个列表（Mistral）：遍历它，只拼 type 为 'text' 的部分的 'text'。"
    return default


def _thinking_texts(chunks: list[dict]) -> list[str]:
    """The thinking parts' texts of ``chunks`` (where content is a list of parts)."""
    texts = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            for part in content if isinstance(content, list) else []:
                for inner in part.get("thinking") or []:
                    texts.append(inner.get("text") or "")
    return [text for text in texts if text]


def _assemble_content_ok(assemble_content: Callable[[list[dict]], Any]) -> bool:
    cases = content_cases()
    for name, chunks, hint in cases:
        expected = assemble(chunks).content
        what = f"用例「{name}」"
        try:
            got = assemble_content(copy.deepcopy(chunks))
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, _content_crash_hint(exc, hint))
        if same(got, expected):
            continue
        if not isinstance(got, str):
            return _fail(what, expected, got, "应该返回一个字符串（把各块的文字拼起来）。")
        result = assemble(chunks)
        if not got:
            hint = "返回了空字符串：是不是 TODO 里的 ... 还没补全？" + hint
        elif "'type'" in got or '"type"' in got:
            hint = (
                "结果里出现了列表的样子：content 是列表（Mistral）时，不要 str(列表)，"
                "只拼其中 type 为 'text' 的部分的 'text'。"
            )
        elif any(text in got for text in _thinking_texts(chunks)):
            hint = (
                "把 thinking 部分（思考过程）也拼进去了：列表里只有 type 为 'text' 的部分属于回答。"
            )
        elif result.reasoning_content and result.reasoning_content in got:
            hint = (
                "把思考过程（reasoning_content 或 reasoning）也拼进去了："
                "回答只看 delta 里的 content。"
            )
        elif "None" in got:
            hint = "结果里出现了 'None'：content 为 null 时要当成 ''，不要 str(None)。"
        elif len(result.choices) > 1 and got != expected:
            hint = (
                "混进了另一个回答（index 1）的文字：n>1 时每块可能属于不同的 choice，"
                "要按 choice['index'] == 0 挑选。"
            )
        return _fail(what, expected, got, hint)
    print(
        f"✓ assemble_content：{len(cases)} 个用例都和 lesson_helpers.chunks.assemble 一致"
        "（SiliconFlow、OpenAI、推理模型、Groq、Mistral 的内容列表、n=2、空流）。"
    )
    return True


# --------------------------------------------------------------------------------------------
# merge_tool_calls
# --------------------------------------------------------------------------------------------

_SHAPE = '[{"id": "call_1", "type": "function", "function": {"name": "...", "arguments": "..."}}]'


def _normalise_calls(got: Any) -> list[tuple[Any, Any, Any, Any]] | str:
    """(id, type, name, arguments) per call, or a hint when the shape is wrong."""
    if isinstance(got, dict):
        return (
            "返回值应该是按 index 排好序的列表，而不是字典："
            "例如 [calls[i] for i in sorted(calls)]。"
        )
    if not isinstance(got, list):
        return f"返回值应该是列表，形如 {_SHAPE}。"
    out = []
    for call in got:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            return (
                f"每个调用应该是这样的字典：{_SHAPE[1:-1]}（name 和 arguments 在 function 里面）。"
            )
        function = call["function"]
        out.append(
            (call.get("id"), call.get("type"), function.get("name"), function.get("arguments"))
        )
    return out


def _tool_crash_hint(exc: BaseException, default: str) -> str:
    if isinstance(exc, IndexError):
        return (
            "有的块 choices 是空列表（usage 块）：先判断 choices 是否为空，或者直接遍历 choices。"
        )
    if isinstance(exc, KeyError) and exc.args == ("index",):
        return (
            "有的服务商（Mistral）的片段没有 'index'：用 fragment.get('index')；没有时，"
            "带着一个新 id 的片段开始下一个调用，不带 id 的接在最后一个调用后面。"
        )
    if isinstance(exc, KeyError):
        return (
            f"字典里没有键 {exc}：只有每个调用的第一个片段带 id、type 和 name，"
            "delta 也不一定有 tool_calls——都用 .get() 读取。"
        )
    if isinstance(exc, TypeError) and "NoneType" in str(exc):
        return "有的值是 None，不能直接拼接或遍历：用 x.get('...') or '' / or []。"
    return default


def _diagnose_calls(
    expected: list[tuple[Any, ...]], got: list[tuple[Any, ...]], chunks: list[dict], default: str
) -> str:
    if expected and not got:
        return (
            "一个调用都没有收集到：碎片在 chunk['choices'][i]['delta']['tool_calls'] 这个列表里，"
            "每个碎片有自己的 'index'。"
        )
    fragments = [
        f
        for chunk in chunks
        for choice in chunk.get("choices") or []
        for f in (choice.get("delta") or {}).get("tool_calls") or []
    ]
    no_index = any("index" not in f for f in fragments)
    if no_index and len(got) != len(expected):
        return (
            f"应该有 {len(expected)} 个调用，你得到 {len(got)} 个：片段没有 'index' 时，"
            "带着一个新 id 的片段开始下一个调用，不带 id 的片段接在最后一个调用后面。"
        )
    if len(got) > len(expected):
        return (
            f"应该有 {len(expected)} 个调用，你得到 {len(got)} 个："
            "同一个 index 的片段属于同一个调用，不要把每个片段都当成新调用。"
        )
    if len(got) < len(expected):
        return (
            f"应该有 {len(expected)} 个调用，你只得到 {len(got)} 个："
            "不同 index 的片段是不同的调用，按片段里的 'index' 分开收集。"
        )
    if sorted(got, key=repr) == sorted(expected, key=repr):
        return "调用都对，但顺序不对：按 index 从小到大排列。"
    last_args = {
        f.get("index"): f["function"].get("arguments") for f in fragments if "function" in f
    }
    for (want_id, _, want_name, want_args), (got_id, _, got_name, got_args) in zip(
        expected, got, strict=True
    ):
        if got_id == "":
            return (
                'id 成了空字符串：有的服务商（DashScope）在后面的片段里发 "id": ""，'
                "它不是 id。只在片段的 id 不为空、而调用还没有 id 时才记下。"
            )
        if got_id != want_id:
            return (
                "id 不对：id 只在每个调用的第一个片段里出现，后面的片段没有 id——"
                "不要用 None 覆盖已经拿到的 id（只在片段带 id 时才记下）。"
            )
        if got_name != want_name:
            return "name 不对：name 通常只在第一个片段里，后面的片段没有 name，不要覆盖。"
        if got_args != want_args:
            if got_args in last_args.values():
                return "arguments 只剩最后一段：片段要用 += 拼接，而不是赋值覆盖。"
            if (
                isinstance(got_args, str)
                and isinstance(want_args, str)
                and len(got_args) > len(want_args)
            ):
                return "arguments 太长：有片段被拼了两次，或者拼进了别的调用的片段。"
            return "arguments 不对：把同一个 index 的 arguments 片段按到达顺序拼起来。"
    return default


def _merge_tool_calls_ok(merge_tool_calls: Callable[[list[dict]], Any]) -> bool:
    cases = tool_call_cases()
    for name, chunks, hint in cases:
        message = assemble(chunks).to_message()
        expected_calls = message.get("tool_calls", [])
        expected = [
            (c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
            for c in expected_calls
        ]
        what = f"用例「{name}」"
        try:
            got_raw = merge_tool_calls(copy.deepcopy(chunks))
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, _tool_crash_hint(exc, hint))
        got = _normalise_calls(got_raw)
        if isinstance(got, str):
            return _fail(what, expected_calls, got_raw, got)
        if not same(got, expected):
            return _fail(
                what, expected_calls, got_raw, _diagnose_calls(expected, got, chunks, hint)
            )
        for call in expected_calls:  # the merged arguments must be complete JSON
            json.loads(call["function"]["arguments"])
    print(
        f"✓ merge_tool_calls：{len(cases)} 个用例都和 lesson_helpers.chunks.assemble 一致"
        "（分段、先后、交替、乱序、usage 块、一次到齐、没有 index、空 id、无调用）。"
    )
    return True


# --------------------------------------------------------------------------------------------
# The checks the lesson calls (they print; they return nothing, so a cell shows only the print)
# --------------------------------------------------------------------------------------------


@check
def check_assemble_content(assemble_content: Callable[[list[dict]], Any]) -> None:
    """Check ``assemble_content(chunks) -> str`` against :func:`assemble` on the same chunks."""
    _assemble_content_ok(assemble_content)


@check
def check_merge_tool_calls(merge_tool_calls: Callable[[list[dict]], Any]) -> None:
    """Check ``merge_tool_calls(chunks) -> list[dict]`` against :func:`assemble`."""
    _merge_tool_calls_ok(merge_tool_calls)
