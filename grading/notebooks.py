"""Grading the exercises in the student's notebooks.

For each lesson the grader's **own** notebooks (its trusted tree, read before any student
code runs) give the pristine student edition (:func:`grading.editions.student_notebook`):
its checks, demos and points. The graded notebook is that pristine copy with only the
solution cells' sources taken from the student's notebook (:func:`graded_notebook`), minus
any cell that reaches into the checks (:func:`grading.static.tampering`), hands in the kit's
own version (:func:`grading.static.borrowing`) or looks things up by a name built at run time
(:func:`grading.static.lookup`).

It runs headless (nbclient) in a fresh kernel: a temporary working folder holding only that
notebook, a minimal environment without any key (so the lesson's ``connect()`` starts the
local practice server inside the kernel), resource limits, a fresh copy of the kit's
``lesson_helpers`` taken when grading began, and one time limit for the whole notebook. An
exercise passes when its check cell ran with no error, no stderr output and a ``✓`` line on
stdout (:func:`grading.editions.cell_passed`); it is worth the check cell's nbgrader points.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from .checks import Result
from .editions import (
    EditionError,
    Exercise,
    cell_passed,
    exercises,
    graded_notebook,
    is_solution,
    solution_sources,
    student_notebook,
)
from .layout import (
    NOTEBOOK_MARKER,
    RefusalError,
    Submission,
    lesson_label,
    reference_notebook_line,
)
from .probe import MARK, Probe, allowed_imports, is_probe, verdict
from .probe import cell as probe_cell
from .sandbox import LIMITS_EXEC, Limits, minimal_env, reap_orphans
from .static import borrowing, kit_names, lookup, tampering, top_level_names

__all__ = [
    "NOTEBOOK_TIMEOUT",
    "KitCopy",
    "Lesson",
    "grade_lesson",
    "load_lessons",
    "read_submission",
]

NOTEBOOK_TIMEOUT = 120.0  # seconds for one whole notebook (once its kernel has started)
OUTPUT_CAP = 256 * 1024  # characters of output kept per cell
MAX_NOTEBOOK = 50 << 20  # a bigger .ipynb is not read
KERNEL = "grading-python"


@dataclass(frozen=True)
class Lesson:
    file: str  # "02_sse_parsing.ipynb"
    label: str  # "第 02 课"
    pristine: NotebookNode
    exercises: list[Exercise]

    @property
    def points(self) -> float:
        return sum(exercise.points for exercise in self.exercises)


def load_lessons(paths: list[Path]) -> list[Lesson]:
    """The lessons with exercises among ``paths`` (the grader's own notebooks), read now."""
    lessons = []
    for path in paths:
        try:
            pristine = student_notebook(nbformat.read(path, as_version=4), path.name)
        except EditionError as exc:
            raise RuntimeError(f"{path}: {exc}") from None
        found = exercises(pristine)
        if found:
            lessons.append(Lesson(path.name, lesson_label(path.name), pristine, found))
    return lessons


class KitCopy:
    """The kit's ``lesson_helpers`` package, read into memory once, written out fresh for
    every notebook (so one notebook's code cannot change what the next one imports)."""

    def __init__(self, package: Path) -> None:
        self.files: dict[str, bytes] = {}
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                self.files[path.relative_to(package.parent).as_posix()] = path.read_bytes()

    def write(self, into: Path) -> Path:
        for name, data in self.files.items():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return into


def read_submission(lesson: Lesson, submission: Submission) -> NotebookNode | str:
    """The student's notebook for ``lesson``, or a one-line problem. Refuses a teacher edition."""
    path = submission.notebooks / lesson.file
    shown = submission.shown(path)
    if not path.is_file():
        return f"找不到 {shown}：练习要做在这个 notebook 里（保存后再评分）。"
    if path.stat().st_size > MAX_NOTEBOOK:
        return (
            f"{shown} 太大了（超过 {MAX_NOTEBOOK >> 20} MB）："
            "清除输出（Edit → Clear Outputs）后保存。"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    if submission.kind == "course" and NOTEBOOK_MARKER in text:
        raise RefusalError(reference_notebook_line(submission, path))
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a broken file
        return f"{shown} 不是有效的 notebook（{type(exc).__name__}）：在 JupyterLab 里重新保存它。"


# -- running one notebook ---------------------------------------------------------------------
class _Client(NotebookClient):
    """nbclient with bounded outputs and a kernel from the grader's own kernel spec."""

    def __init__(self, nb: NotebookNode, kernels: Path, connection: Path, **kw: Any) -> None:
        super().__init__(nb, **kw)
        self._kernels = kernels
        self._connection = connection
        self._used: dict[int, int] = {}

    def create_kernel_manager(self) -> AsyncKernelManager:
        self.km = AsyncKernelManager(
            kernel_name=KERNEL,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(self._kernels)]),
            connection_file=str(self._connection),
        )
        return self.km

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return out
        used = self._used.get(cell_index, 0)
        room = max(0, OUTPUT_CAP - used)
        if out.get("output_type") == "stream":
            text = out.get("text", "")
            out["text"] = text[:room]
            self._used[cell_index] = used + len(text)
        elif "data" in out:
            size = sum(len(str(value)) for value in out["data"].values())
            if size > room:
                out["data"] = {"text/plain": "（输出太长，评分时省略）"}
            self._used[cell_index] = used + size
        elif out.get("output_type") == "error":
            out["traceback"] = [line[:2000] for line in out.get("traceback", [])[:50]]
        return out


