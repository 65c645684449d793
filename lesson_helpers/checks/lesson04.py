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

from .report import check

__all__ = ["CASES", "check_throttle", "reference_throttle_renders"]

Events = list[tuple[float, str]]


def reference_throttle_renders(events: Events, interval: float) -> list[str]:
    """The reference answer (what the checks compare against)."""
    return _throttle(events, interval)


def _throttle(
    events: Events, interval: float, *, strict: bool = False, since_delta: bool = False
) -> list[str]:
    """The reference, or (for the hints) one of two typical mistakes."""
    shown: list[str] = []
    text = ""
    last: float | None = None
    for arrived, piece in events:
        text += piece
        due = last is None or (arrived - last > interval if strict else arrived - last >= interval)
        if due:
            shown.append(text)
        if due or since_delta:
            last = arrived
    if text and (not shown or shown[-1] != text):
        shown.append(text)
    return shown


def _burst() -> Events:
    return [(0.0, "字")] * 100


# (what the case shows, events, interval). Times are multiples of 1/8: exact in binary.
CASES: list[tuple[str, Events, float]] = [
    ("每个 delta 间隔都比 interval 长", [(i * 0.5, p) for i, p in enumerate("你好世界")], 0.25),
    ("100 个 delta 同时到达", _burst(), 0.25),
    (
        "快慢混合",
        [(0.0, "流"), (0.125, "式"), (0.25, "输"), (0.375, "出"), (0.5, "很"), (0.625, "快")],
        0.375,
    ),
    ("间隔正好等于 interval", [(0.0, "A"), (0.25, "B"), (0.5, "C")], 0.25),
    ("最后一个 delta 紧跟着前一个", [(0.0, "你"), (0.125, "好")], 0.25),
    ("没有任何 delta", [], 0.25),
]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _diagnose(events: Events, interval: float, got: list[str], want: list[str]) -> str:
    """A specific hint for the first difference between ``got`` and ``want``."""
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
    if got == _throttle(events, interval, strict=True):
        return "间隔正好等于 interval 时也应该渲染：比较时用 >=，不是 >"
    if got == _throttle(events, interval, since_delta=True):
        return (
            "计时的起点应该是“上一次渲染”的时间，而不是“上一个 delta”的时间："
            "只在真正渲染时更新它，否则 delta 一直很密时就一直不渲染"
        )
    return f"渲染结果不对：期望 {_short(want, 120)}，得到 {_short(got, 120)}"


@check
def check_throttle(throttle_renders: Callable[[Events, float], list[str]]) -> None:
    """Run your ``throttle_renders`` on every case; print ✓ or ✗ with a hint."""
    for name, events, interval in CASES:
        want = reference_throttle_renders(list(events), interval)
        try:
            got = throttle_renders(list(events), interval)
        except Exception as exc:  # a student's bug: report it, don't crash the lesson
            print(f"✗ 情况「{name}」时函数出错：{type(exc).__name__}: {exc}")
            return
        if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
            print(f"✗ 应该返回字符串列表 list[str]，情况「{name}」却得到了 {_short(got)}")
            return
        if got != want:
            hint = _diagnose(list(events), interval, got, want)
            print(f"✗ 情况「{name}」（interval={interval}）：{hint}")
            return
    burst = reference_throttle_renders(_burst(), 0.25)
    print(
        f"✓ 节流正确：100 个同时到达的 delta 只渲染 {len(burst)} 次，"
        f"最后一次总是完整文本；全部 {len(CASES)} 种情况都通过。"
    )
