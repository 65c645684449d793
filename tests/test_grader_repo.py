"""The repository checks: a `.env` or a key anywhere in the history fails the whole submission
with the fix in one line; outside a Git repository the checks fail, they are not a free pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grading.repo_scan import scan_repository

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = re.sub(
    r"^[ \t]*# --- (BEGIN|END) SOLUTION.*\n", "", (ROOT / "app.py").read_text(encoding="utf-8"),
    flags=re.MULTILINE,
)  # fmt: skip
FAKE_KEY = "sk-" + "Zq8" * 8  # built at run time: no key-shaped text in this file
ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        env=ENV,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text(SOLUTION, encoding="utf-8")
    (path / ".gitignore").write_text(".env\n", encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def commit(repo: Path, name: str, data: bytes | str, message: str = "add") -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    git(repo, "add", "-f", name)
    git(repo, "commit", "-qm", message)


def test_a_clean_repository_passes(repo):
    scan = scan_repository(repo)
    assert (scan.problem, scan.env_files, scan.keys) == (None, [], [])


def test_an_env_removed_with_git_rm_cached_is_still_found(repo):
    commit(repo, ".env", "LLM_API_KEY=abc\n")
    git(repo, "rm", "-q", "--cached", ".env")
    git(repo, "commit", "-qm", "remove .env")
    scan = scan_repository(repo)
    assert [f.path for f in scan.env_files] == [".env"]
    assert scan.env_files[0].where.startswith("提交 ")


def test_an_env_on_another_branch_is_found(repo):
    git(repo, "checkout", "-qb", "side")
    commit(repo, "config/.env.local", "X=1\n")
    git(repo, "checkout", "-q", "main")
    assert [f.path for f in scan_repository(repo).env_files] == ["config/.env.local"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.md", f"my key: {FAKE_KEY}\n"),
        (".envrc", "export LLM_API_KEY=zq81AbcdEf93kLmn\n"),  # not shaped like sk-…
        ("big.ipynb", json.dumps({"cells": [{"source": "x" * 3_000_000 + " " + FAKE_KEY}]})),
        ("data.bin", b"\x00\x01\x02" + FAKE_KEY.encode() + b"\x00"),
        (".env.example", f"LLM_API_KEY={FAKE_KEY}\n".encode("utf-16")),  # PowerShell's echo
    ],
    ids=["text", "envrc", "notebook over 2 MB", "NUL bytes", "UTF-16"],
)
def test_a_key_deleted_from_the_last_commit_is_still_found(repo, name, content):
    commit(repo, name, content)
    (repo / name).unlink()
    git(repo, "commit", "-qam", "delete it")
    scan = scan_repository(repo)
    assert [f.path for f in scan.keys] == [name]
    assert scan.keys[0].where.startswith("提交 ")
    assert FAKE_KEY not in str(scan)  # masked


def test_a_key_in_a_commit_message_is_found(repo):
    git(repo, "commit", "-q", "--allow-empty", "-m", f"use {FAKE_KEY}")
    assert [f.path for f in scan_repository(repo).keys] == ["提交说明"]


def test_placeholders_and_fakes_are_not_keys(repo):
    commit(
        repo,
        ".env.example",
        "LLM_API_KEY=your-api-key-here\nLOCAL=local-practice-key\n"
        "OPENAI_API_KEY=not-a-real-key-for-tests-0000\nTOKEN=sk-test-fake-key-0000\n",
    )
    assert scan_repository(repo).keys == []


def test_a_shallow_clone_or_no_repository_cannot_be_checked(repo, tmp_path):
    commit(repo, "more.txt", "x")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)],
        check=True,
        capture_output=True,
        env=ENV,
    )
    assert "浅克隆" in (scan_repository(shallow).problem or "")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert "不是 Git 仓库" in (scan_repository(plain).problem or "")


def test_the_repository_s_git_config_runs_nothing(repo, tmp_path):
    marker = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n", encoding="utf-8")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    git(repo, "config", "core.pager", str(hook))
    scan_repository(repo)
    assert not marker.exists()


# -- what the grader does with them --------------------------------------------------------
def grade(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grading", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=120,
        check=False,
    )


def test_a_key_in_the_history_fails_the_whole_submission(repo, tmp_path):
    commit(repo, "notes.md", f"key {FAKE_KEY}\n")
    (repo / "notes.md").unlink()
    git(repo, "commit", "-qam", "oops, removed")
    lessons = tmp_path / "no-lessons"
    lessons.mkdir()
    result = grade(
        "--repo", str(repo), "--lessons", str(lessons), "--only", "single,key_in,env_not"
    )
    assert result.returncode == 1
    assert "✓ 单轮对话" in result.stdout  # app.py itself is fine ...
    assert re.search(r"得分：0/25", result.stdout), result.stdout  # ... but it all counts 0
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("整份作业"))
    assert "作废" in verdict and "改写历史" in verdict and "git rm --cached 不够" in verdict
    assert FAKE_KEY not in result.stdout + result.stderr


def test_outside_a_git_repository_the_repository_checks_fail(tmp_path):
    (tmp_path / "app.py").write_text(SOLUTION, encoding="utf-8")
    result = grade("--repo", str(tmp_path), "--only", "key_in,env_not")
    assert result.returncode == 1
    assert "得分：0/10" in result.stdout
    assert "不是 Git 仓库" in result.stdout
