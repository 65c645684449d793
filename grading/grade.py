"""Grade a submission: app.py, the notebook exercises and the repository, with a hint for
every check that failed.

    python -m grading                         # grade the repository in the current folder
    python -m grading --repo ../student-repo  # grade another one (a teacher's re-grade)
    python -m grading --only multi_turn,crlf  # just the checks whose name contains a word
    python -m grading --classroom50 result.json --pass-score 0
                                              # also write Classroom 50's result.json

The grader is trusted code and the submission is not. Run the grader from its own tree (the
teacher's copy at a pinned version, see scripts/template/grade.yml), and point it at the
submission with ``--repo``: nothing from the submission is ever imported by the grader. The
student's program and notebooks run as separate, limited processes (:mod:`grading.sandbox`,
:mod:`grading.notebooks`) against local practice servers on 127.0.0.1: no network, no key, no
cost. The results are written only after every one of those processes is dead.

Where the files are (:mod:`grading.layout`): in the course repository ``student/app.py`` and
``student/notebooks/``; in an assignment repository ``app.py`` and ``notebooks/``. The reference
solution is never graded. The exit status is 0 when the score reaches ``--pass-score`` (default:
full marks), 1 below it, 2 when the submission could not be graded.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lesson_helpers.local_server import LocalServer

from .check_app import APP_CHECKS, AppContext
from .check_repo import REPO_CHECKS, gate
from .checks import Check, Result, run_checks
from .harness import AppRunner, copy_app_folder
from .kit_copy import find_kit_code, kit_lines
from .layout import RefusalError, Submission, lesson_label, locate, missing_notebooks_line
from .output import (
    APP_GROUP,
    REPO_GROUP,
    Score,
    append_summary,
    replace_file,
    report_text,
    score_of,
    summary_markdown,
    write_classroom50,
)
from .repo_scan import scan_repository
from .runtime import RuntimeSetupError, make_runtime
from .sandbox import enable_orphan_reaping, reap_orphans

if TYPE_CHECKING:  # grading.notebooks is imported only when there are lessons to grade
    from nbformat import NotebookNode

    from .notebooks import KitCopy, Lesson

ROOT = Path(__file__).resolve().parent.parent  # the grader's own (trusted) tree
APP_WORKERS = 3  # app.py runs side by side (they mostly wait for the server)


def _selected(checks: list[Check], words: list[str] | None) -> list[Check]:
    return [c for c in checks if not words or any(w in c.name for w in words)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grading", description="给作业评分：app.py、notebook 里的练习和仓库。"
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="作业仓库（默认当前文件夹）")
    parser.add_argument("--app", type=Path, help="要评分的程序（默认按仓库的布局找）")
    parser.add_argument("--only", help="只运行名字里含有这些词（逗号分隔）的检查")
    parser.add_argument("--pass-score", type=float, default=None, help="及格分（默认满分）")
    parser.add_argument(
        "--classroom50", type=Path, metavar="RESULT_JSON", help="也写出 Classroom 50 的 result.json"
    )
    parser.add_argument(
        "--summary",
        type=Path,
        metavar="FILE",
        help="把得分表（Markdown）追加到这个文件（默认 $GITHUB_STEP_SUMMARY）",
    )
    parser.add_argument(
        "--lessons",
        type=Path,
        default=ROOT / "notebooks",
        help="评分用的（可信的）课程 notebook 文件夹，默认评分程序自己的 notebooks/",
    )
    parser.add_argument(
        "--notebook-timeout", type=float, default=None, help="每个 notebook 最多运行的秒数"
    )
    return parser


class _Plan:
    """Everything read from trusted places and from the submission before any student code
    runs: the lessons, the kit, the student's notebooks, the repository scan, app.py."""

    def __init__(self, args: argparse.Namespace, submission: Submission, words: list[str] | None):
        self.submission = submission
        self.app_checks = _selected(APP_CHECKS, words)
        self.repo_checks = _selected(REPO_CHECKS, words)
        self.lessons: list[Lesson] = []
        self.answers: list[NotebookNode | str] = []  # the student's notebook, or a problem
        self.kit: KitCopy | None = None
        if not args.lessons.is_dir():
            raise RefusalError(
                f"找不到评分用的课程 notebook 文件夹 {args.lessons}："
                "用 --lessons 指向老师那份课程仓库的 notebooks/。"
            )
        files = sorted(args.lessons.glob("*.ipynb"))
        if words:
            files = [
                f for f in files if any(w in f.name or w in lesson_label(f.name) for w in words)
            ]
        if files:
            from . import notebooks  # nbclient & co: imported before any student code runs

            self.lessons = notebooks.load_lessons(files)
            if self.lessons and submission.kind == "course" and not submission.notebooks.is_dir():
                raise RefusalError(missing_notebooks_line(submission))
            self.answers = [notebooks.read_submission(x, submission) for x in self.lessons]
            self.kit = notebooks.KitCopy(ROOT / "lesson_helpers")
        self.scan = scan_repository(submission.root) if self.repo_checks else None
        self.app_source = submission.app.read_text(encoding="utf-8", errors="replace")

    def what(self) -> str:
        parts = [self.submission.shown(self.submission.app)] if self.app_checks else []
        if self.lessons:
            parts.append(self.submission.shown(self.submission.notebooks) + "/")
        return " 和 ".join(parts) or self.submission.shown(self.submission.root)


