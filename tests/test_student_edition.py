"""The student edition of app.py: generated from the solution, up to date, and failing clearly."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import run_script

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
STUDENT = ROOT / "student" / "app.py"
SCRIPT = ROOT / "scripts" / "make_student_edition.py"
UNFINISHED = "app.py 还没写完：TODO 1：发送流式请求（open_stream）"


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


def test_check_command_agrees():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_four_todos_in_the_order_a_request_travels():
    student = STUDENT.read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r'NotImplementedError\("TODO (\d)', student)]
    assert numbers == [1, 2, 3, 4]
    assert "BEGIN SOLUTION" not in student and "END SOLUTION" not in student
    assert student.startswith("# 学生版 app.py")


@pytest.mark.parametrize("region", sorted(gen.TODOS))
def test_no_solution_code_is_left_in(region):
    student_code = {
        line.strip()
        for line in STUDENT.read_text(encoding="utf-8").splitlines()
        if not line.strip().startswith("#")
    }
    code = solution_lines(region)
    assert code, f"region {region!r} has no code"
    # Short lines like "break" or "return" occur elsewhere too; the distinctive ones must go.
    leaked = [line for line in code if len(line) > 25 and line in student_code]
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
        [sys.executable, "-m", "ruff", "check", "--quiet", str(STUDENT)],
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


# -- an assignment repository -------------------------------------------------------------
def test_template_repository(tmp_path):
    target = tmp_path / "assignment"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--template", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (target / "app.py").read_text(encoding="utf-8") == STUDENT.read_text(encoding="utf-8")
    for name in (
        "README.md",
        ".gitignore",
        ".env.example",
        ".github/workflows/grade.yml",
        ".devcontainer/devcontainer.json",
        "grading/grade.py",
        "grading/check_app.py",
        "lesson_helpers/local_server/server.py",
        "requirements.txt",
        "pyproject.toml",
    ):
        assert (target / name).is_file(), name
    assert not (target / "student").exists()
    assert not (target / "notebooks").exists()
    assert not list(target.rglob("__pycache__"))
    again = subprocess.run(
        [sys.executable, str(SCRIPT), "--template", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1
    assert "not empty" in again.stderr
