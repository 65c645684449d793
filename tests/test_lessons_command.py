"""The README's lessons command opens JupyterLab rooted at the project with lesson 00 open.

It is started exactly as written (headless, on a free port, with a token) and asked through
jupyter_server's contents API for the files lesson 00 talks about (`.env.example`, `app.py`,
`student/`), and for the file the browser would open.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def lessons_command() -> str:
    """The one-line command under the README's `<!-- lessons-command -->` marker."""
    match = re.search(r"<!-- lessons-command -->\n```bash\n(.+)\n```", README)
    assert match, "README.md: no lessons command block"
    return match.group(1)


def jupyter_part() -> list[str]:
    """The `jupyter lab ...` at the end of the lessons command, as arguments."""
    words = shlex.split(lessons_command().split(" && ")[-1])
    assert words[:2] == ["jupyter", "lab"], words
    return words[2:]


def test_the_command_roots_jupyterlab_at_the_project_and_opens_lesson_00():
    args = jupyter_part()
    assert "--notebook-dir=." in args
    assert "--ContentsManager.allow_hidden=True" in args
    assert args[-1] == "student/notebooks/00_setup.ipynb"
    assert (ROOT / args[-1]).is_file()


def test_the_windows_line_lesson_00_and_the_online_lines_agree():
    jupyter = lessons_command().split(" && ")[-1]
    windows = re.search(r"Windows（PowerShell）：`(.+)`", README)
    assert windows and windows.group(1).endswith("; " + jupyter)
    lesson = nbformat.read(ROOT / "notebooks" / "00_setup.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in lesson.cells if cell.cell_type == "markdown")
    assert lessons_command() in text, "lesson 00 shows the README's command"
    assert windows.group(1) in text
    assert "jupyter lab notebooks/" not in text and "Open from Path" not in text
    devcontainer = (ROOT / ".devcontainer" / "devcontainer.json").read_text(encoding="utf-8")
    assert jupyter in devcontainer
    for path in re.findall(r"urlpath=lab/tree/([\w./-]+)", README):
        assert (ROOT / path).is_file(), path
    assert "jupyter lab notebooks/" not in README


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(base: str, path: str, token: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def stop(proc: subprocess.Popen, base: str, token: str) -> None:
    try:
        request = urllib.request.Request(
            f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
        )
        urllib.request.urlopen(request, timeout=5).close()
        proc.wait(timeout=15)
    except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lessons command, started at the project root: (base URL, token, runtime folder)."""
    home = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    jupyter = Path(sys.executable).parent / "jupyter"
    exe = [str(jupyter), "lab"] if jupyter.exists() else [sys.executable, "-m", "jupyterlab"]
    headless = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
    ]
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),  # nobody's personal settings
    }
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [*exe, *headless, *jupyter_part()],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("jupyter lab exited:\n" + (home / "server.log").read_text())
            try:
                get(base, "/api/status", token)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (home / "server.log").read_text())
                time.sleep(0.2)
        yield base, token, home / "runtime"
    finally:
        stop(proc, base, token)


def test_the_file_browser_shows_the_project_root(lab):
    base, token, _ = lab
    names = {item["name"] for item in get(base, "/api/contents/?content=1", token)["content"]}
    assert {".env.example", ".gitignore", "app.py", "student", "notebooks"} <= names
    example = get(base, "/api/contents/.env.example?content=1", token)
    assert example["type"] == "file" and "LLM_API_KEY=" in example["content"]


def test_lesson_00_is_the_file_it_opens(lab):
    base, token, runtime = lab
    opened = [
        path.read_text(encoding="utf-8") for path in runtime.glob("jpserver-file-to-run-*.html")
    ]
    assert len(opened) == 1, sorted(p.name for p in runtime.iterdir())
    assert "/lab/tree/student/notebooks/00_setup.ipynb" in opened[0]
    lesson = get(base, "/api/contents/student/notebooks/00_setup.ipynb?content=0", token)
    assert lesson["type"] == "notebook"
