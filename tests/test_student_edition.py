"""The student edition: app.py and the lessons, generated from the teacher's files, up to date,
with no solution left in, failing clearly until written; and the assignment repository.

The lessons are executed once each, in parallel, by two module-scoped fixtures: the unfinished
student editions (Run All: no error anywhere, every check ✗ 还没完成 on stderr) and the same
notebooks with the teacher's solution cells put back (every check passes), against the local
server with no key.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from conftest import run_script
from nbclient import NotebookClient
from nbformat import NotebookNode
from packaging.requirements import Requirement

from grading.editions import (
    TEACHER_ONLY,
    cell_passed,
    graded_notebook,
    is_solution,
    is_test,
    nbgrader_meta,
    strip_regions,
)

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
STUDENT = ROOT / "student" / "app.py"
SCRIPT = ROOT / "scripts" / "make_student_edition.py"
TEACHER_NOTEBOOKS = ROOT / "notebooks"
STUDENT_NOTEBOOKS = ROOT / "student" / "notebooks"
UNFINISHED = "app.py 还没写完：TODO 1：发送流式请求（open_stream）"
# Lessons still in the old exercise format (hidden reference cells) on this branch: the script
# skips them (they would carry their solutions along), so they have no student edition yet.
# lessons-b converts them; a converted one is covered like every other lesson. Delete the set
# once all have landed.
NOT_YET_CONVERTED = frozenset(
    {"03_chunk_assembly.ipynb", "05_build_app.ipynb", "06_when_things_go_wrong.ipynb"}
)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_student_edition", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


gen = load_generator()
SOLUTION_TEXT = APP.read_text(encoding="utf-8")


def app_env(server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(
        LLM_BASE_URL=server.base_url,
        LLM_API_KEY=server.api_key,
        LLM_MODEL="Qwen/Qwen2.5-7B-Instruct",
        PYTHONIOENCODING="utf-8",
    )
    return env


def solution_lines(name: str) -> list[str]:
    """The code lines (not comments) of one solution region in app.py."""
    inside, lines = False, []
    for line in SOLUTION_TEXT.splitlines():
        if gen.BEGIN.match(line):
            inside = gen.BEGIN.match(line)["name"] == name
        elif gen.END.match(line):
            inside = False
        elif inside and line.strip() and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


# -- generated, and up to date ------------------------------------------------------------
def test_committed_student_edition_is_up_to_date():
    assert STUDENT.read_text(encoding="utf-8") == gen.make_student_edition(SOLUTION_TEXT), (
        "student/app.py is stale: run python scripts/make_student_edition.py"
    )
    assert gen.stale_files(SOLUTION_TEXT) == [], "run python scripts/make_student_edition.py"


def test_check_command_agrees():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "student/app.py and student/notebooks/ are up to date" in result.stdout


def test_check_notices_a_stale_a_missing_and_an_extra_file(tmp_path):
    student = tmp_path / "student"
    shutil.copytree(ROOT / "student", student)
    assert gen.stale_files(SOLUTION_TEXT, student) == []
    lesson = student / "notebooks" / "00_setup.ipynb"
    lesson.write_text(lesson.read_text(encoding="utf-8").replace("练习", "习题"), "utf-8")
    (student / "notebooks" / "01_raw_http.ipynb").unlink()
    (student / "notebooks" / "99_gone.ipynb").write_text("{}", encoding="utf-8")
    assert gen.stale_files(SOLUTION_TEXT, student) == [
        "student/notebooks/00_setup.ipynb",
        "student/notebooks/01_raw_http.ipynb",
        "student/notebooks/99_gone.ipynb",
    ]
    gen.write_edition(SOLUTION_TEXT, student)
    assert gen.stale_files(SOLUTION_TEXT, student) == []
    assert not (student / "notebooks" / "99_gone.ipynb").exists()


def test_four_todos_in_the_order_a_request_travels():
    student = STUDENT.read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r'NotImplementedError\("TODO (\d)', student)]
    assert numbers == [1, 2, 3, 4]
    assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
    assert student.startswith("# 学生版 app.py")


def app_skeleton_lines() -> set[str]:
    """The stripped lines of app.py outside its solution regions."""
    inside, lines = False, set()
    for line in SOLUTION_TEXT.splitlines():
        if gen.BEGIN.match(line):
            inside = True
        elif gen.END.match(line):
            inside = False
        elif not inside:
            lines.add(line.strip())
    return lines


@pytest.mark.parametrize("region", sorted(gen.TODOS))
def test_no_solution_code_is_left_in(region):
    student_code = {
        line.strip()
        for line in STUDENT.read_text(encoding="utf-8").splitlines()
        if not line.strip().startswith("#")
    }
    code = solution_lines(region)
    assert code, f"region {region!r} has no code"
    # Every solution line must be gone, unless the rest of app.py has it too ("return", "break").
    leaked = [line for line in code if line in student_code and line not in app_skeleton_lines()]
    assert not leaked


def test_everything_outside_the_regions_is_unchanged():
    solved = gen.make_student_edition(SOLUTION_TEXT, keep=frozenset(gen.TODOS))
    assert solved.removeprefix(gen.BANNER) == "".join(
        line
        for line in SOLUTION_TEXT.splitlines(keepends=True)
        if not (gen.BEGIN.match(line) or gen.END.match(line))
    )


def test_student_edition_is_lint_clean():
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT / "student")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if "No module named ruff" in ruff.stderr:
        pytest.skip("ruff is not installed")
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("# --- END SOLUTION ---\n", "END SOLUTION without BEGIN"),
        ("# --- BEGIN SOLUTION: request ---\nx = 1\n", "never closed"),
        ("# --- BEGIN SOLUTION: nonsense ---\n# --- END SOLUTION ---\n", "unknown region"),
        ("x = 1\n", "no region for"),
    ],
)
def test_broken_markers_are_reported(source, problem):
    with pytest.raises(gen.RegionError, match=problem):
        gen.make_student_edition(source)


def test_nested_and_repeated_regions_are_reported():
    nested = "# --- BEGIN SOLUTION: request ---\n# --- BEGIN SOLUTION: request ---\n"
    with pytest.raises(gen.RegionError, match="inside region"):
        gen.make_student_edition(nested)
    twice = "# --- BEGIN SOLUTION: request ---\n# --- END SOLUTION ---\n" * 2
    with pytest.raises(gen.RegionError, match="appears twice"):
        gen.make_student_edition(twice)


# -- it runs, and says what is missing ----------------------------------------------------
def test_unfinished_program_fails_with_one_line(server):
    result = run_script(STUDENT, ["你好"], app_env(server))
    assert result.returncode == 1
    assert result.stderr == UNFINISHED + "\n"
    assert result.stdout == ""


def test_unfinished_conversation_fails_with_one_line(server):
    result = run_script(STUDENT, [], app_env(server), stdin="你好\n")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [UNFINISHED]


def test_todos_come_up_one_after_another(tmp_path, server):
    """Finishing the TODOs in order, each run names the next one, then the program works."""
    order = sorted(gen.TODOS, key=lambda name: gen.TODOS[name].number)
    for done in range(len(order) + 1):
        app = tmp_path / f"app_{done}.py"
        app.write_text(
            gen.make_student_edition(SOLUTION_TEXT, keep=frozenset(order[:done])),
            encoding="utf-8",
        )
        result = run_script(app, ["你好"], app_env(server))
        if done < len(order):
            assert result.returncode == 1
            assert f"TODO {done + 1}：" in result.stderr, (done, result.stderr)
            assert "Traceback" not in result.stderr
        else:
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("你好！有什么问题或者需要帮助的吗？")


# -- the lessons: which ones, and the solution text each holds -------------------------------
def read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def old_format(nb: NotebookNode) -> bool:
    return any("solution" in cell.metadata.get("tags", []) for cell in nb.cells)


TEACHER_LESSONS = sorted(path.name for path in TEACHER_NOTEBOOKS.glob("*.ipynb"))
LESSONS = [name for name in TEACHER_LESSONS if not old_format(read(TEACHER_NOTEBOOKS / name))]


def regions(source: str) -> list[list[str]]:
    """The lines of each solution region in a cell's source."""
    found: list[list[str]] = []
    inside = False
    for line in source.split("\n"):
        if gen.NOTEBOOK_BEGIN in line:
            inside = True
            found.append([])
        elif "### END SOLUTION" in line:
            inside = False
        elif inside:
            found[-1].append(line)
    return found


