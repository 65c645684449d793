"""`python -m lesson_helpers serve | doctor | chat` as real subprocesses."""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
RUN_TIMEOUT = 30
SERVE = [sys.executable, "-m", "lesson_helpers", "serve"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LLM_/OPENAI_ settings, with the kit importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.pop("PYTHONUNBUFFERED", None)  # `serve` must flush by itself
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lesson_helpers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=RUN_TIMEOUT,
        check=False,
    )


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of the child's stdout, or fail after `timeout` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                pytest.fail(f"no line on stdout within {timeout}s (got {data!r})")
            piece = os.read(fd, 4096)
            if not piece:
                pytest.fail(f"stdout closed before a full line (got {data!r})")
            data += piece
    return data.split(b"\n", 1)[0].decode("utf-8")


# -- serve -------------------------------------------------------------------------------------
def test_serve_prints_the_base_url_at_once_and_answers_with_its_key(tmp_path):
    proc = subprocess.Popen(
        [*SERVE, "--port", "0", "--api-key", "test-key-123", "--pace", "0"],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = read_line(proc, timeout=15)
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        base_url = line
        assert int(match.group(1)) > 0

        ok = requests.get(
            base_url + "/models", headers={"Authorization": "Bearer test-key-123"}, timeout=5
        )
        assert ok.status_code == 200
        assert "Qwen/Qwen2.5-7B-Instruct" in [m["id"] for m in ok.json()["data"]]
        denied = requests.get(
            base_url + "/models",
            headers={"Authorization": "Bearer local-practice-key"},
            timeout=5,
        )
        assert denied.status_code == 401
        answer = requests.post(
            base_url + "/chat/completions",
            headers={"Authorization": "Bearer test-key-123"},
            json={
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "messages": [{"role": "user", "content": "你好"}],
            },
            timeout=5,
        )
        assert answer.json()["choices"][0]["message"]["content"] == SEED_TEXT

        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "已停止" in out.decode("utf-8")
    assert b"Traceback" not in err


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run(["serve", "--port", str(port)], tmp_path, clean_env())
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0]
    assert "Traceback" not in result.stderr


# -- doctor and chat: independent runs, started together to keep the suite fast ----------------
HAS_GIT = shutil.which("git") is not None
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
GIT += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def _env_file(text: str) -> Callable[[Path, dict[str, str]], None]:
    def setup(cwd: Path, env: dict[str, str]) -> None:
        (cwd / ".env").write_text(text, encoding="utf-8")

    return setup


def _committed_env(cwd: Path, env: dict[str, str]) -> None:
    (cwd / ".env").write_text("LLM_PROVIDER=local\n", encoding="utf-8")
    for args in (["init", "-q"], ["add", ".env"], ["commit", "-q", "-m", "oops"]):
        subprocess.run(GIT + args, cwd=cwd, env=env, check=True, timeout=20, capture_output=True)


def _ignored_env(cwd: Path, env: dict[str, str]) -> None:
    (cwd / ".env").write_text("LLM_PROVIDER=local\n", encoding="utf-8")
    (cwd / ".gitignore").write_text(".env\n", encoding="utf-8")
    subprocess.run([*GIT, "init", "-q"], cwd=cwd, env=env, check=True, timeout=20)


UNREACHABLE = {
    "LLM_PROVIDER": "siliconflow",
    "LLM_API_KEY": "fake-key-for-tests",
    "LLM_BASE_URL": "http://127.0.0.1:9/v1",
}
# name -> (arguments, extra environment, setup of the fresh working folder)
CASES: dict[
    str, tuple[list[str], dict[str, str], Callable[[Path, dict[str, str]], None] | None]
] = {
    "doctor_no_env": (["doctor"], {}, None),
    "doctor_local_with_key": (
        ["doctor"],
        {},
        _env_file("LLM_PROVIDER=local\nLLM_API_KEY=fake-key-for-tests-000\n"),
    ),
    "doctor_bad_timeout": (["doctor"], {"LLM_TIMEOUT": "abc"}, None),
    "chat_local": (["chat", "你好"], {"LLM_PROVIDER": "local"}, None),
    "chat_unreachable": (["chat", "你好"], UNREACHABLE, None),
    "chat_bad_provider": (["chat", "你好"], {"LLM_PROVIDER": "nonsense"}, None),
}
if HAS_GIT:
    CASES["doctor_committed_env"] = (["doctor"], {}, _committed_env)
    CASES["doctor_ignored_env"] = (["doctor"], {}, _ignored_env)


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case in CASES, each run in its own empty folder, several at a time."""

    def one(name: str) -> subprocess.CompletedProcess[str]:
        args, extra, setup = CASES[name]
        cwd = tmp_path_factory.mktemp(name)
        env = clean_env(GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd), **extra)
        if setup is not None:
            setup(cwd, env)
        return run(args, cwd, env)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(one, name) for name in CASES}
        return {name: future.result(timeout=RUN_TIMEOUT + 30) for name, future in futures.items()}


def test_doctor_without_env_uses_the_local_server(cli):
    result = cli["doctor_no_env"]
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any("没有 .env" in line for line in lines)
    assert any("本地练习服务器" in line for line in lines)
    served = [line for line in lines if line.startswith("✓ 服务可用：http://127.0.0.1:")]
    assert len(served) == 1, lines
    assert not any(line.startswith("✗") for line in lines)


@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_doctor_finds_a_committed_env_file(cli):
    result = cli["doctor_committed_env"]
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    fix = [line for line in lines if "git rm --cached .env" in line]
    assert len(fix) == 1 and fix[0].startswith("✗")
    assert any(".gitignore" in line and line.startswith("✗") for line in lines)


@pytest.mark.skipif(not HAS_GIT, reason="needs git")
def test_doctor_is_happy_with_an_ignored_untracked_env(cli):
    result = cli["doctor_ignored_env"]
    assert result.returncode == 0, result.stdout
    assert "git rm --cached" not in result.stdout
    assert "✓ 找到 .env" in result.stdout.splitlines()


def test_doctor_with_provider_local_and_a_key_checks_the_local_server(cli):
    result = cli["doctor_local_with_key"]
    assert result.returncode == 0, result.stdout
    assert "✓ 服务可用：http://127.0.0.1:" in result.stdout
    assert "fake-key-for-tests-000" not in result.stdout + result.stderr


def test_doctor_reports_a_bad_setting_in_one_line(cli):
    result = cli["doctor_bad_timeout"]
    assert result.returncode == 1
    bad = [line for line in result.stdout.splitlines() if "LLM_TIMEOUT" in line]
    assert len(bad) == 1 and bad[0].startswith("✗")


def test_chat_streams_the_answer_from_the_local_server(cli):
    result = cli["chat_local"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert SEED_TEXT in lines
    assert lines[-1] == SEED_TEXT
    assert "本地练习服务器" in lines[0]
    assert "[用量] 提问 30 + 回答 10 = 40 tokens" in result.stderr


def test_chat_with_an_unreachable_base_url_is_one_line_on_stderr(cli):
    result = cli["chat_unreachable"]
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("错误：")
    assert "127.0.0.1:9" in lines[0]
    assert "Traceback" not in result.stderr
    assert "fake-key-for-tests" not in result.stdout + result.stderr


def test_chat_with_a_bad_setting_is_one_line_on_stderr(cli):
    result = cli["chat_bad_provider"]
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LLM_PROVIDER" in lines[0]
    assert "Traceback" not in result.stderr
