"""How every self-check reports: one ✓ line, or ✗ with expected, got and a hint."""

from __future__ import annotations

from typing import Any

__all__ = ["crash", "fail", "short"]


def short(value: Any, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters so a long answer stays readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(what: str, expected: Any, got: Any, hint: str) -> bool:
    """Report a wrong answer; returns False."""
    print(f"✗ {what}")
    print(f"  期望：{short(expected)}")
    print(f"  得到：{short(got)}")
    print(f"  提示：{hint}")
    return False


def crash(what: str, exc: BaseException, hint: str) -> bool:
    """Report an exception raised by the student's code; returns False."""
    print(f"✗ {what} 抛出了 {type(exc).__name__}：{short(str(exc), 120)}")
    print(f"  提示：{hint}")
    return False
