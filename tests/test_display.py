"""``lesson_helpers.display``: the live view, without a browser (see test_browser.py for that).

The views run in "silent" mode (no drawing), "text" mode (into a StringIO) and "widget" mode
(real ipywidgets, no front end attached), against plain iterables and the real local server.
Also the self-check of lesson 04's throttling exercise.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from html import escape as html_escape

import pytest
from conftest import routed_output

from lesson_helpers.checks import lesson04
from lesson_helpers.chunks import ChunkAssembler
from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.display import (
    ANSWERING,
    DONE,
    ERROR,
    STOPPED,
    WAITING,
    LiveView,
    StreamState,
    Throttle,
    detect_mode,
    show_side_by_side,
    throttle_renders,
)
from lesson_helpers.errors import StreamError
from lesson_helpers.local_server import LocalServer
from lesson_helpers.sse import SSEParser

SEED_TEXT = "你好！有什么问题或者需要帮助的吗？"
SEED_MODEL = "Qwen/Qwen2.5-7B-Instruct"
HELLO = [{"role": "user", "content": "你好"}]


def seed_chunks(seed_stream_bytes: bytes) -> list[dict]:
    events = SSEParser().feed(seed_stream_bytes)
    return [e.json() for e in events if e.data != "[DONE]"]


def chunk(content: str = "", reasoning: str = "", finish: str | None = None) -> dict:
    delta = {"content": content or None, "reasoning_content": reasoning or None}
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _settings(server: LocalServer) -> Settings:
    return Settings(
        api_key=Secret(server.api_key),
        base_url=server.base_url,
        model=SEED_MODEL,
        timeout=10.0,
        connect_timeout=5.0,
        provider="local",
    )


@pytest.fixture
def client(server) -> ChatClient:
    return ChatClient(_settings(server))


class Slow:
    """An iterable of answer pieces with a pause before each; remembers being closed."""

    def __init__(self, pieces: list[str], pause: float) -> None:
        self.pieces, self.pause = pieces, pause
        self.closed = threading.Event()
        self.handed_out = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self.pieces:
                time.sleep(self.pause)
                self.handed_out += 1
                yield piece
        finally:
            self.closed.set()


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- what it shows ---------------------------------------------------------------------------


def test_outside_jupyter_the_mode_is_text():
    assert detect_mode() == "text"
    assert LiveView().mode == "text"


def test_seed_stream_gives_exact_text_usage_and_model(seed_stream_bytes):
    view = LiveView(mode="silent")
    view.run(seed_chunks(seed_stream_bytes))
    assert view.text == SEED_TEXT == view.rendered_text
    assert (view.state, view.error, view.done) == (DONE, None, True)
    assert view.deltas == 10 and view.chunks == 12
    assert view.model == SEED_MODEL and view.finish_reason == "stop"
    assert view.usage == {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
    assert view.result.content == SEED_TEXT
    status = view.status_line()
    assert SEED_MODEL in status and "完成" in status and "用量 30+10=40 tokens" in status


def test_plain_strings_count_as_answer_text():
    view = LiveView(mode="silent")
    view.run(iter(["流式", "输出", ""]))
    assert view.text == "流式输出" and view.deltas == 2 and view.state == DONE


def test_reasoning_is_kept_apart_from_the_answer():
    view = LiveView(mode="silent")
    view.run([chunk(reasoning="想"), chunk(reasoning="一想"), chunk("答案"), chunk(finish="stop")])
    assert view.reasoning == "想一想" and view.text == "答案" and view.deltas == 3


def test_states_go_from_waiting_to_done():
    seen = []
    pieces = Slow(["a", "b"], 0.2)
    view = LiveView(mode="silent")
    view.start(pieces)
    seen.append(view.state)
    view.wait(5)
    assert seen == [WAITING] and view.state == DONE


def test_status_line_times_and_rate(seed_stream_bytes):
    view = LiveView(mode="silent")
    view.run(Slow(["a", "b", "c"], 0.02))
    assert view.ttft is not None and 0 < view.ttft < 2
    assert view.tokens_per_second is not None and view.tokens_per_second > 0
    assert view.elapsed >= view.ttft
    assert "首个 token" in view.status_line() and "tokens/s" in view.status_line()
    assert "渲染" in view.status_line(counts=True)


def test_max_tokens_shows_in_the_status(client):
    view = LiveView(mode="silent")
    view.run(lambda: client.stream([{"role": "user", "content": "什么是流式输出？"}], max_tokens=3))
    assert view.finish_reason == "length" and "max_tokens" in view.status_line()


# --- throttling ------------------------------------------------------------------------------


def test_fast_stream_is_throttled_and_ends_with_the_exact_text():
    pieces = [f"{i % 10}" for i in range(5000)]
    view = LiveView(mode="silent", max_fps=25)
    view.run(pieces)
    assert view.text == "".join(pieces) == view.rendered_text
    assert view.deltas == 5000
    assert view.renders <= view.elapsed * 25 + 3, (view.renders, view.elapsed)


def test_a_pause_in_the_stream_still_shows_what_arrived():
    """The trailing render: text that came just before a pause is drawn during the pause."""
    release = threading.Event()

    def pieces() -> Iterator[str]:
        yield "a"
        yield "b"  # arrives within the throttle interval of "a"
        release.wait(5)
        yield "c"

    view = LiveView(mode="silent", max_fps=10)
    view.start(pieces)
    deadline = time.monotonic() + 3
    while view.rendered_text != "ab" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert view.rendered_text == "ab" and not view.done
    release.set()
    assert view.wait(5) and view.rendered_text == "abc"


def test_render_rate_is_bounded_by_max_fps():
    view = LiveView(mode="silent", max_fps=20)
    view.run(Slow(["x"] * 40, 0.005))
    assert view.renders <= view.elapsed * 20 + 3


# --- errors ----------------------------------------------------------------------------------


def failing(pieces: list[str], error: BaseException) -> Iterator[str]:
    yield from pieces
    raise error


def test_an_error_shows_its_one_line_message_and_keeps_the_partial_text():
    error = StreamError("连接在回答结束前断开（没有收到 [DONE]）", partial_text="部分")
    view = LiveView(mode="silent")
    view.run(failing(["部", "分"], error))  # blocking: returns normally
    assert view.state == ERROR and view.text == "部分" == view.rendered_text
    assert view.error == str(error) and "\n" not in view.error
    assert view.exception is error


def test_background_error_is_recorded_not_raised():
    view = LiveView(mode="silent")
    view.start(failing(["a"], ValueError("bad\nthing")))
    assert view.wait(5)
    assert view.state == ERROR and view.error == "ValueError: bad thing" and view.text == "a"


def test_error_before_the_first_chunk_from_the_request_itself(client):
    view = LiveView(mode="silent")
    view.run(lambda: client.stream(HELLO, model="no-such-model"), model="no-such-model")
    assert view.state == ERROR and view.text == ""
    assert view.error.startswith("HTTP 404") and view.model == "no-such-model"


def test_a_bad_chunk_is_an_error_not_a_crash():
    view = LiveView(mode="silent")
    view.run([chunk("好"), {"error": {"message": "rate limit reached"}}])
    assert view.state == ERROR and "rate limit reached" in view.error and view.text == "好"


def test_key_like_strings_never_reach_the_view():
    fake = "sk-" + "fake" * 6
    view = LiveView(mode="silent")
    view.run(failing([], RuntimeError(f"upstream said Bearer {fake}")))
    assert fake not in view.error and "***" in view.error


# --- stopping --------------------------------------------------------------------------------


def test_stop_freezes_the_text_and_closes_the_stream():
    pieces = Slow(list("流式输出就是服务器一边生成一边发送"), 0.05)
    view = LiveView(mode="silent")
    view.start(pieces)
    wait_for(lambda: len(view.text) >= 3)
    view.stop()
    assert view.state == STOPPED and view.done and view.wait(0)
    kept = view.text
    assert pieces.closed.wait(2), "the stream was not closed after Stop"
    time.sleep(0.1)
    assert view.text == kept == view.rendered_text and 3 <= len(kept) < 17


def test_the_stop_button_stops():
    with LocalServer(pace=0.02) as slow:
        client = ChatClient(_settings(slow))
        view = LiveView(mode="widget")
        view.start(lambda: client.stream([{"role": "user", "content": "什么是流式输出？"}]))
        assert not view.stop_button.disabled
        wait_for(lambda: len(view.text) >= 4 or view.done)
        view.stop_button.click()
        assert view.state == STOPPED and 4 <= len(view.text) < 100
        assert view.stop_button.disabled
        assert view.wait(1)


def test_interrupting_a_blocking_run_stops_and_keeps_the_text():
    view = LiveView(mode="silent")
    view.run(failing(["已", "收到"], KeyboardInterrupt()))
    assert view.state == STOPPED and view.text == "已收到" and view.error is None


def test_a_view_runs_once_and_wait_needs_a_start():
    view = LiveView(mode="silent")
    with pytest.raises(RuntimeError, match="还没有开始"):
        view.wait(0)
    view.run(["a"])
    with pytest.raises(RuntimeError, match="新的 LiveView"):
        view.run(["b"])


def test_finish_callbacks_run_once():
    calls = []
    view = LiveView(mode="silent")
    view.add_finish_callback(calls.append)
    view.run(["a"])
    view.add_finish_callback(calls.append)  # already finished: at once
    assert calls == [view, view]


# --- against the local server ----------------------------------------------------------------


def test_chat_stream_from_the_local_server(client):
    view = LiveView(mode="silent")
    view.run(client.stream(HELLO))
    assert view.text == SEED_TEXT and view.state == DONE and view.model == SEED_MODEL


def test_reasoning_model_from_the_local_server(client):
    view = LiveView(mode="silent")
    view.run(lambda: client.stream(HELLO, model="deepseek-ai/DeepSeek-R1"))
    assert view.reasoning.startswith("嗯，用户问的是「你好」") and view.text == SEED_TEXT


# --- drawing ---------------------------------------------------------------------------------


def test_text_mode_prints_each_piece_once_then_the_status(seed_stream_bytes):
    out = io.StringIO()
    LiveView(mode="text", out=out).run(seed_chunks(seed_stream_bytes))
    printed = out.getvalue()
    assert printed.startswith(SEED_TEXT + "\n[")
    assert printed.count(SEED_TEXT) == 1 and "完成" in printed and printed.endswith("]\n")


def test_text_mode_labels_reasoning_and_answer():
    out = io.StringIO()
    view = LiveView("R1", mode="text", out=out)
    view.run([chunk(reasoning="先想"), chunk("再答"), chunk(finish="stop")])
    assert out.getvalue().startswith("【R1】\n〔思考〕先想\n〔回答〕再答\n[")


def test_text_mode_shows_the_error_line():
    out = io.StringIO()
    LiveView(mode="text", out=out).run(failing(["半"], StreamError("断了")))
    assert "半\n✗ 断了" in out.getvalue()


def test_side_by_side_in_text_mode_prints_whole_blocks():
    out = io.StringIO()
    left = LiveView("左", mode="text", out=out)
    right = LiveView("右", mode="text", out=out)
    show_side_by_side(left, right)
    left.start(Slow(list("AAAA"), 0.01))
    right.start(Slow(list("BBBB"), 0.01))
    assert left.wait(5) and right.wait(5)
    printed = out.getvalue()
    assert "【左】\nAAAA\n[" in printed and "【右】\nBBBB\n[" in printed


def test_widget_mode_fills_the_widgets(client):
    view = LiveView("标题", mode="widget")
    view.run(lambda: client.stream(HELLO, model="deepseek-ai/DeepSeek-R1"))
    ui = view.widget
    assert ui is not None and "lesson-live-view" in ui._dom_classes
    html = _all_html(view)
    assert SEED_TEXT in html and "嗯，用户问的是" in html
    assert "标题" in html and "完成" in html and "渲染" in html
    panel = next(w for w in _walk(ui) if "lesson-live-reasoning" in w._dom_classes)
    assert panel.layout.display is None and panel.selected_index is None  # shown, folded
    assert view.stop_button.disabled


def test_widget_mode_escapes_html_and_shows_errors():
    view = LiveView(mode="widget", markdown=False)
    view.run(failing(["<script>alert(1)</script>"], StreamError("断了")))
    html = _all_html(view)
    assert "<script>" not in html and "&lt;script&gt;" in html and "✗ 断了" in html


def test_widget_mode_markdown_escapes_raw_html():
    view = LiveView(mode="widget")
    view.run(["**粗体** <img src=x onerror=alert(1)>"])
    html = _all_html(view)
    assert "<strong>粗体</strong>" in html and "<img" not in html


def test_blocking_widget_view_disables_stop():
    view = LiveView(mode="widget")
    view.run(["a"])
    assert view.stop_button.disabled and "■" in view.stop_button.tooltip


def test_silent_and_text_views_have_no_widget():
    assert LiveView(mode="silent").widget is None and LiveView(mode="text").stop_button is None
    with pytest.raises(ValueError):
        LiveView(mode="fancy")


@pytest.fixture
def ipython_shell():
    """A plain IPython shell (no kernel): display() prints the text/plain of what it shows."""
    from IPython.core.interactiveshell import InteractiveShell

    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


def test_static_front_ends_get_the_final_text_not_a_repr(ipython_shell, capsys):
    view = LiveView(mode="widget")
    view.run([chunk(reasoning="想"), chunk("答"), chunk(finish="stop")])
    shown = capsys.readouterr().out
    assert shown == "（实时视图：正在接收……）\n〔思考〕想\n\n答\n"  # display, then its update


def test_side_by_side_final_text_for_static_front_ends(ipython_shell, capsys):
    left, right = LiveView("左", mode="widget"), LiveView("右", mode="widget")
    show_side_by_side(left, right)
    left.run(["甲"])
    error = StreamError("断了")
    right.run(failing(["乙"], error))
    shown = capsys.readouterr().out
    assert shown.startswith("（并排的实时视图：正在接收……）\n")
    assert shown.endswith(f"【左】\n甲\n\n【右】\n乙\n✗ {error}\n")


def _all_html(view: LiveView) -> str:
    return " ".join(
        w.value for w in _walk(view.widget) if isinstance(getattr(w, "value", None), str)
    )


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


# --- the parts: a pure throttle, a state object, the driver ----------------------------------


def test_the_throttle_rule_step_by_step():
    rule = Throttle(0.25)
    assert rule.offer(0.0)  # the first delta at once
    assert not rule.offer(0.125) and rule.pending  # too soon: pending
    assert not rule.poll(0.2)  # the timer: still too soon
    assert rule.poll(0.25) and not rule.pending  # exactly the interval counts
    assert not rule.poll(1.0)  # nothing pending, nothing to draw
    assert not rule.offer(0.375)
    assert rule.finish() and not rule.finish()  # one last render, once
    with pytest.raises(ValueError):
        Throttle(float("nan"))


def test_throttle_renders_replays_the_rule_over_recorded_deltas():
    events = [(0.0, "流"), (0.125, "式"), (0.25, "输"), (0.375, "出")]
    assert throttle_renders(events, 0.25) == ["流", "流式输", "流式输出"]
    assert throttle_renders([(0.0, "字")] * 100, 0.25) == ["字", "字" * 100]
    assert throttle_renders([], 0.25) == []
    assert throttle_renders([(0.0, "a"), (0.125, "")], 0.25) == ["a"]  # "" brings nothing


def test_the_state_reads_the_assembler_it_is_given():
    clock = iter([10.0, 10.5, 11.0, 11.5, 12.0]).__next__
    assembler = ChunkAssembler()
    state = StreamState(assembler, clock=clock)
    state.begin("m")  # 10.0
    assert state.state == WAITING and state.text == ""
    for piece in (chunk(reasoning="想"), chunk("答"), chunk("案", finish="stop")):
        state.take(piece, assembler.add(piece))  # 10.5, 11.0, 11.5
    assert state.assembler is assembler and assembler.chunk_count == 3
    assert (state.reasoning, state.text, state.deltas, state.chunks) == ("想", "答案", 3, 3)
    assert state.state == ANSWERING and state.finish_reason == "stop"
    assert state.ttft == 0.5 and state.tokens_per_second() == 3 / 1.0
    assert state.end(DONE) and not state.end(ERROR)  # 12.0; the first end wins
    assert state.elapsed == 2.0 and state.state == DONE


def test_a_state_change_without_text_is_not_a_delta():
    assembler = ChunkAssembler()
    state = StreamState(assembler)
    state.begin()
    finish_only = chunk(finish="stop")
    assert state.take(finish_only, assembler.add(finish_only))  # choice 0 changed
    assert state.deltas == 0 and state.first is None and state.state == WAITING
    other_choice = {"choices": [{"index": 1, "delta": {"content": "b"}}]}
    assert not state.take(other_choice, assembler.add(other_choice))  # the view shows choice 0


# --- one merge per chunk ---------------------------------------------------------------------


@pytest.fixture
def merges(monkeypatch) -> list[ChunkAssembler]:
    """Every ChunkAssembler.add call, as the assembler it merged into."""
    calls: list[ChunkAssembler] = []
    add = ChunkAssembler.add

    def counted(self, item):
        calls.append(self)
        return add(self, item)

    monkeypatch.setattr(ChunkAssembler, "add", counted)
    return calls


def test_a_chat_stream_is_merged_once_by_the_stream_and_read_by_the_view(client, merges):
    stream = client.stream(HELLO)
    view = LiveView(mode="widget")
    view.run(stream)
    assert view.text == SEED_TEXT and view.state == DONE
    assert view.chunks == stream.assembler.chunk_count == 12
    assert len(merges) == 12, "each chunk must be merged exactly once"
    assert set(map(id, merges)) == {id(stream.assembler)}
    assert view.stream_state.assembler is stream.assembler  # read, not copied


def test_a_chat_stream_from_a_function_is_merged_once_too(client, merges):
    view = LiveView(mode="text", out=io.StringIO())
    view.run(lambda: client.stream(HELLO, model="deepseek-ai/DeepSeek-R1"))
    assert view.text == SEED_TEXT and view.reasoning
    assert len(merges) == view.chunks and len(set(map(id, merges))) == 1


@pytest.mark.parametrize("as_generator", [False, True], ids=["list", "generator"])
def test_a_list_of_chunks_gets_one_assembler_of_the_view(seed_stream_bytes, merges, as_generator):
    chunks = seed_chunks(seed_stream_bytes)
    view = LiveView(mode="silent")
    view.run(iter(chunks) if as_generator else chunks)
    assert view.text == SEED_TEXT
    assert len(merges) == len(chunks) == 12
    assert set(map(id, merges)) == {id(view.stream_state.assembler)}


def test_nothing_arriving_after_stop_changes_what_the_view_holds(client):
    with LocalServer(pace=0.02) as slow:
        stream = ChatClient(_settings(slow)).stream(
            [{"role": "user", "content": "什么是流式输出？"}]
        )
        view = LiveView(mode="silent")
        view.start(stream)
        wait_for(lambda: len(view.text) >= 4 or view.done)
        view.stop()
        kept, result = view.text, view.result.content
        view.wait(2)
        time.sleep(0.1)
        assert view.text == kept == view.rendered_text == result
        assert view.result.content == kept and view.state == STOPPED


# --- reasoning, refusals and tool calls ------------------------------------------------------


def test_reasoning_sent_as_reasoning_is_shown_like_reasoning_content():
    groq_style = [
        {"model": "m", "choices": [{"index": 0, "delta": {"reasoning": "先想"}}]},
        {"model": "m", "choices": [{"index": 0, "delta": {"reasoning": "一想"}}]},
        {
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "答"}, "finish_reason": "stop"}],
        },
    ]
    view = LiveView("R", mode="widget")
    view.run(groq_style)
    assert view.reasoning == "先想一想" and view.text == "答" and view.deltas == 3
    panel = next(w for w in _walk(view.widget) if "lesson-live-reasoning" in w._dom_classes)
    assert panel.layout.display is None and "先想一想" in _all_html(view)
    out = io.StringIO()
    LiveView(mode="text", out=out).run(groq_style)
    assert out.getvalue().startswith("〔思考〕先想一想\n〔回答〕答\n[")


def test_thinking_parts_are_reasoning_too():
    mistral_style = [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "content": [
                            {"type": "thinking", "thinking": [{"type": "text", "text": "嗯"}]},
                            {"type": "text", "text": "好"},
                        ]
                    },
                }
            ]
        }
    ]
    view = LiveView(mode="silent")
    view.run(mistral_style)
    assert (view.reasoning, view.text) == ("嗯", "好")


def refusal_chunks() -> list[dict]:
    pieces = ["抱歉，", "这个我不能", "帮忙。"]
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "refusal": p}}]} for p in pieces
    ]
    return [*chunks, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]


def test_a_refusal_is_shown():
    view = LiveView(mode="widget")
    view.run(refusal_chunks())
    assert view.refusal == "抱歉，这个我不能帮忙。" and view.text == "" and view.deltas == 3
    refusal = next(w for w in _walk(view.widget) if "lesson-live-refusal" in w._dom_classes)
    assert refusal.layout.display is None and "这个我不能帮忙" in refusal.value
    assert "〔拒绝〕抱歉，这个我不能帮忙。" in view.plain_text()
    out = io.StringIO()
    LiveView(mode="text", out=out).run(refusal_chunks())
    assert out.getvalue().startswith("〔拒绝〕抱歉，这个我不能帮忙。\n[")


WEATHER_ARGUMENTS = '{"city": "北京", "unit": "celsius"}'


def test_tool_calls_from_the_local_server_in_every_mode(client):
    out = io.StringIO()
    for mode in ("silent", "widget", "text"):
        view = LiveView(mode=mode, out=out)
        view.run(lambda: client.stream(HELLO, model="fault-tool-calls"))
        assert view.state == DONE and view.text == "" and view.finish_reason == "tool_calls"
        assert view.tool_calls == (("get_weather", WEATHER_ARGUMENTS),)
        assert view.deltas == 6  # the name, then five argument fragments
        assert "模型要求调用工具" in view.status_line()
        assert f"〔工具调用 get_weather〕{WEATHER_ARGUMENTS}" in view.plain_text()
        if mode == "widget":
            tools = next(w for w in _walk(view.widget) if "lesson-live-tools" in w._dom_classes)
            assert tools.layout.display is None
            assert "get_weather" in tools.value and html_escape(WEATHER_ARGUMENTS) in tools.value
    assert (
        f"〔工具调用 get_weather〕{WEATHER_ARGUMENTS}\n[fault-tool-calls · 完成" in out.getvalue()
    )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "查询一个城市现在的天气",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_real_tool_calls_when_the_request_offers_tools(client, merges):
    """The local server's ordinary model calls an offered tool: two cities, two calls."""
    question = [{"role": "user", "content": "北京和上海现在天气怎么样？"}]
    out = io.StringIO()
    for mode in ("widget", "text"):
        view = LiveView(mode=mode, out=out)
        view.run(lambda: client.stream(question, tools=[WEATHER_TOOL]))
        assert view.state == DONE and view.finish_reason == "tool_calls" and view.text == ""
        calls = [(name, json.loads(arguments)) for name, arguments in view.tool_calls]
        assert calls == [("get_weather", {"city": "北京"}), ("get_weather", {"city": "上海"})]
        if mode == "widget":
            tools = next(w for w in _walk(view.widget) if "lesson-live-tools" in w._dom_classes)
            assert "工具调用 1" in tools.value and "工具调用 2" in tools.value
            assert html_escape('"上海"') in tools.value
    printed = out.getvalue()
    assert (
        '〔工具调用 get_weather〕{"city": "北京"}\n〔工具调用 get_weather〕{"city": "上海"}'
        in printed
    )
    assert len(merges) == 2 * view.chunks  # two views, each chunk merged once


