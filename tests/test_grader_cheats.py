"""The grader on the course's real lessons: the teacher's solutions earn every exercise, and the
ways found of handing in the kit's own version instead earn none -- whether the code names
it through a name built at run time (refused before it runs: grading.static.lookup) or
reaches it through an object of the notebook (found after it ran: grading.probe)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode

from grading.checks import Result
from grading.editions import solution_sources, student_notebook
from grading.notebooks import KitCopy, Lesson, grade_lesson, load_lessons

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@cache
def lesson(name: str) -> Lesson:
    return load_lessons([ROOT / "notebooks" / name])[0]


@cache
def kit() -> KitCopy:
    return KitCopy(ROOT / "lesson_helpers")


def submission(name: str, answers: dict[str, str] | None = None) -> NotebookNode:
    """The student edition with the teacher's solutions, or ``answers`` {grade_id: source}."""
    teacher = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    sources = {**solution_sources(teacher), **(answers or {})}
    nb = student_notebook(teacher)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in sources:
            cell.source = sources[meta["grade_id"]]
    return nb


def graded(name: str, answers: dict[str, str] | None = None) -> dict[str, Result]:
    # What is graded, not how fast: a stalled machine must not turn a ✓ into "ran too long".
    results = grade_lesson(lesson(name), submission(name, answers), kit(), timeout=600)
    return {result.name: result for result in results}


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if load_lessons([p])], ids=lambda p: p.name)
def test_the_teacher_s_solutions_earn_every_exercise(path):
    results = graded(path.name)
    assert results and all(r.passed for r in results.values()), {
        name: r.hint for name, r in results.items() if not r.passed
    }


DYNAMIC_PARSER = """\
import sys

_m = vars(sys)["mod" + "ules"]
MyParser = getattr(_m["lesson_" + "helpers.sse"], "SSE" + "Parser")
"""
DYNAMIC_MERGE = """\
import sys

_m = vars(sys)["mod" + "ules"]
_assemble = getattr(_m["lesson_" + "helpers.chunks"], "assem" + "ble")


def merge_tool_calls(chunks):
    return _assemble(chunks).to_message().get("tool_calls", [])
"""


def test_the_kit_reached_by_a_name_built_at_run_time_earns_nothing():
    results = graded("02_sse_parsing.ipynb", {"l02-parser": DYNAMIC_PARSER})
    parser = results["l02-parser-check"]
    assert not parser.passed and "这一格没有运行" in parser.hint, parser.hint
    assert results["l02-parse-field-check"].passed
    merge = graded("03_chunk_assembly.ipynb", {"l03-merge-tool-calls": DYNAMIC_MERGE})
    result = merge["l03-merge-tool-calls-check"]
    assert not result.passed and "这一格没有运行" in result.hint, result.hint
    without_sys = DYNAMIC_PARSER.replace('vars(sys)["mod" + "ules"]', "vars()")
    parser = graded("02_sse_parsing.ipynb", {"l02-parser": without_sys})["l02-parser-check"]
    assert not parser.passed and "用了 vars()" in parser.hint, parser.hint


# A demo cell of lesson 02 made an SSEParser (``parser``): its class is the kit's answer.
REACHED_THROUGH_THE_NOTEBOOK = {
    "the class itself": "MyParser = type(parser)\n",
    "a default value": (
        "class MyParser:\n"
        "    def __init__(self, _kit=type(parser)):\n"
        "        self.inner = _kit()\n\n"
        "    def feed(self, data):\n"
        "        return self.inner.feed(data)\n"
    ),
    "a closure": (
        "def _factory(kit_class):\n"
        "    def make():\n"
        "        return kit_class()\n\n"
        "    return make\n\n\n"
        "MyParser = _factory(type(parser))\n"
    ),
    "a subclass": "class MyParser(type(parser)):\n    pass\n",
    "a bound method": (
        "_feed = type(parser)().feed\n\n\n"
        "class MyParser:\n"
        "    def feed(self, data):\n"
        "        return _feed(data)\n"
    ),
    "a partial in a list": (
        "import functools\n\n"
        "_kept = [functools.partial(type(parser))]\n\n\n"
        "def MyParser():\n"
        "    return _kept[0]()\n"
    ),
}


@pytest.mark.parametrize("source", REACHED_THROUGH_THE_NOTEBOOK.values(), ids=list)
def test_the_kit_reached_through_an_object_of_the_notebook_earns_nothing(source):
    results = graded("02_sse_parsing.ipynb", {"l02-parser": source})
    parser = results["l02-parser-check"]
    assert not parser.passed
    assert "用了课程包里现成的 lesson_helpers.sse.SSEParser" in parser.hint, parser.hint
    assert "这个练习要你自己写出来" in parser.hint
    assert results["l02-split-lines-check"].passed and results["l02-parse-field-check"].passed


def test_the_grader_s_own_cells_are_not_in_the_notebook_the_kernel_can_read():
    peek = (
        "from pathlib import Path\n\n"
        "_seen = ''.join(p.read_text('utf-8') for p in Path.cwd().glob('*.ipynb'))\n\n\n"
        "def split_lines(text):\n"
        "    if 'grading-' + 'probe' in _seen or 'MyParser' not in _seen:\n"
        "        return [], ''\n"
        "    import re\n\n"
        "    *lines, rest = re.split(r'\\r\\n|\\r|\\n', text)\n"
        "    return lines, rest\n"
    )
    results = graded("02_sse_parsing.ipynb", {"l02-split-lines": peek})
    assert results["l02-split-lines-check"].passed, results["l02-split-lines-check"].hint
