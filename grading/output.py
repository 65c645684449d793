"""The score report: the text a student reads, the Actions summary, Classroom 50's result.json.

All three list the same results. Written only once every student process is dead.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .checks import Result, points_text

__all__ = [
    "Score",
    "append_summary",
    "replace_file",
    "report_text",
    "score_of",
    "summary_markdown",
    "write_classroom50",
]

APP_GROUP = "app.py"
REPO_GROUP = "仓库"


@dataclass(frozen=True)
class Score:
    earned: float
    total: float
    gate: str | None  # why the whole submission scores 0 (a key is public), or None

    @property
    def full(self) -> bool:
        return self.total > 0 and self.earned == self.total


def score_of(results: list[Result], gate: str | None) -> Score:
    total = sum(r.points for r in results)
    return Score(0 if gate else sum(r.earned for r in results), total, gate)


def _fraction(earned: float, total: float) -> str:
    return f"{points_text(earned)}/{points_text(total)}"


def report_text(what: str, results: list[Result], score: Score) -> str:
    lines = [f"自动评分：{what}（本地练习服务器，不联网、不用密钥）"]
    groups: dict[str, list[Result]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    for group, members in groups.items():
        earned = sum(r.earned for r in members)
        total = sum(r.points for r in members)
        lines.append("")
        if group in (APP_GROUP, REPO_GROUP):
            lines.append(f"{group}（{_fraction(earned, total)}）")
            for r in members:
                lines.append(
                    f"{'✓' if r.passed else '✗'} {r.title}  {_fraction(r.earned, r.points)}"
                )
                if r.hint:
                    lines.append(f"    提示：{r.hint}")
        else:  # a lesson: one line, then a hint per failed exercise
            done = sum(r.passed for r in members)
            lines.append(f"{group}：{done}/{len(members)} 个练习通过  {_fraction(earned, total)}")
            for r in members:
                if not r.passed:
                    lines.append(f"    ✗ {r.name}：{r.hint}")
    lines.append("")
    if score.gate:
        lines.append(f"整份作业记 0 分：{score.gate}")
    lines.append(f"得分：{_fraction(score.earned, score.total)}")
    if score.full:
        lines.append("全部通过，做得好！记得 git push 提交（不要提交 .env）。")
    return "\n".join(lines)


def summary_markdown(results: list[Result], score: Score) -> str:
    """The score table for the Actions run's summary page."""
    rows = [f"## 自动评分：{_fraction(score.earned, score.total)}", ""]
    if score.gate:
        rows += [f"**整份作业记 0 分**：{score.gate}", ""]
    rows += ["| | 检查 | 得分 | 提示 |", "|---|---|---|---|"]
    for r in results:
        hint = r.hint.replace("|", "\\|")
        mark = "✅" if r.passed else "❌"
        rows.append(f"| {mark} | {r.title} | {_fraction(r.earned, r.points)} | {hint} |")
    return "\n".join(rows) + "\n"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def write_classroom50(
    path: Path, results: list[Result], score: Score, env: Mapping[str, str] = os.environ
) -> None:
    """Classroom 50's ``result.json`` (schema classroom50/result/v1), for its autograder.py.

    The run's details come from the variables Classroom 50's runner sets.
    """
    tests = [
        {
            "test-name": r.title,
            "passed": r.passed and not score.gate,
            "score": 0 if score.gate else _number(r.earned),
            "max-score": _number(r.points),
        }
        for r in results
    ]
    result = {
        "schema": "classroom50/result/v1",
        "classroom": env.get("CLASSROOM", ""),
        "assignment": env.get("ASSIGNMENT", ""),
        "submission": env.get("SUBMISSION_TAG", ""),
        "commit": env.get("COMMIT_URL", ""),
        "release": env.get("RELEASE_URL", ""),
        "review": env.get("REVIEW_URL") or env.get("COMMIT_URL", ""),
        "datetime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "score": _number(score.earned),
        "max-score": _number(score.total),
        "tests": tests,
    }
    replace_file(path, json.dumps(result, ensure_ascii=False, indent=2) + "\n")


def append_summary(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as summary:
        summary.write(text)


def replace_file(path: Path, text: str) -> None:
    """Write ``path`` anew (whatever was there before is replaced, never appended to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
