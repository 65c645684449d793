"""app.py, the standalone streaming chat: run as a program against the real local server.

What the local server cannot do (a body shorter than its Content-Length, bad gzip, redirect
loops, the key sent back, other providers' stream and error shapes) comes from a small
scripted stdlib server below. Also a few in-process tests of its SSE splitting (compared with
lesson_helpers' parser), of hiding the key, and of what it may import. app.py itself imports
nothing from the kit.
"""

from __future__ import annotations

import ast
import http.server
import importlib.util
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from conftest import run_script

from lesson_helpers.local_server import MODELS, LocalServer
from lesson_helpers.local_server.replies import reply_pieces
from lesson_helpers.sse import SSEParser

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
SEED_USAGE = "[用量] 提问 30 + 回答 10 = 40 tokens"
LONG_QUESTION = "什么是流式输出？"
LONG_ANSWER = "".join(reply_pieces([{"role": "user", "content": LONG_QUESTION}]))
WRONG_KEY = "fake-key-wrong-0000000000"
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals and ptys: POSIX only")


# -- helpers ---------------------------------------------------------------------------------
def app_env(server: LocalServer | None, model: str = "Qwen/Qwen2.5-7B-Instruct", **extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env.update(NO_COLOR="1", PYTHONIOENCODING="utf-8", LLM_TIMEOUT="10", LLM_MODEL=model)
    if server is not None:
        env.update(LLM_BASE_URL=server.base_url, LLM_API_KEY=server.api_key or "")
    env.update(extra)
    return env


def run_app(
    args: list[str], env: dict[str, str], stdin: str | None = None, app: Path = APP
) -> subprocess.CompletedProcess[str]:
    return run_script(app, args, env, stdin)


def needs_model(model: str) -> None:
    if model not in MODELS:
        pytest.skip(f"the local server has no {model} scenario yet")


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_clean_failure(result: subprocess.CompletedProcess[str], max_lines: int = 2) -> None:
    """Exit status 1 and one or two lines on stderr, no traceback."""
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert 1 <= len(error_lines(result)) <= max_lines, result.stderr


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("course_app_under_test", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """Children inherit an *ignored* SIGINT (e.g. under `cmd &`), and Python then never turns
    Ctrl-C into KeyboardInterrupt. A handler (not SIG_IGN) is reset to default by exec."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


def read_until(process: subprocess.Popen[bytes], wanted: bytes, timeout: float = 10) -> bytes:
    """Read the child's stdout until ``wanted`` has appeared."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, f"{wanted!r} never appeared; got {seen!r}"
        piece = os.read(process.stdout.fileno(), 4096)  # type: ignore[union-attr]
        assert piece, f"stdout closed before {wanted!r}; got {seen!r}"
        seen += piece
    return seen


@pytest.fixture(scope="module")
def slow_server():
    """One token every 100 ms: slow enough to press Ctrl-C in the middle of an answer."""
    with LocalServer(pace=0.1) as srv:
        yield srv


# -- one question ----------------------------------------------------------------------------
def test_one_question_streams_the_seed_reply_and_usage(server):
    result = run_app(["你好"], app_env(server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{SEED_TEXT}\n{SEED_USAGE}\n"
    assert result.stderr == ""


def test_words_of_a_question_are_joined(server):
    result = run_app(["什么是", "流式输出？"], app_env(server))
    assert result.returncode == 0
    assert result.stdout.startswith(LONG_ANSWER)


def test_openai_style_stream_reports_usage_because_the_app_asks_for_it(server):
    result = run_app(["你好"], app_env(server, "gpt-4o-mini"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{SEED_TEXT}\n{SEED_USAGE}\n"


def test_reasoning_is_labelled_before_the_answer(server):
    result = run_app(["你好"], app_env(server, "deepseek-ai/DeepSeek-R1"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[思考] 嗯，用户问的是「你好」。")
    assert lines[1] == f"[回答] {SEED_TEXT}"
    assert lines[2].startswith("[用量] 提问 30 + 回答 ")
    assert "\x1b" not in result.stdout  # no colours when stdout is not a terminal


@posix_only
def test_reasoning_is_dimmed_in_a_terminal(server):
    import pty

    env = app_env(server, "deepseek-ai/DeepSeek-R1")
    env.pop("NO_COLOR")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(APP), "你好"], stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    output = b""
    try:
        while piece := os.read(leader, 4096):
            output += piece
    except OSError:  # EIO: the child closed the terminal
        pass
    finally:
        os.close(leader)
    assert process.wait(timeout=20) == 0
    text = output.decode()
    assert "\x1b[2m[思考] " in text
    assert "\x1b[0m\r\n[回答] " + SEED_TEXT in text


# -- a conversation --------------------------------------------------------------------------
def test_conversation_keeps_history_and_clear_forgets_it(server):
    stdin = "你好\n我刚才问了什么\n/clear\n我刚才问了什么\n/quit\n你好\n"
    result = run_app([], app_env(server), stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index(SEED_TEXT) < out.index("你刚才问的是：「你好」。")
    assert out.index("你刚才问的是：「你好」。") < out.index("对话已清空")
    assert out.index("对话已清空") < out.index("这是我们对话的第一句")
    assert out.count("[用量]") == 3  # the question after /quit was never asked
    assert result.stderr == ""


def test_end_of_input_ends_the_conversation(server):
    result = run_app([], app_env(server), stdin="你好\n")
    assert result.returncode == 0
    assert SEED_TEXT in result.stdout


@pytest.mark.parametrize("command", ["/exit", "quit", "退出"])
def test_other_quit_commands(server, command):
    result = run_app([], app_env(server), stdin=f"{command}\n你好\n")
    assert result.returncode == 0
    assert SEED_TEXT not in result.stdout


def test_conversation_survives_a_broken_stream(server):
    needs_model("fault-cut-mid-stream")
    # The failed question is forgotten, so the next one is the first of the conversation.
    env = app_env(server, "fault-cut-mid-stream")
    result = run_app([], env, stdin="你好\n")
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    assert "断开" in result.stderr


def test_conversation_stops_on_a_wrong_key(server):
    env = app_env(server, LLM_API_KEY=WRONG_KEY)
    result = run_app([], env, stdin="你好\n你好\n")
    assert_clean_failure(result)
    assert result.stderr.count("HTTP 401") == 1


# -- settings and errors ---------------------------------------------------------------------
def test_wrong_key_is_one_clear_error_without_the_key(server):
    result = run_app(["你好"], app_env(server, LLM_API_KEY=WRONG_KEY))
    assert_clean_failure(result)
    first, second = error_lines(result)
    assert first.startswith("错误：HTTP 401：Incorrect API key provided.")
    assert "LLM_API_KEY" in second
    assert WRONG_KEY not in result.stdout + result.stderr
    assert result.stdout == ""


def test_unknown_model_is_a_404_with_a_hint(server):
    result = run_app(["你好"], app_env(server, "no-such-model"))
    assert_clean_failure(result)
    assert "HTTP 404" in result.stderr
    assert "LLM_MODEL" in result.stderr


def test_unreachable_server():
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = app_env(None, LLM_BASE_URL=f"http://127.0.0.1:{port}/v1", LLM_API_KEY="fake-key")
    started = time.monotonic()
    result = run_app(["你好"], env)
    assert time.monotonic() - started < 15
    assert_clean_failure(result, max_lines=1)
    assert f"连不上 http://127.0.0.1:{port}/v1" in result.stderr


@pytest.mark.parametrize("key", [None, "", "your-api-key-here"])
def test_no_key_says_where_to_put_one_or_how_to_use_the_local_server(tmp_path, key):
    app = tmp_path / "app.py"  # away from the kit, so no .env with a real key is found
    shutil.copyfile(APP, app)
    env = app_env(None)
    if key is not None:
        env["LLM_API_KEY"] = key
    result = run_app(["你好"], env, app=app)
    assert_clean_failure(result)
    assert ".env" in error_lines(result)[0]
    assert "python -m lesson_helpers serve" in error_lines(result)[1]
    assert "LLM_BASE_URL=" in error_lines(result)[1]
    assert "LLM_API_KEY=" in error_lines(result)[1]


def test_key_from_dotenv_file(tmp_path, server):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    (tmp_path / ".env").write_text(
        f"LLM_API_KEY={server.api_key}\nLLM_BASE_URL={server.base_url}\n", encoding="utf-8"
    )
    result = run_app(["你好"], app_env(None), app=app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(SEED_TEXT)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LLM_TIMEOUT", "soon", "LLM_TIMEOUT"),
        ("LLM_TIMEOUT", "-1", "LLM_TIMEOUT"),
        ("LLM_TIMEOUT", "abc", "LLM_TIMEOUT"),
        ("LLM_TIMEOUT", "nan", "LLM_TIMEOUT"),
        ("LLM_TIMEOUT", "inf", "LLM_TIMEOUT"),
        ("LLM_TIMEOUT", "1e10", "LLM_TIMEOUT"),  # too big for a socket: OverflowError
        ("LLM_TIMEOUT", "0", "0.1 到 3600"),  # a socket with timeout 0 never waits
        ("LLM_TIMEOUT", "1e-300", "0.1 到 3600"),  # every request would time out
        ("LLM_TIMEOUT", "0.09", "0.1 到 3600"),
        ("LLM_TIMEOUT", "3601", "0.1 到 3600"),
        ("LLM_BASE_URL", "api.siliconflow.cn/v1", "不是网址"),
        ("LLM_BASE_URL", "http:///v1", "LLM_BASE_URL"),  # no host
        ("LLM_BASE_URL", "http://127.0.0.1:99999/v1", "LLM_BASE_URL"),  # port out of range
        ("LLM_BASE_URL", "http://127.0.0.1:abc/v1", "LLM_BASE_URL"),
        ("LLM_BASE_URL", "http://127.0.0.1：40181/v1", "全角"),  # the IME's colon: NFKC error
        ("LLM_BASE_URL", "http://[::1/v1", "不是网址"),  # urlsplit: "Invalid IPv6 URL"
        ("LLM_BASE_URL", "http://[not-an-ip]/v1", "不是网址"),
        ("LLM_BASE_URL", "http://127.0.0.1 :8000/v1", "空格"),
        ("LLM_BASE_URL", "http://api..siliconflow.cn/v1", "不是网址"),  # LocationParseError
        ("LLM_BASE_URL", "HTTP://[::1]:0/v1", "不是网址"),
        ("LLM_MODEL", "a\nb", "LLM_MODEL='a\\nb'"),  # shown with repr, on one line
        ("LLM_MODEL", "Qwen/Qwen2.5 7B", "空格"),
        ("LLM_MODEL", "qwen\u200b", "看不见的字符"),
        ("LLM_API_KEY", "fake key", "空格"),
        ("LLM_API_KEY", "“fake-key”", "中文"),
    ],
)
def test_bad_settings_are_one_line(server, name, value, expected):
    result = run_app(["你好"], app_env(server, **{name: value}))
    assert_clean_failure(result, max_lines=1)
    assert expected in result.stderr


def test_config_repr_hides_the_key(monkeypatch):
    module = load_app()
    monkeypatch.setattr(module, "load_dotenv", lambda: None)  # never read a real .env here
    monkeypatch.setenv("LLM_API_KEY", "fake-key-for-tests-0001")
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    monkeypatch.delenv("LLM_MODEL", raising=False)
    monkeypatch.setenv("LLM_PROVIDER", "deepseek")
    config = module.load_config()
    assert config.base_url == "https://api.deepseek.com/v1"
    assert config.model == "deepseek-chat"
    assert "fake-key-for-tests-0001" not in repr(config)


# -- the fault lab ---------------------------------------------------------------------------
RECOVERABLE = [
    "fault-crlf",
    "fault-keepalive",
    "fault-close-delimited",
    "fault-split-utf8",
    "fault-no-charset",
    "fault-gzip",
    "fault-slow-first-token",
    "fault-no-done",
]


@pytest.mark.parametrize("model", RECOVERABLE)
def test_stream_oddities_give_exactly_the_normal_text(server, model):
    needs_model(model)
    result = run_app([LONG_QUESTION], app_env(server, model))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == LONG_ANSWER
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("model", "says", "extra"),
    [
        ("fault-cut-mid-stream", "连接在回答结束前断开了", {}),
        ("fault-error-event", "Upstream inference worker failed", {}),
        ("fault-malformed-json", "不是 JSON 对象", {}),
        ("fault-stall", "1 秒没有发来新内容", {"LLM_TIMEOUT": "1"}),
    ],
)
def test_broken_streams_keep_the_partial_text_and_fail_clearly(server, model, says, extra):
    needs_model(model)
    result = run_app(["你好"], app_env(server, model, **extra))
    assert_clean_failure(result, max_lines=1)
    assert says in result.stderr
    partial = result.stdout.splitlines()[0]
    assert partial and SEED_TEXT.startswith(partial) and partial != SEED_TEXT
    assert "[用量]" not in result.stdout


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("fault-json-not-stream", "Content-Type: application/json"),
        ("fault-html-200", "Content-Type: text/html"),
        ("fault-502-html", "HTTP 502：一个网页「502 Bad Gateway」"),
        ("fault-413", "413 Request Entity Too Large"),
        ("fault-413", "请求体太大"),
        ("fault-413", "若是问题太长，请缩短后再问。"),
        ("fault-429", "HTTP 429"),
        ("fault-500", "HTTP 500"),
        ("fault-403", "HTTP 403"),
        ("fault-context-too-long", "若是问题太长，请缩短后再问。"),
        ("fault-400", "若是问题太长"),
    ],
)
def test_answers_that_are_not_a_stream_fail_clearly(server, model, says):
    needs_model(model)
    result = run_app(["你好"], app_env(server, model))
    assert_clean_failure(result)
    assert says in result.stderr
    assert "/clear" not in result.stderr  # there is no conversation to clear
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("model", "status", "hint"),
    [
        ("fault-context-too-long", 400, "超过了模型的上下文长度"),
        ("fault-413", 413, "请求体太大"),
        ("fault-400", 400, "请求内容有误"),
    ],
)
def test_in_a_conversation_a_request_too_long_says_to_clear_it(server, model, status, hint):
    needs_model(model)
    result = run_app([], app_env(server, model), stdin="你好\n/quit\n")
    assert result.returncode == 0, result.stderr
    errors = error_lines(result)
    assert len(errors) == 2 and errors[0].startswith(f"错误：HTTP {status}："), result.stderr
    assert hint in errors[1]
    assert errors[1].endswith("若是对话太长，输入 /clear 清空后再问。")


@pytest.mark.parametrize(
    ("model", "note"),
    [
        ("fault-length", "长度上限"),
        ("fault-content-filter", "内容审核"),
        ("fault-tool-calls", "工具"),
        ("fault-reasoning-only", "长度上限"),
    ],
)
def test_unusual_endings_are_explained(server, model, note):
    needs_model(model)
    result = run_app(["你好"], app_env(server, model))
    assert result.returncode == 0, result.stderr
    assert "[注意] " in result.stdout and note in result.stdout
    assert "[用量]" in result.stdout


def test_close_delimited_stream_appears_while_it_arrives():
    needs_model("fault-close-delimited")
    with LocalServer(pace=0.03) as srv:  # about two seconds for the whole answer
        env = app_env(srv, "fault-close-delimited")
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, str(APP), LONG_QUESTION], stdout=subprocess.PIPE, env=env
        )
        first = read_until(process, LONG_ANSWER[:4].encode())
        seen_at = time.monotonic()
        rest, _ = process.communicate(timeout=20)
        ended = time.monotonic()
    assert process.returncode == 0
    assert (first + rest).decode().startswith(LONG_ANSWER)
    # iter_lines() would have shown everything at the very end, when the connection closed.
    assert ended - seen_at > 0.8, (seen_at - started, ended - started)


# -- Ctrl-C ----------------------------------------------------------------------------------
@posix_only
def test_ctrl_c_keeps_the_partial_answer_and_exits_without_traceback(slow_server):
    with sigint_not_ignored():
        process = subprocess.Popen(
            [sys.executable, str(APP), LONG_QUESTION],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=app_env(slow_server),
        )
    shown = read_until(process, LONG_ANSWER[:6].encode())
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=10)
    out, err_text = (shown + rest).decode(), err.decode()
    assert process.returncode == 130
    assert "Traceback" not in err_text
    assert "已停止" in err_text
    partial = out.splitlines()[0]
    assert LONG_ANSWER.startswith(partial) and len(partial) < len(LONG_ANSWER)


