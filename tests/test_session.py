"""connect(): the lessons' entry point, as a student's machine would run it."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"


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