class Writes(io.StringIO):
    """A text stream that remembers each write (one per render)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_tool_call_arguments_are_shown_as_they_stream():
    with LocalServer(pace=0.05) as slow:
        client = ChatClient(_settings(slow))
        out = Writes()
        text_view = LiveView(mode="text", out=out, max_fps=100)
        text_view.run(lambda: client.stream(HELLO, model="fault-tool-calls"))
        widget_view = LiveView(mode="widget", max_fps=100)
        seen: list[str] = []
        widget_view.start(lambda: client.stream(HELLO, model="fault-tool-calls"))
        while not widget_view.done:
            seen.append(widget_view.tool_calls[0][1] if widget_view.tool_calls else "")
            time.sleep(0.01)
    assert out.writes[0] == "〔工具调用 get_weather〕"  # the name first, before any argument
    pieces = [w for w in out.writes[1:-1] if w]
    assert len(pieces) >= 3 and "".join(pieces) == WEATHER_ARGUMENTS
    growing = list(dict.fromkeys(a for a in seen if a))
    assert len(growing) >= 3 and growing[-1] == WEATHER_ARGUMENTS
    assert all(WEATHER_ARGUMENTS.startswith(a) for a in growing)
    assert widget_view.tool_calls == (("get_weather", WEATHER_ARGUMENTS),)


def test_parallel_tool_calls_each_get_their_label_in_text_mode():
    def call(index: int, **fields) -> dict:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}]}

    chunks = [
        call(0, id="a", function={"name": "get_weather", "arguments": '{"city": '}),
        call(1, id="b", function={"name": "get_time", "arguments": "{"}),
        call(0, function={"arguments": '"上海"}'}),
        call(1, function={"arguments": "}"}),
    ]
    out = io.StringIO()
    view = LiveView(mode="text", out=out, max_fps=1e9)  # every chunk its own render
    view.run(chunks)
    assert view.tool_calls == (("get_weather", '{"city": "上海"}'), ("get_time", "{}"))
    printed = out.getvalue()
    assert printed.startswith(
        '〔工具调用 get_weather〕{"city": \n〔工具调用 get_time〕{\n'
        '〔工具调用 get_weather〕（续）"上海"}\n〔工具调用 get_time〕（续）}\n['
    )


# --- the key never shows -------------------------------------------------------------------


FAKE_KEY = "not-a-real-key-but-long-0123456789"  # not sk- shaped: only the key itself can hide it


def _pieces_of(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(len(text) - size + 1)]


def assert_no_key(*texts: object) -> None:
    for text in texts:
        shown = str(text)
        assert not [p for p in _pieces_of(FAKE_KEY) if p in shown], shown


class EchoServer:
    """An OpenAI-style server that sends the caller's key back everywhere it can: in the model
    name, split over several answer chunks, in the reasoning and tool-call arguments, then in a
    mid-stream error event. ``status=401`` answers with an error body quoting the key."""

    def __init__(self, status: int = 200, pause: float = 0.03) -> None:
        import http.server

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if outer.status != 200:
                    body = json.dumps({"error": {"message": f"invalid api key {key}"}}).encode()
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                third = len(key) // 3
                deltas = [
                    {"reasoning_content": f"他的密钥是 {key}"},
                    {"content": "你的密钥是 " + key[:third]},
                    {"content": key[third : 2 * third]},
                    {"content": key[2 * third :] + "，对吗？"},
                    {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "echo"}}]},
                    {"tool_calls": [{"index": 0, "function": {"arguments": f'{{"k": "{key}"}}'}}]},
                ]
                for delta in deltas:
                    chunk = {"model": f"echo-{key}", "choices": [{"index": 0, "delta": delta}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(outer.pause)
                error = {"error": {"message": f"upstream rejected key {key}"}}
                self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
                self.wfile.flush()

        self.status, self.pause = status, pause
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _echo_client(server: EchoServer) -> ChatClient:
    settings = Settings(
        api_key=Secret(FAKE_KEY),
        base_url=server.base_url,
        model="echo",
        timeout=10.0,
        connect_timeout=5.0,
        provider="custom",
    )
    return ChatClient(settings, max_retries=0)


@pytest.mark.parametrize("mode", ["widget", "text", "silent"])
def test_a_server_echoing_the_key_never_makes_it_visible(mode, ipython_shell, capsys):
    out = io.StringIO()
    with EchoServer() as echo:
        view = LiveView("echo", mode=mode, out=out, max_fps=1000)  # a render per chunk
        view.run(lambda: _echo_client(echo).stream(HELLO))
    assert view.state == ERROR and view.error
    assert view.text.startswith("你的密钥是 ") and view.text.endswith("，对吗？")
    assert "***" in view.text and "***" in view.reasoning and "***" in view.tool_calls[0][1]
    shown = [view.error, view.text, view.reasoning, view.tool_calls, view.status_line(counts=True)]
    shown += [view.model, view.plain_text(), repr(view), view.result, view.rendered_text]
    shown += [out.getvalue(), capsys.readouterr()]
    if mode == "widget":
        shown.append(_all_html(view))
    assert_no_key(*shown)


def test_an_error_body_echoing_the_key_never_reaches_the_view():
    with EchoServer(status=401) as echo:
        view = LiveView(mode="silent")
        view.run(lambda: _echo_client(echo).stream(HELLO))
    assert view.state == ERROR and view.error.startswith("HTTP 401")
    assert_no_key(view.error, view.exception, view.status_line())


def test_the_key_given_to_the_view_is_hidden_in_any_source():
    view = LiveView(mode="silent", secret=Secret(FAKE_KEY))
    view.run(
        failing([f"key={FAKE_KEY[:20]}", f"{FAKE_KEY[20:]}!"], RuntimeError(f"saw {FAKE_KEY}"))
    )
    assert view.text == "key=***!" and view.state == ERROR
    assert view.error == "RuntimeError: saw ***"


# --- lesson 04's self-check ------------------------------------------------------------------


class LessonThrottle:
    """Lesson 04's exercise answered the way the lesson shows (kept here, not in the kit)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = None
        self.pending = False

    def offer(self, now: float) -> bool:
        if self.last is None or now - self.last >= self.interval:
            self.last = now
            self.pending = False
            return True
        self.pending = True
        return False

    def finish(self) -> bool:
        pending = self.pending
        self.pending = False
        return pending


