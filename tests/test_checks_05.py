"""Lesson 05: its self-check (trim_history, the conversation history of app.py) accepts the
reference, catches typical mistakes and recognises the student stub; the notebook follows the
exercise format and teaches around app.py's four TODOs without showing their solutions
(except in teacher-only cells)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import nbformat
import pytest
from conftest import routed_output

from grading.editions import student_notebook
from lesson_helpers.checks.lesson05 import check_trim_history, trim_cases

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_build_app.ipynb"


def reference_trim_history(messages, max_turns):
    """The teacher's solution (kept here: the kit that ships with an assignment holds the
    expected answers as data only)."""
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    starts = [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]
    if len(starts) <= max_turns:
        return list(messages)
    return messages[:head] + messages[starts[-max_turns] :]


def test_the_written_out_answers_are_the_solutions_answers():
    cases = trim_cases()
    assert len(cases) == 6
    for case in cases:
        assert reference_trim_history(case.messages, case.max_turns) == case.expected, case.what
    assert any(case.expected != case.messages for case in cases)  # some cases trim


def test_the_notebook_solution_is_the_reference():
    solution = next(
        c
        for c in nbformat.read(NOTEBOOK, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("solution")
    )
    namespace: dict = {}
    exec(solution.source, namespace)
    for case in trim_cases():
        assert namespace["trim_history"](case.messages, case.max_turns) == case.expected


def _pairs_only(messages, max_turns):
    return messages[-2 * max_turns :]


def _drops_system(messages, max_turns):
    rest = [m for m in messages if m["role"] != "system"]
    starts = [i for i, m in enumerate(rest) if m["role"] == "user"]
    return rest if len(starts) <= max_turns else rest[starts[-max_turns] :]


def _pairs_after_system(messages, max_turns):
    head = [m for m in messages if m["role"] == "system"]
    rest = messages[len(head) :]
    return head + (rest if len(rest) <= 2 * max_turns else rest[-2 * max_turns :])


def _mutates(messages, max_turns):
    while sum(m["role"] == "user" for m in messages) > max_turns:
        messages.pop(0)
    return messages


def _never_trims(messages, max_turns):
    return messages


def _crashes(messages, max_turns):
    return messages[max_turns + 10]


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        (_pairs_only, "system 消息"),
        (_drops_system, "system 消息是给模型的设定"),
        (_pairs_after_system, "也算一轮"),
        (_mutates, "改动了传进来的 messages"),
        (_never_trims, "从后往前数 max_turns 条 user 消息"),
        (_crashes, "抛出了 IndexError"),
    ],
)
def test_trim_history_check_catches_typical_mistakes(capsys, wrong, expected):
    assert check_trim_history(wrong) is None
    out = routed_output(capsys)
    assert out.startswith("✗"), out
    assert expected in out, out
    assert "提示：" in out


def test_a_crash_names_the_case_and_hints_at_its_rule(capsys):
    check_trim_history(_crashes)
    out = routed_output(capsys)
    assert out.startswith("✗ 两轮对话，max_turns=3（不用裁剪） 抛出了 IndexError"), out
    assert "提示：轮数不超过 max_turns 时" in out


def test_trim_history_check_accepts_the_reference(capsys):
    assert check_trim_history(reference_trim_history) is None
    out = routed_output(capsys)
    assert out.startswith("✓ trim_history：6 个用例都对")
    assert out.count("\n") == 1


def trim_history(messages, max_turns):
    """The student edition's stub, as a notebook defines it (at the top level)."""
    raise NotImplementedError("还没完成")


def test_the_student_stub_is_reported_as_not_done(capsys):
    check_trim_history(trim_history)
    out = routed_output(capsys)
    assert out.startswith("✗ 还没完成：trim_history 里还是 raise NotImplementedError"), out
    assert out.count("\n") == 1
    assert "抛出了" not in out