@posix_only
def test_ctrl_c_in_a_conversation_stops_the_answer_and_keeps_the_chat(slow_server):
    with sigint_not_ignored():
        process = subprocess.Popen(
            [sys.executable, str(APP)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=app_env(slow_server),
        )
    assert process.stdin is not None
    process.stdin.write(f"{LONG_QUESTION}\n".encode())
    process.stdin.flush()
    shown = read_until(process, LONG_ANSWER[:6].encode())
    process.send_signal(signal.SIGINT)
    process.stdin.write("我刚才问了什么\n/quit\n".encode())
    process.stdin.flush()
    rest, err = process.communicate(timeout=15)
    out, err_text = (shown + rest).decode(), err.decode()
    assert process.returncode == 0, err_text
    assert "Traceback" not in err_text
    assert "已停止" in err_text
    assert f"你刚才问的是：「{LONG_QUESTION}」" in out


@posix_only
def test_ctrl_c_at_the_prompt_ends_quietly(server):
    with sigint_not_ignored():
        process = subprocess.Popen(
            [sys.executable, str(APP)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=app_env(server),
        )
    read_until(process, "你> ".encode())
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"Traceback" not in err


# -- inside app.py ---------------------------------------------------------------------------
def test_app_imports_only_requests_dotenv_and_the_standard_library():
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules - sys.stdlib_module_names == {"requests", "dotenv"}


def test_app_never_lets_requests_decode_text():
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not used & {"encoding", "text", "iter_lines", "iter_content", "apparent_encoding"}


def split_everywhere(data: bytes) -> Iterator[list[bytes]]:
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def kit_events(data: bytes) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in SSEParser().feed(data)]


def test_sse_splitting_matches_the_kit_parser_at_every_cut(seed_stream_bytes):
    iter_sse_events = load_app().iter_sse_events
    expected = kit_events(seed_stream_bytes)
    assert expected[-1] == ("message", "[DONE]")
    assert list(iter_sse_events([seed_stream_bytes])) == expected
    for pieces in split_everywhere(seed_stream_bytes):
        assert list(iter_sse_events(pieces)) == expected
    one_byte_pieces = [seed_stream_bytes[i : i + 1] for i in range(len(seed_stream_bytes))]
    assert list(iter_sse_events(one_byte_pieces)) == expected


@pytest.mark.parametrize(
    "stream",
    [
        b'data: {"a": "\xe4\xbd\xa0"}\r\n\r\ndata: [DONE]\r\n\r\n',  # CRLF
        b": ping\n\ndata: x\n\n: keep-alive\n\ndata: [DONE]\n\n",  # comments
        b"event: error\ndata: {}\n\ndata:no-space\n\n",  # event type, no space after colon
        b"data: one\ndata: two\n\nid: 7\nretry: 10\ndata\n\n",  # several data lines, bare name
        b"id: 1\n\ndata: only the complete event\n\ndata: unterminated",  # dropped at the end
    ],
)
def test_sse_rules_match_the_kit_parser(stream):
    iter_sse_events = load_app().iter_sse_events
    for pieces in split_everywhere(stream):
        assert list(iter_sse_events(pieces)) == kit_events(stream)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"error": {"message": "Incorrect API key provided."}}', "Incorrect API key provided."),
        ('{"code": 20015, "message": "Model disabled.", "data": null}', "Model disabled."),
        ('{"error": "quota exceeded"}', "quota exceeded"),
        ("Bad   gateway\n", "Bad gateway"),
        ("<html><title>502 Bad Gateway</title></html>", "一个网页「502 Bad Gateway」"),
        ("", "（没有说明）"),
    ],
)
def test_provider_message(body, expected):
    assert load_app().provider_message(body).startswith(expected)


