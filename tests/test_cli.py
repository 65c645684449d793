"""`python -m lesson_helpers serve | doctor | chat` as real subprocesses."""

from __future__ import annotations

import importlib.util
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from lesson_helpers import seed

ROOT = Path(__file__).resolve().parent.parent
SEED_TEXT = seed.ANSWER
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
HAS_PYSOCKS = importlib.util.find_spec("socks") is not None
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
GIT += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


def _env_file(text: str) -> Setup:
    def setup(cwd: Path, env: dict[str, str]) -> None:
        (cwd / ".env").write_text(text, encoding="utf-8")

    return setup


def _env_above_the_project(cwd: Path, env: dict[str, str]) -> Path:
    """A .env with a key in a folder above the project (e.g. the home folder): not used."""
    (cwd / ".env").write_text("LLM_API_KEY=fake-key-above-the-project-0000\n", encoding="utf-8")
    project = cwd / "homework"
    (project / ".git").mkdir(parents=True)
    return project


def _env_in_the_project_root(cwd: Path, env: dict[str, str]) -> Path:
    """Run from notebooks/ with the .env in the project root (pyproject.toml there)."""
    (cwd / "pyproject.toml").write_text("[project]\nname = 'course'\n", encoding="utf-8")
    (cwd / ".env").write_text("LLM_PROVIDER=local\n", encoding="utf-8")
    (cwd / "notebooks").mkdir()
    return cwd / "notebooks"


def _gbk_env(cwd: Path, env: dict[str, str]) -> None:
    (cwd / ".git").mkdir()
    (cwd / ".env").write_bytes("# 本地练习服务器\nLLM_PROVIDER=local\n".encode("gbk"))


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
# Only a socks proxy, whatever proxies the machine running the tests has set: the
# lower-case names win over the upper-case ones, and an empty value removes one.
SOCKS_ONLY = {
    f"{name}_proxy" if lower else f"{name.upper()}_PROXY": value
    for name, value in (("all", "socks5://127.0.0.1:1080"), ("http", ""), ("https", ""), ("no", ""))
    for lower in (True, False)
}
# name -> (arguments, extra environment, setup of the fresh working folder; a setup may
# return the folder to run in, e.g. a subfolder of the project it made)
Setup = Callable[[Path, dict[str, str]], Path | None]
CASES: dict[str, tuple[list[str], dict[str, str], Setup | None]] = {
    "doctor_no_env": (["doctor"], {}, None),
    "doctor_local_with_key": (
        ["doctor"],
        {},
        _env_file("LLM_PROVIDER=local\nLLM_API_KEY=fake-key-for-tests-000\n"),
    ),
    "doctor_bad_timeout": (["doctor"], {"LLM_TIMEOUT": "abc"}, None),
    "doctor_tiny_timeout": (["doctor"], {"LLM_TIMEOUT": "1e-300"}, None),
    "chat_model_with_newline": (["chat", "你好"], {**UNREACHABLE, "LLM_MODEL": "a\nb"}, None),
    "chat_local_model_with_newline": (
        ["chat", "你好"],
        {"LLM_PROVIDER": "local", "LLM_MODEL": "a\nb"},
        None,
    ),
    "chat_option_model_with_newline": (
        ["chat", "--model", "a\nb", "你好"],
        {"LLM_PROVIDER": "local"},
        None,
    ),
    "doctor_model_with_newline": (["doctor"], {"LLM_MODEL": "a\nb"}, None),
    "chat_tiny_timeout": (["chat", "你好"], {"LLM_TIMEOUT": "1e-300"}, None),
    "chat_local": (["chat", "你好"], {"LLM_PROVIDER": "local"}, None),
    "chat_unreachable": (["chat", "你好"], UNREACHABLE, None),
    "chat_bad_provider": (["chat", "你好"], {"LLM_PROVIDER": "nonsense"}, None),
}
CASES.update(
    {
        "doctor_env_above_project": (["doctor"], {}, _env_above_the_project),
        "doctor_env_in_project_root": (["doctor"], {}, _env_in_the_project_root),
        "doctor_gbk_env": (["doctor"], {}, _gbk_env),
        "doctor_ollama_not_running": (
            ["doctor"],
            {"LLM_PROVIDER": "ollama", "LLM_BASE_URL": "http://127.0.0.1:9/v1"},
            None,
        ),
        "doctor_bad_base_url": (["doctor"], {"LLM_BASE_URL": "http:///v1"}, None),
        "doctor_unclosed_quote": (
            ["doctor"],
            {},
            _env_file('LLM_API_KEY="fake-key-for-review-0000\n'),
        ),
        "chat_unclosed_quote": (
            ["chat", "你好"],
            {},
            _env_file('LLM_API_KEY="fake-key-for-review-0000\n'),
        ),
        "doctor_unclosed_quote_elsewhere": (
            ["doctor"],
            {},
            _env_file("LLM_PROVIDER=local\nNOTE='fake-key-for-review-0000\n"),
        ),
        "doctor_unbalanced_bracket": (["doctor"], {"LLM_BASE_URL": "http://[::1/v1"}, None),
        "chat_unbalanced_bracket": (
            ["chat", "你好"],
            {**UNREACHABLE, "LLM_BASE_URL": "http://[::1/v1"},
            None,
        ),
        "chat_full_width_colon": (
            ["chat", "你好"],
            {**UNREACHABLE, "LLM_BASE_URL": "http://127.0.0.1：40181/v1"},
            None,
        ),
        "chat_timeout_overflow": (["chat", "你好"], {"LLM_TIMEOUT": "1e10"}, None),
        "chat_invalid_url": (
            ["chat", "你好"],
            {**UNREACHABLE, "LLM_BASE_URL": "http://127.0.0.1:99999/v1"},
            None,
        ),
        "chat_socks_proxy": (
            ["chat", "你好"],
            {**UNREACHABLE, **SOCKS_ONLY},
            None,
        ),
    }
)
for _model in ("fault-length", "fault-content-filter", "fault-reasoning-only", "fault-tool-calls"):
    CASES[f"chat_{_model}"] = (
        ["chat", "你好"],
        {"LLM_PROVIDER": "local", "LLM_MODEL": _model},
        None,
    )
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
            cwd = setup(cwd, env) or cwd
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
    assert "✓ 找到 .env：.env" in result.stdout.splitlines()


