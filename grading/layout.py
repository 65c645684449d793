"""Where a submission's files are, and refusing to grade the reference solution.

* **Course repository** (it has ``student/``): the student works in ``student/app.py`` and
  ``student/notebooks/``; the root ``app.py`` and ``notebooks/`` are the teacher's reference.
* **Assignment repository** (``make_student_edition.py --template DIR``): ``app.py`` and
  ``notebooks/`` at the root are the student's.

In the course repository, where the reference sits next to the student's files, a student
file that still holds the reference's solution markers (a copy of the reference) is refused
with one line saying which file to edit: the grader never grades the reference there. An
assignment repository has no reference: whatever its app.py and notebooks hold is graded
(markers are comments), so the teacher's solutions put into it grade full marks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["APP_MARKER", "NOTEBOOK_MARKER", "RefusalError", "Submission", "lesson_label", "locate"]

APP_MARKER = re.compile(r"^[ \t]*# --- BEGIN SOLUTION", re.MULTILINE)
NOTEBOOK_MARKER = "### BEGIN SOLUTION"


class RefusalError(Exception):
    """The submission cannot be graded; the message is one line saying what to do."""


@dataclass(frozen=True)
class Submission:
    root: Path  # the repository
    kind: str  # "course" or "assignment"
    app: Path
    notebooks: Path  # the folder with the student's notebooks

    def shown(self, path: Path) -> str:
        """``path`` as the report shows it: relative to the repository."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def locate(root: Path, app: Path | None = None) -> Submission:
    """The submission in ``root``; ``app`` overrides where app.py is."""
    if not root.is_dir():
        raise RefusalError(f"找不到文件夹 {root}：用 --repo 指定作业仓库（默认是当前文件夹）。")
    root = root.resolve()
    if (root / "student").is_dir():
        submission = Submission(
            root, "course", root / "student" / "app.py", root / "student" / "notebooks"
        )
    else:
        submission = Submission(root, "assignment", root / "app.py", root / "notebooks")
    if app is not None:
        submission = Submission(root, submission.kind, app.resolve(), submission.notebooks)
    if not submission.app.is_file():
        if app is not None:
            raise RefusalError(f"找不到 {app}：用 --app 指定要评分的程序。")
        if submission.kind == "course":
            raise RefusalError(
                "找不到 student/app.py：在课程仓库里，作业写在 student/app.py"
                "（运行 python scripts/make_student_edition.py 生成它）。"
            )
        raise RefusalError("找不到 app.py：请在作业仓库的根目录运行，或用 --repo 指定作业仓库。")
    text = submission.app.read_text(encoding="utf-8", errors="replace")
    if submission.kind == "course" and APP_MARKER.search(text):
        raise RefusalError(reference_app_line(submission))
    return submission


def reference_app_line(submission: Submission) -> str:
    return (
        f"{submission.shown(submission.app)} 是参考答案（含有 # --- BEGIN SOLUTION 标记），"
        "不评分：作业写在 student/app.py 里（学生版，TODO 1～4；"
        "python scripts/make_student_edition.py 可以重新生成它），完成后再运行 python -m grading。"
    )


def reference_notebook_line(submission: Submission, notebook: Path) -> str:
    return (
        f"{submission.shown(notebook)} 是老师版（含有 {NOTEBOOK_MARKER} 标记），不评分："
        f"练习做在 student/notebooks/{notebook.name} 里（学生版）。"
    )


def missing_notebooks_line(submission: Submission) -> str:
    if submission.kind == "course":
        return (
            "找不到 student/notebooks/：学生版 notebook 由 python scripts/make_student_edition.py "
            "生成，练习做在那里。"
        )
    return "找不到 notebooks/：作业仓库里的练习在 notebooks/ 文件夹里。"


def lesson_label(file_name: str) -> str:
    """``02_sse_parsing.ipynb`` -> ``第 02 课``."""
    number = file_name.split("_", 1)[0]
    return f"第 {number} 课" if number.isdigit() else file_name.removesuffix(".ipynb")
