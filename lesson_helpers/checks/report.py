"""How every self-check reports: one ✓ line, or ✗ with expected, got and a hint.

A check function is decorated with :func:`check`. What it prints is kept until it is done:

* a passing check's ``✓ …`` line goes to stdout;
* a failing check's ``✗ …`` lines go to **stderr** -- Jupyter shows them in red, and a grader
  (nbgrader, or ``python -m grading``) counts a check cell with stderr output as failed;
* an exercise that is still the student edition's stub (it raises ``NotImplementedError``)
  gives one line, ``✗ 还没完成：……``, saying which function to write.

A check never raises and never shows a traceback, whatever the student's code does.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["NotDone", "check", "crash", "fail", "same", "short", "uses_exercise"]

F = TypeVar("F", bound=Callable[..., None])


class NotDone(BaseException):
    """The student's code is still the stub: end the check with "还没完成".

    A BaseException, so the ``except Exception`` around the student's code inside a check
    does not swallow it on its way out.
    """


def short(value: Any, limit: int = 160) -> str:
    """``repr(value)``, cut to ``limit`` characters so a long answer stays readable."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NUMBERS = (int, float)


def same(got: Any, expected: Any) -> bool:
    """``got == expected`` where ``got`` (the student's value) cannot decide the answer.

    The types must match exactly, all the way down through dicts, lists and tuples (``int``
    and ``float`` count as one type of number, ``bool`` does not), before anything is
    compared: a value of the student's own class -- an ``__eq__`` that always says True, a
    ``str`` subclass -- is never equal to the kit's plain data. Only the built-in types'
    own ``==`` is called.
    """
    kind = type(expected)
    if kind in _NUMBERS:
        return type(got) in _NUMBERS and got == expected
    if type(got) is not kind:
        return False
    if kind is dict:
        if len(got) != len(expected) or not all(_plain_key(key) for key in got):
            return False
        return all(key in got and same(got[key], value) for key, value in expected.items())
    if kind is list or kind is tuple:
        return len(got) == len(expected) and all(
            same(mine, theirs) for mine, theirs in zip(got, expected, strict=True)
        )
    return got == expected


def _plain_key(key: Any) -> bool:
    if type(key) is tuple:
        return all(_plain_key(part) for part in key)
    return type(key) in (str, int, float, bool, bytes, type(None))


def fail(what: str, expected: Any, got: Any, hint: str) -> bool:
    """Report a wrong answer; returns False."""
    print(f"✗ {what}")
    print(f"  期望：{short(expected)}")
    print(f"  得到：{short(got)}")
    print(f"  提示：{hint}")
    return False


def crash(what: str, exc: BaseException, hint: str) -> bool:
    """Report an exception raised by the student's code; returns False.

    ``NotImplementedError`` means the exercise is not written yet: the check ends at once
    with one "还没完成" line instead of a hint about the error.
    """
    if isinstance(exc, NotImplementedError):
        raise NotDone from None
    print(f"✗ {what} 抛出了 {type(exc).__name__}：{short(str(exc), 120)}")
    print(f"  提示：{hint}")
    return False


def _exercise_name(check_name: str, args: tuple[Any, ...]) -> str:
    target = args[0] if args else None
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return name if isinstance(name, str) and name else check_name.removeprefix("check_")


def _not_done_line(name: str) -> str:
    return (
        f"✗ 还没完成：{name} 里还是 raise NotImplementedError。"
        "按上面的说明写好它（删掉那一行 raise），再运行这一格。\n"
    )


def check(func: F) -> F:
    """Make ``func`` a self-check: ✓ to stdout, ✗ to stderr, never an exception."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> None:
        name = _exercise_name(func.__name__, args)
        captured = io.StringIO()
        text = ""
        try:
            with contextlib.redirect_stdout(captured):
                func(*args, **kwargs)
            text = captured.getvalue()
        except (NotDone, NotImplementedError):
            text = _not_done_line(name)
        except Exception as exc:
            text = captured.getvalue() + (
                f"✗ 检查 {name} 时出了意外（{type(exc).__name__}：{short(str(exc), 120)}）。"
                "先确认上面的练习格已经运行过，再运行这一格。\n"
            )
        lines = text.splitlines()
        passed = any(line.startswith("✓") for line in lines) and not any(
            line.startswith("✗") for line in lines
        )
        stream = sys.stdout if passed else sys.stderr
        stream.write(text if text.endswith("\n") or not text else text + "\n")
        stream.flush()

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def uses_exercise(label: str) -> Iterator[None]:
    """For a demo cell that calls a student's function: until that exercise is written, the
    cell prints one line instead of a ``NotImplementedError`` traceback.

    >>> with uses_exercise("练习 3 的 MyParser"):    # doctest: +SKIP
    ...     events = MyParser().feed(wire)
    """
    try:
        yield
    except NotImplementedError:
        print(f"（这一格要用到{label}，它还没完成：写好之后再运行这一格。）")
