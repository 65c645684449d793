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
SOLUTION_FIRST_LINE = "# 参考答案（先别展开，自己写完再对照）"
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


# -- the notebook -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_notebook_follows_the_exercise_pattern(notebook):
    cells = notebook.cells
    assert cells[0].cell_type == "markdown"
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "from lesson_helpers import connect" in first_code.source
    assert "settings = connect()" in first_code.source
    solutions = [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) == 3
    for i in solutions:
        solution, todo, check = cells[i], cells[i + 1], cells[i + 2]
        assert cells[i - 1].cell_type == "markdown"
        assert solution.source.splitlines()[0] == SOLUTION_FIRST_LINE
        assert solution.metadata["jupyter"]["source_hidden"] is True
        assert todo.source.startswith("# TODO：在这里写你自己的版本")
        assert all(
            not line.strip() or line.lstrip().startswith("#") for line in todo.source.splitlines()
        )
        assert re.search(r"\bcheck_\w+\(", check.source)
        assert check.outputs and check.outputs[0]["text"].startswith("✓")


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
