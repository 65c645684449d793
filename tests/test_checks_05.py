"""Lesson 05's self-check (trim_history, the conversation history of app.py): it accepts the
reference, catches typical mistakes with a specific hint, and recognises the student stub."""

from __future__ import annotations

import pytest
from conftest import routed_output

from lesson_helpers.checks.lesson05 import check_trim_history, reference_trim_history


def _pairs_only(messages, max_turns):
    return messages[-2 * max_turns :]


def _drops_system(messages, max_turns):
    rest = [m for m in messages if m["role"] != "system"]
    starts = [i for i, m in enumerate(rest) if m["role"] == "user"]
    return rest if len(starts) <= max_turns else rest[starts[-max_turns] :]


def _pairs_after_system(messages, max_turns):
    head = [m for m in messages if m["role"] == "system"]
    rest = messages[len(head) :]
    return head + (rest if len(rest) <= 2 * max_turns else rest[-2 * max_turns :])


def _mutates(messages, max_turns):
    while sum(m["role"] == "user" for m in messages) > max_turns:
        messages.pop(0)
    return messages


def _never_trims(messages, max_turns):
    return messages


def _crashes(messages, max_turns):
    return messages[max_turns + 10]


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        (_pairs_only, "system 消息"),
        (_drops_system, "system 消息是给模型的设定"),
        (_pairs_after_system, "也算一轮"),
        (_mutates, "改动了传进来的 messages"),
        (_never_trims, "从后往前数 max_turns 条 user 消息"),
        (_crashes, "抛出了 IndexError"),
    ],
)
def test_trim_history_check_catches_typical_mistakes(capsys, wrong, expected):
    assert check_trim_history(wrong) is None
    out = routed_output(capsys)
    assert out.startswith("✗"), out
    assert expected in out, out
    assert "提示：" in out


def test_a_crash_names_the_case_and_hints_at_its_rule(capsys):
    check_trim_history(_crashes)
    out = routed_output(capsys)
    assert out.startswith("✗ 两轮对话，max_turns=3（不用裁剪） 抛出了 IndexError"), out
    assert "提示：轮数不超过 max_turns 时" in out


def test_trim_history_check_accepts_the_reference(capsys):
    assert check_trim_history(reference_trim_history) is None
    out = routed_output(capsys)
    assert out.startswith("✓ trim_history：6 个用例都对")
    assert out.count("\n") == 1


def trim_history(messages, max_turns):
    """The student edition's stub, as a notebook defines it (at the top level)."""
    raise NotImplementedError("还没完成")


def test_the_student_stub_is_reported_as_not_done(capsys):
    check_trim_history(trim_history)
    out = routed_output(capsys)
    assert out.startswith("✗ 还没完成：trim_history 里还是 raise NotImplementedError"), out
    assert out.count("\n") == 1
    assert "抛出了" not in out
