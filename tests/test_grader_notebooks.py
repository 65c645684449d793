"""Grading the notebook exercises together with app.py (issue "Classroom editions").

The lessons are not converted yet, so these tests use two small teacher notebooks of their
own in the contract's format (CONTRACTS.md "Exercises"): solution cells with a
``### BEGIN SOLUTION`` region inside a function body, check cells calling a tiny check
decorated with the kit's ``report.check``, a demo cell using ``uses_exercise``, and a check
that looks at the kernel's surroundings (no secrets, nothing but the notebook, the local
server). The grader gets them as its trusted lessons (``--lessons``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grading.editions import solution_sources, student_notebook
from grading.static import tampering

ROOT = Path(__file__).resolve().parent.parent

CHECKS = """\
from lesson_helpers.checks.report import check


@check
def check_value(func, args, expected):
    got = func(*args)
    if got == expected:
        print(f"✓ {func.__name__}{args} == {expected!r}")
    else:
        print(f"✗ {func.__name__}{args} 应当是 {expected!r}，得到 {got!r}")
"""


def solution(grade_id: str, source: str) -> NotebookNode:
    meta = {"solution": True, "grade": False, "locked": False, "grade_id": grade_id}
    return new_code_cell(source, metadata={"nbgrader": {**meta, "schema_version": 3}})


def check_cell(grade_id: str, points: int, source: str) -> NotebookNode:
    meta = {"solution": False, "grade": True, "locked": True, "points": points}
    return new_code_cell(
        source, metadata={"nbgrader": {**meta, "grade_id": grade_id, "schema_version": 3}}
    )


def lesson_01() -> NotebookNode:
    """Three exercises; the third talks to the local server that connect() starts."""
    return new_notebook(
        cells=[
            new_markdown_cell("# 第 1 课（测试用）"),
            new_code_cell(CHECKS),
            new_code_cell("from lesson_helpers.session import connect\n\nsettings = connect()"),
            solution(
                "l01-add",
                "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
            ),
            check_cell("l01-add-check", 2, "check_value(add, (2, 3), 5)"),
            solution(
                "l01-shout",
                "def shout(text):\n    ### BEGIN SOLUTION\n    return text.upper() + '!'\n"
                "    ### END SOLUTION",
            ),
            check_cell("l01-shout-check", 1, "check_value(shout, ('hi',), 'HI!')"),
            solution(
                "l01-ask",
                "import requests\n\n\ndef ask(settings, question):\n    ### BEGIN SOLUTION\n"
                "    response = requests.post(\n"
                "        f'{settings.base_url}/chat/completions',\n"
                "        headers={'Authorization': f'Bearer {settings.api_key.reveal()}'},\n"
                "        json={\n"
                "            'model': settings.model,\n"
                "            'messages': [{'role': 'user', 'content': question}],\n"
                "        },\n"
                "        timeout=10,\n"
                "    )\n"
                "    return response.json()['choices'][0]['message']['content']\n"
                "    ### END SOLUTION",
            ),
            check_cell(
                "l01-ask-check",
                3,
                "seed = '你好！有什么问题或者需要帮助的吗？'\n"
                "check_value(lambda q: ask(settings, q), ('你好',), seed)",
            ),
        ]
    )


ENV_CHECK = """\
import os
from pathlib import Path

secrets = ("GITHUB_TOKEN", "GITHUB_STEP_SUMMARY", "LLM_API_KEY", "GRADING_SECRET")
leaked = [name for name in secrets if name in os.environ]
others = sorted(p.name for p in Path.cwd().iterdir() if p.suffix != ".ipynb")
check_value(lambda: (leaked, others, settings.provider), (), ([], [], "local"))
"""


def lesson_02() -> NotebookNode:
    """A demo that uses an exercise, an exercise that inspects the kernel's surroundings."""
    return new_notebook(
        cells=[
            new_code_cell(CHECKS),
            new_code_cell(
                "from lesson_helpers.session import connect\n\nsettings = connect(quiet=True)"
            ),
            solution(
                "l02-double",
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            ),
            check_cell("l02-double-check", 2, "check_value(double, (21,), 42)"),
            new_code_cell(
                "from lesson_helpers.checks import uses_exercise\n\n"
                "with uses_exercise('练习 1 的 double'):\n    print(double(4))"
            ),
            solution(
                "l02-where",
                "def where():\n    ### BEGIN SOLUTION\n    return 'kernel'\n    ### END SOLUTION",
            ),
            check_cell("l02-where-check", 1, "check_value(where, (), 'kernel')"),
            check_cell("l02-env-check", 1, ENV_CHECK),
            solution(
                "l02-triple",
                "def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION",
            ),
            check_cell("l02-triple-check", 2, "check_value(triple, (5,), 15)"),
        ]
    )


