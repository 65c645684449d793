"""grading.editions: teacher notebook → student edition → graded notebook."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grading.editions import (
    BEGIN,
    END,
    EditionError,
    cell_passed,
    exercises,
    graded_notebook,
    has_solutions,
    student_notebook,
)

SOLUTION = f"""def double(value: int) -> int:
    \"\"\"Twice the value.\"\"\"
    {BEGIN}
    return 2 * value
    {END}"""

CHECK = """from lesson_helpers.checks.report import check


@check
def check_double(func):
    print("✓ double" if func(2) == 4 else "✗ double")


check_double(double)"""


def solution_cell(source: str = SOLUTION, grade_id: str = "l99-double") -> nbformat.NotebookNode:
    meta = {"solution": True, "grade": False, "locked": False, "grade_id": grade_id}
    cell = new_code_cell(source, metadata={"nbgrader": {**meta, "schema_version": 3}})
    cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "solution output\n"}]
    cell.execution_count = 3
    return cell


def check_cell(grade_id: str = "l99-double-check", points: int = 2) -> nbformat.NotebookNode:
    meta = {"solution": False, "grade": True, "locked": True, "points": points}
    return new_code_cell(
        CHECK, metadata={"nbgrader": {**meta, "grade_id": grade_id, "schema_version": 3}}
    )


def teacher() -> nbformat.NotebookNode:
    return new_notebook(
        cells=[
            new_markdown_cell("# 第 99 课"),
            solution_cell(),
            check_cell(),
            new_code_cell("print('walk-through')", metadata={"tags": ["teacher-only"]}),
            new_code_cell("print(1)"),
        ]
    )


def test_the_student_edition_has_no_solution_and_no_outputs():
    nb = teacher()
    student = student_notebook(nb)
    assert has_solutions(nb) and not has_solutions(student)
    source = student.cells[1].source
    assert "return 2 * value" not in source
    assert 'raise NotImplementedError("还没完成")' in source
    assert source.startswith(
        'def double(value: int) -> int:\n    """Twice the value."""\n    # TODO'
    )
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")
    assert all(c.get("execution_count") is None for c in student.cells if c.cell_type == "code")
    assert [c.source for c in student.cells if "walk-through" in c.source] == []
    assert nb.cells[1].outputs, "the teacher notebook itself is not changed"


def test_the_student_edition_keeps_cells_ids_and_order_and_is_idempotent():
    student = student_notebook(teacher())
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in student.cells]
    assert ids == [None, "l99-double", "l99-double-check", None]
    assert student_notebook(student) == student


@pytest.mark.parametrize(
    "source, message",
    [
        (f"def f():\n    {BEGIN}\n    return 1", "never closed"),
        (f"def f():\n    {END}", "without"),
        (f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}", "inside another"),
    ],
)
def test_broken_regions_are_reported_with_where(source, message):
    nb = new_notebook(cells=[solution_cell(source)])
    with pytest.raises(EditionError, match=message) as info:
        student_notebook(nb, "99_x.ipynb")
    assert "99_x.ipynb cell 0 (l99-double)" in str(info.value)


def test_a_region_outside_a_solution_cell_and_duplicate_ids_are_refused():
    with pytest.raises(EditionError, match="outside an nbgrader solution cell"):
        student_notebook(new_notebook(cells=[new_code_cell(SOLUTION)]))
    with pytest.raises(EditionError, match="used twice"):
        student_notebook(new_notebook(cells=[solution_cell(), solution_cell()]))


def test_the_graded_notebook_takes_only_the_solution_cells_from_the_submission():
    pristine = student_notebook(teacher())
    submission = student_notebook(teacher())
    submission.cells[1].source = "def double(value):\n    return value + value"
    submission.cells[2].source = "print('✓ cheated')"  # a check cell the student edited
    submission.cells.append(new_code_cell("print('✓ extra')"))
    graded = graded_notebook(pristine, submission)
    assert graded.cells[1].source == "def double(value):\n    return value + value"
    assert graded.cells[2].source == CHECK
    assert len(graded.cells) == len(pristine.cells)


def test_a_missing_solution_cell_keeps_the_stub():
    pristine = student_notebook(teacher())
    graded = graded_notebook(pristine, new_notebook(cells=[]))
    assert "NotImplementedError" in graded.cells[1].source


def test_exercises_lists_check_cells_with_points_and_their_solution():
    found = exercises(teacher())
    assert [(e.grade_id, e.points, e.solution_id) for e in found] == [
        ("l99-double-check", 2.0, "l99-double")
    ]


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


@pytest.mark.parametrize(
    "outputs, passed",
    [
        ([stream("stdout", "✓ double\n")], True),
        ([stream("stdout", "note\n✓ double\n")], True),
        ([stream("stderr", "✗ double\n")], False),
        ([stream("stdout", "✓ double\n"), stream("stderr", "warning\n")], False),
        ([stream("stdout", "✓ x\n"), {"output_type": "error", "ename": "E", "evalue": ""}], False),
        ([stream("stdout", "looks fine\n")], False),
        ([], False),
    ],
)
def test_cell_passed(outputs, passed):
    cell = check_cell()
    cell.outputs = outputs
    assert cell_passed(cell) is passed


def test_nbgrader_strips_the_same_regions():
    """A teacher who uses nbgrader gets the same student notebook, up to the stub's text."""
    clearsolutions = pytest.importorskip("nbgrader.preprocessors.clearsolutions")
    nb = teacher()
    cleared, _ = clearsolutions.ClearSolutions().preprocess(nb, {})
    ours = student_notebook(teacher())
    theirs = [c.source for c in cleared.cells if "walk-through" not in c.source]
    mine = [c.source for c in ours.cells]
    assert len(theirs) == len(mine)
    for their_source, my_source in zip(theirs, mine, strict=True):
        strip = [line for line in their_source.split("\n") if "YOUR CODE HERE" not in line]
        assert [line for line in my_source.split("\n") if "TODO：" not in line] == [
            line.replace("NotImplementedError()", 'NotImplementedError("还没完成")')
            for line in strip
        ]


def test_the_student_edition_drops_the_teacher_run_s_widget_state():
    nb = teacher()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": 1}}}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    student = student_notebook(nb)
    assert "widgets" not in student.metadata
    assert student.metadata["kernelspec"]["name"] == "python3"
