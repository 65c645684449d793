"""grading.static.borrowing: an exercise handed in as the course kit's finished version."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT

from grading.editions import solution_sources, student_notebook
from grading.static import borrowing, kit_names

SKELETON = (
    'class MyParser:\n    def feed(self, data):\n        raise NotImplementedError("还没完成")\n'
)
KIT = {"SSEParser", "connect", "uses_exercise"}


@pytest.mark.parametrize(
    "source, name",
    [
        ("class MyParser(SSEParser):\n    pass\n", "SSEParser"),
        ("MyParser = SSEParser\n", "SSEParser"),
        (
            "from lesson_helpers.sse import SSEParser as P\n\n\nclass MyParser(P):\n    pass\n",
            "lesson_helpers.sse",
        ),
        (
            "import lesson_helpers.sse\n\nMyParser = lesson_helpers.sse.SSEParser\n",
            "lesson_helpers.sse",
        ),
        (
            'import importlib\n\nP = importlib.import_module("lesson_helpers.sse").SSEParser\n',
            "lesson_helpers",
        ),
    ],
)
def test_the_kit_s_own_version_is_not_an_answer(source, name):
    assert borrowing(source, SKELETON, KIT) == name


def test_own_code_and_what_the_skeleton_gives_are_fine():
    own = 'class MyParser:\n    def feed(self, data):\n        return data.split(b"\\n")\n'
    assert borrowing(own, SKELETON, KIT) is None
    given = "from lesson_helpers.errors import RateLimitError\n\n\ndef f(e):\n    return 1\n"
    skeleton = "from lesson_helpers.errors import RateLimitError\n\n\ndef f(e):\n    raise X\n"
    assert borrowing(given, skeleton, KIT | {"RateLimitError"}) is None
    assert borrowing("def f(:\n", SKELETON, KIT) is None  # a syntax error fails on its own


def test_kit_names_reads_every_import_form():
    sources = ["from lesson_helpers.sse import SSEParser as P, iter_sse", "import lesson_helpers.x"]
    assert kit_names(sources) == {"P", "iter_sse", "lesson_helpers"}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_teacher_solution_counts_as_borrowing(path):
    teacher = nbformat.read(path, as_version=4)
    pristine = student_notebook(teacher)
    kit = kit_names([cell.source for cell in pristine.cells])
    skeletons = solution_sources(pristine)
    for grade_id, source in solution_sources(teacher).items():
        assert borrowing(source, skeletons[grade_id], kit) is None, grade_id
