"""connect(): the lessons' entry point, as a student's machine would run it."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from lesson_helpers import chat_client, connect, seed
from lesson_helpers.config import ConfigError
from lesson_helpers.local_server import LocalServer
from lesson_helpers.session import LOCAL_NOTICE

SEED_TEXT = seed.ANSWER


def test_local_server_works_behind_a_system_proxy(tmp_path):
    # VPN tools often set HTTP_PROXY; requests for 127.0.0.1 must not be sent through it.
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy",)}
    dead_proxy = "http://127.0.0.1:9"  # nothing listens there: using it would fail at once
    env.update(HTTP_PROXY=dead_proxy, http_proxy=dead_proxy, HTTPS_PROXY=dead_proxy)
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "lesson_helpers", "chat", "你好"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == SEED_TEXT


def _isolated(monkeypatch, tmp_path, **env: str) -> None:
    """No LLM_/OPENAI_ settings but `env`, and a working folder without a .env."""
    for name in list(os.environ):
        if name.startswith(("LLM_", "OPENAI_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".git").mkdir(exist_ok=True)  # the project root: no .env above it is read
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("provider", "base_url"),
    [
        ("ollama", "http://localhost:11434/v1"),
        ("lmstudio", "http://localhost:1234/v1"),
        ("vllm", "http://localhost:8000/v1"),
    ],
)
def test_a_local_model_server_is_used_without_a_key(
    monkeypatch, tmp_path, capsys, provider, base_url
):
    _isolated(monkeypatch, tmp_path, LLM_PROVIDER=provider)
    settings = connect()
    out = capsys.readouterr().out
    assert settings.provider == provider
    assert settings.base_url == base_url
    assert not settings.has_key
    assert LOCAL_NOTICE not in out  # the practice server was not started instead
    assert base_url in out and "不需要密钥" in out


def test_a_hosted_preset_without_a_key_uses_the_practice_server(monkeypatch, tmp_path, capsys):
    _isolated(monkeypatch, tmp_path, LLM_PROVIDER="groq")
    settings = connect()
    assert settings.provider == "local"
    assert LOCAL_NOTICE in capsys.readouterr().out


def test_a_local_model_server_answers_through_connect(monkeypatch, tmp_path, capsys):
    with LocalServer(pace=0, api_key=None) as practice:  # stands in for vLLM: no key needed
        _isolated(monkeypatch, tmp_path, LLM_PROVIDER="vllm", LLM_BASE_URL=practice.base_url)
        client = chat_client()
        assert client.settings.provider == "vllm"
        assert "".join(client.stream([{"role": "user", "content": "你好"}]).text()) == SEED_TEXT


def test_connect_with_a_config_problem_raises_one_line(monkeypatch, tmp_path):
    _isolated(monkeypatch, tmp_path, LLM_TIMEOUT="1e10")
    with pytest.raises(ConfigError) as info:
        connect()
    assert "LLM_TIMEOUT" in str(info.value) and "\n" not in str(info.value)


def test_connect_refuses_a_socks_proxy_it_cannot_use(monkeypatch, tmp_path):
    try:
        import socks  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PySocks is installed here")
    _isolated(monkeypatch, tmp_path, LLM_PROVIDER="deepseek", LLM_API_KEY="fake-key-for-tests-0000")
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError) as info:
        connect(quiet=True)
    assert "PySocks" in str(info.value) and "ALL_PROXY" in str(info.value)


def test_connect_warns_when_http_debug_output_would_print_the_key(monkeypatch, tmp_path, capsys):
    _isolated(monkeypatch, tmp_path, LLM_PROVIDER="deepseek", LLM_API_KEY="fake-key-for-tests-0000")
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    connect()
    out = capsys.readouterr().out
    assert "debuglevel" in out and "密钥" in out
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 0)
    connect()
    assert "debuglevel" not in capsys.readouterr().out


IPYTHON_CASES = {
    "LLM_TIMEOUT": {"LLM_TIMEOUT": "abc"},
    "LLM_API_KEY": {"LLM_API_KEY": "fake-key-\u200b-for-tests-0000"},
    "LLM_BASE_URL": {"LLM_BASE_URL": "http:///v1"},
}


@pytest.mark.parametrize("setting", list(IPYTHON_CASES))
def test_connect_in_ipython_shows_one_line_not_a_traceback(tmp_path, setting):
    pytest.importorskip("IPython")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(IPYTHON_CASES[setting], PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    (tmp_path / ".git").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            "--no-banner",
            "--colors=NoColor",
            "--quick",
            "-c",
            "from lesson_helpers import connect; settings = connect()",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ConfigError: ") and setting in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