def _lesson_answer() -> type:
    return LessonThrottle


def test_the_view_and_lesson_04_follow_one_rule(monkeypatch, capsys):
    """Change the rule in display/throttle.py: the view and lesson 04's check both change."""
    pieces = ["字"] * 50
    normal = LiveView(mode="silent")
    normal.run(pieces)
    assert normal.renders <= 4
    lesson04.check_throttle(_lesson_answer())
    assert routed_output(capsys).startswith("✓")

    monkeypatch.setattr(Throttle, "due", lambda self, now: True)  # "never throttle"
    unthrottled = LiveView(mode="silent")
    unthrottled.run(pieces)
    assert unthrottled.renders == 1 + 50 + 1  # appearing, every delta, the end
    lesson04.check_throttle(_lesson_answer())  # the lesson's answer now disagrees
    assert routed_output(capsys).startswith("✗")


def _check(answer, capsys) -> str:
    assert lesson04.check_throttle(answer) is None
    return routed_output(capsys)


def test_check_accepts_the_lessons_answer(capsys):
    out = _check(LessonThrottle, capsys)
    assert out.startswith("✓") and "渲染 2 次" in out and out.count("\n") == 1


def test_the_kits_rule_is_the_lessons_rule_on_every_case():
    """The kit's Throttle (what LiveView uses) and the lesson's answer agree everywhere."""
    for case in lesson04.CASES:
        kit = throttle_renders(case.events, case.interval)
        assert kit == throttle_renders(case.events, case.interval, throttle=LessonThrottle)
    assert throttle_renders([(0.0, "a")] * 3, 0.04) == ["a", "aaa"]


