"""grading.static: exercise code that borrows the kit or tampers with the checks, and an app.py
that does not make its own requests."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT

from grading.editions import solution_sources, student_notebook
from grading.static import app_problem, borrowing, kit_names, lookup, tampering, top_level_names

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


# -- names built at run time (grading.static.lookup) -------------------------------------------
DYNAMIC_PARSER = (
    "import sys\n"
    '_m = vars(sys)["mod" + "ules"]\n'
    'MyParser = getattr(_m["lesson_" + "helpers.sse"], "SSE" + "Parser")\n'
)


@pytest.mark.parametrize(
    "source, found",
    [
        (DYNAMIC_PARSER, "vars()"),
        ("def f():\n    return locals()\n", "locals()"),
        ("names = dir()\n", "dir()"),
        ("import sys\n\nP = getattr(sys, 'mod' + 'ules')\n", "getattr(...)"),
        ("import sys\n\nok = hasattr(sys, name)\n", "hasattr(...)"),
        ("import sys\n\nP = getattr(sys, *['modules'])\n", "getattr(...)"),
        ("import functools\n\nf = functools.partial(getattr, 1)\n", "getattr(...)"),
        ("import sys\n\nm = sys.__dict__['mod' + 'ules']\n", ".__dict__"),
        ("def f(c):\n    return c.__subclasses__()\n", ".__subclasses__"),
        ("def f():\n    return len.__self__\n", ".__self__"),
        ("import operator\n\nget = operator.attrgetter('x')\n", ".attrgetter"),
        ("from operator import methodcaller\n", "from operator import methodcaller"),
        ("import pickle\n", "import pickle"),
        ("import marshal\n", "import marshal"),
        ("import runpy\n", "import runpy"),
        ("import code\n", "import code"),
        ("from types import FunctionType\n", "import types"),
        ("import pkgutil\n", "import pkgutil"),
        ("import copyreg\n", "import copyreg"),
        ("import zipimport\n", "import zipimport"),
        ("import site\n", "import site"),
        ("import pydoc\n", "import pydoc"),
        ("import subprocess\n", "import subprocess"),
        ("import logging.config\n", "import logging.config"),
        ("import os\n\nos.system('python -c 1')\n", ".system"),
        ("import typing\n\nhints = typing.get_type_hints(f)\n", ".get_type_hints"),
        ("import numpy\n", "import numpy（不是 Python 标准库）"),
        ("import helper_module_written_at_run_time\n", "不是 Python 标准库"),
        ("def f():\n    return Out[3]\n", "Out"),
        ("def f():\n    return _7\n", "_7"),
        ("x = __builtin__\n", "__builtin__"),
        ("x = __loader__\n", "__loader__"),
    ],
)
def test_looking_up_by_a_built_name_is_refused(source, found):
    assert found in (lookup(source) or ""), lookup(source)


@pytest.mark.parametrize(
    "source",
    [
        "import json, re, codecs, random, fnmatch, copy\n\n\ndef f(x):\n    return x\n",
        "def f(e):\n    return getattr(e, 'retry_after', None), hasattr(e, 'status')\n",
        "class P:\n    def __init__(self):\n        super().__init__()\n        self.n = 0\n",
        "def f(x):\n    return type(x).__name__ + x.__class__.__qualname__\n",
        "import requests\n\n\ndef ask(url):\n    return requests.get(url, timeout=5)\n",
        "for _ in range(3):\n    pass\n",
        "if __name__ == '__main__':\n    pass\n",
    ],
)
def test_ordinary_exercise_code_looks_nothing_up(source):
    assert lookup(source) is None


def test_what_the_skeleton_imports_is_allowed():
    assert lookup("import numpy\n", "import numpy\n") is None


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_no_teacher_solution_or_skeleton_looks_anything_up(path):
    teacher = nbformat.read(path, as_version=4)
    skeletons = solution_sources(student_notebook(teacher))
    for grade_id, source in solution_sources(teacher).items():
        assert lookup(source, skeletons[grade_id]) is None, grade_id
        assert lookup(skeletons[grade_id], skeletons[grade_id]) is None, grade_id
        assert tampering(source) is None, grade_id


@pytest.mark.parametrize(
    "source",
    [
        "import sys as s\n\ns.stderr = s.stdout\n",
        "import sys\n\nout = sys\nout.stderr = None\n",
        "import sys\n\ntype(sys.stderr).write = lambda self, text: len(text)\n",
        "import sys\n\nerr = sys.stderr\nerr.write = len\n",
        "import io\n\nio.TextIOWrapper.flush = None\n",
    ],
)
def test_reaching_the_output_streams_by_another_name_is_tampering(source):
    assert tampering(source)


def test_top_level_names_are_what_the_cell_binds_and_reads():
    bound, read = top_level_names(
        DYNAMIC_PARSER + "def f():\n    global G\n    G = 1\n\n\nclass C:\n    y = 2\n"
    )
    assert bound == ["_m", "MyParser", "f", "C", "G"]
    assert {"vars", "sys", "getattr", "_m"} <= set(read) and "y" not in bound


# -- app.py ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("import requests\nimport lesson_helpers\n", "lesson_helpers"),
        ("import requests\nimport openai\n", "openai SDK"),
        ("import requests\nimport pkgutil\n", "pkgutil"),
        ("import requests\nimport pickle\n", "import pickle"),
        ("import requests\nb = print.__self__\n", ".__self__"),
        ("import requests\nf = getattr(requests, 'p' + 'ost')\n", "getattr(...)"),
        ("import requests\nx = __builtins__\n", "__builtins__"),
        ("import requests\nimport rich\n", "不是 Python 标准库"),
        ("import requests\nimport os\nos.posix_spawn('/bin/sh', [], {})\n", "posix_spawn"),
        ("import json\n", "没有 import requests"),
    ],
)
def test_app_py_that_does_not_make_its_own_requests_is_named(source, says):
    problem = app_problem(source)
    assert problem and says in problem and "\n" not in problem


@pytest.mark.parametrize("path", ["app.py", "student/app.py"])
def test_the_reference_and_the_student_edition_pass_the_app_py_check(path):
    assert app_problem((ROOT / path).read_text(encoding="utf-8")) is None


def test_ordinary_app_code_passes_the_app_py_check():
    source = (
        "import os, sys, json\nimport requests\nfrom dotenv import load_dotenv\n"
        "name = getattr(sys, 'argv')\nif __name__ == '__main__':\n    print(type(name).__name__)\n"
    )
    assert app_problem(source) is None
