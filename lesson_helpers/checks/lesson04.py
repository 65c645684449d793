"""Self-checks for lesson 04 (live output): the throttle exercise.

The exercise is a class ``Throttle(interval)`` that a live view asks, delta by delta, whether
to render now:

* ``offer(now) -> bool``: a delta arrived at ``now`` (seconds). True for the first one, and
  afterwards only when at least ``interval`` seconds passed since the previous *render*;
  otherwise it remembers that something is waiting to be shown;
* ``finish() -> bool``: the stream ended. True when something arrived after the last render
  (so the complete text still has to be drawn), else False.

The check replays recorded deltas through the student's class with the kit's own loop,
:func:`lesson_helpers.display.throttle_renders` (each render shows all the text so far), and
compares with the same loop over the kit's :class:`~lesson_helpers.display.Throttle` -- the
one implementation of the rule, the one ``LiveView`` uses. Two typical mistakes are
recognised from what they give on the same cases; this module holds no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..display import Throttle, throttle_renders
from .report import check, crash, same

__all__ = ["CASES", "Case", "check_throttle"]

Events = list[tuple[float, str]]


@dataclass(frozen=True)
class Case:
    """One recorded stream, and what two typical mistakes render for it."""

    name: str
    events: Events
    interval: float
    strict: list[str]  # comparing with > instead of >=
    since_delta: list[str]  # timing from the previous delta instead of the previous render


def _burst() -> Events:
    return [(0.0, "字")] * 100


_BURST = ["字", "字" * 100]

# Times are multiples of 1/8: exact in binary.
CASES: list[Case] = [
    Case(
        "每个 delta 间隔都比 interval 长",
        [(i * 0.5, p) for i, p in enumerate("你好世界")],
        0.25,
        strict=["你", "你好", "你好世", "你好世界"],
        since_delta=["你", "你好", "你好世", "你好世界"],
    ),
    Case("100 个 delta 同时到达", _burst(), 0.25, strict=_BURST, since_delta=_BURST),
    Case(
        "快慢混合",
        [(0.0, "流"), (0.125, "式"), (0.25, "输"), (0.375, "出"), (0.5, "很"), (0.625, "快")],
        0.375,
        strict=["流", "流式输出很", "流式输出很快"],
        since_delta=["流", "流式输出很快"],
    ),
    Case(
        "间隔正好等于 interval",
        [(0.0, "A"), (0.25, "B"), (0.5, "C")],
        0.25,
        strict=["A", "ABC"],
        since_delta=["A", "AB", "ABC"],
    ),
    Case(
        "最后一个 delta 紧跟着前一个",
        [(0.0, "你"), (0.125, "好")],
        0.25,
        strict=["你", "你好"],
        since_delta=["你", "你好"],
    ),
    Case(
        "最后一个 delta 正好赶上一次渲染",
        [(0.0, "数"), (0.125, "据"), (0.25, "流")],
        0.25,
        strict=["数", "数据流"],
        since_delta=["数", "数据流"],
    ),
    Case("没有任何 delta", [], 0.25, strict=[], since_delta=[]),
]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _NotABoolError(Exception):
    def __init__(self, method: str, value: Any) -> None:
        super().__init__(f"{method}() 应该返回 True 或 False，却返回了 {_short(value)}")


def _checked(student: type) -> type[Throttle]:
    """The student's class behind the kit's interface, insisting on True/False answers."""

    class Checked(Throttle):
        def __init__(self, interval: float) -> None:
            self.inner = student(interval)

        def offer(self, now: float) -> bool:
            return _bool("offer", self.inner.offer(now))

        def finish(self) -> bool:
            return _bool("finish", self.inner.finish())

    return Checked


def _bool(method: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _NotABoolError(method, value)
    return value


def _diagnose(case: Case, got: list[str], want: list[str]) -> str:
    """A specific hint for the first difference between ``got`` and what is right."""
    events = case.events
    full = "".join(piece for _, piece in events)
    if not events:
        return f"没有任何 delta 时不应该渲染：finish() 应该返回 False，结果却渲染了 {_short(got)}"
    if not got:
        return "一次都没有渲染：第一个 delta 要立刻渲染（offer 返回 True），结束时还要补画"
    if got[-1] != full:
        return (
            f"最后一次渲染只显示了 {len(got[-1])} 个字，少了结尾（完整文本有 {len(full)} 个字）："
            "offer 返回 False 时要记下“有文字还没画出来”，finish() 据此返回 True，"
            "否则最后几个字永远显示不出来"
        )
    if len(got) >= 2 and got[-1] == got[-2]:
        return (
            "完整文本渲染了两次：最后一次 offer 已经画出全部文字时，finish() 应该返回 False"
            "（offer 返回 True 时，要把“有文字还没画出来”清掉）"
        )
    if len(got) >= len(events) > len(want):
        return (
            f"没有节流：{len(events)} 个 delta 渲染了 {len(got)} 次（应为 {len(want)} 次）。"
            "距离上次渲染不到 interval 秒时 offer 要返回 False"
        )
    if case.strict != want and got == case.strict:
        return "间隔正好等于 interval 时也应该渲染：比较时用 >=，不是 >"
    if case.since_delta != want and got == case.since_delta:
        return (
            "计时的起点应该是“上一次渲染”的时间，而不是“上一个 delta”的时间："
            "只在 offer 返回 True 时记下 now，否则 delta 一直很密时就一直不渲染"
        )
    return f"渲染结果不对：期望 {_short(want, 120)}，得到 {_short(got, 120)}"


@check
def check_throttle(student: type) -> None:
    """Replay every case through your ``Throttle`` class; print ✓ or ✗ with a hint."""
    for case in CASES:
        want = throttle_renders(list(case.events), case.interval)
        try:
            got = throttle_renders(list(case.events), case.interval, throttle=_checked(student))
        except _NotABoolError as problem:
            print(f"✗ 情况「{case.name}」：{problem}")
            return
        except Exception as exc:  # a student's bug: report it, don't crash the lesson
            crash(
                f"情况「{case.name}」时你的 Throttle",
                exc,
                "先用上面例子里的几次调用手动试一试 offer 和 finish",
            )
            return
        if not same(got, want):
            print(
                f"✗ 情况「{case.name}」（interval={case.interval}）：{_diagnose(case, got, want)}"
            )
            return
    burst = throttle_renders(_burst(), 0.25)
    print(
        f"✓ 节流正确：100 个同时到达的 delta 只渲染 {len(burst)} 次，"
        f"最后一次总是完整文本；全部 {len(CASES)} 种情况都通过。"
    )