# -- the notebook -------------------------------------------------------------------------------
APP = ROOT / "app.py"
TODO_FUNCTIONS = ("open_stream", "read_pieces", "iter_sse_events", "collect_reply")
REGION = re.compile(
    r"^[ \t]*# --- BEGIN SOLUTION: [\w -]+ ---[ \t]*\n(.*?)^[ \t]*# --- END SOLUTION ---",
    re.MULTILINE | re.DOTALL,
)


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def code_lines(text: str) -> list[str]:
    """The code lines of ``text``, stripped, without blank lines and comments."""
    lines = (line.split("  #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_notebook_follows_the_exercise_pattern(notebook):
    solutions = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(solutions) == 1
    cells = notebook.cells
    i = cells.index(solutions[0])
    assert solutions[0].metadata == {
        "nbgrader": {
            "solution": True,
            "grade": False,
            "locked": False,
            "grade_id": "l05-trim-history",
            "schema_version": 3,
        }
    }
    assert "def trim_history(" in solutions[0].source
    assert "    ### BEGIN SOLUTION\n" in solutions[0].source
    check = cells[i + 1]
    assert check.metadata["nbgrader"] == {
        "solution": False,
        "grade": True,
        "locked": True,
        "points": 2,
        "grade_id": "l05-trim-history-check",
        "schema_version": 3,
    }
    assert "check_trim_history(trim_history)" in check.source
    assert [o["name"] for o in check.outputs] == ["stdout"]
    assert check.outputs[0]["text"].startswith("✓ trim_history")
    for cell in cells:
        assert "solution" not in cell.metadata.get("tags", [])
        assert "source_hidden" not in cell.metadata.get("jupyter", {})
        if cell is not solutions[0]:  # nbgrader looks for regions in every cell
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
        for output in cell.get("outputs", []):
            assert output.output_type != "error", cell.source[:80]
            assert output.get("name") != "stderr", cell.source[:80]


def test_the_student_edition_does_not_hold_the_four_solutions(notebook):
    regions = REGION.findall(APP.read_text(encoding="utf-8"))
    assert len(regions) == 4
    student = student_notebook(notebook)
    shown = code_lines("\n".join(c.source for c in student.cells if c.cell_type == "code"))
    pairs = set(itertools.pairwise(shown))
    for region in regions:
        solution = code_lines(region)
        copied = [p for p in itertools.pairwise(solution) if p in pairs]
        assert len(copied) <= 2, f"solution lines in the student edition: {copied}"
    text = "\n".join(c.source for c in student.cells)
    for name in TODO_FUNCTIONS:
        assert f'show("{name}")' not in text
        assert f"app.{name}(" in text  # the student's own function is tried in the lesson


def test_the_walk_through_of_the_reference_is_teacher_only(notebook):
    teacher_only = [c for c in notebook.cells if "teacher-only" in c.metadata.get("tags", [])]
    sources = "\n".join(c.source for c in teacher_only)
    for name in TODO_FUNCTIONS:
        assert f'show("{name}")' in sources
    shown = "\n".join(o.get("text", "") for c in teacher_only for o in c.get("outputs", []))
    for name in TODO_FUNCTIONS:
        assert f"def {name}(" in shown
    others = [c for c in notebook.cells if c not in teacher_only]
    for cell in others:  # outside teacher-only cells, no stored output holds a TODO's code
        for output in cell.get("outputs", []):
            for name in TODO_FUNCTIONS:
                assert f"def {name}(" not in output.get("text", "")


def test_the_lesson_says_which_file_to_edit_and_how_to_check_it(notebook):
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "student/app.py" in text and "作业仓库" in text
    assert "python -m grading" in text
    assert "每完成一个就运行一次" not in text  # the old advice: it ran the reference
    assert "种子" not in NOTEBOOK.read_text(encoding="utf-8")
    intro = notebook.cells[0].source
    assert "练习怎么做" in intro and "student/notebooks/" in intro


def test_notebook_stores_no_paths_or_keys():
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert not re.search(r"sk-[A-Za-z0-9]{20}|Bearer [A-Za-z0-9._\-]{24}", text)
    assert "local-practice-key" not in text
    assert not re.search(r"(/root|/home|/tmp|/work|/Users|[A-Z]:\\\\)", text)