def solution_text(nb: NotebookNode) -> set[str]:
    """Every stripped line of the notebook's solution regions that its skeleton (everything
    outside the regions, in every cell) does not also have, and that says something (a line
    like ``]`` or ``)`` is no solution)."""
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in nb.cells:
        for region in regions(cell.source):
            inside.update(line.strip() for line in region)
        stripped, _ = strip_regions(cell.source, "")
        outside.update(line.strip() for line in stripped.split("\n"))
    return {line for line in inside - outside if re.search(r"\w", line)}


def everything_shown(nb: NotebookNode) -> tuple[set[str], str]:
    """The stripped source lines of a notebook, and all its output text."""
    lines = {line.strip() for cell in nb.cells for line in cell.source.split("\n")}
    shown = [
        stream_or_data
        for cell in nb.cells
        for output in cell.get("outputs", [])
        for stream_or_data in [output.get("text", ""), *output.get("data", {}).values()]
    ]
    return lines, "\n".join(str(item) for item in shown)


def leaked(secret: set[str], nb: NotebookNode) -> list[str]:
    """The solution lines a notebook shows: as a line of its sources, or inside its outputs
    (there only lines of 8 characters or more: "break" may well be printed)."""
    lines, outputs = everything_shown(nb)
    return sorted(secret & lines) + [s for s in secret if len(s) >= 8 and s in outputs]


