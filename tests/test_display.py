"""``lesson_helpers.display``: the live view, without a browser (see test_browser.py for that).

The views run in "silent" mode (no drawing), "text" mode (into a StringIO) and "widget" mode
(real ipywidgets, no front end attached), against plain iterables and the real local server.
Also the self-check of lesson 04's throttling exercise.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import routed_output

from lesson_helpers.checks import lesson04
from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.display import (
    DONE,
    ERROR,
    STOPPED,
    WAITING,
    LiveView,
    detect_mode,
    show_side_by_side,
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


@pytest.fixture
def client(server) -> ChatClient:
    settings = Settings(
        api_key=Secret(server.api_key),
        base_url=server.base_url,
        model=SEED_MODEL,
        timeout=10.0,
        connect_timeout=5.0,
        provider="local",
    )
    return ChatClient(settings)


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
        settings = Settings(
            api_key=Secret(slow.api_key),
            base_url=slow.base_url,
            model=SEED_MODEL,
            timeout=10.0,
            connect_timeout=5.0,
            provider="local",
        )
        client = ChatClient(settings)
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


# --- lesson 04's self-check ------------------------------------------------------------------


def _check(fn, capsys) -> str:
    assert lesson04.check_throttle(fn) is None
    out = routed_output(capsys)
    assert out.count("\n") == 1, out  # exactly one line: ✓ or ✗
    return out


def test_check_accepts_the_reference(capsys):
    out = _check(lesson04.reference_throttle_renders, capsys)
    assert out.startswith("✓") and "渲染 2 次" in out


def test_reference_matches_the_view_on_a_burst():
    assert lesson04.reference_throttle_renders([(0.0, "a")] * 3, 0.04) == ["a", "aaa"]


def _no_throttle(events, interval):
    shown, text = [], ""
    for _, piece in events:
        text += piece
        shown.append(text)
    return shown


def _no_final(events, interval):
    shown, text, last = [], "", None
    for t, piece in events:
        text += piece
        if last is None or t - last >= interval:
            shown.append(text)
            last = t
    return shown


def _always_final(events, interval):
    shown = _no_final(events, interval)
    text = "".join(p for _, p in events)
    return [*shown, text] if text else shown


def _pieces_not_text(events, interval):
    shown, last = [], None
    for t, piece in events:
        if last is None or t - last >= interval:
            shown.append(piece)
            last = t
    return shown


def _strict(events, interval):
    shown, text, last = [], "", None
    for t, piece in events:
        text += piece
        if last is None or t - last > interval:
            shown.append(text)
            last = t
    if text and (not shown or shown[-1] != text):
        shown.append(text)
    return shown


def _since_delta(events, interval):
    shown, text, last = [], "", None
    for t, piece in events:
        text += piece
        if last is None or t - last >= interval:
            shown.append(text)
        last = t
    if text and (not shown or shown[-1] != text):
        shown.append(text)
    return shown


def _crashes(events, interval):
    text = ""
    for arrived, _piece in events:
        text += arrived  # adds the time, not the piece
    return [text]


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (_no_throttle, "没有节流"),
        (_no_final, "少了结尾"),
        (_always_final, "渲染了两次"),
        (_pieces_not_text, "累积的文本"),
        (_strict, ">="),
        (_since_delta, "上一次渲染"),
        (_crashes, "TypeError"),
        (lambda events, interval: None, "list[str]"),
    ],
)
def test_check_catches_typical_mistakes(wrong, hint, capsys):
    out = _check(wrong, capsys)
    assert out.startswith("✗") and hint in out, out
    assert "\n" not in out.strip()
