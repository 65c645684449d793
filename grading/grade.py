"""Grade app.py: run the checks, print a score and a hint for every check that failed.

    python -m grading                      # grade ./app.py
    python -m grading --app student/app.py
    python -m grading --only multi_turn    # just the checks whose name contains this
    python -m grading --classroom50 result.json --pass-score 0
                                           # also write Classroom 50's result.json

The checks are pytest tests (``grading/check_*.py``); each is worth the points in its
``@pytest.mark.points(n)`` and fails with a hint in Chinese. Everything runs against the
local practice server on 127.0.0.1: no network, no key, no cost. The exit status is 0 when
the score reaches ``--pass-score`` (default: full marks), so a GitHub Actions run turns red
until the assignment is done.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python grading/grade.py` works too
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@dataclass
class Result:
    name: str
    title: str
    points: int
    passed: bool = False
    skipped: bool = False
    hint: str = ""

    @property
    def earned(self) -> int:
        return self.points if self.passed or self.skipped else 0


class Collector:
    """A pytest plugin that keeps one Result per check."""

    def __init__(self) -> None:
        self.results: dict[str, Result] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # after -k deselected what --only leaves out
            marker = item.get_closest_marker("points")
            points = int(marker.args[0]) if marker else 0
            doc = (getattr(item, "function", None).__doc__ or item.name).strip()
            self.results[item.nodeid] = Result(item.name, doc.splitlines()[0], points)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            return
        if report.when == "call" and report.passed:
            result.passed = True
        elif report.skipped:
            result.skipped = True
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            result.hint = reason.removeprefix("Skipped: ")
        elif report.failed and not result.hint:
            result.hint = _failure_text(report)


def _failure_text(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else report.longreprtext
    if message.startswith("Failed: "):
        return message.removeprefix("Failed: ")
    return f"评分程序自己出错了：{message.splitlines()[0] if message else '未知错误'}"


def grade(app: Path, only: str | None = None) -> list[Result]:
    """Run the checks on ``app``; return their results in order."""
    collector = Collector()
    args = [
        str(HERE),
        "-c",
        str(HERE / "pytest.ini"),
        "--rootdir",
        str(HERE),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--app={app}",
    ]
    if only:
        args += ["-k", only]
    sys.dont_write_bytecode = True
    # Only pytest itself: plugins installed for other purposes (nbval, playwright...) are not
    # needed here and can take seconds to load.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    os.environ.pop("PYTEST_ADDOPTS", None)  # options meant for some other test run
    with redirect_stdout(io.StringIO()):  # pytest's own report: the score report replaces it
        pytest.main(args, plugins=[collector])
    return list(collector.results.values())


def report(name: str, results: list[Result]) -> tuple[int, int, str]:
    """The score, the total, and the text to print."""
    score = sum(r.earned for r in results)
    total = sum(r.points for r in results)
    lines = [f"自动评分：{name}（本地练习服务器，不联网、不用密钥）", ""]
    for r in results:
        mark = "✓" if r.passed else ("-" if r.skipped else "✗")
        lines.append(f"{mark} {r.title}  {r.earned}/{r.points}")
        if r.hint:
            lines.append(f"    {'说明' if r.skipped else '提示'}：{r.hint}")
    lines += ["", f"得分：{score}/{total}"]
    if results and score == total:
        lines.append("全部通过，做得好！记得 git push 提交（不要提交 .env）。")
    return score, total, "\n".join(lines)


def write_summary(results: list[Result], score: int, total: int) -> None:
    """On GitHub Actions: the score table on the run's summary page."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    rows = [f"## 自动评分：{score}/{total}", "", "| | 检查 | 得分 | 提示 |", "|---|---|---|---|"]
    for r in results:
        mark = "✅" if r.passed else ("➖" if r.skipped else "❌")
        hint = r.hint.replace("|", "\\|")
        rows.append(f"| {mark} | {r.title} | {r.earned}/{r.points} | {hint} |")
    with open(path, "a", encoding="utf-8") as summary:
        summary.write("\n".join(rows) + "\n")


def write_classroom50(path: Path, results: list[Result]) -> None:
    """Classroom 50's ``result.json`` (schema classroom50/result/v1), for its autograder.py.

    The run's details come from the variables Classroom 50's runner sets.
    """
    env = os.environ.get
    tests = [
        {
            "test-name": r.title,
            "passed": r.passed or r.skipped,
            "score": r.earned,
            "max-score": r.points,
        }
        for r in results
    ]
    result = {
        "schema": "classroom50/result/v1",
        "classroom": env("CLASSROOM", ""),
        "assignment": env("ASSIGNMENT", ""),
        "submission": env("SUBMISSION_TAG", ""),
        "commit": env("COMMIT_URL", ""),
        "release": env("RELEASE_URL", ""),
        "review": env("REVIEW_URL") or env("COMMIT_URL", ""),
        "datetime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "score": sum(t["score"] for t in tests),
        "max-score": sum(t["max-score"] for t in tests),
        "tests": tests,
    }
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description="给 app.py 评分。")
    parser.add_argument("--app", type=Path, default=Path("app.py"), help="要评分的程序")
    parser.add_argument("--only", help="只运行名字里含有这个词的检查")
    parser.add_argument("--pass-score", type=int, default=None, help="及格分（默认满分）")
    parser.add_argument(
        "--classroom50", type=Path, metavar="RESULT_JSON", help="也写出 Classroom 50 的 result.json"
    )
    args = parser.parse_args(argv)
    app = args.app.resolve()
    if not app.is_file():
        print(f"找不到 {args.app}：请在仓库根目录运行，或用 --app 指定路径。", file=sys.stderr)
        return 2
    results = grade(app, args.only)
    if not results:
        print("没有找到任何检查（grading/check_*.py）。", file=sys.stderr)
        return 2
    score, total, text = report(args.app.as_posix(), results)
    print(text)
    write_summary(results, score, total)
    if args.classroom50:
        write_classroom50(args.classroom50, results)
    needed = total if args.pass_score is None else args.pass_score
    return 0 if score >= needed else 1


if __name__ == "__main__":
    sys.exit(main())