def replay_mistake(events, interval, *, strict=False, since_delta=False):
    """What the two mistakes the check recognises render (written here, not in the kit)."""
    shown, text, last = [], "", None
    for arrived, piece in events:
        text += piece
        due = last is None or (arrived - last > interval if strict else arrived - last >= interval)
        if due:
            shown.append(text)
        if due or since_delta:
            last = arrived
    if text and (not shown or shown[-1] != text):
        shown.append(text)
    return shown


@pytest.mark.parametrize("case", lesson04.CASES, ids=lambda case: case.name)
def test_the_written_out_mistakes_are_right(case):
    assert case.strict == replay_mistake(case.events, case.interval, strict=True)
    assert case.since_delta == replay_mistake(case.events, case.interval, since_delta=True)


def test_the_unwritten_stub_is_reported_as_not_done(capsys):
    class Throttle(LessonThrottle):
        def offer(self, now):
            raise NotImplementedError("还没完成")

    out = _check(Throttle, capsys)
    assert out.startswith("✗ 还没完成：") and "Throttle 里还是" in out, out


class NoThrottle(LessonThrottle):
    def offer(self, now):
        return True


class NoFinal(LessonThrottle):
    def finish(self):
        return False


class AlwaysFinal(LessonThrottle):
    def finish(self):
        return True


