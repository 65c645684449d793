"""Replaying recordings on the local server: LocalServer(replay=...), connect(replay=...),
`serve --replay`; byte for byte, piece for piece, at the recorded pace."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time

import pytest
import requests
from conftest import ROOT

from lesson_helpers import ChatClient, LocalServer, connect, errors
from lesson_helpers.config import Secret, Settings
from lesson_helpers.local_server.replay import ReplayModel, install
from lesson_helpers.recording import (
    SHIPPED,
    Piece,
    Recording,
    RecordingError,
    dumps,
    read,
    shipped_names,
    write,
)

ERRORS = ROOT / "tests" / "fixtures" / "provider_errors"
SERVE = [sys.executable, "-m", "lesson_helpers", "serve"]
HELLO = [{"role": "user", "content": "你好"}]


def recording(**changes) -> Recording:
    fields = {
        "api": "chat",
        "request": {"method": "POST", "path": "/v1/chat/completions", "body": {}},
        "status": 200,
        "headers": {"Content-Type": "text/event-stream"},
        "pieces": (
            Piece(0.1, b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'),
            Piece(0.2, b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'),
            Piece(0.25, b"data: [DONE]\n\n"),
        ),
        "end": 0.26,
        "description": "一段测试录音",
        "head_at": 0.05,
        "name": "t",
    }
    fields.update(changes)
    return Recording(**fields)


def post(server: LocalServer, model: str, path: str = "/chat/completions", **extra):
    headers = {"Authorization": f"Bearer {server.api_key}", "anthropic-version": "2023-06-01"}
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}
    return requests.post(
        server.base_url + path, headers=headers, json=body, timeout=10, stream=True
    )


def settings_for(server: LocalServer, model: str) -> Settings:
    return Settings(Secret(server.api_key or ""), server.base_url, model, provider="local")


@pytest.fixture(scope="module")
def shipped_server():
    with LocalServer(replay=shipped_names(), replay_speed=0) as server:
        yield server


# -- what a replay server offers ------------------------------------------------------------------
def test_each_recording_is_a_model_with_its_description(shipped_server):
    response = requests.get(
        shipped_server.base_url + "/models",
        headers={"Authorization": f"Bearer {shipped_server.api_key}"},
        timeout=5,
    )
    listed = {m["id"]: m for m in response.json()["data"]}
    for name in shipped_names():
        entry = listed[f"replay:{name}"]
        assert read(SHIPPED / f"{name}.jsonl").description in entry["description"]
        assert "\n" not in entry["description"]
    assert "Qwen/Qwen2.5-7B-Instruct" in listed  # the ordinary models are still there


def test_only_that_server_has_them(shipped_server):
    with LocalServer() as plain:
        assert not [m for m in plain.models if m.startswith("replay:")]
        assert post(plain, "replay:siliconflow_seed").status_code == 404


@pytest.mark.parametrize("name", shipped_names())
def test_every_shipped_recording_replays_byte_for_byte(shipped_server, name):
    recorded = read(SHIPPED / f"{name}.jsonl")
    with post(shipped_server, f"replay:{name}", stream=True) as response:
        assert response.status_code == recorded.status
        assert response.headers["Content-Type"] == recorded.header("Content-Type")
        assert "Content-Encoding" not in response.headers
        body = b"".join(iter(lambda: response.raw.read1(65536), b""))
    assert body == recorded.body


def test_the_key_still_guards_a_replay(shipped_server):
    response = requests.post(
        shipped_server.base_url + "/chat/completions",
        json={"model": "replay:siliconflow_seed", "messages": []},
        timeout=5,
    )
    assert response.status_code == 401


# -- pace -----------------------------------------------------------------------------------------
def timed_pieces(server: LocalServer, model: str) -> tuple[float, list[tuple[float, bytes]]]:
    started = time.monotonic()
    with post(server, model) as response:
        head = time.monotonic() - started
        got = []
        while piece := response.raw.read1(65536):
            got.append((time.monotonic() - started, piece))
    return head, got


def test_pieces_arrive_at_their_recorded_times():
    rec = recording(
        pieces=(Piece(0.3, b"data: 1\n\n"), Piece(0.6, b"data: 2\n\n"), Piece(0.7, b"data: 3\n\n")),
        end=0.7,
        head_at=0.15,
    )
    with LocalServer(replay=rec) as server:
        head, got = timed_pieces(server, "replay:t")
    assert [data for _, data in got] == [p.data for p in rec.pieces]
    assert 0.13 <= head <= 0.3
    for (at, _), piece in zip(got, rec.pieces, strict=True):
        assert abs(at - piece.t) < 0.1, (at, piece.t)


def test_speed_divides_the_times_and_zero_does_not_wait():
    rec = recording(pieces=(Piece(0.2, b"data: 1\n\n"), Piece(0.8, b"data: 2\n\n")), end=0.8)
    with LocalServer(replay=rec, replay_speed=4) as server:
        _, got = timed_pieces(server, "replay:t")
    assert 0.08 <= got[1][0] - got[0][0] <= 0.25
    with LocalServer(replay=rec, replay_speed=0) as server:
        _, got = timed_pieces(server, "replay:t")
    assert got[-1][0] < 0.15


@pytest.mark.parametrize("speed", [-1, float("nan"), 1001, "2", True])
def test_a_bad_speed_is_refused(speed):
    with pytest.raises(ValueError, match="replay_speed"):
        LocalServer(replay=recording(), replay_speed=speed)


# -- framing and endings --------------------------------------------------------------------------
def test_a_length_body_is_sent_with_its_length_in_pieces():
    rec = recording(
        headers={"Content-Type": "application/json"},
        pieces=(Piece(0.05, b'{"choices":'), Piece(0.15, b"[]}")),
        end=0.15,
        transfer="length",
    )
    with LocalServer(replay=rec) as server, post(server, "replay:t") as response:
        assert response.headers["Content-Length"] == str(len(rec.body))
        assert "Transfer-Encoding" not in response.headers
        assert response.raw.read() == rec.body


def test_a_close_delimited_body_ends_with_the_connection():
    rec = recording(transfer="close")
    with LocalServer(replay=rec) as server, post(server, "replay:t") as response:
        assert "Content-Length" not in response.headers
        assert response.headers.get("Connection") == "close"
        assert response.raw.read() == rec.body


def test_a_cut_recording_is_cut_again_and_the_client_keeps_the_text():
    rec = recording(pieces=recording().pieces[:1], end=0.2, outcome="cut")
    with LocalServer(replay=rec, replay_speed=0) as server:
        with pytest.raises(errors.StreamError) as caught:
            list(ChatClient(settings_for(server, "replay:t")).stream([]))
    assert caught.value.partial_text == "a"


@pytest.mark.parametrize("status", [200, 500])
def test_a_length_body_that_broke_off_breaks_off_again(status):
    rec = recording(
        status=status,
        headers={"Content-Type": "application/json"},
        pieces=(Piece(0.05, b'{"choi'),),
        end=0.1,
        transfer="length",
        outcome="cut",
    )
    with LocalServer(replay=rec, replay_speed=0) as server, post(server, "replay:t") as response:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            response.content  # noqa: B018 -- reading it is the test
    with LocalServer(replay=rec, replay_speed=0) as server:
        with pytest.raises(errors.LLMError):
            ChatClient(settings_for(server, "replay:t"), max_retries=0).chat(HELLO)


def test_an_error_status_with_pieces_keeps_the_pieces():
    page = (Piece(0.05, b"<html><title>502 Bad"), Piece(0.25, b" Gateway</title></html>"))
    rec = recording(status=502, headers={"Content-Type": "text/html"}, pieces=page, end=0.25)
    with LocalServer(replay=rec) as server:
        _, got = timed_pieces(server, "replay:t")
    assert [data for _, data in got] == [p.data for p in page]
    assert got[1][0] - got[0][0] > 0.1


# -- the API a recording was made with ------------------------------------------------------------
def test_a_chat_recording_is_refused_on_the_other_apis_in_their_shapes(shipped_server):
    with post(shipped_server, "replay:siliconflow_seed", "/responses", input="x") as response:
        assert response.status_code == 400
        assert "/v1/chat/completions" in response.json()["error"]["message"]
    with post(shipped_server, "replay:siliconflow_seed", "/messages", max_tokens=5) as response:
        assert response.status_code == 400
        assert response.json()["type"] == "error"  # Anthropic's shape


def test_other_models_work_as_before_on_a_replay_server(shipped_server):
    assert "".join(ChatClient(settings_for(shipped_server, "gpt-4o-mini")).stream(HELLO).text())
    with post(shipped_server, "gpt-4o-mini", "/responses", input="你好") as response:
        assert response.status_code == 200
    with post(shipped_server, "fault-401") as response:
        assert response.status_code == 401


def test_a_replay_model_registered_by_hand_replays_on_the_chat_route():
    with LocalServer(replay=recording()) as source:
        model = source.models["replay:t"]
    assert isinstance(model, ReplayModel)
    with LocalServer() as server:
        server.register(model)
        with post(server, "replay:t") as response:
            assert response.raw.read() == recording().body


def test_install_twice_does_not_wrap_twice(shipped_server):
    install(shipped_server, [recording(name="again")], 0)
    install(shipped_server, [recording(name="again")], 0)
    with post(shipped_server, "replay:again") as response:
        assert response.raw.read() == recording().body


# -- the client on real-shaped streams and errors -------------------------------------------------
@pytest.mark.parametrize("fixture", sorted(ERRORS.glob("*.json")), ids=lambda p: p.stem)
def test_the_client_says_each_providers_own_words(shipped_server, fixture):
    expect = json.loads(fixture.read_text("utf-8"))["expect"]
    client = ChatClient(settings_for(shipped_server, f"replay:{fixture.stem}"), max_retries=0)
    with pytest.raises(errors.LLMError) as caught:
        list(client.stream([]))
    assert type(caught.value).__name__ == expect["class"]
    assert expect["says"] in str(caught.value) and "\n" not in str(caught.value)


def test_the_client_reads_the_real_shapes(shipped_server):
    def result(name: str):
        stream = ChatClient(settings_for(shipped_server, f"replay:{name}")).stream([])
        text = "".join(stream.text())
        return text, stream.result

    text, _ = result("siliconflow_seed")
    assert text == "你好！有什么问题或者需要帮助的吗？"
    text, reasoner = result("deepseek_reasoner")
    assert text and reasoner.reasoning_content and reasoner.usage["completion_tokens"] > 0
    text, usage = result("openai_include_usage")
    assert usage.usage["total_tokens"] == 19
    _, tools = result("openai_tool_call")
    assert tools.finish_reason == "tool_calls" and tools.tool_calls[0].name == "get_weather"
    assert json.loads(tools.tool_calls[0].arguments) == {"city": "北京"}
    _, cut = result("siliconflow_length")
    assert cut.finish_reason == "length"
    text, _ = result("openrouter_processing")
    assert "流式输出" in text and "�" not in text


def test_the_openai_sdk_reads_a_replay(shipped_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=shipped_server.base_url, api_key=shipped_server.api_key)
    stream = client.chat.completions.create(
        model="replay:openai_include_usage",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 19


# -- connect(replay=...) --------------------------------------------------------------------------
def test_connect_replay_points_at_the_first_recording(capsys):
    settings = connect(replay=["siliconflow_seed", "openai_wrong_key"], replay_speed=0)
    out = capsys.readouterr().out
    assert settings.model == "replay:siliconflow_seed" and settings.provider == "local"
    assert "replay:siliconflow_seed" in out and "replay:openai_wrong_key" in out
    assert len(out.strip().splitlines()) == 1
    text = "".join(ChatClient(settings).stream([]).text())
    assert text == "你好！有什么问题或者需要帮助的吗？"


def test_connect_replay_with_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = dumps(recording()).splitlines()
    bad.write_text("\n".join([lines[0], '{"t": 0.1}', *lines[1:]]) + "\n")
    with pytest.raises(RecordingError) as caught:
        connect(replay=bad, quiet=True)
    message = str(caught.value)
    assert "bad.jsonl" in message and "第 2 行" in message and "\n" not in message
    assert caught.value._render_traceback_() == [f"RecordingError: {message}"]


def test_a_bad_recording_does_not_take_a_port(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(RecordingError, match="第 1 行"):
        LocalServer(replay=bad)
    with pytest.raises(RecordingError, match="没有给出"):
        LocalServer(replay=[])


# -- serve --replay -------------------------------------------------------------------------------
def serve_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def test_serve_replay_with_a_malformed_file_says_which_file_and_line(tmp_path):
    good = write(tmp_path / "good.jsonl", recording(name="good"))
    lines = good.read_text("utf-8").splitlines()
    (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], lines[1]]) + "\n")  # no end line
    result = subprocess.run(
        [*SERVE, "--replay", str(tmp_path)],
        cwd=tmp_path,
        env=serve_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "bad.jsonl" in result.stderr and "不完整" in result.stderr


def test_serve_replay_lists_what_it_replays(tmp_path):
    write(tmp_path / "mine.jsonl", recording(name="mine"))
    replays = ["--replay", str(tmp_path / "mine.jsonl"), "--replay", "siliconflow_seed"]
    proc = subprocess.Popen(
        [*SERVE, "--port", "0", *replays, "--replay-speed", "0"],
        cwd=tmp_path,
        env=serve_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        proc.stdout.readline()
        listing = proc.stdout.readline()
        assert "replay:mine" in listing and "replay:siliconflow_seed" in listing
        response = requests.post(
            base_url + "/chat/completions",
            headers={"Authorization": "Bearer local-practice-key"},
            json={"model": "replay:mine", "messages": []},
            timeout=10,
        )
        assert response.content == recording().body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_replay_modules_use_the_standard_library_only():
    """The local server is stdlib only and never imports the client: nor do these two."""
    allowed = {"recording", "exchange", "models", "routes", "server"}
    for path in (
        ROOT / "lesson_helpers" / "recording.py",
        ROOT / "lesson_helpers" / "local_server" / "replay.py",
    ):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert (node.module or "") in allowed, (path.name, node.module)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [alias.name for alias in node.names]
                )
                for name in names:
                    top = (name or "").split(".")[0]
                    assert top in sys.stdlib_module_names or top == "__future__", (path, name)