def _kernel_spec(into: Path, timeout: float) -> Path:
    limits = Limits(
        cpu_seconds=int(timeout) + 30,
        memory_bytes=4 << 30,
        file_bytes=64 << 20,
        extra_processes=256,
    )
    folder = into / KERNEL
    folder.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if os.name == "posix":  # limits first (see grading.limits_exec)
        argv = [sys.executable, "-I", "-S", str(LIMITS_EXEC), limits.as_json(), "--", *argv]
    spec = {"argv": argv, "display_name": "Python (grading)", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return into


@dataclass
class _Execution:
    nb: NotebookNode
    ran: set[int]  # indexes of the cells that ran to the end
    stop: str = ""  # why the rest did not run


def execute(nb: NotebookNode, file: str, kit: KitCopy, timeout: float) -> _Execution:
    """Run ``nb`` untrusted; every process it started is dead when this returns."""
    result = _Execution(nb, set())
    with tempfile.TemporaryDirectory(prefix="grading-nb-") as scratch:
        root = Path(scratch)
        work, home, kit_dir = root / "work", root / "home", root / "kit"
        for folder in (work, home, kit_dir):
            folder.mkdir()
        # The grader's inserted cells (their tokens) stay out of what the kernel can read.
        public = nbformat.from_dict({**nb, "cells": [c for c in nb.cells if not is_probe(c)]})
        nbformat.write(public, work / file)
        kit.write(kit_dir)
        env = minimal_env(
            home,
            {
                "PYTHONPATH": str(kit_dir),
                "MALLOC_ARENA_MAX": "2",
                "JUPYTER_PLATFORM_DIRS": "1",
                "MPLBACKEND": "agg",
            },
        )
        client = _Client(
            nb,
            _kernel_spec(root / "kernels", timeout),
            root / "connection.json",
            kernel_name=KERNEL,
            allow_errors=True,
            startup_timeout=60,
            shutdown_kernel="immediate",
            record_timing=False,
        )
        pid = None
        try:
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            with client.setup_kernel(cwd=str(work), env=env, **quiet):
                pid = getattr(client.km.provisioner, "pid", None) if client.km else None
                _run_cells(client, nb, time.monotonic() + timeout, timeout, result)
        except Exception as exc:  # the kernel would not start, or died while starting
            result.stop = result.stop or f"没法运行这个 notebook（{type(exc).__name__}）"
        finally:
            if pid and hasattr(os, "killpg"):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            reap_orphans()
    return result


def _run_cells(
    client: _Client, nb: NotebookNode, deadline: float, timeout: float, result: _Execution
) -> None:
    count = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        left = deadline - time.monotonic()
        if left < 1:
            result.stop = f"整本 notebook 运行超过了 {timeout:g} 秒，后面的格子没有运行"
            return
        client.timeout = int(left)
        count += 1
        try:
            client.execute_cell(cell, index, execution_count=count)
        except CellTimeoutError:
            result.stop = (
                f"运行超过了 {timeout:g} 秒（有死循环，或在等输入？），它和后面的格子都没有算"
            )
            return
        except DeadKernelError:
            result.stop = (
                "内核崩溃了（用了太多内存，或者调用了 os._exit / sys.exit），它和后面的格子都没有算"
            )
            return
        result.ran.add(index)


def _insert_probes(
    graded: NotebookNode, answers: dict[str, str], skeletons: dict[str, str]
) -> dict[str, Probe]:
    """After each exercise cell taken from the student, the grader's own cell that checks
    what it defined (:mod:`grading.probe`); its ``solution_id`` → its tokens."""
    names = {grade_id: top_level_names(source) for grade_id, source in answers.items()}
    defined = {name for bound, _ in names.values() for name in bound}
    probes: dict[str, Probe] = {}
    cells = []
    for cell in graded.cells:
        cells.append(cell)
        grade_id = _grade_id(cell)
        if is_solution(cell) and grade_id in answers and grade_id not in probes:
            bound, read = names[grade_id]
            looked_at = bound + [name for name in read if name in defined and name not in bound]
            probe = probes[grade_id] = Probe(grade_id)
            cells.append(probe_cell(probe, looked_at, allowed_imports(skeletons.get(grade_id, ""))))
    graded.cells = cells
    return probes


# -- reading the results ------------------------------------------------------------------------
def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _failure(cell: NotebookNode) -> str:
    """The check's own ✗ line, or what else went wrong in the cell."""
    outputs = cell.get("outputs", [])
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    lines = stderr.splitlines()
    for at, line in enumerate(lines):
        if line.startswith("✗"):  # with the 期望/得到/提示 lines under it
            block = [line.removeprefix("✗").strip()]  # the report marks it already
            for more in lines[at + 1 :]:
                if not more.startswith((" ", "\t")) or not more.strip():
                    break
                block.append(more.strip())
            return _one_line("；".join(block), limit=400)
    for output in outputs:
        if output.get("output_type") == "error":
            return _one_line(f"检查格出错了：{output.get('ename')}: {output.get('evalue')}")
    if stderr.strip():
        return _one_line(f"检查格在 stderr 里输出了：{stderr.strip().splitlines()[0]}")
    return "检查格没有打印 ✓ 这一行。"


def _grade_id(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def grade_lesson(
    lesson: Lesson, submission: NotebookNode | str, kit: KitCopy, timeout: float = NOTEBOOK_TIMEOUT
) -> list[Result]:
    results = [
        Result(lesson.label, e.grade_id, f"{lesson.label} 练习 {e.grade_id}", e.points)
        for e in lesson.exercises
    ]
    if isinstance(submission, str):
        for result in results:
            result.hint = submission
        return results
    tampered: dict[str, str] = {}
    borrowed: dict[str, str] = {}
    looked_up: dict[str, str] = {}
    skeletons = solution_sources(lesson.pristine)
    from_kit = kit_names([cell.get("source", "") for cell in lesson.pristine.cells])
    kept = nbformat.v4.new_notebook()
    for grade_id, source in solution_sources(submission).items():
        found = tampering(source)
        name = borrowing(source, skeletons.get(grade_id, ""), from_kit)
        looked = lookup(source, skeletons.get(grade_id, ""))
        if found:
            tampered[grade_id] = found  # not run: its check sees the stub
        elif name:
            borrowed[grade_id] = name  # not run either: the kit's answer is not the student's
        elif looked:
            looked_up[grade_id] = looked  # what it uses is hidden from the two above
        else:
            meta = {"nbgrader": {"solution": True, "grade_id": grade_id}}
            kept.cells.append(nbformat.v4.new_code_cell(source, metadata=meta))
    graded = graded_notebook(lesson.pristine, kept)
    probes = _insert_probes(graded, solution_sources(kept), skeletons)
    run = execute(graded, lesson.file, kit, timeout)
    checks = {_grade_id(cell): (index, cell) for index, cell in enumerate(run.nb.cells)}
    found = {
        probes[cell.metadata[MARK]].solution_id: verdict(probes[cell.metadata[MARK]], cell)
        for index, cell in enumerate(run.nb.cells)
        if is_probe(cell) and index in run.ran
    }
    for exercise, result in zip(lesson.exercises, results, strict=True):
        if exercise.solution_id in tampered:
            result.hint = (
                f"练习格 {exercise.solution_id} 动了检查本身（{tampered[exercise.solution_id]}），"
                "这一格没有运行：删掉这部分，只写练习要求的代码。"
            )
            continue
        if exercise.solution_id in borrowed:
            name = borrowed[exercise.solution_id]
            result.hint = (
                f"练习格 {exercise.solution_id} 用了课程包里现成的 {name}："
                "这个练习要你自己写出来，这一格没有运行。"
            )
            continue
        if exercise.solution_id in looked_up:
            result.hint = (
                f"练习格 {exercise.solution_id} 用了 {looked_up[exercise.solution_id]}，"
                "这一格没有运行：评分时练习代码要直接写出它用到的名字"
                "（不按运行时拼出来的名字查找对象或执行代码，import 只用标准库）。"
            )
            continue
        index, cell = checks[exercise.grade_id]
        kit_object = None
        if exercise.solution_id in probes:  # its own cell ran first (else the check did not)
            kit_object = found.get(exercise.solution_id, "这一格没有运行。")
        if index not in run.ran:
            result.hint = run.stop or "这一格没有运行。"
        elif kit_object:
            result.hint = kit_object
        elif cell_passed(cell):
            result.passed = True
        else:
            result.hint = _failure(cell)
    return results
