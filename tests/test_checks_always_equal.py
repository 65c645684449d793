"""No self-check can be passed by an answer that only *claims* to be right: an object whose
``__eq__`` always says True, a ``str``/``list``/``dict``/``float`` subclass that agrees with
every comparison or membership test. Every check compares the student's values with
:func:`lesson_helpers.checks.report.same` (exact types first); the reference answers still
pass (tests/test_checks_*.py, and the notebooks' own solutions in test_student_edition.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from conftest import routed_output

from lesson_helpers.checks import (
    lesson00,
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
)
from lesson_helpers.checks.report import same


class Same:
    """Equal to everything, different from nothing."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "Same()"


class SameStr(Same, str):
    """A string that agrees with every test a check makes of a string."""

    def __contains__(self, item: object) -> bool:
        return False

    def startswith(self, *args: Any) -> bool:
        return True

    def endswith(self, *args: Any) -> bool:
        return True

    def replace(self, *args: Any) -> SameStr:
        return self

    def strip(self, *args: Any) -> SameStr:
        return self

    def lower(self) -> SameStr:
        return self


class SameList(Same, list):
    pass


class SameDict(Same, dict):
    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> Same:
        return Same()

    def get(self, key: object, default: object = None) -> Same:
        return Same()


_counter = itertools.count(1)


class SameFloat(Same, float):
    """A number equal to every number, below and above none (and never the same twice)."""

    def __new__(cls) -> SameFloat:
        return super().__new__(cls, 1.0)

    def __hash__(self) -> int:
        return next(_counter)

    def __lt__(self, other: object) -> bool:
        return False

    __gt__ = __le__ = __ge__ = __lt__


class KeepsTheKey(str):
    """A bug report that "contains" everything asked for except the key."""

    key = ""

    def __contains__(self, item: object) -> bool:
        return item != self.key

    def lower(self) -> str:
        return ""


def _bug_report(error: Any, settings: Any) -> str:
    report = KeepsTheKey("")
    report.key = settings.api_key.reveal()
    return report


def _stream_cheat(events: list) -> Any:
    """Raise where the stream has an error (with all its data), else agree with anything."""
    if any(e.event in ("error", "response.failed") for e in events):
        raise ValueError(" ".join(e.data for e in events))
    return SameDict()


class _SameThrottle:
    def __init__(self, interval: float) -> None:
        pass

    def offer(self, now: float) -> Any:
        return Same()

    def finish(self) -> Any:
        return Same()


class _SameParser:
    def feed(self, data: bytes) -> list:
        return SameList()


def _always(value: Callable[[], Any]) -> Callable[..., Any]:
    return lambda *args, **kwargs: value()


# (check, an answer that only claims to be right)
CHEATS: dict[str, tuple[Callable[[Any], None], Any]] = {
    "l00-is-env-ignored": (lesson00.check_is_env_ignored, _always(Same)),
    "l00-my-mask": (lesson00.check_my_mask, _always(lambda: SameStr("x"))),
    "l01-make-request": (
        lesson01.check_make_request,
        _always(
            lambda: (
                SameStr(),
                {"Authorization": SameStr(), "Content-Type": "application/json"},
                {"model": SameStr(), "messages": SameList()},
            )
        ),
    ),
    "l01-explain-error": (lesson01.check_explain_error, _always(SameStr)),
    "l02-split-lines": (lesson02.check_split_lines, _always(lambda: (SameList(), SameStr()))),
    "l02-parse-field": (lesson02.check_parse_field, _always(Same)),
    "l02-parse-field-str": (lesson02.check_parse_field, _always(lambda: (SameStr(), SameStr()))),
    "l02-parser": (lesson02.check_parser, _SameParser),
    "l03-assemble-content": (lesson03.check_assemble_content, _always(Same)),
    "l03-assemble-content-str": (lesson03.check_assemble_content, _always(SameStr)),
    "l03-merge-tool-calls": (lesson03.check_merge_tool_calls, _always(SameList)),
    "l04-throttle": (lesson04.check_throttle, _SameThrottle),
    "l05-trim-history": (lesson05.check_trim_history, _always(Same)),
    "l05-trim-history-list": (lesson05.check_trim_history, _always(SameList)),
    "l06-should-retry": (lesson06.check_should_retry, _always(Same)),
    "l06-backoff": (lesson06.check_backoff, _always(SameFloat)),
    "l06-bug-report": (lesson06.check_bug_report, _bug_report),
    "l07-run-tool-call": (
        lesson07.check_run_tool_call,
        _always(lambda: {"role": Same(), "tool_call_id": Same(), "content": "{}"}),
    ),
    "l07-agent-loop": (lesson07.check_agent_loop, _always(SameList)),
    "l08-assemble-responses": (lesson08.check_assemble_responses, _stream_cheat),
    "l08-assemble-messages": (lesson08.check_assemble_messages, _stream_cheat),
}


def test_every_check_of_every_lesson_is_tried() -> None:
    modules = (lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07)
    checks = {
        f"{module.__name__}.{name}"
        for module in (*modules, lesson08)
        for name in module.__all__
        if name.startswith("check_") and name != "check_registry"  # the checks' own registry
    }
    tried = {f"{check.__module__}.{check.__name__}" for check, _ in CHEATS.values()}
    assert checks == tried


@pytest.mark.parametrize("name", CHEATS)
def test_an_answer_that_only_claims_to_be_right_fails(name: str, capsys) -> None:
    check, cheat = CHEATS[name]
    check(cheat)
    out = routed_output(capsys)
    assert out.startswith("✗"), out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "got, expected",
    [
        ("a", "a"),
        (("data", "x"), ("data", "x")),
        ([{"role": "user", "content": "你"}], [{"role": "user", "content": "你"}]),
        (2, 2.0),
        (None, None),
        ({(1, "a"): [1.5]}, {(1, "a"): [1.5]}),
    ],
)
def test_same_is_equality_for_plain_data(got: Any, expected: Any) -> None:
    assert same(got, expected)


@pytest.mark.parametrize(
    "got, expected",
    [
        (Same(), "a"),
        (SameStr("a"), "a"),
        ((Same(), "x"), ("data", "x")),
        (["data", "x"], ("data", "x")),
        ({"role": Same()}, {"role": "user"}),
        ({Same(): "user"}, {"role": "user"}),
        (SameDict(), {"role": "user"}),
        ([SameStr()], ["x"]),
        (True, 1),
        (1, True),
        (SameFloat(), 1.0),
        ({"a": 1}, {"a": 1, "b": 2}),
        ([1], [1, 2]),
    ],
)
def test_same_refuses_what_only_claims_to_be_equal(got: Any, expected: Any) -> None:
    assert not same(got, expected)
