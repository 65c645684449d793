"""app.py, the standalone streaming chat: run as a program against the real local server.

Also a few in-process tests of its SSE splitting (compared with lesson_helpers' parser) and
of what it may import. app.py itself imports nothing from the kit.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from conftest import routed_output, run_script

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
        ("LLM_BASE_URL", "api.siliconflow.cn/v1", "不是网址"),
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
        ("fault-429", "HTTP 429"),
        ("fault-500", "HTTP 500"),
        ("fault-403", "HTTP 403"),
        ("fault-context-too-long", "/clear"),
    ],
)
def test_answers_that_are_not_a_stream_fail_clearly(server, model, says):
    needs_model(model)
    result = run_app(["你好"], app_env(server, model))
    assert_clean_failure(result)
    assert says in result.stderr
    assert result.stdout == ""


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


# -- lesson 05's exercise check (trim_history, the conversation history of app.py) ------------
def _pairs_only(messages, max_turns):
    return messages[-2 * max_turns :]


def _drops_system(messages, max_turns):
    rest = [m for m in messages if m["role"] != "system"]
    starts = [i for i, m in enumerate(rest) if m["role"] == "user"]
    return rest if len(starts) <= max_turns else rest[starts[-max_turns] :]


def _pairs_after_system(messages, max_turns):
    head = [m for m in messages if m["role"] == "system"]
    rest = messages[len(head) :]
    return head + (rest if len(rest) <= 2 * max_turns else rest[-2 * max_turns :])


def _mutates(messages, max_turns):
    while sum(m["role"] == "user" for m in messages) > max_turns:
        messages.pop(0)
    return messages


def _never_trims(messages, max_turns):
    return messages


def _crashes(messages, max_turns):
    return messages[max_turns + 10]


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        (_pairs_only, "system 消息"),
        (_drops_system, "system 消息是给模型的设定"),
        (_pairs_after_system, "也算一轮"),
        (_mutates, "改动了传进来的 messages"),
        (_never_trims, "从后往前数 max_turns 条 user 消息"),
        (_crashes, "抛出了 IndexError"),
    ],
)
def test_trim_history_check_catches_typical_mistakes(capsys, wrong, expected):
    from lesson_helpers.checks.lesson05 import check_trim_history

    check_trim_history(wrong)
    out = routed_output(capsys)
    assert out.startswith("✗"), out
    assert expected in out, out
    assert "提示：" in out


def test_trim_history_check_accepts_the_reference(capsys):
    from lesson_helpers.checks.lesson05 import check_trim_history, reference_trim_history

    check_trim_history(reference_trim_history)
    assert routed_output(capsys).startswith("✓ trim_history：6 个用例都对")