# -- a scripted server for what the local server does not do ---------------------------------
# Each test registers a "model": a function from the key the client sent (Authorization) to the
# raw bytes of the whole HTTP response (or a list of pieces, sent with a pause between them),
# written as they are and followed by closing the connection. So a response can lie about its
# length, be badly compressed, redirect forever, or repeat the key anywhere.
Respond = Callable[[str], bytes | list[bytes]]
_scripted_models = itertools.count(1)


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.received.append((dict(self.headers), body))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        respond = self.server.routes.get(body.get("model"))
        answer = respond(key) if respond else response_bytes("404 Not Found", {})
        for piece in [answer] if isinstance(answer, bytes) else answer:  # a list: with pauses
            self.wfile.write(piece)
            time.sleep(0.05)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


class ScriptedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.routes: dict[str, Respond] = {}
        self.received: list[tuple[dict[str, str], dict]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def scripted_env(srv: ScriptedServer, respond: Respond, key: str = "not-a-real-key-0000", **extra):
    model = f"scripted-{next(_scripted_models)}"
    srv.routes[model] = respond
    return app_env(None, model, LLM_BASE_URL=srv.base_url, LLM_API_KEY=key, **extra)


def response_bytes(
    status: str,
    body: dict | str | bytes,
    content_type: str = "application/json",
    headers: tuple[str, ...] = (),
    length: int | None = None,
) -> bytes:
    """A whole HTTP response; ``length`` overrides Content-Length (a body cut short)."""
    if isinstance(body, dict | list):
        body = json.dumps(body, ensure_ascii=False)
    data = body.encode() if isinstance(body, str) else body
    head = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(data) if length is None else length}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def sse_bytes(*events: dict | str) -> bytes:
    """An event stream: a dict is one ``data:`` event, a str is sent exactly as written."""
    return b"".join(
        f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode()
        if isinstance(e, dict)
        else e.encode()
        for e in events
    )