def test_every_lesson_has_a_student_edition():
    assert LESSONS, "no lesson in the exercise format"
    for name in TEACHER_LESSONS:
        if name not in LESSONS:
            assert name in NOT_YET_CONVERTED, f"{name} is in the old exercise format"
            assert not (STUDENT_NOTEBOOKS / name).exists(), f"{name} would carry its solutions"
            continue
        assert (STUDENT_NOTEBOOKS / name).is_file(), name
    assert sorted(p.name for p in STUDENT_NOTEBOOKS.glob("*.ipynb")) == LESSONS


def test_a_lesson_in_the_old_format_is_refused(tmp_path):
    nb = read(TEACHER_NOTEBOOKS / LESSONS[0])
    nb.cells[1].metadata["tags"] = ["solution"]
    path = tmp_path / "07_old.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(gen.LessonError, match="hidden reference cell"):
        gen.student_lesson(path)


@pytest.mark.parametrize("name", LESSONS)
def test_the_student_edition_keeps_every_cell_id_and_grade_id_in_order(name):
    teacher = read(TEACHER_NOTEBOOKS / name)
    student = read(STUDENT_NOTEBOOKS / name)
    kept = [c for c in teacher.cells if TEACHER_ONLY not in c.metadata.get("tags", [])]
    assert [(c.cell_type, c.get("id")) for c in student.cells] == [
        (c.cell_type, c.get("id")) for c in kept
    ]
    assert [nbgrader_meta(c) for c in student.cells] == [nbgrader_meta(c) for c in kept]
    assert any(is_solution(c) for c in student.cells) and any(is_test(c) for c in student.cells)
    for mine, theirs in zip(student.cells, kept, strict=True):
        if is_solution(theirs):
            assert mine.source == strip_regions(theirs.source, "")[0]
            assert 'raise NotImplementedError("还没完成")' in mine.source
        else:
            assert mine.source == theirs.source
        assert mine.get("outputs", []) == [] and mine.get("execution_count") is None
        assert "source_hidden" not in json.dumps(mine.metadata)


@pytest.mark.parametrize("name", LESSONS)
def test_no_solution_text_in_the_student_edition(name):
    teacher = read(TEACHER_NOTEBOOKS / name)
    secret = solution_text(teacher)
    assert secret, f"{name} has no solution region"
    assert not leaked(secret, read(STUDENT_NOTEBOOKS / name))


# -- Run All, unfinished and finished (each lesson executed once per edition) ----------------
def execute(nb: NotebookNode) -> NotebookNode:
    """Run All on a fresh kernel, from the student notebooks' folder, with no key."""
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,  # keep going, so that every cell's outcome is seen
        resources={"metadata": {"path": str(STUDENT_NOTEBOOKS)}},
    )
    client.execute()
    return nb


def execute_all(notebooks: dict[str, NotebookNode]) -> dict[str, NotebookNode]:
    assert os.environ["LLM_API_KEY"] == "", "conftest.py gives every kernel the no-key setup"
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(notebooks, pool.map(execute, notebooks.values()), strict=True))
    return done


@pytest.fixture(scope="module")
def unfinished() -> dict[str, NotebookNode]:
    return execute_all({name: read(STUDENT_NOTEBOOKS / name) for name in LESSONS})


@pytest.fixture(scope="module")
def finished() -> dict[str, NotebookNode]:
    return execute_all(
        {
            name: graded_notebook(read(STUDENT_NOTEBOOKS / name), read(TEACHER_NOTEBOOKS / name))
            for name in LESSONS
        }
    )


