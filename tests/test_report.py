"""The self-checks' common behaviour: where ✓ and ✗ go, "还没完成", never a traceback."""

from __future__ import annotations

import pytest

from lesson_helpers.checks import uses_exercise
from lesson_helpers.checks.report import check, crash


@check
def check_double(func) -> None:
    """A tiny check in the style of the lessons' ones."""
    for value in (1, 2, 5):
        try:
            got = func(value)
        except Exception as exc:
            crash(f"double({value})", exc, "读一读报错的那一行。")
            return
        if got != 2 * value:
            print(f"✗ double({value}) 应当是 {2 * value}，得到 {got!r}")
            return
    print("✓ double：3 个用例都对")


def stub(value):
    raise NotImplementedError("还没完成")


def test_a_passing_check_prints_one_tick_line_on_stdout(capsys):
    assert check_double(lambda v: 2 * v) is None
    captured = capsys.readouterr()
    assert captured.out == "✓ double：3 个用例都对\n"
    assert captured.err == ""


def test_a_failing_check_prints_on_stderr_only(capsys):
    check_double(lambda v: v + 1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("✗ double(2) 应当是 4")


def test_the_stub_means_not_done_and_names_the_function(capsys):
    check_double(stub)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("✗ 还没完成：stub 里还是 raise NotImplementedError")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_a_crash_in_the_students_code_is_reported_with_a_hint(capsys):
    check_double(lambda v: 1 / 0)
    err = capsys.readouterr().err
    assert err.startswith("✗ double(1) 抛出了 ZeroDivisionError")
    assert "提示：" in err


def test_students_prints_during_a_failing_check_go_with_it_to_stderr(capsys):
    def noisy(value):
        print("debug", value)
        return value

    check_double(noisy)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "debug 1" in captured.err and "✗" in captured.err


def test_a_check_that_prints_neither_tick_nor_cross_counts_as_failed(capsys):
    @check
    def check_silent(func) -> None:
        func()

    check_silent(lambda: None)
    captured = capsys.readouterr()
    assert captured.out == ""


def test_an_unexpected_error_in_a_check_is_one_line_on_stderr(capsys):
    @check
    def check_broken(func) -> None:
        raise KeyError("oops")

    assert check_broken(len) is None
    err = capsys.readouterr().err
    assert err.startswith("✗ 检查 len 时出了意外（KeyError")
    assert "Traceback" not in err


def test_uses_exercise_turns_the_stub_into_one_line(capsys):
    with uses_exercise("练习 1 的 double"):
        stub(3)
        print("never reached")
    out = capsys.readouterr().out
    assert out == "（这一格要用到练习 1 的 double，它还没完成：写好之后再运行这一格。）\n"


def test_uses_exercise_is_transparent_when_the_exercise_is_done(capsys):
    with uses_exercise("练习 1 的 double"):
        print(2 * 3)
    assert capsys.readouterr().out == "6\n"


def test_uses_exercise_lets_other_errors_through():
    with pytest.raises(ZeroDivisionError), uses_exercise("练习 1"):
        raise ZeroDivisionError