def stream_response(*events: dict | str, headers: tuple[str, ...] = ()) -> bytes:
    """HTTP 200 with an event stream that ends when the connection closes."""
    head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + sse_bytes(*events)


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> dict:
    """A chat.completion.chunk with one choice (index 0); ``extra`` adds top-level fields."""
    choice = {"index": 0, "delta": delta if delta is not None else {}, "finish_reason": finish}
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "test-model",
        "choices": [choice],
        **extra,
    }


def pieces_of(key: str) -> list[str]:
    """Every 12-character piece of the key: none of them may be shown."""
    return [key[i : i + 12] for i in range(len(key) - 11)] or [key]


def assert_key_hidden(result: subprocess.CompletedProcess[str], key: str) -> None:
    shown = result.stdout + result.stderr
    leaked = [piece for piece in pieces_of(key) if piece in shown]
    assert not leaked, shown


HELLO = chunk({"role": "assistant", "content": "你好"})
DONE = "data: [DONE]\n\n"


# -- issue 16: the key stays hidden even when a server sends it back ----------------------------
# Keys of several shapes, none of them real (and none shaped like sk-…).
ECHOED_KEYS = [
    "not-a-real-key-0123456789abcdef",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "fake.jwt-like.token_not_real_000",
]

ECHOES: dict[str, Respond] = {
    "401 JSON": lambda key: response_bytes(
        "401 Unauthorized", {"error": {"message": f"Invalid API key: {key}"}}
    ),
    "401 piece": lambda key: response_bytes(
        "401 Unauthorized", {"error": {"message": f"key …{key[3:17]}… is not valid"}}
    ),
    "403 text": lambda key: response_bytes(
        "403 Forbidden", f"key {key} may not use this model", "text/plain"
    ),
    "502 HTML": lambda key: response_bytes(
        "502 Bad Gateway",
        f"<html><head><title>Gateway refused {key}</title></head><body>{key}</body></html>",
        "text/html",
    ),
    "200 HTML": lambda key: response_bytes(
        "200 OK", f"<html><title>请登录 {key}</title></html>", "text/html; charset=utf-8"
    ),
    "200 JSON error": lambda key: response_bytes(
        "200 OK", {"error": {"message": f"upstream rejected key {key}"}}
    ),
    "200 odd content type": lambda key: response_bytes("200 OK", "hi", f"text/plain; key={key}"),
    "X-Request-Id": lambda key: response_bytes(
        "500 Internal Server Error",
        {"error": {"message": "The server had an error."}},
        headers=(f"X-Request-Id: {key}",),
    ),
    "error event": lambda key: stream_response(
        HELLO, f"event: error\ndata: upstream rejected key {key}\n\n"
    ),
    "error chunk": lambda key: stream_response(
        HELLO, {"error": {"message": f"upstream rejected key {key}", "type": "server_error"}}
    ),
    "malformed event": lambda key: stream_response(HELLO, f'data: {{"choices": "{key}\n\n'),
}