class PendingNeverCleared(LessonThrottle):
    def offer(self, now):
        if self.last is None or now - self.last >= self.interval:
            self.last = now
            return True
        self.pending = True
        return False


class Strict(LessonThrottle):
    def offer(self, now):
        if self.last is None or now - self.last > self.interval:
            self.last, self.pending = now, False
            return True
        self.pending = True
        return False


class SinceDelta(LessonThrottle):
    def offer(self, now):
        due = self.last is None or now - self.last >= self.interval
        self.last = now
        self.pending = not due
        return due


class Crashes(LessonThrottle):
    def offer(self, now):
        return now - self.last >= self.interval  # None the first time: TypeError


class ReturnsNothing(LessonThrottle):
    def offer(self, now):
        super().offer(now)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (NoThrottle, "没有节流"),
        (NoFinal, "少了结尾"),
        (AlwaysFinal, "渲染了两次"),
        (PendingNeverCleared, "渲染了两次"),
        (Strict, ">="),
        (SinceDelta, "上一次渲染"),
        (Crashes, "TypeError"),
        (ReturnsNothing, "True 或 False"),
    ],
)
def test_check_catches_typical_mistakes(wrong, hint, capsys):
    out = _check(wrong, capsys)
    assert out.startswith("✗") and hint in out, out