LESSONS = {"01_tiny.ipynb": lesson_01, "02_tiny.ipynb": lesson_02}


def write_teacher_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in LESSONS.items():
        nbformat.write(make(), folder / name)
    return folder


# -- submissions ------------------------------------------------------------------------------
def grade(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grading", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=180,
        check=False,
    )


def score(output: str) -> tuple[int, int]:
    found = re.search(r"得分：(\d+)/(\d+)", output)
    assert found, output
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def lessons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_teacher_notebooks(tmp_path_factory.mktemp("lessons"))


def student_editions(lessons: Path) -> dict[str, NotebookNode]:
    return {p.name: student_notebook(nbformat.read(p, as_version=4)) for p in lessons.glob("*")}


def put_back(lessons: Path, answers: dict[str, dict[str, str]] | None = None) -> dict:
    """The student editions with the teacher's solution cells' sources put back by grade_id
    (markers and all), or with ``answers`` {file: {grade_id: source}} instead."""
    notebooks = student_editions(lessons)
    for name, nb in notebooks.items():
        sources = solution_sources(nbformat.read(lessons / name, as_version=4))
        sources.update((answers or {}).get(name, {}))
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in sources:
                cell.source = sources[grade_id]
    return notebooks


def assignment(tmp_path: Path, notebooks: dict[str, NotebookNode], app: Path) -> Path:
    """An assignment repository: app.py and notebooks/ at the root, committed."""
    repo = tmp_path / "assignment"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copyfile(app, repo / "app.py")
    for name, nb in notebooks.items():
        nbformat.write(nb, repo / "notebooks" / name)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "submit"]):
        who = ["-c", "user.name=s", "-c", "user.email=s@example.invalid"]
        subprocess.run(["git", "-C", str(repo), *who, *args], check=True, env=env)
    return repo


def test_teacher_solutions_and_the_reference_app_grade_full_marks(tmp_path, lessons):
    repo = assignment(tmp_path, put_back(lessons), ROOT / "app.py")
    out, summary = tmp_path / "result.json", tmp_path / "summary.md"
    secrets = {"GITHUB_TOKEN": "not-a-real-token", "GRADING_SECRET": "x"}
    result = grade("--repo", str(repo), "--lessons", str(lessons), "--classroom50", str(out),
                   "--summary", str(summary), env=secrets)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert score(result.stdout) == (112, 112)  # app.py 90, repository 10, exercises 12
    assert "第 01 课：3/3 个练习通过  6/6" in result.stdout
    assert "第 02 课：4/4 个练习通过  6/6" in result.stdout
    assert result.stdout.count("✓") == 9 + 2 and "提示" not in result.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert (data["score"], data["max-score"]) == (112, 112)
    names = [test["test-name"] for test in data["tests"]]
    assert len(names) == 9 + 7 + 2 and "第 01 课 练习 l01-ask-check" in names
    table = summary.read_text(encoding="utf-8")
    assert table.startswith("## 自动评分：112/112")
    assert all(f"| {name} |" in table for name in names)


def test_a_finished_app_with_untouched_notebooks_is_below_full_marks(tmp_path, lessons):
    repo = assignment(tmp_path, student_editions(lessons), ROOT / "app.py")
    result = grade("--repo", str(repo), "--lessons", str(lessons), "--only", "tiny,uses_requests")
    assert result.returncode == 1
    assert score(result.stdout) == (9, 20)  # app.py's check passes, 1 of 12 exercise points
    assert "第 01 课：0/3 个练习通过  0/6" in result.stdout
    assert "第 02 课：1/4 个练习通过  1/6" in result.stdout  # the surroundings check
    failed = [line for line in result.stdout.splitlines() if line.startswith("    ✗ l0")]
    assert len(failed) == 6
    assert all(re.search(r"-check：还没完成：", line) for line in failed), failed
    assert not any(line.count("✗") > 1 for line in failed), failed  # one mark per line
    assert "Traceback" not in result.stdout + result.stderr


TAMPERING = (
    "import sys\n\nsys.stderr = sys.stdout  # hide every ✗\n\n\ndef double(x):\n    return 2 * x\n"
)
FAKE_TICK = (
    "def triple(x):\n    import os\n\n    print('✓ triple 正确', flush=True)\n    os._exit(0)\n"
)
ENDLESS = "def add(a, b):\n    while True:\n        pass\n"


