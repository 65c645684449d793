"""The recording file format (lesson_helpers.recording) and the recordings the kit ships."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from lesson_helpers import seed
from lesson_helpers.recording import (
    APIS,
    SHIPPED,
    Piece,
    Recording,
    RecordingError,
    dumps,
    find_secret,
    kept_headers,
    loads,
    read,
    resolve,
    shipped_names,
    write,
)

FAKE_KEY = "sk-test-fake-key-0000"  # not a real key: the shape matters, not the value
ERRORS = ROOT / "tests" / "fixtures" / "provider_errors"
NI_HAO = "你好".encode()


def sample(**changes) -> Recording:
    pieces = (
        Piece(0.3, b": keep-alive\n\n"),
        Piece(0.4, b'data: {"content":"' + NI_HAO[:4]),  # 好 cut after its first byte
        Piece(0.45, NI_HAO[4:] + b'"}\n\n'),
        Piece(0.9, b"data: [DONE]\n\n"),
    )
    fields = {
        "api": "chat",
        "request": {"method": "POST", "path": "/v1/chat/completions", "body": {"model": "m"}},
        "status": 200,
        "headers": {"Content-Type": "text/event-stream"},
        "pieces": pieces,
        "end": 0.95,
        "description": "a test",
        "head_at": 0.2,
        "name": "sample",
    }
    fields.update(changes)
    return Recording(**fields)


def lines_of(recording: Recording) -> list[dict]:
    return [json.loads(line) for line in dumps(recording).splitlines()]


# -- the format -----------------------------------------------------------------------------------
def test_a_recording_reads_back_exactly():
    recording = sample()
    again = loads(dumps(recording), name="sample")
    assert again == recording
    assert again.body == recording.body
    assert [p.data for p in again.pieces] == [p.data for p in recording.pieces]


def test_text_when_a_piece_is_utf8_on_its_own_else_base64():
    header, *pieces, end = lines_of(sample())
    assert header["format"] == "lesson-helpers-recording" and header["version"] == 1
    assert pieces[0] == {"t": 0.3, "text": ": keep-alive\n\n"}
    assert "base64" in pieces[1] and "base64" in pieces[2]  # the split character
    assert base64.b64decode(pieces[1]["base64"]) + base64.b64decode(pieces[2]["base64"]) == (
        b'data: {"content":"' + NI_HAO + b'"}\n\n'
    )
    assert pieces[3] == {"t": 0.9, "text": "data: [DONE]\n\n"}
    assert end == {"end": 0.95, "outcome": "complete"}


def test_the_file_is_readable_text_one_piece_per_line():
    text = dumps(sample(pieces=(Piece(0.5, "data: 你好\n\n".encode()),), end=0.6))
    assert "你好" in text  # real characters, not \\u escapes: readable in a pull request
    assert len(text.splitlines()) == 3


def test_write_is_all_or_nothing(tmp_path):
    target = write(tmp_path / "x.jsonl", sample(name="x"))
    assert read(target) == sample(name="x")
    assert read(target).name == "x" and read(target).model_id == "replay:x"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]  # no temporary file left


def test_kept_headers_drop_credentials_and_cookies():
    headers = [
        ("content-type", "text/event-stream"),
        ("Set-Cookie", "session=abc"),
        ("Authorization", "Bearer x"),
        ("cookie", "a=b"),
        ("x-ratelimit-remaining-requests", "9"),
        ("Retry-After", "3"),
        ("openai-organization", "my-org"),
        ("X-Request-Id", "abc"),
        ("Transfer-Encoding", "chunked"),
    ]
    assert kept_headers(headers) == {
        "Content-Type": "text/event-stream",
        "X-Ratelimit-Remaining-Requests": "9",
        "Retry-After": "3",
    }


# -- malformed files: one line naming the file and the line ---------------------------------------
def broken(text_of_lines: list[str]) -> str:
    with pytest.raises(RecordingError) as caught:
        loads("\n".join(text_of_lines) + "\n", "bad.jsonl")
    message = str(caught.value)
    assert "\n" not in message and "bad.jsonl" in message
    return message


def good_lines() -> list[str]:
    return dumps(sample()).splitlines()


def test_a_line_that_is_not_json_is_named():
    lines = good_lines()
    lines[2] = lines[2][:-3]
    assert "第 3 行" in broken(lines)


def test_a_file_without_its_end_line_is_incomplete():
    assert "不完整" in broken(good_lines()[:-1])


def test_time_may_not_go_backwards():
    lines = good_lines()
    lines[3] = json.dumps({"t": 0.1, "text": "x"})
    assert "第 4 行" in broken(lines) and "倒退" in broken(lines)


def test_bad_base64_and_unknown_keys_and_empty_pieces():
    lines = good_lines()
    lines[2] = json.dumps({"t": 0.4, "base64": "not base64!"})
    assert "第 3 行" in broken(lines)
    lines[2] = json.dumps({"t": 0.4, "txt": "typo"})
    assert "txt" in broken(lines)
    lines[2] = json.dumps({"t": 0.4, "text": ""})
    assert "空的" in broken(lines)
    lines[2] = json.dumps({"t": 0.4, "text": "a", "base64": "YQ=="})
    assert "只能有一个" in broken(lines)


def test_header_problems():
    header = json.loads(good_lines()[0])
    rest = good_lines()[1:]
    for change, expected in [
        ({"format": "something-else"}, "format"),
        ({"version": 2}, "第 2 版"),
        ({"api": "completions"}, "api"),
        ({"source": "reconstructed"}, "based_on"),
        ({"descripton": "typo"}, "descripton"),
        ({"description": "two\nlines"}, "一行"),
    ]:
        message = broken([json.dumps({**header, **change}), *rest])
        assert "第 1 行" in message and expected in message, (change, message)


@pytest.mark.parametrize(
    "headers",
    [
        {"Set-Cookie": "a=b"},
        {"Authorization": "Bearer x"},
        {"X-Evil": "a\r\nSet-Cookie: b"},
        {"Bad Name": "x"},
        {"Content-Length": "5"},
    ],
)
def test_headers_that_a_replay_must_not_send(headers):
    header = json.loads(good_lines()[0])
    header["response"]["headers"] = headers
    assert "第 1 行" in broken([json.dumps(header), *good_lines()[1:]])


def test_an_empty_file_and_a_non_utf8_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RecordingError, match=r"empty\.jsonl.*空的"):
        read(empty)
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes(dumps(sample()).encode("utf-8")[:50] + "你好".encode("gbk") + b"\n")
    with pytest.raises(RecordingError, match=r"gbk\.jsonl 第 1 行.*UTF-8"):
        read(gbk)


def test_a_missing_file_and_an_unknown_name(tmp_path):
    with pytest.raises(RecordingError, match="找不到录音文件"):
        resolve(tmp_path / "nope.jsonl")
    with pytest.raises(RecordingError, match="siliconflow_seed"):  # lists the shipped ones
        resolve("no_such_recording")


def test_a_folder_gives_every_recording_in_it(tmp_path):
    write(tmp_path / "a.jsonl", sample(name="a"))
    write(tmp_path / "b.jsonl", sample(name="b", status=401))
    (tmp_path / "notes.txt").write_text("not a recording")
    assert [r.name for r in resolve(tmp_path)] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="没有录音文件"):
        resolve(tmp_path / "empty")


def test_two_recordings_with_one_name_are_refused(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    write(tmp_path / "one" / "same.jsonl", sample(name="same"))
    write(tmp_path / "two" / "same.jsonl", sample(name="same", status=500))
    with pytest.raises(RecordingError, match="同名 same"):
        resolve([tmp_path / "one", tmp_path / "two"])
    assert len(resolve([tmp_path / "one" / "same.jsonl"] * 2)) == 1  # the same file twice


# -- the key --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "where, recording",
    [
        ("响应体", sample(pieces=(Piece(0.3, f"echo {FAKE_KEY}".encode()),), end=1.0)),
        ("响应体", sample(pieces=(Piece(0.3, b"tail " + FAKE_KEY[-8:].encode()),), end=1.0)),
        (
            "响应体",  # split between two pieces
            sample(
                pieces=(Piece(0.3, FAKE_KEY[:6].encode()), Piece(0.4, FAKE_KEY[6:].encode())),
                end=1.0,
            ),
        ),
        ("响应头", sample(headers={"Content-Type": "text/plain", "Retry-After": FAKE_KEY[-9:]})),
        ("请求", sample(request={"method": "POST", "path": "/v1/x", "body": {"q": FAKE_KEY}})),
        ("录音的说明", sample(description=f"made with {FAKE_KEY[3:12]}")),
    ],
)
def test_find_secret_finds_the_key_and_any_8_characters_of_it(where, recording):
    assert find_secret(recording, FAKE_KEY) == where


def test_find_secret_sees_a_json_escaped_key():
    key = 'fake/key"with-quotes-0000'
    body = json.dumps({"echo": key}).encode()  # "fake\/..." is not used by json, \" is
    assert find_secret(sample(pieces=(Piece(0.3, body),), end=1.0), key) == "响应体"
    escaped = key.replace("/", "\\/").encode()
    assert find_secret(sample(pieces=(Piece(0.3, escaped),), end=1.0), key) == "响应体"


def test_find_secret_ignores_text_without_the_key():
    assert find_secret(sample(), FAKE_KEY) == ""
    assert (
        find_secret(sample(pieces=(Piece(0.3, FAKE_KEY[-7:].encode()),), end=1.0), FAKE_KEY) == ""
    )


def test_write_refuses_a_recording_with_the_key_and_writes_nothing(tmp_path):
    leaky = sample(pieces=(Piece(0.3, f'{{"error": "bad key {FAKE_KEY}"}}'.encode()),), end=1.0)
    with pytest.raises(RecordingError) as caught:
        write(tmp_path / "leak.jsonl", leaky, secret=FAKE_KEY)
    message = str(caught.value)
    assert "密钥" in message and "\n" not in message
    assert FAKE_KEY not in message and FAKE_KEY[-8:] not in message
    assert list(tmp_path.iterdir()) == []


# -- the shipped recordings -----------------------------------------------------------------------
def shipped() -> list[Recording]:
    return [read(SHIPPED / f"{name}.jsonl") for name in shipped_names()]


def test_the_shipped_recordings_are_valid_and_say_what_they_are_based_on():
    names = shipped_names()
    assert len(names) >= 15
    for recording in shipped():
        assert recording.api in APIS
        assert recording.source == "reconstructed" and recording.based_on
        assert recording.outcome == "complete"
        assert recording.head_at > 0.1 and recording.end >= recording.pieces[-1].t


def test_the_shipped_recordings_are_what_the_script_makes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_recordings.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_seed_recording_is_the_seed_stream_byte_for_byte():
    recording = read(SHIPPED / "siliconflow_seed.jsonl")
    assert recording.body == seed.stream_bytes()
    assert recording.request["body"]["messages"][0]["content"] == seed.PROMPT
    assert len(recording.pieces) >= 10


@pytest.mark.parametrize("fixture", sorted(ERRORS.glob("*.json")), ids=lambda p: p.stem)
def test_the_error_recordings_are_the_provider_error_facts(fixture: Path):
    facts = json.loads(fixture.read_text("utf-8"))
    recording = read(SHIPPED / f"{fixture.stem}.jsonl")
    assert recording.status == facts["status"]
    assert recording.body == facts["body"].encode()
    assert recording.header("Content-Type") == facts["headers"]["Content-Type"]
    assert recording.provider == facts["provider"]
    assert facts["reconstructed_from"] in recording.based_on


def events_of(recording: Recording) -> list[str]:
    from lesson_helpers.sse import SSEParser

    return [event.data for event in SSEParser().feed(recording.body)]


def chunks_of(recording: Recording) -> list[dict]:
    return [json.loads(data) for data in events_of(recording) if data != "[DONE]"]


def test_the_reasoning_recording_has_null_content_while_it_thinks_and_keepalives():
    recording = read(SHIPPED / "deepseek_reasoner.jsonl")
    assert recording.body.startswith(b": keep-alive\n\n")
    deltas = [c["choices"][0]["delta"] for c in chunks_of(recording)]
    thinking = [d for d in deltas if d.get("reasoning_content")]
    assert thinking and all(d["content"] is None for d in thinking)
    assert any(d.get("content") for d in deltas)
    assert "reasoning_tokens" in json.dumps(chunks_of(recording)[-1]["usage"])


def test_the_other_shapes_the_lessons_use():
    usage = chunks_of(read(SHIPPED / "openai_include_usage.jsonl"))
    assert usage[-1]["choices"] == [] and usage[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in usage[:-1])
    tools = chunks_of(read(SHIPPED / "openai_tool_call.jsonl"))
    assert tools[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert sum("tool_calls" in c["choices"][0]["delta"] for c in tools) >= 3
    length = chunks_of(read(SHIPPED / "siliconflow_length.jsonl"))
    assert length[-1]["choices"][0]["finish_reason"] == "length"
    router = read(SHIPPED / "openrouter_processing.jsonl")
    assert router.body.count(b": OPENROUTER PROCESSING\n\n") >= 2
    assert any(_not_utf8(p.data) for p in router.pieces)  # a character split between pieces
    gaps = [b.t - a.t for a, b in itertools.pairwise(router.pieces)]
    assert max(gaps) > 0.5  # a pause mid-stream


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_no_shipped_recording_holds_a_key_shape():
    for path in Path(str(SHIPPED)).glob("*.jsonl"):
        text = path.read_text("utf-8")
        assert not re.search(r"(?<![A-Za-z0-9])sk-|Bearer ", text), path.name
