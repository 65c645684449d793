"""`python -m lesson_helpers record`, end to end: a fake provider, recorded, then replayed.

The fake provider (standard library only) sends what real ones do: keep-alive comments, a
UTF-8 character split between two writes, a pause in the middle of the stream. It is
recorded through the real command with a fake key, replayed through `serve --replay` (a
subprocess) and `LocalServer(replay=...)`, and compared byte for byte, piece for piece and
pause for pause. No file and no output may ever hold the key.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import ROOT

from lesson_helpers import ChatClient, LocalServer
from lesson_helpers.config import Secret, Settings
from lesson_helpers.errors import StreamError
from lesson_helpers.record import RecordError, record
from lesson_helpers.recording import RecordingError, read

FAKE_KEY = "not-a-real-key-for-recording-0000"
PAUSE = 0.3  # the "second-long" pause of the issue, shortened for the test
TOLERANCE = 0.12
GAP = 0.06  # between the fake provider's writes: long enough to arrive as separate pieces
RUN_TIMEOUT = 30


def chunk(content: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    body = {"id": "fake", "object": "chat.completion.chunk", "model": "fake", "choices": [choice]}
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


SPLIT = chunk("你好")
CUT = SPLIT.index("好".encode()) + 1  # inside 好: its first byte in one write, two in the next
WRITES: list[tuple[float, bytes]] = [
    (GAP, b": keep-alive\n\n"),
    (GAP, chunk("")),
    (GAP, SPLIT[:CUT]),
    (GAP, SPLIT[CUT:]),
    (GAP, chunk("，")),
    (PAUSE, b": keep-alive\n\n"),  # the pause: the provider is thinking
    (GAP, chunk("世界")),
    (GAP, chunk("", "stop")),
    (GAP, b"data: [DONE]\n\n"),
]
ANSWER = "你好，世界"
PAUSED_PIECE = 5  # index of the piece that comes after the pause


@dataclass
class Script:
    """What the fake provider answers."""

    writes: list[tuple[float, bytes]] = field(default_factory=lambda: list(WRITES))
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/event-stream; charset=utf-8"}
    )
    framing: str = "chunked"  # or "length", "cut" (chunked, then the connection drops)
    gzip: bool = False


class FakeProvider:
    """An OpenAI-compatible provider on 127.0.0.1 that follows a Script (standard library)."""

    def __init__(self, script: Script, key: str = FAKE_KEY) -> None:
        self.script = script
        self.key = key
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(size) or b"null")
                provider.requests.append({"path": self.path, "body": body})
                if self.headers.get("Authorization") != f"Bearer {provider.key}":
                    self._send(401, {"Content-Type": "application/json"}, b'{"error":"no"}')
                    return
                provider.answer(self)

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        script = self.script
        handler.send_response(script.status)
        for name, value in script.headers.items():
            handler.send_header(name, value)
        if script.framing == "length":
            data = b"".join(d for _, d in script.writes)
            data = gzip.compress(data) if script.gzip else data
            if script.gzip:
                handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()
        for delay, data in script.writes:
            time.sleep(delay)
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()
        if script.framing == "cut":
            handler.close_connection = True
            return
        handler.wfile.write(b"0\r\n\r\n")

    def __enter__(self) -> FakeProvider:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def env_for(base_url: str, key: str = FAKE_KEY, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "OPENAI_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(LLM_BASE_URL=base_url, LLM_API_KEY=key, LLM_PROVIDER="openai", LLM_MODEL="fake")
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


def no_key_anywhere(*texts: str, key: str = FAKE_KEY) -> None:
    for text in texts:
        assert key not in text
        assert key[-8:] not in text  # not even its tail


def one_line(text: str) -> str:
    """The one line a failure printed (besides the "正在录制：…" progress line)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("正在录制")]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def arrivals(response: requests.Response, started: float) -> list[tuple[float, bytes]]:
    """Each piece of a streaming response's body with when it arrived."""
    out = []
    while piece := response.raw.read1(65536, decode_content=True):
        out.append((time.monotonic() - started, piece))
    return out