def _kit_lines() -> dict[str, set[str]]:
    """The grader's own kit's telling lines (see grading.kit_copy)."""
    reference = ROOT / "app.py"
    text = reference.read_text(encoding="utf-8") if reference.is_file() else ""
    return kit_lines(ROOT / "lesson_helpers", text)


def _grade_app(plan: _Plan, scratch: Path) -> list[Result]:
    if not plan.app_checks:
        return []
    copy_dir = scratch / "app"
    copy_dir.mkdir()
    app = copy_app_folder(plan.submission.app, copy_dir)
    copied = find_kit_code(copy_dir, _kit_lines())
    if copied:  # the kit under another name: nothing of app.py is the student's to grade
        return [
            Result(APP_GROUP, c.name, c.title, c.points, hint=copied.hint())
            for c in plan.app_checks
        ]
    python = make_runtime(scratch / "python")  # stdlib, requests, python-dotenv: nothing else
    runner = AppRunner(app, scratch, python=python, side_by_side=True)
    key = f"grading-key-{secrets.token_hex(8)}"
    server = LocalServer(pace=0, api_key=key, models={}).start()
    slow = LocalServer(pace=0.025, api_key=key, models={}).start()
    try:
        name = plan.submission.shown(plan.submission.app)
        context = AppContext(runner, plan.app_source, name, server, slow)
        return run_checks(APP_GROUP, plan.app_checks, context, workers=APP_WORKERS)
    finally:
        reap_orphans()  # the runs overlapped: their orphans die now
        stoppers = [threading.Thread(target=s.stop) for s in (server, slow)]
        for stopper in stoppers:  # each stop() waits up to 0.5 s: wait for both at once
            stopper.start()
        for stopper in stoppers:
            stopper.join()


def _grade_notebooks(plan: _Plan, timeout: float | None) -> list[Result]:
    if not plan.lessons or plan.kit is None:
        return []
    from .notebooks import NOTEBOOK_TIMEOUT, grade_lesson

    results: list[Result] = []
    for lesson, answer in zip(plan.lessons, plan.answers, strict=True):
        results += grade_lesson(lesson, answer, plan.kit, timeout or NOTEBOOK_TIMEOUT)
    return results


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value) if value else None


def _write(args: argparse.Namespace, results: list[Result], score: Score) -> None:
    """The summary table and Classroom 50's result.json. ``--summary FILE`` is written anew
    (whatever a student's process may have put there is gone); $GITHUB_STEP_SUMMARY, shared
    with the job's other steps, is appended to."""
    if args.summary:
        replace_file(args.summary, summary_markdown(results, score))
    elif summary := _env_path("GITHUB_STEP_SUMMARY"):
        append_summary(summary, summary_markdown(results, score))
    if args.classroom50:
        write_classroom50(args.classroom50, results, score)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    words = [w.strip() for w in args.only.split(",") if w.strip()] if args.only else None
    enable_orphan_reaping()
    try:
        submission = locate(args.repo, args.app)
        plan = _Plan(args, submission, words)
    except RefusalError as refusal:
        print(refusal, file=sys.stderr)
        refused = [Result("提交", "refused", str(refusal), 0)]
        _write(args, refused, score_of(refused, None))
        return 2
    if not (plan.app_checks or plan.repo_checks or plan.lessons):
        print(f"没有名字里含有 {args.only} 的检查。", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grading-") as scratch:
        try:
            results = _grade_app(plan, Path(scratch))
        except RuntimeSetupError as problem:  # the grader's environment, not the submission
            print(f"错误：{problem}", file=sys.stderr)
            failed = [Result("评分环境", "refused", str(problem), 0)]
            _write(args, failed, score_of(failed, None))
            return 2
        results += _grade_notebooks(plan, args.notebook_timeout)
        reap_orphans()  # every student process is dead before anything is written
    blocked = None
    if plan.scan is not None:
        results += run_checks(REPO_GROUP, plan.repo_checks, plan.scan)
        blocked = gate(plan.scan)
    score = score_of(results, blocked)
    print(report_text(plan.what(), results, score))
    _write(args, results, score)
    needed = score.total if args.pass_score is None else args.pass_score
    return 0 if score.earned >= needed else 1


if __name__ == "__main__":
    sys.exit(main())
