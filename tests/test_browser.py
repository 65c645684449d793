"""Lesson 04's promise checked in a real browser: JupyterLab + Debian's chromium (Playwright).

A headless JupyterLab serves a small notebook from a temporary folder; chromium opens it and
runs its cells against the local server at a slow pace. The test reads the DOM while the
stream is running and checks that

* a *blocking* cell shows the answer growing while the cell is still running (widget
  updates travel on the kernel's IOPub channel at once), ending in the exact text;
* a *background* view leaves the notebook usable, and its Stop button ends the stream and
  keeps the partial text, in the page and in the kernel;
* a tool call's arguments appear piece by piece as they stream in.

Skipped (with the reason) only when chromium or Playwright is not installed.
Set LIVE_VIEW_SCREENSHOT=/some/file.png to keep a screenshot of the page.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
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

from lesson_helpers.local_server.replies import reply_pieces

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
LONG_QUESTION = "什么是流式输出？"

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None
    PlaywrightTimeout = TimeoutError

pytestmark = [
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
        reason="chromium is not installed (Debian: apt-get install chromium fonts-noto-cjk)",
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="the playwright Python package is not installed"
    ),
]

CELLS = [
    # 0: setup
    "from lesson_helpers import chat_client, local_server\n"
    "from lesson_helpers.display import LiveView\n"
    "\n"
    "client = chat_client(quiet=True)\n"
    'print("setup-ok", local_server().base_url.startswith("http://127.0.0.1"))',
    # 1: a blocking view
    "local_server().pace = 0.25\n"
    'v1 = LiveView("blocking")\n'
    'v1.run(lambda: client.stream([{"role": "user", "content": "你好"}]))',
    # 2: a background view, plain text, stopped from the page
    "local_server().pace = 0.15\n"
    'v2 = LiveView("background", markdown=False)\n'
    f'v2.start(lambda: client.stream([{{"role": "user", "content": "{LONG_QUESTION}"}}]))',
    # 3: the notebook is usable while v2 streams
    'print("still-usable", 6 * 7)',
    # 4: what the kernel holds after Stop
    "import json\n"
    "v2.wait(10)\n"
    'print(json.dumps({"state": v2.state, "text": v2.text}, ensure_ascii=False))',
    # 5: a tool call streaming in (blocking)
    "local_server().pace = 0.25\n"
    'v3 = LiveView("tools")\n'
    'weather = [{"role": "user", "content": "天气"}]\n'
    'v3.run(lambda: client.stream(weather, model="fault-tool-calls"))',
]
TOOL_ARGUMENTS = '{"city": "北京", "unit": "celsius"}'  # what fault-tool-calls streams


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernelspec
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, path)


def _lab_env(home: Path) -> dict[str, str]:
    """An isolated Jupyter: own config, settings, workspaces and a kernel running this Python."""
    kernel_dir = home / "data" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    config = home / "config"
    config.mkdir()
    server_config = {  # nothing that reaches the internet, nothing the test does not need
        "LabApp": {
            "news_url": None,
            "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            "extension_manager": "readonly",
        },
        "ServerApp": {
            "jpserver_extensions": {"jupyter_lsp": False, "jupyter_server_terminals": False},
        },
    }
    (config / "jupyter_server_config.json").write_text(json.dumps(server_config))
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(
        LLM_PROVIDER="local",
        JUPYTER_PATH=str(home / "data"),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def _get(url: str, token: str, timeout: float = 2.0) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def _stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the server down (it stops its kernels), then make sure the process is gone."""
    try:
        request = urllib.request.Request(
            f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
        )
        urllib.request.urlopen(request, timeout=5).close()
    except (OSError, urllib.error.URLError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _start_lab(home: Path) -> tuple[subprocess.Popen, str, str]:
    """Start a headless JupyterLab on a free port, serving a folder with one notebook."""
    root = home / "notebooks"
    root.mkdir()
    _write_notebook(root / "live.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ServerApp.open_browser=False",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            ],
            env=_lab_env(home),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so cleanup reaches all of it
        )
    return proc, f"http://127.0.0.1:{port}", token


