"""The teacher edition of a lesson notebook → its student edition, and back for grading.

The notebooks in the course repository are the **teacher edition**, in nbgrader's format:

* an exercise is one code cell whose metadata says
  ``"nbgrader": {"solution": true, "grade": false, "locked": false, "grade_id": ...}``; the
  reference code sits between a ``### BEGIN SOLUTION`` line and a ``### END SOLUTION`` line,
  inside a function or method body, and the skeleton around it is what the student keeps;
* its check is the next code cell, ``"grade": true, "points": N``, calling a
  ``lesson_helpers.checks`` function (✓ on stdout, ✗ on stderr).

:func:`student_notebook` makes the **student edition**: every solution region becomes a stub
that raises ``NotImplementedError`` when the function is called (so Run All shows ✗ 还没完成 in
the checks and no traceback anywhere), cells tagged ``teacher-only`` are dropped, and every
output is cleared. A teacher who uses nbgrader can use the teacher notebooks as they are: its
``generate_assignment`` does the same replacement with its own stub.

:func:`graded_notebook` builds what the grader runs: the trusted student edition with only the
solution cells' sources taken from a student's notebook, matched by ``grade_id``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat import NotebookNode

__all__ = [
    "BEGIN",
    "END",
    "TEACHER_ONLY",
    "EditionError",
    "Exercise",
    "cell_passed",
    "exercises",
    "graded_notebook",
    "has_solutions",
    "solution_sources",
    "student_notebook",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = (
    "# TODO：在这里写你的代码（写好后删掉下面这一行 raise）",
    'raise NotImplementedError("还没完成")',
)
TEACHER_ONLY = "teacher-only"


class EditionError(ValueError):
    """A teacher notebook that breaks the exercise format (the message says where)."""


@dataclass(frozen=True)
class Exercise:
    """One graded check cell, and the solution cell it checks."""

    grade_id: str  # the check cell's id
    points: float
    solution_id: str | None  # the nearest solution cell before it


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_test(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("grade")) and not is_solution(cell)


def _where(nb_name: str, index: int, cell: NotebookNode) -> str:
    grade_id = nbgrader_meta(cell).get("grade_id")
    return f"{nb_name} cell {index}" + (f" ({grade_id})" if grade_id else "")


def strip_regions(source: str, where: str) -> tuple[str, int]:
    """``source`` with every solution region replaced by the stub, and how many there were.

    A line *containing* a delimiter counts, as in nbgrader.
    """
    out: list[str] = []
    inside = False
    regions = 0
    for line in source.split("\n"):
        if BEGIN in line:
            if inside:
                raise EditionError(f"{where}: {BEGIN} inside another solution region")
            inside = True
            regions += 1
            indent = re.match(r"[ \t]*", line).group(0)  # type: ignore[union-attr]
            out += [indent + stub for stub in STUB]
        elif END in line:
            if not inside:
                raise EditionError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise EditionError(f"{where}: {BEGIN} is never closed")
    return "\n".join(out), regions


def has_solutions(nb: NotebookNode) -> bool:
    """True for a teacher edition (a notebook that still holds solution code)."""
    return any(BEGIN in cell.get("source", "") for cell in nb.cells)


def _clear(cell: NotebookNode) -> None:
    metadata = cell.setdefault("metadata", {})
    metadata.pop("execution", None)
    jupyter = metadata.get("jupyter")
    if isinstance(jupyter, dict):
        jupyter.pop("source_hidden", None)
        jupyter.pop("outputs_hidden", None)
        if not jupyter:
            metadata.pop("jupyter")
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None


def student_notebook(nb: NotebookNode, name: str = "notebook") -> NotebookNode:
    """The student edition of a teacher notebook (a new notebook; ``nb`` is not changed).

    Idempotent: the student edition of a student edition is itself.
    """
    student = copy.deepcopy(nb)
    # The teacher run's widget state (lesson 04's live views) holds answer text: not for students.
    student.metadata.pop("widgets", None)
    cells = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if TEACHER_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        cell = copy.deepcopy(cell)
        where = _where(name, index, cell)
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id:
            if grade_id in seen:
                raise EditionError(f"{where}: grade_id {grade_id!r} is used twice")
            seen.add(grade_id)
        source, regions = strip_regions(cell.get("source", ""), where)
        if regions and not is_solution(cell):
            raise EditionError(f"{where}: a solution region outside an nbgrader solution cell")
        if regions and cell.cell_type != "code":
            raise EditionError(f"{where}: solution regions belong in code cells")
        if is_solution(cell) and not grade_id:
            raise EditionError(f"{where}: a solution cell needs a grade_id")
        cell.source = source
        _clear(cell)
        cells.append(cell)
    student.cells = cells
    return student


def solution_sources(nb: NotebookNode) -> dict[str, str]:
    """``grade_id`` → source of every solution cell of a (student's) notebook."""
    found: dict[str, str] = {}
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_solution(cell) and isinstance(grade_id, str) and grade_id not in found:
            found[grade_id] = cell.get("source", "")
    return found


def graded_notebook(pristine: NotebookNode, submission: NotebookNode) -> NotebookNode:
    """The notebook a grader runs: ``pristine`` (a trusted student edition) with each solution
    cell's source replaced by the submission's cell of the same ``grade_id``.

    Everything else -- the checks, the demo cells, their order -- comes from ``pristine``, so
    a student can change the outcome only through the exercise cells. A solution cell the
    submission lacks keeps the stub (its check then says 还没完成).
    """
    graded = student_notebook(pristine)
    answers = solution_sources(submission)
    for cell in graded.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_solution(cell) and grade_id in answers:
            cell.source = answers[grade_id]
    return graded


def exercises(nb: NotebookNode) -> list[Exercise]:
    """The graded check cells of a notebook, in order, each with the solution it checks."""
    found: list[Exercise] = []
    last_solution: str | None = None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if is_solution(cell):
            last_solution = meta.get("grade_id")
        elif is_test(cell):
            found.append(
                Exercise(str(meta.get("grade_id")), float(meta.get("points", 0)), last_solution)
            )
    return found


def cell_passed(cell: NotebookNode) -> bool:
    """A check cell passed: it ran, with no error and no stderr output, and printed a ✓ line."""
    saw_tick = False
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "error" or (kind == "stream" and output.get("name") == "stderr"):
            return False
        if kind == "stream" and output.get("name") == "stdout":
            text = output.get("text", "")
            saw_tick = saw_tick or any(line.startswith("✓") for line in text.splitlines())
    return saw_tick


def read(path: str) -> NotebookNode:
    return nbformat.read(path, as_version=4)