def pause_of(times: list[float]) -> float:
    return times[PAUSED_PIECE] - times[PAUSED_PIECE - 1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The fake provider's stream, recorded once through the real command."""
    folder = tmp_path_factory.mktemp("recorded")
    with FakeProvider(Script()) as fake:
        result = run(["record", "--out", "fake.jsonl", "你好"], folder, env_for(fake.base_url))
        assert fake.requests[0]["body"]["messages"][-1]["content"] == "你好"
        assert fake.requests[0]["path"] == "/v1/chat/completions"
    return folder / "fake.jsonl", result


# -- recording ------------------------------------------------------------------------------------
def test_record_streams_the_answer_and_writes_the_recording(recorded):
    path, result = recorded
    assert result.returncode == 0, result.stderr
    assert ANSWER in result.stdout  # shown as it arrived
    assert "已录制到 fake.jsonl" in result.stderr and "replay:fake" in result.stderr
    recording = read(path)
    assert recording.status == 200
    assert recording.header("Content-Type") == "text/event-stream; charset=utf-8"
    assert recording.transfer == "chunked" and recording.outcome == "complete"
    assert recording.request["body"]["messages"] == [{"role": "user", "content": "你好"}]
    assert recording.source == "recorded" and recording.provider == "openai"


def test_the_recording_is_the_bytes_and_pieces_that_were_sent(recorded):
    recording = read(recorded[0])
    assert recording.body == b"".join(data for _, data in WRITES)
    assert [p.data for p in recording.pieces] == [data for _, data in WRITES]
    text = recorded[0].read_text("utf-8")
    assert '"base64"' in text  # the split character: both halves as exact bytes


def test_the_recording_has_the_pause_and_the_timing(recorded):
    recording = read(recorded[0])
    times = [p.t for p in recording.pieces]
    assert times == sorted(times) and recording.head_at <= times[0]
    assert abs(pause_of(times) - PAUSE) < TOLERANCE
    assert recording.end >= times[-1]


def test_no_file_or_output_holds_the_key(recorded):
    path, result = recorded
    no_key_anywhere(path.read_text("utf-8"), result.stdout, result.stderr)


# -- replaying ------------------------------------------------------------------------------------
@contextmanager
def serve(args: list[str], cwd: Path) -> Iterator[str]:
    """`python -m lesson_helpers serve ARGS` in a subprocess; yields its base URL."""
    env = env_for("", key="")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lesson_helpers", "serve", "--port", "0", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=RUN_TIMEOUT), "serve printed nothing"
        yield proc.stdout.readline().decode().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_replay_sends_it_back_byte_for_byte_piece_for_piece_with_its_pause(recorded):
    path = recorded[0]
    recording = read(path)
    with serve(["--replay", str(path)], path.parent) as base_url:
        headers = {"Authorization": "Bearer local-practice-key"}
        listed = requests.get(base_url + "/models", headers=headers, timeout=5).json()
        entry = next(m for m in listed["data"] if m["id"] == "replay:fake")
        assert recording.description in entry["description"]
        started = time.monotonic()
        body = {"model": "replay:fake", "messages": [{"role": "user", "content": "?"}]}
        with requests.post(
            base_url + "/chat/completions", headers=headers, json=body, stream=True, timeout=10
        ) as response:
            head_at = time.monotonic() - started
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            got = arrivals(response, started)
    assert b"".join(data for _, data in got) == recording.body
    assert [data for _, data in got] == [p.data for p in recording.pieces]
    assert abs(pause_of([t for t, _ in got]) - PAUSE) < TOLERANCE
    assert head_at >= recording.head_at - 0.01


def test_local_server_replay_and_the_client_reads_the_same_text(recorded):
    path = recorded[0]
    with LocalServer(replay=path) as server:
        settings = Settings(Secret(server.api_key or ""), server.base_url, "replay:fake")
        stream = ChatClient(settings).stream([{"role": "user", "content": "?"}])
        started = time.monotonic()
        times, text = [], ""
        for piece in stream.text():
            times.append(time.monotonic() - started)
            text += piece
    assert text == ANSWER
    assert stream.result.finish_reason == "stop" and stream.done
    assert max(b - a for a, b in itertools.pairwise(times)) > PAUSE - TOLERANCE


def test_replay_speed_changes_the_pace(recorded):
    path = recorded[0]
    for speed, low, high in ((0, 0.0, 0.15), (2, PAUSE / 2 - 0.08, PAUSE / 2 + 0.1)):
        with LocalServer(replay=path, replay_speed=speed) as server:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            body = {"model": "replay:fake", "messages": []}
            started = time.monotonic()
            with requests.post(
                server.base_url + "/chat/completions", headers=headers, json=body, stream=True
            ) as response:
                got = arrivals(response, started)
        assert b"".join(d for _, d in got) == read(path).body
        times = [t for t, _ in got]
        span = times[-1] - times[0] if speed == 0 else pause_of(times)
        assert low <= span <= high, (speed, span)


# -- refusing the key -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            Script(
                headers={
                    "Content-Type": "text/event-stream",
                    "X-Ratelimit-Debug": f"key={FAKE_KEY}",
                }
            ),
            id="in-a-header",
        ),
        pytest.param(
            Script(writes=[(0.01, chunk(f"your key is {FAKE_KEY}")), *WRITES]), id="in-the-body"
        ),
        pytest.param(Script(writes=[(0.01, chunk(f"…{FAKE_KEY[-10:]}")), *WRITES]), id="its-tail"),
        pytest.param(
            Script(
                status=401,
                headers={"Content-Type": "application/json", "X-Ratelimit-Echo": FAKE_KEY},
                writes=[(0.01, json.dumps({"error": {"message": f"bad key {FAKE_KEY}"}}).encode())],
            ),
            id="an-error-that-quotes-it",
        ),
    ],
)
def test_a_response_that_echoes_the_key_is_not_recorded(tmp_path, script):
    with FakeProvider(script) as fake:
        result = run(["record", "--out", "leak.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 1
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("错误")]
    assert len(line) == 1 and "密钥" in line[0] and "没有写入" in line[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "leak.jsonl").exists()
    assert list(tmp_path.iterdir()) == []  # not even a temporary file
    no_key_anywhere(result.stdout, result.stderr)


@pytest.mark.parametrize("name", ["Set-Cookie", "X-Echo"])
def test_a_key_echoed_in_any_header_is_refused_too(tmp_path, name):
    # A recording would drop these headers, but a server that sends the key back is a
    # problem the recorder must point out.
    headers = {"Content-Type": "text/event-stream", name: f"key={FAKE_KEY}"}
    with FakeProvider(Script(headers=headers)) as fake:
        result = run(["record", "--out", "x.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("错误")]
    assert len(errors) == 1 and "响应头" in errors[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    no_key_anywhere(result.stdout, result.stderr)


def test_cookies_and_other_headers_are_never_recorded(tmp_path):
    headers = {"Content-Type": "text/event-stream", "Set-Cookie": "session=abc", "X-Other": "1"}
    with FakeProvider(Script(headers=headers)) as fake:
        result = run(["record", "--out", "ok.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "ok.jsonl").read_text("utf-8")
    assert "cookie" not in text.lower() and "session=abc" not in text and "X-Other" not in text


# -- errors are recorded too ----------------------------------------------------------------------
def test_an_error_response_is_recorded_with_the_providers_words(tmp_path):
    body = b'{"code":20015,"message":"Invalid token","data":null}'
    script = Script(status=401, headers={"Content-Type": "application/json"}, writes=[(0, body)])
    script.framing = "length"
    with FakeProvider(script) as fake:
        result = run(["record", "--out", "e401.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 0, result.stderr
    assert "HTTP 401" in result.stderr and "Invalid token" in result.stderr
    recording = read(tmp_path / "e401.jsonl")
    assert (recording.status, recording.body, recording.transfer) == (401, body, "length")
    with LocalServer(replay=tmp_path / "e401.jsonl") as server:
        settings = Settings(Secret(server.api_key or ""), server.base_url, "replay:e401")
        with pytest.raises(Exception, match="Invalid token") as caught:
            list(ChatClient(settings, max_retries=0).stream([]))
    assert caught.value.status == 401


def test_an_html_error_page_is_recorded_as_it_came(tmp_path):
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\r\n"
    script = Script(status=502, headers={"Content-Type": "text/html"}, writes=[(0.05, page)])
    with FakeProvider(script) as fake:
        result = run(["record", "--out", "gw.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 0, result.stderr
    assert "502 Bad Gateway" in result.stderr
    recording = read(tmp_path / "gw.jsonl")
    assert recording.status == 502 and recording.body == page


def test_a_gzip_body_is_recorded_decoded(tmp_path):
    script = Script(framing="length", gzip=True)
    with FakeProvider(script) as fake:
        result = run(["record", "--out", "gz.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 0, result.stderr
    recording = read(tmp_path / "gz.jsonl")
    assert recording.content_encoding == "gzip" and recording.transfer == "length"
    assert recording.body == b"".join(d for _, d in WRITES)
    with LocalServer(replay=tmp_path / "gz.jsonl", replay_speed=0) as server:
        settings = Settings(Secret(server.api_key or ""), server.base_url, "replay:gz")
        assert "".join(ChatClient(settings).stream([]).text()) == ANSWER


def test_a_stream_that_breaks_off_is_recorded_and_replays_broken(tmp_path):
    script = Script(writes=WRITES[:5], framing="cut")
    with FakeProvider(script) as fake:
        result = run(["record", "--out", "cut.jsonl", "你好"], tmp_path, env_for(fake.base_url))
    assert result.returncode == 3, result.stderr
    assert "没有正常结束" in result.stderr
    recording = read(tmp_path / "cut.jsonl")
    assert recording.outcome == "cut" and recording.body == b"".join(d for _, d in WRITES[:5])
    with LocalServer(replay=tmp_path / "cut.jsonl", replay_speed=0) as server:
        settings = Settings(Secret(server.api_key or ""), server.base_url, "replay:cut")
        with pytest.raises(StreamError) as caught:
            list(ChatClient(settings).stream([]))
    assert caught.value.partial_text == "你好，"


def test_a_stalled_stream_is_recorded_up_to_the_timeout(tmp_path):
    script = Script(writes=[*WRITES[:5], (3.0, chunk("太晚了"))])
    env = env_for("", LLM_TIMEOUT="0.5")
    with FakeProvider(script) as fake:
        env["LLM_BASE_URL"] = fake.base_url
        result = run(["record", "--out", "stall.jsonl", "你好"], tmp_path, env)
    assert result.returncode == 3, result.stderr
    recording = read(tmp_path / "stall.jsonl")
    assert recording.outcome == "timeout" and len(recording.pieces) == 5


def test_ctrl_c_keeps_what_arrived(tmp_path):
    def stop(text: str) -> None:
        if "，" in text:
            raise KeyboardInterrupt

    with FakeProvider(Script()) as fake:
        settings = Settings(Secret(FAKE_KEY), fake.base_url, "fake", provider="openai")
        done = record(settings, "你好", tmp_path / "stop.jsonl", show=stop)
    assert done.recording.outcome == "interrupted"
    assert read(tmp_path / "stop.jsonl").body.startswith(b": keep-alive")


# -- the other APIs (recorded from the local practice server) -------------------------------------
@pytest.mark.parametrize("api", ["responses", "messages"])
def test_the_responses_and_messages_apis_record_and_replay_on_their_own_route(tmp_path, api):
    env = env_for("", key="", LLM_PROVIDER="local")
    env.pop("LLM_MODEL")
    result = run(["record", "--api", api, "--out", f"{api}.jsonl", "你好"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "你好" in result.stdout
    recording = read(tmp_path / f"{api}.jsonl")
    assert recording.api == api and recording.request["path"] == f"/v1/{api}"
    with LocalServer(replay=tmp_path / f"{api}.jsonl", replay_speed=0) as server:
        headers = {"Authorization": f"Bearer {server.api_key}", "anthropic-version": "2023-06-01"}
        body = {"model": f"replay:{api}", "messages": [], "input": "x", "max_tokens": 5}
        same = requests.post(f"{server.base_url}/{api}", headers=headers, json=body, timeout=5)
        other = requests.post(f"{server.base_url}/chat/completions", headers=headers, json=body)
    assert same.status_code == 200 and same.content == recording.body
    assert other.status_code == 400 and f"/v1/{api}" in other.json()["error"]["message"]


# -- failures: one line each, nothing written -----------------------------------------------------
def test_without_a_key_record_says_so_in_one_line(tmp_path):
    env = env_for("https://api.siliconflow.cn/v1", key="", LLM_PROVIDER="siliconflow")
    result = run(["record", "--out", "x.jsonl", "你好"], tmp_path, env)
    assert result.returncode == 1
    assert "LLM_API_KEY" in one_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "out, expected",
    [
        ("exists.jsonl", "--force"),
        ("no/such/folder/x.jsonl", "不存在"),
        ("x.json", ".jsonl"),
    ],
)
def test_a_bad_out_path_is_refused_before_anything_is_sent(tmp_path, out, expected):
    (tmp_path / "exists.jsonl").write_text("keep me")
    with FakeProvider(Script()) as fake:
        result = run(["record", "--out", out, "你好"], tmp_path, env_for(fake.base_url))
        assert fake.requests == []
    assert result.returncode == 1
    assert expected in one_line(result.stderr)
    assert (tmp_path / "exists.jsonl").read_text() == "keep me"


def test_force_overwrites(tmp_path):
    (tmp_path / "again.jsonl").write_text("old")
    with FakeProvider(Script(writes=WRITES[-2:])) as fake:
        result = run(
            ["record", "--force", "--out", "again.jsonl", "你好"], tmp_path, env_for(fake.base_url)
        )
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "again.jsonl").status == 200


def test_a_provider_that_cannot_be_reached_is_one_line(tmp_path):
    result = run(["record", "--out", "x.jsonl", "你好"], tmp_path, env_for("http://127.0.0.1:9/v1"))
    assert result.returncode == 1
    assert "连不上" in one_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_record_needs_a_question_and_params_are_sent(tmp_path):
    result = run(["record", "--out", "x.jsonl"], tmp_path, env_for("http://127.0.0.1:9/v1"))
    assert result.returncode == 2 and "问题" in one_line(result.stderr)
    with FakeProvider(Script(writes=WRITES[-2:])) as fake:
        args = ["record", "--out", "p.jsonl", "--system", "简短", "--param", "max_tokens=5"]
        args += ["--param", 'stop=["。"]', "--model", "other", "--description", "带参数", "你好"]
        result = run(args, tmp_path, env_for(fake.base_url))
        sent = fake.requests[0]["body"]
    assert result.returncode == 0, result.stderr
    assert sent["max_tokens"] == 5 and sent["stop"] == ["。"] and sent["model"] == "other"
    assert sent["messages"][0] == {"role": "system", "content": "简短"}
    recording = read(tmp_path / "p.jsonl")
    assert recording.request["body"] == sent and recording.description == "带参数"


def test_record_function_errors_are_one_line(tmp_path):
    settings = Settings(Secret(FAKE_KEY), "http://127.0.0.1:9/v1", "fake")
    with pytest.raises(RecordError) as caught:
        record(settings, "你好", tmp_path / "x.jsonl", api="completions")
    assert "\n" not in str(caught.value)
    with pytest.raises(RecordError) as caught:
        record(settings, "你好", tmp_path / "x.jsonl")
    assert "\n" not in str(caught.value) and FAKE_KEY not in str(caught.value)
    assert caught.value.__context__ is None  # requests' exception holds the headers
    assert RecordingError  # the refusal's class, tested above through the command
