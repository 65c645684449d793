"""The API key stays secret: in errors, reprs and logs -- and out of the repository."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.errors import (
    AuthError,
    BadRequestError,
    ConnectError,
    LLMError,
    RequestTimeout,
    StreamError,
    StreamRedactor,
    redact,
)

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "fake-key-DO-NOT-USE-0123456789"
SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
HELLO = [{"role": "user", "content": "你好"}]


def settings_for(base_url: str, timeout: float = 10.0) -> Settings:
    return Settings(
        api_key=Secret(FAKE_KEY),
        base_url=base_url,
        model=SEED_MODEL,
        timeout=timeout,
        connect_timeout=5.0,
        provider="siliconflow",
    )


def renderings(error: BaseException) -> list[str]:
    """Every way an error is likely to be shown: message, repr, args, a full traceback."""
    texts = [str(error), repr(error), repr(error.args), "".join(traceback.format_exception(error))]
    if isinstance(error, LLMError):
        texts += [error.message, error.provider_message, error.partial_text]
    return texts


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert FAKE_KEY not in text
        assert "0123456789" not in text  # not even the tail of it


# -- a tiny scripted HTTP server ---------------------------------------------------------------
Action = Callable[[BaseHTTPRequestHandler], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
        pass

    def do_POST(self) -> None:
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.action(self)  # type: ignore[attr-defined]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Callable[[Action], str]]:
    """Start a server that answers every request with `action`; returns its base URL."""
    servers: list[_Server] = []

    def start(action: Action) -> str:
        srv = _Server(("127.0.0.1", 0), _Handler)
        srv.action = action  # type: ignore[attr-defined]
        threading.Thread(
            target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def reply(status: int, body: str, content_type: str = "application/json") -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)

    return act


def sse(*parts: bytes | float) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        for part in parts:
            if isinstance(part, float):
                time.sleep(part)
            else:
                h.wfile.write(part)
                h.wfile.flush()
        h.close_connection = True

    return act


def chunk(text: str) -> bytes:
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": SEED_MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


# -- reprs -------------------------------------------------------------------------------------
def test_settings_client_and_stream_reprs_hide_the_key(server):
    settings = settings_for(server.base_url)
    client = ChatClient(settings, max_retries=0)
    assert_no_key(repr(settings), str(settings), repr(client), str(client), f"{client}")
    assert "fake-…6789" in repr(client)
    local = Settings(api_key=Secret(server.api_key), base_url=server.base_url, model=SEED_MODEL)
    stream = ChatClient(local, max_retries=0).stream(HELLO)
    assert server.api_key not in repr(stream) and server.api_key not in str(stream)
    list(stream)
    assert server.api_key not in repr(stream.result)


# -- errors ------------------------------------------------------------------------------------
def test_401_from_the_local_server_does_not_show_the_key(server, caplog):
    client = ChatClient(settings_for(server.base_url), max_retries=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as info:
        client.chat(HELLO)
    assert_no_key(*renderings(info.value), caplog.text)
    with pytest.raises(AuthError) as info:
        list(client.stream(HELLO))
    assert_no_key(*renderings(info.value))


@pytest.mark.parametrize("status", [400, 401, 403, 429, 500])
def test_key_echoed_by_the_provider_is_redacted(scripted, status):
    message = (
        f"Incorrect API key provided: {FAKE_KEY}. Header was 'Authorization: Bearer {FAKE_KEY}'."
    )
    url = scripted(reply(status, json.dumps({"error": {"message": message}})))
    client = ChatClient(settings_for(url), max_retries=0)
    with pytest.raises(LLMError) as info:
        client.chat(HELLO)
    assert info.value.status == status
    assert_no_key(*renderings(info.value))
    assert "Incorrect API key provided: ***" in str(info.value)


def test_key_echoed_in_a_plain_text_body_is_redacted(scripted):
    url = scripted(reply(400, f"bad key {FAKE_KEY}\nsee docs", "text/plain"))
    with pytest.raises(BadRequestError) as info:
        ChatClient(settings_for(url), max_retries=0).chat(HELLO)
    assert_no_key(*renderings(info.value))
    assert "\n" not in str(info.value)


def test_connection_refused_does_not_show_the_key(caplog):
    client = ChatClient(settings_for("http://127.0.0.1:9/v1"), max_retries=1, sleep=lambda s: None)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectError) as info:
        client.chat(HELLO)
    assert_no_key(*renderings(info.value), caplog.text)


def test_stream_cut_does_not_show_the_key(scripted):
    url = scripted(sse(chunk("你好"), chunk("！")))
    with pytest.raises(StreamError) as info:
        list(ChatClient(settings_for(url)).stream(HELLO))
    assert info.value.partial_text == "你好！"
    assert_no_key(*renderings(info.value))


def test_error_event_echoing_the_key_is_redacted(scripted):
    event = json.dumps({"error": {"message": f"key {FAKE_KEY} has no quota"}}).encode()
    url = scripted(sse(chunk("你好"), b"data: " + event + b"\n\n"))
    with pytest.raises(StreamError) as info:
        list(ChatClient(settings_for(url)).stream(HELLO))
    assert info.value.partial_text == "你好"
    assert "has no quota" in str(info.value)
    assert_no_key(*renderings(info.value))


def test_non_json_event_echoing_the_key_is_redacted(scripted):
    url = scripted(sse(chunk("你好"), f"data: {FAKE_KEY}\n\n".encode()))
    with pytest.raises(StreamError) as info:
        list(ChatClient(settings_for(url)).stream(HELLO))
    assert_no_key(*renderings(info.value))


def test_timeout_does_not_show_the_key(scripted):
    url = scripted(sse(chunk("你好"), 2.0, chunk("！")))
    with pytest.raises(RequestTimeout) as info:
        list(ChatClient(settings_for(url, timeout=0.3)).stream(HELLO))
    assert info.value.partial_text == "你好"
    assert_no_key(*renderings(info.value))


def test_the_key_is_sent_only_in_the_authorization_header(scripted):
    received: list[tuple[str, str, bytes]] = []

    def action(h: BaseHTTPRequestHandler) -> None:
        body = h.body  # type: ignore[attr-defined]
        others = "".join(f"{k}: {v}" for k, v in h.headers.items() if k != "Authorization")
        received.append((h.requestline + others, h.headers.get("Authorization", ""), body))
        reply(500, "{}")(h)

    url = scripted(action)
    with pytest.raises(LLMError) as info:
        ChatClient(settings_for(url), max_retries=0).chat(HELLO)
    assert len(received) == 1
    visible, authorization, body = received[0]
    assert authorization == f"Bearer {FAKE_KEY}"
    assert_no_key(visible, body.decode())
    assert_no_key(*renderings(info.value))


def test_redact_removes_key_shaped_strings():
    key_like = "sk-" + "a1B2" * 6
    text = redact(f"token {key_like} and Authorization: Bearer {FAKE_KEY}\nnext line")
    assert key_like not in text and FAKE_KEY not in text
    assert "\n" not in text
    assert redact(f"the key {FAKE_KEY} leaked", FAKE_KEY) == "the key *** leaked"


# -- the repository ----------------------------------------------------------------------------
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".ruff_cache", ".pytest_cache", "node_modules"}
KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9]{20,}"),
    re.compile(r"Bearer [A-Za-z0-9._~+/=-]{24,}"),
]
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:root|home|tmp|work)/")


def _is_git_repo() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False
    )


def repo_files() -> list[Path]:
    """Files that are (or would be) committed: tracked plus untracked-but-not-ignored."""
    if _is_git_repo():
        listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        if listed.returncode == 0:
            names = [n for n in listed.stdout.split("\0") if n]
            return [ROOT / n for n in names if (ROOT / n).is_file()]
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(folder) / f for f in files]
    return found


def read_text(path: Path) -> str | None:
    data = path.read_bytes()[:5_000_000]
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def test_no_key_shaped_strings_in_the_repository():
    files = repo_files()
    assert any(f.name == "conftest.py" for f in files)  # the listing works
    hits = []
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        for pattern in KEY_PATTERNS:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {match.group()[:12]}…")
    assert not hits, "key-shaped strings in the repository:\n" + "\n".join(hits)


def test_the_scan_would_catch_a_key(tmp_path):
    sample = "OPENAI_API_KEY=" + "sk-" + "Z" * 32 + "\nheaders = 'Bearer " + "y" * 30 + "'\n"
    assert all(p.search(sample) for p in KEY_PATTERNS)


def test_env_file_is_ignored_and_not_tracked():
    gitignore = ROOT / ".gitignore"
    assert gitignore.is_file()
    lines = [line.strip() for line in gitignore.read_text(encoding="utf-8").splitlines()]
    assert ".env" in lines
    assert "!.env.example" in lines or ".env.*" not in lines  # the example stays committable
    if not _is_git_repo():
        pytest.skip("not a git repository")
    assert _git("ls-files", "--error-unmatch", ".env").returncode != 0
    assert ".env" not in _git("ls-files").stdout.splitlines()
    assert _git("check-ignore", "-q", ".env").returncode == 0
    assert _git("check-ignore", "-q", ".env.example").returncode == 1


def _notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebook_outputs_have_no_absolute_paths_or_keys():
    notebooks = _notebooks()
    if not notebooks:
        pytest.skip("no notebooks yet")
    hits = []
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for number, cell in enumerate(nb.get("cells", [])):
            outputs = json.dumps(cell.get("outputs", []), ensure_ascii=False)
            outputs = outputs.replace("\\n", "\n")
            for pattern in [ABSOLUTE_PATH, *KEY_PATTERNS]:
                for match in pattern.finditer(outputs):
                    around = outputs[max(0, match.start() - 20) : match.end() + 20]
                    hits.append(f"{path.name} cell {number}: {around!r}")
    assert not hits, "stored outputs leak paths or keys:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("text", "leaks"),
    [
        ('"/root/.cache/x"', True),
        ("File /home/student/x.py", True),
        ("/tmp/pytest-of-root/abc", True),
        ("at /work/main/notebooks", True),
        ("https://example.com/tmp/file", False),
        ("the network/ folder", False),
        ("./work/x", False),
    ],
)
def test_absolute_path_pattern(text, leaks):
    assert bool(ABSOLUTE_PATH.search(text)) is leaks


# -- a server that sends the exact key back, whatever the key looks like (issue 16) ------------
# Fake values only, none shaped like sk-…: keys of other providers and gateways look like this.
ODD_KEYS = [
    "not-a-real-key-a1b2c3d4e5f6",
    "FAKEKEY000011112222333344445555",
    "fake.key/with+slash=and.dots000",
    "00000000-fake-4000-8000-000000000000",
]


def odd_settings(base_url: str, key: str, timeout: float = 10.0) -> Settings:
    return Settings(
        api_key=Secret(key),
        base_url=base_url,
        model=SEED_MODEL,
        timeout=timeout,
        connect_timeout=5.0,
        provider="openai",
    )


def full_reply(
    status: int, body: str, content_type: str = "application/json", **headers: str
) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)

    return act


def everything(error: BaseException) -> str:
    """All an error shows or carries, with a traceback printed with its locals (pytest -l)."""
    texts = renderings(error)
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if "lesson_helpers" in frame.f_code.co_filename:  # the kit's frames, not this test's
            texts += [f"{name}={value!r}" for name, value in frame.f_locals.items()]
    if isinstance(error, LLMError):
        texts += [error.request_id, error.body, error.what, error.hint, repr(vars(error))]
    return "\n".join(texts)


def assert_key_hidden(key: str, *texts: str) -> None:
    for text in texts:
        assert key not in text
        for i in range(len(key) - 11):  # no 12-character piece of it either
            assert key[i : i + 12] not in text, key[i : i + 12]


def _echo_places(key: str) -> dict[str, Action]:
    escaped = json.dumps(key)[1:-1]
    page = f"<html><head><title>Login {key}</title></head><body>token={key}</body></html>"
    event = json.dumps({"error": {"message": f"upstream rejected key {key}"}})
    return {
        "401 JSON": full_reply(401, json.dumps({"error": {"message": f"bad key {key}"}})),
        "403 HTML": full_reply(403, page, "text/html"),
        "401 plain text": full_reply(401, f"Unauthorized: {key}\n", "text/plain"),
        "401 JSON-escaped": full_reply(401, '{"detail": "key \\"' + escaped + '\\" is revoked"}'),
        "200 HTML": full_reply(200, page, "text/html"),
        "200 JSON error": full_reply(
            200, json.dumps({"error": {"message": f"{key} has no quota"}})
        ),
        "request id": full_reply(500, '{"error": {"message": "boom"}}', X_Request_Id=key),
        "error event": sse(chunk("你好"), b"data: " + event.encode() + b"\n\n"),
        "malformed event": sse(chunk("你好"), f'data: {{"broken": "{key}\n\n'.encode()),
        "error event type": sse(chunk("你好"), f"event: error\ndata: {key}\n\n".encode()),
    }


PLACES = list(_echo_places("x" * 20))


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("place", PLACES)
def test_a_server_echoing_the_exact_key_never_shows_it(scripted, key, place):
    action = _echo_places(key)[place]
    url = scripted(action)
    client = ChatClient(odd_settings(url, key), max_retries=0)
    with pytest.raises(LLMError) as info:
        list(client.stream(HELLO))
    assert_one_line_error(info.value)
    assert_key_hidden(key, everything(info.value))
    if place not in ("error event", "malformed event", "error event type", "200 HTML"):
        with pytest.raises(LLMError) as info:
            client.chat(HELLO)
        assert_key_hidden(key, everything(info.value))


def assert_one_line_error(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text


def test_the_request_id_echoing_the_key_is_redacted_on_the_stream(scripted):
    key = ODD_KEYS[0]

    def act(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("X-Request-Id", f"req-{key}")
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(chunk("你好") + b"data: [DONE]\n\n")

    stream = ChatClient(odd_settings(scripted(act), key)).stream(HELLO)
    assert "".join(stream.text()) == "你好"
    assert stream.request_id == "req-***"


def test_a_twelve_character_piece_of_the_key_is_hidden_too(scripted):
    key = ODD_KEYS[1]
    piece = key[5:19]  # a gateway that shows part of the key
    url = scripted(full_reply(401, json.dumps({"error": {"message": f"key ...{piece}... denied"}})))
    with pytest.raises(AuthError) as info:
        ChatClient(odd_settings(url, key), max_retries=0).chat(HELLO)
    assert piece not in everything(info.value)
    assert "denied" in str(info.value)


def test_the_error_body_is_kept_without_the_key(scripted):
    key = ODD_KEYS[2]
    body = json.dumps({"error": {"message": f"key {key} revoked", "code": "invalid_api_key"}})
    url = scripted(full_reply(401, body))
    with pytest.raises(AuthError) as info:
        ChatClient(odd_settings(url, key), max_retries=0).chat(HELLO)
    assert "invalid_api_key" in info.value.body and "revoked" in info.value.body
    assert_key_hidden(key, info.value.body)


@pytest.mark.parametrize("key", ODD_KEYS)
def test_redact_hides_any_key_and_its_pieces(key):
    text = f"a {key} b {key[3:17]} c {json.dumps(key)} d"
    shown = redact(text, key)
    assert_key_hidden(key, shown)
    assert shown.startswith("a *** b *** c ") and shown.endswith(" d")
    assert redact(text, Secret(key)) == shown  # a Secret works as well as the plain value


def test_redact_leaves_ordinary_words_alone():
    assert redact("task-manager asked for a risk-assessment") == (
        "task-manager asked for a risk-assessment"
    )
    assert redact("short key abc stays", "abc") == "short key abc stays"  # too short to hide


def test_stream_redactor_hides_a_key_split_over_pieces():
    key = ODD_KEYS[0]
    hide = StreamRedactor(key)
    text = f"第一行\n密钥是 {key}，别说出去\n"
    shown = "".join(hide.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + hide.flush()
    assert shown == "第一行\n密钥是 ***，别说出去\n"
    plain = StreamRedactor("")
    assert plain.feed("abc") + plain.flush() == "abc"
    practice = StreamRedactor("local-practice-key")
    assert practice.feed("你好！") == "你好！"  # text that cannot be part of the key is not held
    assert practice.feed("问题 local-") == "问题 "  # this could be: held until it is clear
    assert practice.feed("s are fine!") == "local-s are fine!"
    assert practice.feed("local-practice-key") + practice.flush() == "***"


# -- the chat CLI ------------------------------------------------------------------------------
def _run_chat(url: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(
        LLM_PROVIDER="openai",
        LLM_BASE_URL=url,
        LLM_API_KEY=key,
        PYTHONPATH=str(ROOT),
        PYTHONIOENCODING="utf-8",
        NO_PROXY="127.0.0.1,localhost",
    )
    return subprocess.run(
        [sys.executable, "-m", "lesson_helpers", "chat", "你好"],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("place", ["401 JSON", "error event", "200 HTML", "request id"])
def test_chat_cli_never_prints_an_echoed_key(scripted, place):
    key = ODD_KEYS[3]
    result = _run_chat(scripted(_echo_places(key)[place]), key)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("错误：")
    assert_key_hidden(key, result.stdout, result.stderr)


def test_chat_cli_hides_the_key_even_inside_the_answer(scripted):
    key = ODD_KEYS[0]
    pieces = [chunk(f"回答里有 {key[:9]}"), chunk(f"{key[9:]} 这串字")]
    end = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    done = b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n"
    result = _run_chat(scripted(sse(*pieces, done)), key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "回答里有 *** 这串字"
    assert_key_hidden(key, result.stdout, result.stderr)
