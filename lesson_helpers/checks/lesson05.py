"""Self-check for lesson 05 (the conversation history of app.py).

* :func:`check_trim_history` -- ``trim_history(messages, max_turns) -> list[dict]``: the
  system messages at the start, followed by the last ``max_turns`` turns of the conversation.
  A turn starts at a ``user`` message and runs up to the next one, so it holds the question
  and whatever came back -- an answer, or nothing if the answer was interrupted.

The check prints one ``✓`` line, or a ``✗`` line with the case, the expected and the actual
result, and a hint. It returns nothing and never raises because of the student's code; the
student edition's stub (``raise NotImplementedError``) gives one "还没完成" line.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .report import check, crash, same

__all__ = ["check_trim_history", "trim_cases"]

Message = dict[str, Any]

SYSTEM = {"role": "system", "content": "你是一位耐心的助教，回答要简短。"}


def conversation(spec: str) -> list[Message]:
    """A conversation from a short spelling: ``"S u1 a1 u2"`` is the system message, user's
    "问题 1", assistant's "回答 1", user's "问题 2"; ``u:你好`` is the user saying 你好."""
    messages: list[Message] = []
    for word in spec.split():
        if word == "S":
            messages.append(dict(SYSTEM))
        elif word.startswith("u:"):
            messages.append({"role": "user", "content": word[2:]})
        elif word[0] == "u":
            messages.append({"role": "user", "content": f"问题 {word[1:]}"})
        else:
            messages.append({"role": "assistant", "content": f"回答 {word[1:]}"})
    return messages


@dataclass(frozen=True)
class TrimCase:
    what: str
    messages: list[Message]
    max_turns: int
    expected: list[Message]  # written out here, not computed by a reference function
    hint: str


def trim_cases() -> list[TrimCase]:
    """Small conversations, each testing one rule, with the answer each must give."""
    return [
        TrimCase(
            "两轮对话，max_turns=3（不用裁剪）",
            conversation("u1 a1 u2 a2"),
            3,
            conversation("u1 a1 u2 a2"),
            "轮数不超过 max_turns 时，原样返回所有消息。",
        ),
        TrimCase(
            "四轮对话，max_turns=2",
            conversation("u1 a1 u2 a2 u3 a3 u4 a4"),
            2,
            conversation("u3 a3 u4 a4"),
            "一轮 = 一条 user 消息加上它后面的回答；从后往前数 max_turns 条 user 消息，"
            "从那里保留到最后。",
        ),
        TrimCase(
            "开头有 system 消息，max_turns=1",
            conversation("S u1 a1 u2 a2 u3 a3"),
            1,
            conversation("S u3 a3"),
            "开头的 system 消息是给模型的设定，裁剪时要留着，而且放在最前面。",
        ),
        TrimCase(
            "最后一个问题还没有回答，max_turns=2",
            conversation("u1 a1 u2 a2 u3"),
            2,
            conversation("u2 a2 u3"),
            "最后一条 user 消息（正要发出的问题）也算一轮：保留它和它前面的一整轮。",
        ),
        TrimCase(
            "有一轮的回答被 Ctrl-C 打断了（没有 assistant 消息），max_turns=2",
            conversation("u1 a1 u2 u3 a3"),
            2,
            conversation("u2 u3 a3"),
            "不要假设 user 和 assistant 严格交替出现（不要按“每两条一轮”来数）：按 user 消息切分。",
        ),
        TrimCase(
            "max_turns=1，只有 system 和一个问题",
            conversation("S u:你好"),
            1,
            conversation("S u:你好"),
            "只有一轮时什么都不用删。",
        ),
    ]


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _roles(messages: Any) -> str:
    """A compact view of a conversation: the role and text of each message."""
    if not isinstance(messages, list):
        return _short(messages)
    parts = []
    for message in messages:
        if isinstance(message, dict):
            parts.append(f"{message.get('role')}:{message.get('content')}")
        else:
            parts.append(_short(message, 40))
    return "[" + ", ".join(parts) + "]"


@check
def check_trim_history(trim_history: Callable[[list[Message], int], list[Message]]) -> None:
    """Run ``trim_history`` on every case; print ✓, or ✗ with what went wrong and a hint."""
    cases = trim_cases()
    for case in cases:
        given = copy.deepcopy(case.messages)
        expected = case.expected
        try:
            got = trim_history(given, case.max_turns)
        except Exception as exc:  # the student's code may raise anything (the stub: 还没完成)
            crash(case.what, exc, case.hint)
            return
        if not same(given, case.messages):
            print(f"✗ {case.what}：你的函数改动了传进来的 messages 列表。")
            print(f"  原来：{_roles(case.messages)}")
            print(f"  之后：{_roles(given)}")
            print("  提示：返回一个新列表（例如用切片 messages[i:]），不要对原列表 pop、del。")
            return
        if not same(got, expected):
            print(f"✗ {case.what}")
            print(f"  输入：{_roles(case.messages)}")
            print(f"  期望：{_roles(expected)}")
            print(f"  得到：{_roles(got)}")
            print(f"  提示：{case.hint}")
            return
    print(
        f"✓ trim_history：{len(cases)} 个用例都对（裁掉最早的几轮、保留 system、"
        "未回答的问题和被打断的一轮都算一轮、不改动原列表）。"
    )
