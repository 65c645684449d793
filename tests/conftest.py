"""Shared fixtures: a real local server on 127.0.0.1, and an environment with no real key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests and the notebooks they run must never reach a real provider with a real key. Empty
# variables win over a developer's `.env` (real environment variables always do), so every
# lesson sees exactly what a student with no key sees: the local practice server.
for _name in ("LLM_PROVIDER", "LLM_BASE_URL", "OPENAI_BASE_URL", "LLM_MODEL"):
    os.environ.pop(_name, None)
os.environ["LLM_API_KEY"] = ""
os.environ["OPENAI_API_KEY"] = ""

from lesson_helpers.local_server import LocalServer  # noqa: E402

DATA = ROOT / "lesson_helpers" / "data"


@pytest.fixture(scope="session")
def server():
    """One local server for the whole run, with no pause between tokens."""
    with LocalServer(pace=0) as srv:
        yield srv


@pytest.fixture
def seed_stream_bytes() -> bytes:
    """The seed's SiliconFlow stream, as it travels on the wire."""
    return (DATA / "siliconflow_seed_stream.txt").read_bytes()


def run_script(
    script: Path, args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python program (app.py, student/app.py) the way a student runs it."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=30,
        check=False,
    )


def routed_output(capsys: pytest.CaptureFixture[str]) -> str:
    """What a self-check printed, after checking where it went: a passing check's ✓ line on
    stdout, a failing check's ✗ lines on stderr (where graders look), never both."""
    captured = capsys.readouterr()
    if captured.out.startswith("✓"):
        assert captured.err == "", captured.err
        assert "✗" not in captured.out, captured.out
        return captured.out
    assert captured.out == "", f"a failing check printed on stdout: {captured.out!r}"
    assert captured.err.startswith("✗"), captured.err
    return captured.err