def errors(nb: NotebookNode) -> list[str]:
    return [
        f"{cell.source[:60]!r}: {output.get('ename')}: {output.get('evalue')}"
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


def stream(cell: NotebookNode, name: str) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.output_type == "stream" and o.name == name
    )


@pytest.mark.parametrize("name", LESSONS)
def test_run_all_on_the_unfinished_lesson(name, unfinished):
    nb = unfinished[name]
    assert not errors(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "Run All reached the end"
    checks = [cell for cell in code if is_test(cell)]
    assert checks
    for cell in checks:
        assert stream(cell, "stderr").startswith("✗ 还没完成："), cell.source
        assert "✓" not in stream(cell, "stdout") and not cell_passed(cell)
    for cell in code:
        assert "Traceback" not in stream(cell, "stderr"), cell.source[:60]
    assert not leaked(solution_text(read(TEACHER_NOTEBOOKS / name)), nb)


@pytest.mark.parametrize("name", LESSONS)
def test_with_the_teachers_solutions_every_check_passes(name, finished):
    nb = finished[name]
    assert not errors(nb)
    checks = [cell for cell in nb.cells if is_test(cell)]
    assert checks
    failed = [stream(cell, "stderr") or cell.source for cell in checks if not cell_passed(cell)]
    assert not failed


# -- an assignment repository -------------------------------------------------------------
def make_template(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--template", str(target)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("template") / "assignment"
    result = make_template(target)
    assert result.returncode == 0, result.stderr
    return target


def test_template_repository(template, tmp_path):
    assert (template / "app.py").read_text(encoding="utf-8") == STUDENT.read_text(encoding="utf-8")
    for name in (
        "README.md",
        ".gitignore",
        ".env.example",
        ".github/workflows/grade.yml",
        ".devcontainer/devcontainer.json",
        "runtime.txt",
        "pyproject.toml",
        "requirements.txt",
        "tests/test_assignment.py",
        "grading/__main__.py",
        "grading/editions.py",
        "grading/requirements.txt",
        "lesson_helpers/local_server/server.py",
        "lesson_helpers/checks/report.py",
    ):
        assert (template / name).is_file(), name
    assert sorted(p.name for p in (template / "notebooks").glob("*.ipynb")) == LESSONS
    for name in LESSONS:
        text = (template / "notebooks" / name).read_text(encoding="utf-8")
        assert text == (STUDENT_NOTEBOOKS / name).read_text(encoding="utf-8")
    assert not (template / "student").exists()
    assert not (template / "scripts").exists()
    assert not list(template.rglob("__pycache__"))
    again = make_template(template)
    assert again.returncode == 1
    assert "not empty" in again.stderr


def test_template_readme_and_devcontainer_say_what_to_do(template):
    readme = (template / "README.md").read_text(encoding="utf-8")
    for needed in (
        "notebooks/",
        "app.py",
        "TODO 1～4",
        gen.LESSONS_COMMAND,
        "python -m grading",
        "pip install -r requirements.txt",
        ".env",
        "pytest",
    ):
        assert needed in readme, needed
    assert gen.LESSONS_COMMAND.endswith(" notebooks/00_setup.ipynb")
    devcontainer = (template / ".devcontainer" / "devcontainer.json").read_text("utf-8")
    assert "notebooks/00_setup.ipynb" in devcontainer and "student/" not in devcontainer


def normalized_code(text: str) -> list[str]:
    """Code lines, stripped, without blank lines, comment lines or trailing comments."""
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"\s+#[^\"']*$", "", line.strip())
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def all_solution_regions() -> list[tuple[str, list[str]]]:
    found = [
        (f"{name} cell {index}", normalized_code("\n".join(region)))
        for name in TEACHER_LESSONS
        for index, cell in enumerate(read(TEACHER_NOTEBOOKS / name).cells)
        for region in regions(cell.source)
    ]
    found += [(f"app.py {region}", solution_lines(region)) for region in sorted(gen.TODOS)]
    return found


def template_texts(template: Path) -> dict[str, str]:
    texts = {}
    for path in sorted(template.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(cell.source for cell in nb.cells) + json.dumps(
                [cell.get("outputs", []) for cell in nb.cells], ensure_ascii=False
            )
        texts[path.relative_to(template).as_posix()] = text
    return texts


def copied_regions(texts: dict[str, str]) -> list[str]:
    """Where four consecutive code lines of a solution region (or all of a shorter one) occur."""
    code = {name: "\n" + "\n".join(normalized_code(text)) + "\n" for name, text in texts.items()}
    found = []
    for where, lines in all_solution_regions():
        assert lines, where
        runs = [lines] if len(lines) <= 4 else [lines[i : i + 4] for i in range(len(lines) - 3)]
        for run in runs:
            needle = "\n" + "\n".join(run) + "\n"
            found += [f"{where}: {run} in {name}" for name, text in code.items() if needle in text]
    return found


def test_no_solution_text_anywhere_in_the_template(template):
    """Grep the whole repository: the student's files for every solution line, and every file
    (the kit and the grader included) for any four consecutive lines of a solution region.

    Single lines cannot be grepped in the kit: it is the course's library and shares lines
    such as ``except ValueError:`` or ``chunk = json.loads(data)`` with any client.
    """
    texts = template_texts(template)
    for name in LESSONS:
        secret = solution_text(read(TEACHER_NOTEBOOKS / name))
        assert not leaked(secret, read(template / "notebooks" / name)), name
    student_app = {line.strip() for line in texts["app.py"].splitlines()}
    for region in gen.TODOS:
        assert not [
            line
            for line in solution_lines(region)
            if line in student_app and line not in app_skeleton_lines()
        ], region
    assert not copied_regions(texts)
    for name, text in texts.items():
        if name == "app.py" or name.startswith("notebooks/"):
            assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name


def test_the_solution_grep_finds_a_leak(template):
    """The grep above can fail: a solution region copied anywhere is found."""
    texts = template_texts(template)
    before = set(copied_regions(texts))
    where, lines = next(r for r in all_solution_regions() if len(r[1]) >= 6)
    texts["lesson_helpers/notes.py"] = "x = 1\n" + "\n".join(lines[1:5]) + "\n"
    found = set(copied_regions(texts)) - before
    assert found and all(item.endswith(" in lesson_helpers/notes.py") for item in found)
    assert all(item.startswith(where) for item in found)
    notebook = read(template / "notebooks" / LESSONS[0])
    notebook.cells[-1].outputs = [{"output_type": "stream", "name": "stdout", "text": lines[2]}]
    assert leaked(set(lines), notebook) == [lines[2]]


# -- the template's requirements: what it needs, and no more --------------------------------
def imports_of(source: str) -> set[str]:
    """Top-level modules a piece of Python (or a notebook cell) imports."""
    source = "\n".join(
        line for line in source.split("\n") if not line.lstrip().startswith(("%", "!"))
    )
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def needed_modules(template: Path) -> set[str]:
    """Third-party modules the assignment needs: the template's code and notebooks, the
    lessons as the teacher wrote them (a student's finished exercise may need what the
    reference imports; teacher-only cells excepted) and the reference app.py."""
    sources = [path.read_text("utf-8") for path in template.rglob("*.py")]
    sources.append(APP.read_text(encoding="utf-8"))
    for folder in (template / "notebooks", TEACHER_NOTEBOOKS):
        for path in folder.glob("*.ipynb"):
            sources += [
                cell.source
                for cell in read(path).cells
                if cell.cell_type == "code" and TEACHER_ONLY not in cell.metadata.get("tags", [])
            ]
    local = {"lesson_helpers", "grading", "app", "conftest", "__future__"}
    found = set().union(*(imports_of(source) for source in sources))
    return {m for m in found if m not in sys.stdlib_module_names and m not in local}


def requirement_names(path: Path) -> tuple[list[str], list[str]]:
    """(distributions listed in this file, distributions from files it includes with -r)."""
    direct, included = [], []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if not line or line.startswith(("-e", "--")):
            continue
        if line.startswith("-r"):
            mine, theirs = requirement_names(path.parent / line[2:].strip())
            included += mine + theirs
        else:
            direct.append(Requirement(line).name)
    return direct, included


def closure(names: list[str]) -> set[str]:
    """The distributions that installing ``names`` brings in (as installed here)."""
    seen: set[str] = set()
    todo = [name.lower().replace("_", "-") for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower().replace("_", "-"))
    return seen


def provided_by(names: set[str]) -> set[str]:
    owners = importlib.metadata.packages_distributions()
    return {
        module
        for module, dists in owners.items()
        if {d.lower().replace("_", "-") for d in dists} & names
    }


UI_ONLY = {"jupyterlab": "opens and runs the lessons; nothing imports it"}
# Imported only to find out whether they are there (and to explain what is missing).
PROBED = {"socks": "PySocks: the client only checks for it to explain a socks proxy"}


def test_template_requirements_are_what_it_needs_and_no_more(template):
    requirements = template / "requirements.txt"
    comments = requirements.read_text(encoding="utf-8")
    assert "and no more" in comments and "-e ." in comments
    assert "-r grading/requirements.txt" in comments
    direct, included = requirement_names(requirements)
    needed = needed_modules(template)
    installed = closure(direct + included)
    missing = needed - provided_by(installed) - set(PROBED)
    assert not missing, f"imported by the assignment but not installed: {sorted(missing)}"
    for name in direct:
        if name in UI_ONLY:
            continue
        assert provided_by({name.lower()}) & needed, f"{name} is listed but nothing imports it"
    assert "pytest" in installed and "nbval" not in installed and "hypothesis" not in installed


# -- the template's own pytest ---------------------------------------------------------------
def template_pytest(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in the assignment repository, as a student's environment has it: no plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
        check=False,
    )


def test_template_pytest_collects_its_one_test(template):
    settings = tomllib.loads((template / "pyproject.toml").read_text("utf-8"))
    pytest_settings = settings["tool"]["pytest"]["ini_options"]
    assert pytest_settings["testpaths"] == ["tests"]
    assert "nbval" not in str(pytest_settings)
    course = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert settings["project"] == course["project"] and settings["build-system"]
    assert settings["tool"]["setuptools"] == course["tool"]["setuptools"]
    result = template_pytest(template, "--collect-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/test_assignment.py::test_the_grader_gives_full_marks" in result.stdout
    assert "1 test collected" in result.stdout


@pytest.mark.parametrize(("exit_code", "passes"), [(0, True), (1, False)])
def test_template_pytest_passes_exactly_when_the_grader_gives_full_marks(
    template, tmp_path, exit_code, passes
):
    repo = tmp_path / "repo"
    shutil.copytree(template, repo)
    report = f"✗ 第 00 课 is_env_ignored 还没完成\n得分：{100 if passes else 7}/100"
    (repo / "grading" / "__main__.py").write_text(
        f"import sys\nprint({report!r})\nsys.exit({exit_code})\n", encoding="utf-8"
    )
    result = template_pytest(repo)
    assert (result.returncode == 0) is passes, result.stdout + result.stderr
    if not passes:
        assert "还没有满分" in result.stdout and "得分：7/100" in result.stdout


@pytest.mark.slow
def test_template_pytest_runs_the_real_grader(template, tmp_path):
    """Untouched, the assignment is not finished: the real grader's report, not a usage error.

    On a copy with one lesson (the grader grades the lessons its own tree has), so the test
    does not execute every notebook once more."""
    repo = tmp_path / "assignment"
    shutil.copytree(template, repo)
    for path in sorted((repo / "notebooks").glob("*.ipynb"))[1:]:
        path.unlink()
    result = template_pytest(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "unrecognized arguments" not in result.stdout + result.stderr
    assert "还没有满分" in result.stdout and "得分：" in result.stdout


def test_the_course_repository_itself_is_not_graded_on_push():
    """The workflow is the assignment's: the course repository has no graded push runs."""
    assert not (ROOT / ".github" / "workflows" / "grade.yml").exists()
    assert (ROOT / "scripts" / "template" / "grade.yml").is_file()


def test_the_template_workflow_waits_for_a_pinned_grader(template):
    text = (template / ".github" / "workflows" / "grade.yml").read_text(encoding="utf-8")
    assert text == (ROOT / "scripts" / "template" / "grade.yml").read_text(encoding="utf-8")
    assert "GRADER_REPOSITORY: ${{ vars.GRADER_REPOSITORY || '' }}" in text


def test_grader_pins_the_teacher_s_grader_in_the_template(tmp_path):
    target = tmp_path / "pinned"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--template", str(target), "--grader", "t-org/course@v1.2"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = (target / ".github" / "workflows" / "grade.yml").read_text(encoding="utf-8")
    assert "GRADER_REPOSITORY: ${{ vars.GRADER_REPOSITORY || 't-org/course' }}" in text
    assert "GRADER_REF: ${{ vars.GRADER_REF || 'v1.2' }}" in text


@pytest.mark.parametrize("args", [["--grader", "not a repo"], ["--grader", "a/b"]])
def test_a_malformed_grader_is_one_line(tmp_path, args):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--template", str(tmp_path / "x"), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: --grader ") and result.stderr.count("\n") == 1
    assert "OWNER/REPO@REF" in result.stderr
    assert not (tmp_path / "x").exists()  # nothing written


def test_grader_needs_template():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--grader", "a/b@c"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert result.returncode == 2 and "--grader goes with --template" in result.stderr