def test_tampering_a_dying_kernel_and_an_endless_loop_earn_nothing(tmp_path, lessons):
    answers = {
        "01_tiny.ipynb": {"l01-add": ENDLESS},
        "02_tiny.ipynb": {"l02-double": TAMPERING, "l02-triple": FAKE_TICK},
    }
    repo = assignment(tmp_path, put_back(lessons, answers), ROOT / "app.py")
    result = grade("--repo", str(repo), "--lessons", str(lessons), "--only", "tiny",
                   "--notebook-timeout", "3")  # fmt: skip
    assert score(result.stdout) == (2, 12), result.stdout  # l02-where and the surroundings
    lines = result.stdout.splitlines()
    double = next(line for line in lines if "l02-double-check" in line)
    triple = next(line for line in lines if "l02-triple-check" in line)
    assert "动了检查本身" in double and "sys.stderr" in double
    assert "内核崩溃" in triple
    assert "第 01 课：0/3 个练习通过" in result.stdout
    assert result.stdout.count("超过了 3 秒") == 3  # the loop, and the two cells after it


def test_the_course_repository_refuses_a_teacher_notebook_or_missing_student_notebooks(
    tmp_path, lessons
):
    course = tmp_path / "course"
    (course / "student").mkdir(parents=True)
    shutil.copyfile(ROOT / "student" / "app.py", course / "student" / "app.py")
    result = grade("--repo", str(course), "--lessons", str(lessons))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("找不到 student/notebooks/")
    (course / "student" / "notebooks").mkdir()
    shutil.copyfile(lessons / "01_tiny.ipynb", course / "student" / "notebooks" / "01_tiny.ipynb")
    result = grade("--repo", str(course), "--lessons", str(lessons))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "老师版" in lines[0] and "student/notebooks/01_tiny.ipynb" in lines[0]
    )


# -- what counts as tampering -----------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "import lesson_helpers.checks.lesson02 as c\nc.check_parser = print\n",
        "from lesson_helpers import checks\n",
        "print = lambda *a, **k: None\n",
        "import builtins\nbuiltins.print = None\n",
        "import sys\n\ndef f():\n    sys.stdout = None\n",
        "import sys\nsys.stderr.write = len\n",
        "import sys\nsys.modules['lesson_helpers.checks.lesson02'] = None\n",
        "import sys\n\ndef f():\n    return sys._getframe(1).f_globals\n",
        "__builtins__.print = None\n",
        "import contextlib, io\n\nwith contextlib.redirect_stderr(io.StringIO()):\n    pass\n",
        "import sys\nsetattr(sys, 'stderr', None)\n",
        "get_ipython().events.register('pre_run_cell', print)\n",
        "exec('import sys; sys.stderr = None')\n",
    ],
)
def test_code_that_reaches_into_the_checks_is_tampering(source):
    assert tampering(source)


@pytest.mark.parametrize(
    "source",
    [
        "def parse(line):\n    type = line.split(':')[0]\n    print(type)\n    return type\n",
        "import sys\n\ndef show(text):\n    sys.stdout.write(text)\n    sys.stdout.flush()\n",
        "from lesson_helpers.sse import SSEParser\n\ndef f():\n    return SSEParser()\n",
        "import json, re\n\ndef f(data):\n    return json.loads(re.sub('a', 'b', data))\n",
    ],
)
def test_ordinary_exercise_code_is_not_tampering(source):
    assert tampering(source) is None


def test_the_kit_s_finished_version_handed_in_earns_nothing(tmp_path, lessons):
    """An exercise whose code uses the course kit beyond what its skeleton gives is not run."""
    borrowed = (
        "from lesson_helpers.chunks import assemble  # the kit's finished version\n\n\n"
        "def add(a, b):\n    return a + b\n"
    )
    answers = {"01_tiny.ipynb": {"l01-add": borrowed}}
    repo = assignment(tmp_path, put_back(lessons, answers), ROOT / "app.py")
    result = grade("--repo", str(repo), "--lessons", str(lessons), "--only", "tiny")
    line = next(line for line in result.stdout.splitlines() if "l01-add-check" in line)
    assert "用了课程包里现成的 lesson_helpers.chunks" in line, result.stdout
    assert "第 01 课：2/3 个练习通过" in result.stdout, result.stdout


def test_a_failed_check_s_hint_keeps_what_was_expected_and_got():
    from grading.notebooks import _failure

    text = (
        "✗ split_lines('data: a\\r\\n')\n  期望：['data: a']\n  得到：['data: a\\r']\n"
        "  提示：先去掉行尾的 \\r\n✗ 另一个\n"
    )
    cell = new_code_cell("", outputs=[{"output_type": "stream", "name": "stderr", "text": text}])
    hint = _failure(cell)
    assert hint.startswith("split_lines(")
    assert "期望：['data: a']" in hint and "得到：" in hint and "提示：先去掉" in hint
    assert "另一个" not in hint and "\n" not in hint
