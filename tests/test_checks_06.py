"""The self-check functions of lesson 06 accept right answers and catch typical wrong ones with
a specific hint; the notebook follows the exercise pattern and stores nothing it should not."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import nbformat
import pytest
from conftest import routed_output

from grading.editions import student_notebook
from lesson_helpers.checks.lesson06 import check_backoff, check_bug_report, check_should_retry
from lesson_helpers.errors import (
    ConnectError,
    LLMError,
    RateLimitError,
    RequestTimeout,
    ServerError,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "06_when_things_go_wrong.ipynb"
RETRYABLE = (RateLimitError, ServerError, ConnectError)


def run_check(check, func, capsys) -> tuple[bool, str]:
    assert check(func) is None  # a check cell shows only the printed line
    out = routed_output(capsys)
    ok = out.startswith("✓") and "✗" not in out
    assert out.startswith("✓" if ok else "✗"), out
    assert "Traceback" not in out
    return ok, out


# -- should_retry -------------------------------------------------------------------------------
def good_should_retry(error: LLMError, shown: str) -> bool:
    return not shown and isinstance(error, RETRYABLE)


def test_should_retry_reference_passes(capsys):
    ok, out = run_check(check_should_retry, good_should_retry, capsys)
    assert ok and "13 种情况" in out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda error, shown: True, "401 是密钥的问题"),
        (lambda error, shown: False, "429"),
        (lambda error, shown: isinstance(error, RETRYABLE), "屏幕上已经有文字"),
        (
            lambda error, shown: (
                not shown
                and error.status is not None
                and (error.status == 429 or error.status >= 500)
            ),
            "ConnectError",
        ),
        (
            lambda error, shown: not shown and (error.status == 429 or error.status >= 500),
            "抛出了 TypeError",
        ),
        (
            lambda error, shown: not shown and isinstance(error, (*RETRYABLE, RequestTimeout)),
            "超时不自动重试",
        ),
        (lambda error, shown: "yes" if not shown else "no", "True 或 False"),
    ],
)
def test_should_retry_catches_wrong_answers(wrong, hint, capsys):
    ok, out = run_check(check_should_retry, wrong, capsys)
    assert not ok
    assert hint in out
    assert "期望" in out or "抛出了" in out


# -- backoff ------------------------------------------------------------------------------------
def good_backoff(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return retry_after
    base = 0.5 * 2 ** (attempt - 1)
    return base + random.uniform(0, base)


def test_backoff_reference_and_an_equivalent_pass(capsys):
    assert run_check(check_backoff, good_backoff, capsys)[0]

    def also_good(attempt, retry_after=None):
        if retry_after is not None:
            return float(retry_after)
        return random.uniform(0.5 * 2 ** (attempt - 1), 2 ** (attempt - 1))

    assert run_check(check_backoff, also_good, capsys)[0]


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (
            lambda attempt, retry_after=None: (
                retry_after if retry_after is not None else 0.5 * 2 ** (attempt - 1)
            ),
            "抖动",
        ),
        (
            lambda attempt, retry_after=None: (
                retry_after if retry_after else 0.5 * 2 ** (attempt - 1) * random.uniform(1, 2)
            ),
            "is not None",
        ),
        (lambda attempt, retry_after=None: good_backoff(attempt), "Retry-After"),
        (
            lambda attempt, retry_after=None: (
                retry_after
                if retry_after is not None
                else 0.5 * attempt + random.uniform(0, 0.5 * attempt)
            ),
            "翻倍",
        ),
        (
            lambda attempt, retry_after=None: (
                retry_after if retry_after is not None else good_backoff(attempt + 1)
            ),
            "attempt 从 1 开始",
        ),
        (
            lambda attempt, retry_after=None: (
                retry_after if retry_after is not None else random.uniform(0, 2**attempt)
            ),
            "不会比 base 小",
        ),
        (
            lambda attempt, retry_after=None: (
                retry_after if retry_after is not None else f"{attempt} 秒"
            ),
            "秒数",
        ),
        (lambda attempt: 1.0, "抛出了 TypeError"),
    ],
)
def test_backoff_catches_wrong_answers(wrong, hint, capsys):
    ok, out = run_check(check_backoff, wrong, capsys)
    assert not ok
    assert hint in out


# -- bug_report ---------------------------------------------------------------------------------
def good_bug_report(error, settings) -> str:
    return "\n".join(
        [
            f"请求 id：{error.request_id or '无'}",
            f"错误：{error}",
            f"模型：{settings.model}",
            f"接口地址：{settings.base_url}",
        ]
    )


def test_bug_report_reference_passes(capsys):
    ok, out = run_check(check_bug_report, good_bug_report, capsys)
    assert ok and "没有密钥" in out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (
            lambda e, s: good_bug_report(e, s) + f"\n密钥：{s.api_key.reveal()}",
            "出现了密钥",
        ),
        (
            lambda e, s: good_bug_report(e, s) + f"\n{s.auth_headers()}",
            "出现了密钥",
        ),
        (
            lambda e, s: good_bug_report(e, s) + "\nAuthorization: Bearer ***",
            "Authorization",
        ),
        (lambda e, s: f"错误：{e}\n模型：{s.model}\n地址：{s.base_url}", "error.request_id"),
        (
            lambda e, s: (
                f"{e.request_id} HTTP {e.status} {e.provider_message} {s.model} {s.base_url}"
            ),
            "str(error)",
        ),
        (lambda e, s: f"{e.request_id}\n{e}\n{s.base_url}", "settings.model"),
        (lambda e, s: f"{e.request_id}\n{e}\n{s.model}", "settings.base_url"),
        (
            lambda e, s: f"HTTP {e.status:d} {e.request_id}\n{e}\n{s.model}\n{s.base_url}",
            "ConnectError",
        ),
        (lambda e, s: {"request_id": e.request_id}, "字符串"),
    ],
)
def test_bug_report_catches_wrong_answers(wrong, hint, capsys):
    ok, out = run_check(check_bug_report, wrong, capsys)
    assert not ok
    assert hint in out
    assert "fake-key" not in out  # a leaking answer is reported without repeating the key


# -- the student edition's stubs -----------------------------------------------------------------
def should_retry(error, shown):
    raise NotImplementedError("还没完成")


def backoff(attempt, retry_after=None):
    raise NotImplementedError("还没完成")


def bug_report(error, settings):
    raise NotImplementedError("还没完成")


@pytest.mark.parametrize(
    ("check", "stub"),
    [(check_should_retry, should_retry), (check_backoff, backoff), (check_bug_report, bug_report)],
)
def test_the_student_stub_is_reported_as_not_done(check, stub, capsys):
    ok, out = run_check(check, stub, capsys)
    assert not ok
    assert out.startswith(f"✗ 还没完成：{stub.__name__} 里还是 raise NotImplementedError"), out
    assert out.count("\n") == 1


# -- the notebook -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


EXERCISES = [  # (grade_id, function, points)
    ("l06-backoff", "backoff", 2),
    ("l06-should-retry", "should_retry", 1),
    ("l06-bug-report", "bug_report", 2),
]


def test_notebook_follows_the_exercise_pattern(notebook):
    cells = notebook.cells
    assert cells[0].cell_type == "markdown"
    assert "练习怎么做" in cells[0].source and "python -m grading" in cells[0].source
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "from lesson_helpers import connect" in first_code.source
    assert "settings = connect()" in first_code.source
    solutions = [i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(solutions) == len(EXERCISES)
    for i, (grade_id, name, points) in zip(solutions, EXERCISES, strict=True):
        solution, check = cells[i], cells[i + 1]
        assert cells[i - 1].cell_type == "markdown"
        assert solution.metadata == {
            "nbgrader": {
                "solution": True,
                "grade": False,
                "locked": False,
                "grade_id": grade_id,
                "schema_version": 3,
            }
        }
        assert f"def {name}(" in solution.source
        assert "    ### BEGIN SOLUTION\n" in solution.source  # inside the function body
        assert "    ### END SOLUTION" in solution.source
        assert check.metadata == {
            "nbgrader": {
                "solution": False,
                "grade": True,
                "locked": True,
                "points": points,
                "grade_id": f"{grade_id}-check",
                "schema_version": 3,
            }
        }
        assert re.search(rf"\bcheck_{name}\({name}\)", check.source)
        assert [o["name"] for o in check.outputs] == ["stdout"]
        assert check.outputs[0]["text"].startswith("✓")
    for cell in cells:  # the old scheme is gone, and nbgrader finds regions only in exercises
        assert "solution" not in cell.metadata.get("tags", [])
        assert "source_hidden" not in cell.metadata.get("jupyter", {})
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
        assert "参考答案（先别展开" not in cell.source


def test_student_edition_has_stubs_and_no_solutions(notebook):
    student = student_notebook(notebook)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in student.cells] == [
        c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells
    ]
    text = "\n".join(c.source for c in student.cells)
    for solution_line in (
        "return base + random.uniform(0, base)",
        "return isinstance(error, (RateLimitError",
        'f"请求 id：{error.request_id',
    ):
        assert solution_line not in text
    for _, name, _ in EXERCISES:
        cell = next(c for c in student.cells if f"def {name}(" in c.source)
        namespace: dict = {"LLMError": LLMError}
        exec(cell.source, namespace)  # the stub only raises when it is called
        with pytest.raises(NotImplementedError):
            namespace[name](*([None] * (1 if name == "backoff" else 2)))


def test_the_debug_output_warning_is_there(notebook):
    text = "\n".join(c.source for c in notebook.cells)
    for needed in ("debuglevel = 1", "%xmode Verbose", "pytest -l"):
        assert needed in text
    shown = [o for c in notebook.cells for o in c.get("outputs", []) if "debuglevel 1" in str(o)]
    assert shown and "Authorization: Bearer not-a-real-key-0000" in shown[0]["text"]


def test_notebook_triggers_every_required_scenario(notebook):
    source = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    required = [
        "fault-401", "fault-403", "fault-404", "fault-400", "fault-context-too-long",
        "fault-429-retry-after", "fault-429", "fault-500", "fault-502-html", "fault-503",
        "fault-json-not-stream", "fault-error-event", "fault-cut-mid-stream",
        "fault-malformed-json", "fault-keepalive", "fault-crlf", "fault-close-delimited",
        "fault-split-utf8", "fault-stall", "fault-slow-first-token", "fault-length",
        "fault-content-filter", "fault-reasoning-only", "fault-tool-calls",
    ]  # fmt: skip
    missing = [m for m in required if f'"{m}"' not in source]
    assert not missing


KEYLIKE = re.compile(r"sk-[A-Za-z0-9]{20}|Bearer [A-Za-z0-9._\-]{24}")
ABSOLUTE = re.compile(r"(/root|/home|/tmp|/work|/Users|[A-Z]:\\\\)")


def test_notebook_stores_no_paths_keys_or_errors():
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert not KEYLIKE.search(text)
    for cell in nbformat.reads(text, as_version=4).cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", cell.source[:80]
            assert output.get("name") != "stderr", cell.source[:80]
            shown = json.dumps(output, ensure_ascii=False)
            assert not ABSOLUTE.search(shown), shown[:200]
            assert "local-practice-key" not in shown
            assert "Traceback" not in shown
