"""The autograder: the reference app.py scores 100, the student edition scores low with hints,
and typical mistakes each get their own specific hint.

Every test runs ``python -m grading`` as a separate process, exactly like the workflow does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
STUDENT = ROOT / "student" / "app.py"
SOLUTION = APP.read_text(encoding="utf-8")


def grade(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "grading", *args],
        cwd=cwd,
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


def mutant(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    """A copy of the reference app.py with one typical mistake made on purpose."""
    text = SOLUTION
    for old, new in changes:
        assert old in text, f"app.py changed: update this test's mutation {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "app.py"
    path.write_text(text, encoding="utf-8")
    return path


def hints(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if "提示：" in line)


# -- the two editions -----------------------------------------------------------------------
def test_reference_app_scores_full_marks(tmp_path):
    summary = tmp_path / "summary.md"
    result = grade(env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert score(result.stdout) == (100, 100)
    assert "提示" not in result.stdout
    assert result.stdout.count("✓") == 7
    assert "## 自动评分：100/100" in summary.read_text(encoding="utf-8")


def test_student_edition_scores_low_and_says_what_to_do():
    result = grade("--app", "student/app.py")
    assert result.returncode == 1
    assert score(result.stdout) == (10, 100)  # only "no .env" and "no key" pass
    assert hints(result.stdout).count("app.py 还没写完：TODO 1：发送流式请求（open_stream）") == 5
    assert "Traceback" not in result.stdout + result.stderr


def test_pass_score_decides_the_exit_status():
    result = grade("--app", "student/app.py", "--only", "committed", "--pass-score", "5")
    assert score(result.stdout) == (5, 5)
    assert result.returncode == 0


def test_missing_app_is_one_line():
    result = grade("--app", "no_such_app.py")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("找不到 no_such_app.py：")
    assert len(result.stderr.strip().splitlines()) == 1


def test_classroom50_result_json(tmp_path):
    out = tmp_path / "result.json"
    env = {"CLASSROOM": "c", "ASSIGNMENT": "app", "SUBMISSION_TAG": "submit/1", "COMMIT_URL": "u"}
    result = grade("--only", "seed", "--classroom50", str(out), env=env)
    assert result.returncode == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["schema"] == "classroom50/result/v1"
    assert (data["score"], data["max-score"]) == (25, 25)
    assert data["assignment"] == "app" and data["review"] == "u"
    assert data["tests"] == [
        {
            "test-name": "单轮对话：python app.py 你好，回答与种子一致",
            "passed": True,
            "score": 25,
            "max-score": 25,
        }
    ]


# -- typical mistakes, each with its own hint ----------------------------------------------
MISTAKES = {
    "print without flush": (
        "streams",
        [('print(text, end="", flush=True)', 'print(text, end="")')],
        "flush=True",
    ),
    "reads the whole body at once": (
        "streams",
        [("response.raw.read1(65536, decode_content=True)", "response.raw.read()")],
        "读取方式不是流式的",
    ),
    "answers not kept in the history": (
        "multi_turn",
        [('messages.append({"role": "assistant", "content": reply.content})', "pass")],
        "没有上一轮的回答",
    ),
    "only the last question sent": (
        "multi_turn",
        [("reply = stream_reply(config, messages)", "reply = stream_reply(config, messages[-1:])")],
        "只有新问题",
    ),
    "Chinese decoded as ISO-8859-1": (
        "seed",
        [('.decode("utf-8", errors="replace")  # CRLF too', '.decode("latin-1")')],
        "乱码",
    ),
    "raw SSE lines printed": (
        "seed",
        [('screen.show("answer", delta["content"])', 'screen.show("answer", data)')],
        "原始的 SSE 行或 JSON",
    ),
    "status code not checked": (
        "wrong_key",
        [("raise http_error(response, config)", "response.raise_for_status()")],
        "密钥错误时程序崩溃了",
    ),
    "error printed but exit status 0": (
        "wrong_key",
        [("raise http_error(response, config)", "print(http_error(response, config)); sys.exit()")],
        "退出码 0",
    ),
    "key shown in the error": (
        "wrong_key",
        [('f"HTTP {status}：{message}\\n{hint}"', 'f"HTTP {status}：{message} {config.api_key}"')],
        "出现了密钥本身",
    ),
    "cut connection crashes": (
        "broken",
        [("except Exception as exc:", "except KeyError as exc:")],
        "连接中途断开时程序崩溃了",
    ),
    "cut connection taken for the end": (
        "broken",
        [
            ('raise ChatError("连接在回答结束前断开了，回答不完整：请重试。") from None', "return"),
            ("if not (reply.done or reply.finish_reason or reply.interrupted):", "if False:"),
        ],
        "程序却当作正常结束",
    ),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_typical_mistake_gets_a_specific_hint(tmp_path, mistake):
    check, changes, expected = MISTAKES[mistake]
    app = mutant(tmp_path, *changes)
    result = grade("--app", str(app), "--only", check)
    assert result.returncode == 1, result.stdout
    got, total = score(result.stdout)
    assert got == 0 and total > 0, result.stdout
    assert expected in hints(result.stdout), result.stdout


# -- the repository checks, in a student's repository ---------------------------------------
@pytest.fixture
def assignment_repo(tmp_path) -> Path:
    """An assignment repository (as --template writes it) with the reference app.py."""
    repo = tmp_path / "assignment"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_student_edition.py"), "--template", repo],
        check=True,
        capture_output=True,
    )
    shutil.copyfile(APP, repo / "app.py")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    return repo


def test_assignment_repository_grades_itself(assignment_repo):
    result = grade("--only", "seed or committed or key_in", cwd=assignment_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert score(result.stdout) == (35, 35)


def test_committed_env_file_fails(assignment_repo):
    (assignment_repo / ".env").write_text("LLM_API_KEY=fake-key-for-tests\n", encoding="utf-8")
    subprocess.run(["git", "-C", str(assignment_repo), "add", "-f", ".env"], check=True)
    result = grade("--only", "committed", cwd=assignment_repo)
    assert result.returncode == 1
    assert "git rm --cached .env" in hints(result.stdout)


def test_key_like_string_in_a_tracked_file_fails(assignment_repo):
    fake = "sk-" + "Fake" * 6  # built at run time: no key-shaped text in this file
    (assignment_repo / "notes.md").write_text(f"my key: {fake}\n", encoding="utf-8")
    subprocess.run(["git", "-C", str(assignment_repo), "add", "notes.md"], check=True)
    result = grade("--only", "key_in", cwd=assignment_repo)
    assert result.returncode == 1
    assert "notes.md 第 1 行像是一个真实的密钥" in hints(result.stdout)
    assert fake not in result.stdout  # the hint shows it masked


def test_outside_a_git_repository_the_repository_checks_are_skipped(tmp_path):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    result = grade("--app", str(app), "--only", "committed or key_in")
    assert result.returncode == 0
    assert score(result.stdout) == (10, 10)
    assert "不在 Git 仓库里，跳过" in result.stdout