def test_doctor_with_provider_local_and_a_key_checks_the_local_server(cli):
    result = cli["doctor_local_with_key"]
    assert result.returncode == 0, result.stdout
    assert "✓ 服务可用：http://127.0.0.1:" in result.stdout
    assert "fake-key-for-tests-000" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("case", "name"),
    [
        ("doctor_bad_timeout", "LLM_TIMEOUT"),
        ("doctor_tiny_timeout", "LLM_TIMEOUT"),
        ("doctor_model_with_newline", "LLM_MODEL"),
    ],
)
def test_doctor_reports_a_bad_setting_in_one_line(cli, case, name):
    result = cli[case]
    assert result.returncode == 1
    bad = [line for line in result.stdout.splitlines() if name in line]
    assert len(bad) == 1 and bad[0].startswith("✗")


def test_chat_refuses_a_model_option_with_a_newline_in_one_line(cli):
    result = cli["chat_option_model_with_newline"]
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--model='a\\nb'" in lines[0], result.stderr


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


# -- doctor: which .env, which preset, does it answer (issues 14, 16) ---------------------------
def test_doctor_does_not_read_a_env_above_the_project(cli):
    result = cli["doctor_env_above_project"]
    assert result.returncode == 0, result.stdout
    assert "! 没有 .env" in result.stdout
    assert "fake-key-above" not in result.stdout and "…0000" not in result.stdout
    assert "没有 API Key" in result.stdout


def test_doctor_says_which_env_it_read_relative_to_the_project(cli):
    result = cli["doctor_env_in_project_root"]
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert "✓ 找到 .env：.env" in lines
    assert not any("没有 .env" in line for line in lines)
    assert any("LLM_PROVIDER=local" in line for line in lines)


def test_doctor_reads_a_gbk_env_and_says_so(cli):
    result = cli["doctor_gbk_env"]
    assert result.returncode == 0, result.stdout
    assert any("GBK" in line and line.startswith("!") for line in result.stdout.splitlines())
    assert "LLM_PROVIDER=local" in result.stdout


def test_doctor_says_how_to_start_a_local_model_server(cli):
    result = cli["doctor_ollama_not_running"]
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("✓ LLM_PROVIDER=ollama") and "不需要密钥" in line for line in lines)
    failed = [line for line in lines if line.startswith("✗")]
    assert len(failed) == 1 and "ollama serve" in failed[0] and "ollama pull" in failed[0]
    assert "本地练习服务器" not in result.stdout  # it did not fall back to the practice server
    assert "没有 API Key" not in result.stdout  # no key is needed


def test_doctor_checks_a_local_model_server_that_answers(tmp_path):
    from lesson_helpers.local_server import LocalServer

    (tmp_path / ".git").mkdir()
    with LocalServer(pace=0, api_key=None) as stand_in:  # answers like a vLLM without --api-key
        env = clean_env(LLM_PROVIDER="vllm", LLM_BASE_URL=stand_in.base_url)
        result = run(["doctor"], tmp_path, env)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("✓ LLM_PROVIDER=vllm") for line in lines)
    assert f"✓ 服务可用：{stand_in.base_url}" in result.stdout
    assert "✓ 模型：Qwen/Qwen2.5-7B-Instruct" in lines


def test_doctor_warns_about_debug_output_that_prints_the_key(cli):
    result = cli["doctor_no_env"]
    warning = [line for line in result.stdout.splitlines() if "debuglevel" in line]
    assert len(warning) == 1 and warning[0].startswith("!")
    assert "%xmode Verbose" in warning[0] and "pytest -l" in warning[0]


