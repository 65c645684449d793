"""The grader's checks and their results.

A check is a function decorated with :func:`check`: its points and its title (one line, shown
in the score report). It passes by returning, and fails by calling :func:`fail` with a hint in
Chinese that says what went wrong and where to look. Exercises in the notebooks become
:class:`Result` objects too (see :mod:`grading.notebooks`), so the report, the Actions summary
and Classroom 50's ``result.json`` list the same things.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = ["Check", "CheckFailedError", "Result", "check", "fail", "points_text", "run_checks"]


class CheckFailedError(Exception):
    """A check failed; the message is the hint."""


def fail(hint: str) -> NoReturn:
    raise CheckFailedError(hint)


@dataclass
class Result:
    group: str  # "app.py", "仓库", or a lesson ("第 02 课")
    name: str  # a check's name, or an exercise's grade_id
    title: str
    points: float
    passed: bool = False
    hint: str = ""

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    points: float
    run: Callable[[Any], None]
    alone: bool = False  # timing matters: run it while nothing else runs


def check(
    points: float, title: str, *, alone: bool = False
) -> Callable[[Callable[[Any], None]], Check]:
    """Make a function ``check_<name>(context)`` a check worth ``points``."""

    def make(func: Callable[[Any], None]) -> Check:
        return Check(func.__name__.removeprefix("check_"), title, points, func, alone)

    return make


def _run_one(group: str, item: Check, context: Any) -> Result:
    result = Result(group, item.name, item.title, item.points)
    try:
        item.run(context)
        result.passed = True
    except CheckFailedError as failure:
        result.hint = str(failure)
    except Exception as exc:  # a bug in the grader: say so in one line, keep grading
        result.hint = f"评分程序自己出错了（{type(exc).__name__}：{str(exc)[:120]}），请告诉老师。"
    return result


def run_checks(group: str, checks: Iterable[Check], context: Any, workers: int = 1) -> list[Result]:
    """Run the checks, ``workers`` at a time (the ``alone`` ones first, by themselves);
    the results come back in the checks' order."""
    checks = list(checks)
    done = {id(c): _run_one(group, c, context) for c in checks if c.alone or workers <= 1}
    rest = [c for c in checks if id(c) not in done]
    if rest:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(lambda c: _run_one(group, c, context), rest)
            done.update((id(c), r) for c, r in zip(rest, results, strict=True))
    return [done[id(c)] for c in checks]


def points_text(value: float) -> str:
    return f"{value:g}"