def _wait_ready(proc: subprocess.Popen, base: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + 40
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited early:\n{log.read_text()}")
        try:
            if _get(f"{base}/api/status", token) == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jupyter lab did not start in time:\n{log.read_text()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The notebook opened in chromium, with its setup cell run.

    The browser starts while the server is still booting (both take seconds).
    """
    home = tmp_path_factory.mktemp("lab")
    proc, base, token = _start_lab(home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                _wait_ready(proc, base, token, home / "server.log")
                tab = browser.new_page(viewport={"width": 1280, "height": 900})
                tab.set_default_timeout(20_000)
                tab.goto(f"{base}/lab/tree/live.ipynb?token={token}", timeout=30_000)
                tab.locator(".jp-Notebook .jp-Cell").nth(len(CELLS) - 1).wait_for(timeout=30_000)
                kernel = tab.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                kernel.first.wait_for(timeout=45_000)  # the kernel is up and idle
                run_cell(tab, 0)
                output = cell(tab, 0).locator(".jp-OutputArea-output")
                try:
                    output.filter(has_text="setup-ok True").wait_for(timeout=45_000)
                except PlaywrightTimeout:
                    pytest.fail(
                        f"the setup cell did not run: prompt {prompt(tab, 0)!r}, "
                        f"output {output.all_inner_texts()!r}\n"
                        + (home / "server.log").read_text()[-3000:]
                    )
                yield tab
                shot = os.environ.get("LIVE_VIEW_SCREENSHOT")
                if shot:
                    tab.screenshot(path=shot)
            finally:
                browser.close()
    finally:
        _stop_lab(proc, base, token)


def cell(tab, index: int):
    return tab.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(tab, index: int) -> None:
    """Select a cell in command mode and run it (Shift+Enter), as a student would."""
    cell(tab, index).locator(".jp-InputPrompt").click()
    tab.keyboard.press("Escape")
    tab.keyboard.press("Shift+Enter")


def prompt(tab, index: int) -> str:
    return cell(tab, index).locator(".jp-InputArea-prompt").inner_text().strip()


def answer_text(tab, index: int) -> str:
    answer = cell(tab, index).locator(".lesson-live-answer")
    return answer.inner_text().strip() if answer.count() else ""


def status_text(tab, index: int) -> str:
    status = cell(tab, index).locator(".lesson-live-status")
    return status.inner_text().strip() if status.count() else ""


def test_blocking_cell_shows_the_answer_growing_while_it_runs(page):
    run_cell(page, 1)
    reads = []  # (answer, status, prompt) while the stream is running
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer, status = answer_text(page, 1), status_text(page, 1)
        if "完成" in status:
            break
        reads.append((answer, status, prompt(page, 1)))
        time.sleep(0.08)
    else:
        pytest.fail(f"the stream did not finish; last reads: {reads[-3:]}")

    growing = [answer for answer, _status, cell_prompt in reads if answer and "*" in cell_prompt]
    distinct = list(dict.fromkeys(growing))
    assert len(distinct) >= 3, f"the answer did not visibly grow while the cell ran: {reads}"
    for shorter, longer in itertools.pairwise(distinct):
        assert longer.startswith(shorter), f"the visible text jumped: {shorter!r} → {longer!r}"
    assert all(SEED_TEXT.startswith(a) for a in distinct)
    assert len(distinct[0]) < len(SEED_TEXT), "the first visible text was already complete"

    final = answer_text(page, 1)
    assert final == SEED_TEXT
    assert "Qwen/Qwen2.5-7B-Instruct" in status_text(page, 1)
    page.wait_for_function(  # the cell itself ends right after the stream
        "el => !el.innerText.includes('*')",
        arg=cell(page, 1).locator(".jp-InputArea-prompt").element_handle(),
        timeout=10_000,
    )
    time.sleep(0.3)  # the final display update re-renders the view: still exact
    assert answer_text(page, 1) == SEED_TEXT


def test_background_view_keeps_notebook_usable_and_stop_keeps_partial_text(page):
    full = "".join(reply_pieces([{"role": "user", "content": LONG_QUESTION}]))
    run_cell(page, 2)
    page.wait_for_function(  # some text arrived, but far from all of it
        "el => el.innerText.trim().length >= 6",
        arg=cell(page, 2).locator(".lesson-live-answer").element_handle(timeout=20_000),
        timeout=20_000,
    )
    assert "*" not in prompt(page, 2), "start() should return at once"

    run_cell(page, 3)  # another cell runs while the answer keeps streaming
    cell(page, 3).locator(".jp-OutputArea-output").filter(has_text="still-usable 42").wait_for()
    assert "生成中" in status_text(page, 2)
    before_stop = answer_text(page, 2)
    assert before_stop and full.startswith(before_stop) and len(before_stop) < len(full)

    cell(page, 2).locator(".lesson-live-stop").click()
    page.wait_for_function(
        "el => el.innerText.includes('已停止')",
        arg=cell(page, 2).locator(".lesson-live-status").element_handle(),
        timeout=10_000,
    )
    stopped = answer_text(page, 2)
    time.sleep(0.8)  # more than 5 tokens' time at this pace: nothing more may appear
    assert answer_text(page, 2) == stopped
    assert len(before_stop) <= len(stopped) < len(full)
    assert full.startswith(stopped)

    run_cell(page, 4)
    output = cell(page, 4).locator(".jp-OutputArea-output").filter(has_text='"state"')
    kernel_side = json.loads(output.inner_text())
    assert kernel_side == {"state": "已停止", "text": stopped}


def test_a_tool_call_is_shown_as_its_arguments_stream_in(page):
    run_cell(page, 5)
    tools = cell(page, 5).locator(".lesson-live-tools")
    reads = []
    deadline = time.monotonic() + 20
    while "完成" not in status_text(page, 5):
        assert time.monotonic() < deadline, f"the stream did not finish; last reads: {reads[-3:]}"
        if tools.count() and tools.is_visible():
            reads.append(tools.inner_text())
        time.sleep(0.08)
    final = tools.inner_text()
    assert "get_weather" in final and TOOL_ARGUMENTS in final
    arguments = [text.split("\n", 1)[-1].strip() for text in reads if "get_weather" in text]
    growing = list(dict.fromkeys(a for a in arguments if a and a != "（参数还没到）"))
    assert len(growing) >= 3, f"the arguments did not visibly grow: {reads}"
    assert all(TOOL_ARGUMENTS.startswith(a) for a in growing), growing
    assert "模型要求调用工具" in status_text(page, 5)