@pytest.mark.parametrize(
    ("case", "says"), [("doctor_bad_base_url", "主机名"), ("doctor_unbalanced_bracket", "方括号")]
)
def test_doctor_reports_a_bad_base_url(cli, case, says):
    result = cli[case]
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    bad = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert len(bad) == 1 and "LLM_BASE_URL" in bad[0] and says in bad[0]


def test_doctor_names_an_unreadable_line_of_env(cli):
    result = cli["doctor_unclosed_quote"]
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "could not parse" not in output and "fake-key-for-review" not in output
    bad = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert bad == [
        '✗ .env 第 1 行（LLM_API_KEY）的引号没有闭合：请在值的末尾补上 "，或删掉开头的 "。'
    ]
    assert "没有 API Key" not in output


def test_doctor_warns_about_an_unreadable_line_it_skips(cli):
    result = cli["doctor_unclosed_quote_elsewhere"]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "could not parse" not in output and "fake-key-for-review" not in output
    warned = [line for line in result.stdout.splitlines() if "第 2 行" in line]
    assert len(warned) == 1 and warned[0].startswith("! ") and "跳过" in warned[0]


def test_chat_does_not_fall_back_to_the_local_server_for_an_unreadable_key(cli):
    result = cli["chat_unclosed_quote"]
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误：.env 第 1 行（LLM_API_KEY）")
    assert "fake-key-for-review" not in result.stderr


# -- chat: why an answer ended, and nothing raw (issue 16) -------------------------------------
@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("fault-length", "finish_reason=length"),
        ("fault-content-filter", "finish_reason=content_filter"),
        ("fault-reasoning-only", "reasoning_content"),
        ("fault-tool-calls", "finish_reason=tool_calls"),
    ],
)
def test_chat_says_why_an_incomplete_answer_ended(cli, model, reason):
    result = cli[f"chat_{model}"]
    assert result.returncode == 3, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("注意：")]
    assert len(notes) == 1 and reason in notes[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("chat_timeout_overflow", "LLM_TIMEOUT"),
        ("chat_tiny_timeout", "至少 0.1 秒"),
        ("chat_model_with_newline", "LLM_MODEL='a\\nb'"),
        ("chat_local_model_with_newline", "LLM_MODEL='a\\nb'"),
        ("chat_invalid_url", "LLM_BASE_URL"),
        ("chat_unbalanced_bracket", "方括号"),
        ("chat_full_width_colon", "全角"),
        pytest.param(
            "chat_socks_proxy",
            "PySocks",
            marks=pytest.mark.skipif(HAS_PYSOCKS, reason="PySocks is installed here"),
        ),
    ],
)
def test_chat_problems_are_one_line(cli, case, says):
    result = cli[case]
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("错误：") and says in lines[0]
    assert "Traceback" not in result.stderr


def _scripted_chat(action, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    from test_client import Script

    with Script(action) as script:
        env = clean_env(
            LLM_PROVIDER="openai",
            LLM_API_KEY="fake-key-for-tests-0000",
            LLM_BASE_URL=script.base_url,
            NO_PROXY="127.0.0.1",
            **extra,
        )
        return run(["chat", "你好"], tmp_path, env)


def test_chat_does_not_accept_an_empty_json_object_as_an_answer(tmp_path):
    from test_client import json_reply

    result = _scripted_chat(json_reply(200, {}), tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误：") and "choices" in lines[0]


@pytest.mark.parametrize("name", ["TRUNCATED_401", "BAD_GZIP_200", "BAD_GZIP_STREAM"])
def test_chat_with_a_broken_body_is_one_line(tmp_path, name):
    import test_client

    result = _scripted_chat(getattr(test_client, name), tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("错误："), result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr


def test_ctrl_c_while_waiting_for_the_reply_is_one_line(tmp_path):
    accepted = threading.Event()
    with socket.socket() as listener:  # accepts the request and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def wait_for_client() -> None:
            conn, _ = listener.accept()
            accepted.set()
            time.sleep(30)
            conn.close()

        threading.Thread(target=wait_for_client, daemon=True).start()
        env = clean_env(
            LLM_PROVIDER="openai",
            LLM_API_KEY="fake-key-for-tests-0000",
            LLM_BASE_URL=f"http://127.0.0.1:{port}/v1",
            NO_PROXY="127.0.0.1",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "lesson_helpers", "chat", "你好"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert accepted.wait(20), "the chat command never connected"
            time.sleep(0.3)  # it is now waiting for the response headers
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert proc.returncode == 130
    lines = err.decode("utf-8").strip().splitlines()
    assert len(lines) == 1 and "已停止" in lines[0], lines
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


# -- serve: arguments (issue 16) ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--pace", "nan"], "--pace"),
        (["--pace", "inf"], "--pace"),
        (["--pace", "-1"], "--pace"),
        (["--port", "70000"], "--port"),
        (["--port", "-5"], "--port"),
        (["--port", "abc"], "--port"),
    ],
)
def test_serve_rejects_bad_arguments_in_one_line(tmp_path, args, names):
    result = run(["serve", *args], tmp_path, clean_env())
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m lesson_helpers serve: error: argument " + names)
    assert args[1] in lines[0]
    assert "Traceback" not in result.stderr