@pytest.mark.parametrize("key", ECHOED_KEYS)
@pytest.mark.parametrize("where", sorted(ECHOES))
def test_a_key_sent_back_by_the_server_is_never_shown(scripted, where, key):
    result = run_app(["你好"], scripted_env(scripted, ECHOES[where], key))
    assert_clean_failure(result)
    assert_key_hidden(result, key)
    if "event" in where or "chunk" in where:
        assert result.stdout.startswith("你好")  # the text that arrived before stays


def test_a_key_in_an_answers_finish_reason_is_hidden(scripted):
    key = ECHOED_KEYS[0]
    respond = lambda key: stream_response(HELLO, chunk({}, finish=f"rejected-{key}"), DONE)  # noqa: E731
    result = run_app(["你好"], scripted_env(scripted, respond, key))
    assert result.returncode == 0, result.stderr
    assert "[注意]" in result.stdout
    assert_key_hidden(result, key)


# -- issue 16: no traceback, whatever comes back ------------------------------------------------
def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=31)
    return packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)


BROKEN_RESPONSES: dict[str, tuple[Respond, str]] = {
    "error body cut short": (
        lambda key: response_bytes(
            "401 Unauthorized", '{"error": {"message": "Incorrect API key', length=400
        ),
        "HTTP 401",
    ),
    "error body badly gzipped": (
        lambda key: response_bytes(
            "401 Unauthorized", b"this is not gzip", headers=("Content-Encoding: gzip",)
        ),
        "HTTP 401",
    ),
    "redirect loop": (
        lambda key: (
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /v1/chat/completions\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        "重定向",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_RESPONSES))
def test_broken_responses_are_one_clear_error(scripted, case):
    respond, says = BROKEN_RESPONSES[case]
    result = run_app(["你好"], scripted_env(scripted, respond))
    assert_clean_failure(result)
    assert says in result.stderr
    assert result.stdout == ""


BROKEN_STREAMS: dict[str, tuple[Respond, str]] = {
    "stream cut short of its Content-Length": (
        lambda key: response_bytes("200 OK", sse_bytes(HELLO), "text/event-stream", length=9999),
        "断开",
    ),
    "stream badly gzipped": (
        lambda key: [
            response_bytes(
                "200 OK",
                _gzip(sse_bytes(HELLO)),
                "text/event-stream",
                headers=("Content-Encoding: gzip",),
                length=0,
            ).replace(b"Content-Length: 0\r\n", b""),
            b"\x00garbage after the good part" * 4,
        ],
        "解不开",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_STREAMS))
def test_broken_streams_keep_what_arrived(scripted, case):
    respond, says = BROKEN_STREAMS[case]
    result = run_app(["你好"], scripted_env(scripted, respond))
    assert_clean_failure(result)
    assert says in result.stderr
    assert result.stdout.startswith("你好")


MALFORMED_CHUNKS = {
    "choices a string": {"choices": "oops"},
    "choices [null]": {"choices": [None]},
    "delta a string": {"choices": [{"index": 0, "delta": "oops"}]},
    "content a number": chunk({"content": 5}),
    "content part a number": chunk({"content": [{"type": "text", "text": 5}]}),
    "reasoning a list": chunk({"reasoning": ["a"]}),
    "usage a list": chunk({"content": "！"}, usage=[1, 2]),
    "tool_calls a string": chunk({"tool_calls": "oops"}),
    "finish_reason a number": chunk({}, finish=7),  # type: ignore[arg-type]
    "nested too deep": "data: " + "[" * 100_000 + "\n\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CHUNKS))
def test_malformed_chunks_are_one_clear_error_and_keep_the_text(scripted, case):
    bad = MALFORMED_CHUNKS[case]
    result = run_app(
        ["你好"], scripted_env(scripted, lambda key: stream_response(HELLO, bad, DONE))
    )
    assert_clean_failure(result)
    assert result.stdout.startswith("你好")
    assert "[用量]" not in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("socks") is not None, reason="PySocks is installed")
def test_a_socks_proxy_without_pysocks_is_one_clear_error(scripted):
    env = scripted_env(scripted, lambda key: stream_response(HELLO, DONE))
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        env.pop(name, None)
    env.pop("all_proxy", None)  # the lower-case name wins over ALL_PROXY
    env["ALL_PROXY"] = "socks5://127.0.0.1:1"
    result = run_app(["你好"], env)
    assert_clean_failure(result)
    assert "PySocks" in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfeL\x00L\x00M\x00", "UTF-8"),  # UTF-16 with a BOM (PowerShell 5's echo > .env)
        ("# 密钥\nLLM_API_KEY=x\n".encode("gbk"), "UTF-8"),  # Notepad's "ANSI" on Chinese Windows
    ],
)
def test_a_dotenv_that_is_not_utf8_is_one_clear_error(tmp_path, content, says):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    (tmp_path / ".env").write_bytes(content)
    result = run_app(["你好"], app_env(None), app=app)
    assert_clean_failure(result, max_lines=1)
    assert ".env" in result.stderr and says in result.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('LLM_API_KEY="fake-key-for-review-0000\n', "第 1 行（LLM_API_KEY）的引号没有闭合"),
        ("# 设置\r\nNOTE=\"x\r\n\r\nLLM_API_KEY='fake-key-for-review-0000\r\n", "第 4 行"),
        ('LLM_API_KEY="fake-key-for-review-0000" 0000\n', "引号后面还有别的内容"),
        ("LLM_API_KEY: fake-key-for-review-0000\n", "「名字=值」"),
    ],
)
def test_an_unreadable_line_of_dotenv_is_one_clear_error(tmp_path, text, says):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    (tmp_path / ".env").write_bytes(text.encode("utf-8"))
    result = run_app(["你好"], app_env(None), app=app)
    assert_clean_failure(result, max_lines=1)
    assert result.stderr.startswith("错误：.env 第 ") and says in result.stderr
    assert "python-dotenv could not parse" not in result.stderr
    assert "fake-key-for-review" not in result.stderr


