"""Self-checks for lesson 04 (live output): the throttling exercise.

The exercise: ``throttle_renders(events, interval) -> list[str]`` gets the deltas of a stream
as ``(arrival time in seconds, piece)`` pairs and returns the texts a throttled view would
show, one per render:

* a render shows *all* the text so far (not just the new piece);
* the first delta is rendered at once; after that a delta is rendered only when at least
  ``interval`` seconds passed since the previous render;
* after the last delta the complete text is rendered, unless the last render already
  showed it; no deltas, no renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .report import check

__all__ = ["CASES", "Case", "check_throttle"]

Events = list[tuple[float, str]]


@dataclass(frozen=True)
class Case:
    """One input, what a throttled view renders for it, and what two typical mistakes give.

    The expected renders are written out (not computed by a reference function here), so the
    kit a student receives holds no ready-made answer; tests/test_display.py checks them
    against a reference implementation.
    """

    name: str
    events: Events
    interval: float
    renders: list[str]
    strict: list[str]  # comparing with > instead of >=
    since_delta: list[str]  # timing from the previous delta instead of the previous render


def _burst() -> Events:
    return [(0.0, "字")] * 100


_BURST_RENDERS = ["字", "字" * 100]

# Times are multiples of 1/8: exact in binary.
CASES: list[Case] = [
    Case(
        "每个 delta 间隔都比 interval 长",
        [(i * 0.5, p) for i, p in enumerate("你好世界")],
        0.25,
        renders=["你", "你好", "你好世", "你好世界"],
        strict=["你", "你好", "你好世", "你好世界"],
        since_delta=["你", "你好", "你好世", "你好世界"],
    ),
    Case(
        "100 个 delta 同时到达",
        _burst(),
        0.25,
        renders=_BURST_RENDERS,
        strict=_BURST_RENDERS,
        since_delta=_BURST_RENDERS,
    ),
    Case(
        "快慢混合",
        [(0.0, "流"), (0.125, "式"), (0.25, "输"), (0.375, "出"), (0.5, "很"), (0.625, "快")],
        0.375,
        renders=["流", "流式输出", "流式输出很快"],
        strict=["流", "流式输出很", "流式输出很快"],
        since_delta=["流", "流式输出很快"],
    ),
    Case(
        "间隔正好等于 interval",
        [(0.0, "A"), (0.25, "B"), (0.5, "C")],
        0.25,
        renders=["A", "AB", "ABC"],
        strict=["A", "ABC"],
        since_delta=["A", "AB", "ABC"],
    ),
    Case(
        "最后一个 delta 紧跟着前一个",
        [(0.0, "你"), (0.125, "好")],
        0.25,
        renders=["你", "你好"],
        strict=["你", "你好"],
        since_delta=["你", "你好"],
    ),
    Case("没有任何 delta", [], 0.25, renders=[], strict=[], since_delta=[]),
]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _diagnose(case: Case, got: list[str]) -> str:
    """A specific hint for the first difference between ``got`` and what is right."""
    events, want = case.events, case.renders
    full = "".join(piece for _, piece in events)
    if not events:
        return f"没有任何 delta 时不应该渲染（应返回 []），你返回了 {_short(got)}"
    if not got:
        return "一次都没有渲染：第一个 delta 要立刻渲染，结束时还要渲染完整文本"
    if any(not full.startswith(text) for text in got):
        bad = next(text for text in got if not full.startswith(text))
        return (
            f"渲染的 {_short(bad)} 不是“到目前为止的全部文字”：每次渲染要显示累积的文本，"
            "不是单个 delta（用一个变量把 piece 一路加起来）"
        )
    if got[-1] != full:
        return (
            f"最后一次渲染是 {_short(got[-1], 20)}（{len(got[-1])} 个字），少了结尾："
            f"完整文本有 {len(full)} 个字。循环结束后要补一次渲染，否则最后几个字永远显示不出来"
        )
    if len(set(got)) >= len(events) > len(set(want)):
        return (
            f"没有节流：{len(events)} 个 delta 渲染了 {len(got)} 次（应为 {len(want)} 次）。"
            "距离上次渲染不到 interval 秒时要跳过"
        )
    if len(got) >= 2 and got[-1] == got[-2]:
        return "完整文本渲染了两次：如果最后一次节流渲染已经是完整文本，就不要再补"
    if case.strict != want and got == case.strict:
        return "间隔正好等于 interval 时也应该渲染：比较时用 >=，不是 >"
    if case.since_delta != want and got == case.since_delta:
        return (
            "计时的起点应该是“上一次渲染”的时间，而不是“上一个 delta”的时间："
            "只在真正渲染时更新它，否则 delta 一直很密时就一直不渲染"
        )
    return f"渲染结果不对：期望 {_short(want, 120)}，得到 {_short(got, 120)}"


@check
def check_throttle(throttle_renders: Callable[[Events, float], list[str]]) -> None:
    """Run your ``throttle_renders`` on every case; print ✓ or ✗ with a hint."""
    for case in CASES:
        try:
            got = throttle_renders(list(case.events), case.interval)
        except NotImplementedError:
            raise  # still the student edition's stub: @check says 还没完成
        except Exception as exc:  # a student's bug: report it, don't crash the lesson
            print(f"✗ 情况「{case.name}」时函数出错：{type(exc).__name__}: {exc}")
            return
        if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
            print(f"✗ 应该返回字符串列表 list[str]，情况「{case.name}」却得到了 {_short(got)}")
            return
        if got != case.renders:
            hint = _diagnose(case, got)
            print(f"✗ 情况「{case.name}」（interval={case.interval}）：{hint}")
            return
    print(
        f"✓ 节流正确：100 个同时到达的 delta 只渲染 {len(_BURST_RENDERS)} 次，"
        f"最后一次总是完整文本；全部 {len(CASES)} 种情况都通过。"
    )