def test_unreadable_lines_for_other_programs_are_skipped_quietly(tmp_path, server):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    text = f"\ufeffNOTE='x\nLLM_API_KEY={server.api_key}\nLLM_BASE_URL={server.base_url}\n"
    (tmp_path / ".env").write_text(text, encoding="utf-8")  # with a BOM, like Notepad's
    result = run_app(["你好"], app_env(None), app=app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(SEED_TEXT)
    assert result.stderr == ""


class CountedPiece(bytes):
    """A piece of the body that counts the bytes each concatenation or search goes through."""

    handled = 0

    def __add__(self, other: bytes) -> bytes:  # type: ignore[override]
        CountedPiece.handled += len(self) + len(other)
        return bytes(self) + other

    def __radd__(self, other: bytes) -> bytes:
        CountedPiece.handled += len(self) + len(other)
        return other + bytes(self)

    def split(self, *args, **kwargs) -> list[bytes]:  # type: ignore[override]
        CountedPiece.handled += len(self)
        return bytes(self).split(*args, **kwargs)


def test_a_very_long_line_is_buffered_in_linear_work():
    iter_sse_events = load_app().iter_sse_events
    line = b"data: " + b"x" * (2 * 1024 * 1024) + b"\n\n"
    pieces = [CountedPiece(line[i : i + 1024]) for i in range(0, len(line), 1024)]
    CountedPiece.handled = 0
    events = list(iter_sse_events(pieces))
    assert events == [("message", "x" * (2 * 1024 * 1024))]
    # Appending every piece to the unfinished line (buffer += piece) copies the line again for
    # each piece: about 2 GiB here. Linear work touches each byte a few times.
    assert CountedPiece.handled < 4 * len(line), CountedPiece.handled


def test_a_multi_megabyte_answer_in_one_line_comes_out_whole(scripted):
    text = "长" * (1024 * 1024)  # 3 MiB of UTF-8 in a single data line
    respond = lambda key: stream_response(chunk({"content": text}), chunk({}, "stop"), DONE)  # noqa: E731
    result = run_app(["你好"], scripted_env(scripted, respond))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == text


# -- issue 14: the stream shapes real providers send ------------------------------------------
# Written from the providers' documented formats (not copied from any recording).
def usage(prompt: int, completion: int) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def weather_call(index: int | None = 0, **fields: object) -> dict:
    call = {"type": "function", **fields}
    if index is not None:
        call["index"] = index
    return call


SHAPES: dict[str, tuple[list[dict | str], str]] = {
    # Groq (also OpenRouter, vLLM >= 0.10, Ollama): the thinking in delta.reasoning, and the
    # usage in x_groq.usage of the last chunk.
    "reasoning field, usage in x_groq": (
        [
            chunk({"role": "assistant", "content": "", "reasoning": "用户在"}),
            chunk({"reasoning": "打招呼。"}),
            chunk({"content": "你好"}),
            chunk({"content": "！"}),
            chunk({}, "stop", x_groq={"id": "req_test", "usage": usage(9, 6)}),
            DONE,
        ],
        "[思考] 用户在打招呼。\n[回答] 你好！\n[用量] 提问 9 + 回答 6 = 15 tokens\n",
    ),
    # Mistral: delta.content as a list of parts; "thinking" parts hold the reasoning.
    "content parts with thinking": (
        [
            chunk(
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "想"}]}],
                }
            ),
            chunk(
                {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "一想。"}]}
                    ]
                }
            ),
            chunk({"content": [{"type": "text", "text": "你好"}]}),
            chunk({"content": "！"}),
            chunk({"content": ""}, "stop", usage=usage(8, 5)),
            DONE,
        ],
        "[思考] 想一想。\n[回答] 你好！\n[用量] 提问 8 + 回答 5 = 13 tokens\n",
    ),
    # Mistral: whole tool calls without "index"; a new id starts the next call, a fragment
    # without an id continues the last one.
    "tool calls without index": (
        [
            chunk({"role": "assistant", "content": ""}),
            chunk(
                {
                    "tool_calls": [
                        weather_call(
                            None,
                            id="a1b2c3d4e",
                            function={"name": "get_weather", "arguments": '{"city": '},
                        )
                    ]
                }
            ),
            chunk({"tool_calls": [weather_call(None, function={"arguments": '"北京"}'})]}),
            chunk(
                {
                    "tool_calls": [
                        weather_call(
                            None, id="f5g6h7i8j", function={"name": "get_time", "arguments": "{}"}
                        )
                    ]
                }
            ),
            chunk({}, "tool_calls"),
            DONE,
        ],
        '[工具调用] get_weather({"city": "北京"})\n[工具调用] get_time({})\n',
    ),
    # DashScope (Qwen): later fragments carry "id": "" (which must not replace the real id).
    "tool call fragments with empty ids": (
        [
            chunk({"role": "assistant", "content": None}),
            chunk(
                {
                    "tool_calls": [
                        weather_call(
                            0, id="call_ds_0", function={"name": "get_weather", "arguments": ""}
                        )
                    ]
                }
            ),
            chunk({"tool_calls": [weather_call(0, id="", function={"arguments": '{"city":'})]}),
            chunk({"tool_calls": [weather_call(0, id="", function={"arguments": ' "上海"}'})]}),
            chunk({"content": None}, "tool_calls"),
            DONE,
        ],
        '[工具调用] get_weather({"city": "上海"})\n',
    ),
    # Groq, xAI: a whole tool call in one delta.
    "whole tool call in one delta": (
        [
            chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        weather_call(
                            0,
                            id="call_g_0",
                            function={"name": "get_time", "arguments": '{"zone": "UTC"}'},
                        )
                    ],
                }
            ),
            chunk({}, "tool_calls"),
            DONE,
        ],
        '[工具调用] get_time({"zone": "UTC"})\n',
    ),
    # Azure: a first chunk with no choices, "role": null and "tool_calls": null in every delta,
    # extra fields such as matched_stop and content_filter_results.
    "nulls and extra fields": (
        [
            {
                "id": "",
                "object": "",
                "created": 0,
                "model": "",
                "choices": [],
                "prompt_filter_results": [],
            },
            chunk({"role": "assistant", "content": "你", "tool_calls": None, "refusal": None}),
            chunk({"role": None, "content": "好", "tool_calls": None, "refusal": None}),
            {
                **chunk({"role": None, "content": None, "tool_calls": None}, "stop"),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": None, "content": None, "tool_calls": None},
                        "finish_reason": "stop",
                        "matched_stop": 151645,
                        "content_filter_results": {},
                        "logprobs": None,
                    }
                ],
            },
            DONE,
        ],
        "你好\n[用量] 服务器没有告诉我们用了多少 token\n",
    ),
    # OpenAI: "obfuscation" padding and "logprobs"; the usage in a last chunk without choices.
    "obfuscation and include_usage": (
        [
            chunk({"role": "assistant", "content": "", "refusal": None}, obfuscation="Qx7"),
            chunk({"content": "你好"}, obfuscation="a"),
            chunk({"content": "！"}, obfuscation="LmN0p"),
            chunk({}, "stop", obfuscation="zz"),
            {**chunk(), "choices": [], "usage": usage(7, 2), "obfuscation": "k"},
            DONE,
        ],
        "你好！\n[用量] 提问 7 + 回答 2 = 9 tokens\n",
    ),
    # OpenAI: the model declines; the text comes in delta.refusal instead of delta.content.
    "refusal": (
        [
            chunk({"role": "assistant", "content": None, "refusal": ""}),
            chunk({"refusal": "抱歉，"}),
            chunk({"refusal": "这个我不能帮忙。"}),
            chunk({}, "stop"),
            DONE,
        ],
        "[拒绝] 抱歉，这个我不能帮忙。\n[用量] 服务器没有告诉我们用了多少 token\n",
    ),
    # DeepSeek: "content": null while it reasons; the usage only in the last chunk.
    "reasoning_content with null content": (
        [
            chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
            chunk({"content": None, "reasoning_content": "先想"}),
            chunk({"content": None, "reasoning_content": "一下。"}),
            chunk({"content": "你好", "reasoning_content": None}),
            chunk({"content": "", "reasoning_content": None}, "stop", usage=usage(6, 4)),
            DONE,
        ],
        "[思考] 先想一下。\n[回答] 你好\n[用量] 提问 6 + 回答 4 = 10 tokens\n",
    ),
    # n = 3: the choices' chunks take turns; only choice 0 is this program's answer.
    "interleaved choices": (
        [
            *(
                {
                    **chunk(),
                    "choices": [{"index": i, "delta": {"content": text}, "finish_reason": None}],
                }
                for text in ("你", "好")
                for i in (2, 0, 1)
            ),
            *(
                {**chunk(), "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]}
                for i in (1, 0, 2)
            ),
            DONE,
        ],
        "你好\n[用量] 服务器没有告诉我们用了多少 token\n",
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_stream_shapes_of_real_providers_are_shown_exactly(scripted, shape):
    events, expected = SHAPES[shape]
    result = run_app(["你好"], scripted_env(scripted, lambda key: stream_response(*events)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if "tool" in shape:  # the calls, then why the answer ended, then the usage
        lines = result.stdout.splitlines()
        assert result.stdout.startswith(expected), result.stdout
        assert "[注意]" in lines[-2] and "工具" in lines[-2]
    else:
        assert result.stdout == expected


@pytest.mark.parametrize(
    ("reason", "note"),
    [
        ("length", "长度上限"),
        ("content_filter", "内容审核"),
        ("insufficient_system_resource", "资源不足"),  # DeepSeek
        ("something_new", "something_new"),
    ],
)
def test_why_an_answer_ended_is_said_when_unusual(scripted, reason, note):
    respond = lambda key: stream_response(HELLO, chunk({}, reason), DONE)  # noqa: E731
    result = run_app(["你好"], scripted_env(scripted, respond))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("你好\n[注意] ")
    assert note in result.stdout.splitlines()[1]


# -- issue 13: each provider's own error message ----------------------------------------------
# (status, body, the message the provider gave, the hint, a hint that would be wrong here)
QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."
PROVIDER_ERRORS = {
    "siliconflow wrong key": (
        "401 Unauthorized",
        '"Invalid token"',
        "Invalid token",
        "LLM_API_KEY",
        None,
    ),
    "siliconflow bad parameter": (
        "400 Bad Request",
        {"code": 20015, "message": "The parameter is invalid. Please check again.", "data": None},
        "The parameter is invalid. Please check again.",
        "LLM_MODEL",
        None,
    ),
    "siliconflow no balance": (
        "403 Forbidden",
        {"code": 30001, "message": "Sorry, your account balance is insufficient", "data": None},
        "Sorry, your account balance is insufficient",
        "充值",
        "实名",
    ),
    "siliconflow rate limit": (
        "429 Too Many Requests",
        {"code": 50603, "message": "Request was rejected due to rate limiting.", "data": None},
        "Request was rejected due to rate limiting.",
        "稍等",
        "充值",
    ),
    "deepseek wrong key": (
        "401 Unauthorized",
        {
            "error": {
                "message": "Authentication Fails, Your api key: ****0000 is invalid",
                "type": "authentication_error",
                "param": None,
                "code": "invalid_request_error",
            }
        },
        "Authentication Fails, Your api key: ****0000 is invalid",
        "LLM_API_KEY",
        None,
    ),
    "deepseek no balance": (
        "402 Payment Required",
        {
            "error": {
                "message": "Insufficient Balance",
                "type": "unknown_error",
                "param": None,
                "code": "invalid_request_error",
            }
        },
        "Insufficient Balance",
        "充值",
        "稍等",
    ),
    "deepseek rate limit": (
        "429 Too Many Requests",
        {"error": {"message": "Rate Limit Reached", "type": "rate_limit_error", "code": None}},
        "Rate Limit Reached",
        "稍等",
        "充值",
    ),
    "openai wrong key": (
        "401 Unauthorized",
        {
            "error": {
                "message": "Incorrect API key provided: not-a-r****0000.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        "Incorrect API key provided: not-a-r****0000.",
        "LLM_API_KEY",
        None,
    ),
    "openai quota used up": (
        "429 Too Many Requests",
        {
            "error": {
                "message": QUOTA_MESSAGE,
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
        QUOTA_MESSAGE,
        "充值",
        "稍等",
    ),
    "openai rate limit": (
        "429 Too Many Requests",
        {
            "error": {
                "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
        "稍等",
        "充值",
    ),
}


@pytest.mark.parametrize("case", sorted(PROVIDER_ERRORS))
def test_each_providers_own_error_message_is_shown(scripted, case):
    status, body, message, hint, wrong_hint = PROVIDER_ERRORS[case]
    result = run_app(["你好"], scripted_env(scripted, lambda key: response_bytes(status, body)))
    assert_clean_failure(result)
    first, second = error_lines(result)
    assert first == f"错误：HTTP {status.split()[0]}：{message}"
    assert hint in second
    if wrong_hint:
        assert wrong_hint not in second


def test_money_trouble_ends_a_conversation(scripted):
    _, body, *_ = PROVIDER_ERRORS["openai quota used up"]
    env = scripted_env(scripted, lambda key: response_bytes("429 Too Many Requests", body))
    result = run_app([], env, stdin="你好\n你好\n")
    assert_clean_failure(result)
    assert result.stderr.count("HTTP 429") == 1  # waiting or asking again cannot help


# -- issue 14/15: provider presets ------------------------------------------------------------
def test_provider_table_matches_the_kit():
    from lesson_helpers.config import PROVIDERS

    presets = load_app().PRESETS
    assert set(presets) == set(PROVIDERS)
    for name, preset in presets.items():
        kit = PROVIDERS[name]
        mine = (preset.base_url, preset.model, preset.needs_key)
        assert mine == (kit.base_url, kit.model, getattr(kit, "needs_key", None)), name


@pytest.mark.parametrize(
    ("provider", "base_url", "model"),
    [
        ("openrouter", "https://openrouter.ai/api/v1", "openai/gpt-4o-mini"),
        ("groq", "https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
        ("ollama", "http://localhost:11434/v1", "qwen2.5:7b"),
        ("lmstudio", "http://localhost:1234/v1", "qwen2.5-7b-instruct"),
        ("vllm", "http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct"),
    ],
)
def test_presets_for_hosted_and_local_model_servers(monkeypatch, provider, base_url, model):
    module = load_app()
    monkeypatch.setattr(module, "load_dotenv", lambda: None)
    for name in ("LLM_BASE_URL", "LLM_MODEL", "LLM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLM_PROVIDER", provider)
    monkeypatch.setenv("LLM_API_KEY", "not-a-real-key-0000")
    config = module.load_config()
    assert (config.base_url, config.model) == (base_url, model)


@pytest.mark.parametrize("provider", ["ollama", "lmstudio", "vllm"])
def test_a_model_server_on_this_computer_needs_no_key(scripted, provider):
    respond = lambda key: stream_response(HELLO, chunk({}, "stop"), DONE)  # noqa: E731
    env = scripted_env(scripted, respond, key="", LLM_PROVIDER=provider)
    env.pop("LLM_API_KEY")
    before = len(scripted.received)
    result = run_app(["你好"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("你好\n")
    headers, _ = scripted.received[before]
    assert "Authorization" not in headers  # no key: no empty "Bearer " either


def test_a_hosted_provider_still_needs_a_key(tmp_path):
    app = tmp_path / "app.py"
    shutil.copyfile(APP, app)
    result = run_app(["你好"], app_env(None, LLM_PROVIDER="groq"), app=app)
    assert_clean_failure(result)
    assert "LLM_API_KEY" in result.stderr


# -- inside app.py: hiding the key ---------------------------------------------------------------
def test_hide_key_hides_the_key_and_every_long_piece_of_it():
    hide_key = load_app().hide_key
    key = "not-a-real-key-0123456789abcdef"
    assert hide_key(f"rejected {key}.", key) == "rejected " + "*" * len(key) + "."
    piece = key[5:20]  # 15 characters from the middle
    assert hide_key(f"key …{piece}…", key) == "key …" + "*" * len(piece) + "…"
    assert hide_key("nothing secret here", key) == "nothing secret here"
    assert hide_key(key[:11] + " and more", key) == key[:11] + " and more"  # 11: too short


def test_hide_key_leaves_answers_alone_for_a_placeholder_key():
    hide_key = load_app().hide_key
    assert hide_key("用 ollama 在本机运行模型", "ollama") == "用 ollama 在本机运行模型"
    assert hide_key("the key short-key is wrong", "short-key") == "the key *** is wrong"
