"""A stream of chunks → a live view that grows as the deltas arrive.

>>> view = LiveView()                                        # doctest: +SKIP
>>> view.run(lambda: client.stream([{"role": "user", "content": "你好"}]))
>>> view.text
'你好！有什么问题或者需要帮助的吗？'

In Jupyter the view is a small ipywidgets panel: a status line (model, state, time to first
token, tokens/s, usage), a Stop button, a collapsible panel for ``reasoning_content`` and the
answer (Markdown). Elsewhere (a terminal, a script) it prints the text as it arrives.

Two ways to run it:

* ``view.run(source)`` blocks until the stream ends. The updates are still visible while the
  cell runs: every widget change is a message the kernel sends on its IOPub channel at once.
  The kernel handles one request at a time, though, so a click on Stop would only be read
  after the cell ends -- in this mode the button is disabled; interrupt the kernel (■) to stop.
* ``view.start(source)`` reads the stream in a background thread and returns at once, so the
  notebook stays usable and Stop works. ``view.wait()`` (or ``join()``) waits for the end.

``source`` is any iterable of ``chat.completion.chunk`` dicts (a ``ChatStream``, a list, a
generator; plain strings count as answer text), or a function returning one -- then the
request itself is made inside the view, timed, and its errors are shown in the view too.

Renders are throttled (``max_fps``, 25 per second by default) however fast the deltas come,
and the last render always shows the exact final text. An exception from the stream ends it:
the view shows the exception's one-line message and keeps the partial text (``view.error``);
nothing is raised.
"""

from __future__ import annotations

import html
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from .chunks import ChatResult, ChunkAssembler

__all__ = [
    "ANSWERING",
    "DONE",
    "ERROR",
    "STOPPED",
    "THINKING",
    "WAITING",
    "LiveView",
    "detect_mode",
    "show_side_by_side",
]

# The states a view goes through, as shown in its status line.
WAITING = "等待中"
THINKING = "思考中"
ANSWERING = "生成中"
DONE = "完成"
STOPPED = "已停止"
ERROR = "出错"
_END_STATES = (DONE, STOPPED, ERROR)

MODES = ("auto", "widget", "text", "silent")
_KEYLIKE = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9._\-]{6,}")
_MAX_ERROR = 300


def detect_mode() -> str:
    """``"widget"`` inside a Jupyter kernel with ipywidgets installed, else ``"text"``.

    A plain ``python`` process or a terminal IPython has no kernel, so no front end could
    show a widget there: the text is printed instead.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return "text"
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return "text"
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return "text"
    return "widget"


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _one_line(exc: BaseException) -> str:
    """The exception as one line for the view (the client's errors already are one line)."""
    text = " ".join(str(exc).split())
    if not hasattr(exc, "partial_text") or not text:  # not one of the kit's LLMErrors
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = _KEYLIKE.sub(lambda m: m.group(1) + "***", text)
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


@dataclass(frozen=True)
class _Snapshot:
    """Everything one render shows; taken under the view's lock, drawn outside it."""

    title: str
    text: str
    reasoning: str
    state: str
    status: str
    error: str | None
    final: bool


class LiveView:
    """A live view of one streamed chat answer (see the module docstring).

    ``mode``: ``"auto"`` (widgets in Jupyter, text elsewhere), ``"widget"``, ``"text"``
    (print to ``out``, default ``sys.stdout``) or ``"silent"`` (draw nothing; for tests and
    benchmarks). ``markdown=False`` shows the answer as plain wrapped text.
    """

    def __init__(
        self,
        title: str = "",
        *,
        mode: str = "auto",
        markdown: bool = True,
        max_fps: float = 25.0,
        out: TextIO | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.title = title
        self.mode = detect_mode() if mode == "auto" else mode
        self.max_fps = max_fps
        self.renders = 0  # how many times the view was drawn
        self.deltas = 0  # content and reasoning pieces received (choice 0)
        self.chunks = 0  # items read from the stream
        self.usage: dict | None = None
        self.exception: BaseException | None = None
        self.rendered_text = ""  # the answer text as the latest render showed it

        self._interval = 1.0 / max_fps
        self._lock = threading.Lock()  # guards the data below
        self._render_lock = threading.Lock()  # keeps renders in order
        self._assembler = ChunkAssembler()
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._model = ""
        self._finish_reason: str | None = None
        self._state = WAITING
        self._error: str | None = None
        self._dirty = True
        self._last_render = float("-inf")
        self._final_drawn = False
        self._t_start: float | None = None
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._t_end: float | None = None
        self._started = False
        self._shown = False
        self._stop_requested = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_finish: list[Callable[[LiveView], None]] = []

        self._ui: _WidgetUI | _TextUI | None
        if self.mode == "widget":
            self._ui = _WidgetUI(markdown, on_stop=self.stop)
        elif self.mode == "text":
            self._ui = _TextUI(out)
        else:
            self._ui = None

    # -- what the view holds --------------------------------------------------------------
    @property
    def text(self) -> str:
        """The answer (choice 0) received so far."""
        with self._lock:
            return "".join(self._content)

    @property
    def reasoning(self) -> str:
        """The ``reasoning_content`` (choice 0) received so far."""
        with self._lock:
            return "".join(self._reasoning)

    @property
    def result(self) -> ChatResult:
        """Everything assembled so far (all choices, usage, finish reason)."""
        with self._lock:
            return self._assembler.result()

    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> str | None:
        """The one-line error message, when the stream ended with an error."""
        return self._error

    @property
    def done(self) -> bool:
        """True once the stream ended: finished, stopped or failed."""
        return self._finished.is_set()

    @property
    def model(self) -> str:
        return self._model

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    @property
    def ttft(self) -> float | None:
        """Seconds from the start to the first token (reasoning or answer)."""
        if self._t_start is None or self._t_first is None:
            return None
        return self._t_first - self._t_start

    @property
    def elapsed(self) -> float:
        """Seconds since the start (until the end, once the stream ended)."""
        if self._t_start is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.monotonic()
        return end - self._t_start

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first one (usage when known, else deltas)."""
        if self._t_first is None or self._t_last is None or self._t_last <= self._t_first:
            return None
        tokens = self.deltas
        if self.usage and isinstance(self.usage.get("completion_tokens"), int):
            tokens = self.usage["completion_tokens"]
        return tokens / (self._t_last - self._t_first)

    @property
    def widget(self) -> Any:
        """The ipywidgets box (widget mode only, else None)."""
        return self._ui.root if isinstance(self._ui, _WidgetUI) else None

    @property
    def stop_button(self) -> Any:
        """The Stop button (widget mode only, else None)."""
        return self._ui.stop_button if isinstance(self._ui, _WidgetUI) else None

    def status_line(self, *, counts: bool = False) -> str:
        """Model · state · time to first token · tokens/s · usage (· renders / deltas)."""
        parts = [self._model or "（模型未知）", self._state]
        if self._finish_reason == "length":
            parts.append("达到 max_tokens 上限")
        if self.ttft is not None:
            parts.append(f"首个 token {self.ttft:.2f} 秒")
        rate = self.tokens_per_second
        if rate is not None:
            parts.append(f"{rate:.1f} tokens/s")
        usage = self.usage or {}
        if all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")):
            total = usage.get("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
            parts.append(
                f"用量 {usage['prompt_tokens']}+{usage['completion_tokens']}={total} tokens"
            )
        if counts:
            parts.append(f"渲染 {self.renders} 次 / {self.deltas} 个 delta")
        return " · ".join(parts)

    def __repr__(self) -> str:
        return (
            f"LiveView(state={self._state!r}, chars={len(self.text)}, "
            f"deltas={self.deltas}, renders={self.renders})"
        )

    # -- showing ----------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        self.show()

    def show(self) -> LiveView:
        """Put the widget in the current cell's output (done by run/start if not yet)."""
        if isinstance(self._ui, _WidgetUI) and not self._shown:
            self._shown = True
            if _in_ipython():
                self._ui.display(self._plain)
        return self

    def _plain(self) -> str:
        """What front ends without widgets show (nbconvert to Markdown, GitHub)."""
        if self._state not in _END_STATES:
            return "（实时视图：正在接收……）"
        lines = []
        if self.reasoning:
            lines += [f"〔思考〕{self.reasoning}", ""]
        lines.append(self.text)
        if self._error:
            lines.append(f"✗ {self._error}")
        elif self._state == STOPPED:
            lines.append("（已停止）")
        return "\n".join(lines)

    # -- running ----------------------------------------------------------------------------
    def run(self, source: Iterable[Any] | Callable[[], Iterable[Any]], *, model: str = "") -> None:
        """Read the whole stream here, updating the view as it goes; returns at the end.

        Never raises for a failed stream: see :attr:`error`. Interrupting the kernel (■,
        KeyboardInterrupt) stops the stream and keeps the partial text.
        """
        self._begin(model, background=False)
        self._consume(source, blocking=True)

    def start(
        self, source: Iterable[Any] | Callable[[], Iterable[Any]], *, model: str = ""
    ) -> LiveView:
        """Read the stream in a background thread and return at once (see :meth:`wait`)."""
        self._begin(model, background=True)
        self._thread = threading.Thread(
            target=self._consume, args=(source, False), name="lesson-live-view", daemon=True
        )
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the stream ended; True if it did (False if ``timeout`` ran out)."""
        if not self._started:
            raise RuntimeError("这个 LiveView 还没有开始：先调用 run(...) 或 start(...)")
        try:
            return self._finished.wait(timeout)
        except KeyboardInterrupt:  # interrupting a wait() stops the stream
            self.stop()
            return True

    join = wait

    def stop(self) -> None:
        """End the stream now and keep the partial text (what the Stop button does)."""
        self._stop_requested.set()
        if self._started:
            self._finish(STOPPED)

    def add_finish_callback(self, callback: Callable[[LiveView], None]) -> None:
        """Call ``callback(view)`` once the stream ended (at once if it already has)."""
        with self._lock:
            if not self._finished.is_set():
                self._on_finish.append(callback)
                return
        callback(self)

    def _begin(self, model: str, background: bool) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("一个 LiveView 只显示一次回答：请为新的请求创建新的 LiveView")
            self._started = True
            self._model = model
            self._t_start = time.monotonic()
        if isinstance(self._ui, _WidgetUI):
            self._ui.set_blocking(not background)
        self.show()
        self._render(force=True)
        threading.Thread(target=self._tick, name="lesson-live-view-ticker", daemon=True).start()

    def _consume(self, source: Any, blocking: bool) -> None:
        iterable: Any = None
        iterator: Iterator[Any] | None = None
        try:
            iterable = source() if callable(source) and not hasattr(source, "__iter__") else source
            iterator = iter(iterable)
            for item in iterator:
                if self._stop_requested.is_set():
                    break
                self._absorb(item)
                self._render()
        except KeyboardInterrupt:
            if not blocking:
                raise
            self._stop_requested.set()
        except Exception as exc:
            if not self._stop_requested.is_set():
                self.exception = exc
                self._finish(ERROR, _one_line(exc))
        finally:
            if self._stop_requested.is_set() or self.exception is not None:
                _close(iterator, iterable)
            self._finish(STOPPED if self._stop_requested.is_set() else DONE)

    def _absorb(self, item: Any) -> None:
        if isinstance(item, str):
            item = {"choices": [{"index": 0, "delta": {"content": item}}]}
        if not isinstance(item, dict):
            raise TypeError(f"expected chunk dicts or str, got {type(item).__name__}")
        with self._lock:
            if self._state in _END_STATES:
                return
            news = self._assembler.add(item)
            self.chunks += 1
            self._model = self._model or item.get("model") or ""
            if item.get("usage") is not None:
                self.usage = item["usage"]
            for delta in news:
                if delta.index != 0:
                    continue
                if delta.finish_reason:
                    self._finish_reason = delta.finish_reason
                if not (delta.content or delta.reasoning_content):
                    continue
                now = time.monotonic()
                self._t_first = self._t_first or now
                self._t_last = now
                if delta.reasoning_content:
                    self._reasoning.append(delta.reasoning_content)
                    self.deltas += 1
                    if not self._content:
                        self._state = THINKING
                if delta.content:
                    self._content.append(delta.content)
                    self.deltas += 1
                    self._state = ANSWERING
            self._dirty = True

    def _finish(self, state: str, error: str | None = None) -> None:
        with self._lock:
            if self._state in _END_STATES:
                return
            self._state = state
            self._error = error
            self._t_end = time.monotonic()
            self._dirty = True
        self._render(force=True, final=True)
        with self._lock:
            callbacks, self._on_finish = self._on_finish, []
            self._finished.set()
        for callback in callbacks:
            callback(self)

    # -- rendering --------------------------------------------------------------------------
    def _tick(self) -> None:
        """Draw what is pending even when no new delta comes (the stream paused)."""
        while not self._finished.wait(self._interval):
            self._render()

    def _render(self, force: bool = False, final: bool = False) -> None:
        with self._render_lock:
            with self._lock:
                now = time.monotonic()
                if self._final_drawn:
                    return
                if not force and (not self._dirty or now - self._last_render < self._interval):
                    return
                self._dirty = False
                self._last_render = now
                self._final_drawn = final
                self.renders += 1
                snap = _Snapshot(
                    title=self.title,
                    text="".join(self._content),
                    reasoning="".join(self._reasoning),
                    state=self._state,
                    status=self.status_line(counts=isinstance(self._ui, _WidgetUI)),
                    error=self._error,
                    final=final,
                )
            if self._ui is not None:
                self._ui.render(snap)
            self.rendered_text = snap.text
        if final and isinstance(self._ui, _WidgetUI):
            self._ui.finish(self._plain())


def _close(*objects: Any) -> None:
    """Close the stream (and so its HTTP connection) when it ended early."""
    seen = set()
    for obj in objects:
        close = getattr(obj, "close", None)
        if obj is None or id(obj) in seen or not callable(close):
            continue
        seen.add(id(obj))
        try:
            close()
        except Exception:  # closing is best effort; the view already ended
            pass


# --- drawing: widgets ------------------------------------------------------------------------

_TEXT_STYLE = (
    "white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; line-break: auto; "
    "line-height: 1.65; margin: 0"
)
_BLOCKING_TIP = "阻塞模式：这一格运行时内核收不到按钮点击；请用工具栏的 ■（中断内核）停止"


def _markdown_renderer() -> Callable[[str], str] | None:
    try:
        import mistune  # installed with Jupyter (nbconvert uses it)
    except ImportError:
        return None
    try:
        return mistune.create_markdown(escape=True, plugins=["strikethrough", "table"])
    except Exception:
        return None


class _WidgetUI:
    """Status line + Stop button, a collapsible reasoning panel, the answer, the error."""

    def __init__(self, markdown: bool, on_stop: Callable[[], None]) -> None:
        import ipywidgets as w

        self._to_html = _markdown_renderer() if markdown else None
        self.status = w.HTML(layout=w.Layout(flex="1 1 auto", margin="0 8px 0 0"))
        self.stop_button = w.Button(
            description="停止",
            icon="stop",
            tooltip="停止接收，保留已经收到的文字",
            layout=w.Layout(width="auto", flex="0 0 auto"),
        )
        self.stop_button.on_click(lambda _button: on_stop())
        self.reasoning = w.HTML()
        self.panel = w.Accordion(children=[self.reasoning], layout=w.Layout(display="none"))
        self.panel.set_title(0, "思考过程")
        self.answer = w.HTML(layout=w.Layout(width="100%"))
        self.error = w.HTML(layout=w.Layout(display="none"))
        header = w.HBox([self.status, self.stop_button], layout=w.Layout(align_items="center"))
        self.root = w.VBox(
            [header, self.panel, self.answer, self.error],
            layout=w.Layout(width="100%", padding="4px 0"),
        )
        for widget, name in (
            (self.root, "lesson-live-view"),
            (self.status, "lesson-live-status"),
            (self.stop_button, "lesson-live-stop"),
            (self.panel, "lesson-live-reasoning"),
            (self.answer, "lesson-live-answer"),
            (self.error, "lesson-live-error"),
        ):
            widget.add_class(name)
        self._handle: Any = None
        self._opened_reasoning = False
        self._collapsed_reasoning = False

    def set_blocking(self, blocking: bool) -> None:
        self.stop_button.disabled = blocking
        if blocking:
            self.stop_button.tooltip = _BLOCKING_TIP

    def display(self, plain: Callable[[], str]) -> None:
        from IPython.display import display

        self._handle = display(self._bundle(plain()), raw=True, display_id=True)

    def _bundle(self, plain: str) -> dict[str, Any]:
        bundle = dict(self.root._repr_mimebundle_())
        bundle["text/plain"] = plain
        return bundle

    def finish(self, plain: str) -> None:
        """Give static front ends (nbconvert, GitHub) the final text instead of a repr."""
        if self._handle is not None:
            self._handle.update(self._bundle(plain), raw=True)

    def _html(self, text: str) -> str:
        if self._to_html is not None:
            body = self._to_html(text)
            style = "overflow-wrap: anywhere; line-height: 1.6"
            return f'<div class="lesson-live-text" style="{style}">{body}</div>'
        return f'<div class="lesson-live-text" style="{_TEXT_STYLE}">{html.escape(text)}</div>'

    def render(self, snap: _Snapshot) -> None:
        title = f"<b>{html.escape(snap.title)}</b> · " if snap.title else ""
        color = {ERROR: "#b42318", STOPPED: "#b54708", DONE: "#067647"}.get(snap.state, "#475467")
        parts = " · ".join(  # keep "首个 token 0.05 秒" etc. on one line each
            f'<span style="white-space: nowrap">{html.escape(part)}</span>'
            for part in snap.status.split(" · ")
        )
        self.status.value = (
            f'<div style="font-size: 0.9em; line-height: 1.4; color: {color}">{title}{parts}</div>'
        )
        if snap.reasoning:
            if not self._opened_reasoning:
                self._opened_reasoning = True
                self.panel.layout.display = None
                self.panel.selected_index = 0  # open while the model thinks
            self.panel.set_title(0, f"思考过程（{len(snap.reasoning)} 字）")
            self.reasoning.value = (
                f'<div style="{_TEXT_STYLE}; color: #667085; font-size: 0.92em">'
                f"{html.escape(snap.reasoning)}</div>"
            )
            if snap.text and not self._collapsed_reasoning:
                self._collapsed_reasoning = True
                self.panel.selected_index = None  # fold it away once the answer starts
        self.answer.value = self._html(snap.text)
        if snap.error:
            self.error.value = (
                f'<div style="color: #b42318; {_TEXT_STYLE}">✗ {html.escape(snap.error)}</div>'
            )
            self.error.layout.display = None
        if snap.final:
            self.stop_button.disabled = True
            self.stop_button.layout.visibility = "hidden"  # nothing left to stop


# --- drawing: text ---------------------------------------------------------------------------


class _TextUI:
    """Prints only what is new at each render: the terminal is append-only."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.buffered = False  # side by side: print the whole answer once it ended
        self._reasoning_len = 0
        self._text_len = 0
        self._started = False

    def _write(self, text: str) -> None:
        stream = self.out or sys.stdout
        stream.write(text)
        stream.flush()

    def render(self, snap: _Snapshot) -> None:
        if self.buffered and not snap.final:
            return
        pieces = []
        if not self._started and snap.title:
            pieces.append(f"【{snap.title}】\n")
        self._started = True
        new_reasoning = snap.reasoning[self._reasoning_len :]
        if new_reasoning:
            if self._reasoning_len == 0:
                pieces.append("〔思考〕")
            pieces.append(new_reasoning)
            self._reasoning_len = len(snap.reasoning)
        new_text = snap.text[self._text_len :]
        if new_text:
            if self._text_len == 0 and self._reasoning_len:
                pieces.append("\n〔回答〕")
            pieces.append(new_text)
            self._text_len = len(snap.text)
        if snap.final:
            if self._text_len or self._reasoning_len:
                pieces.append("\n")
            if snap.error:
                pieces.append(f"✗ {snap.error}\n")
            pieces.append(f"[{snap.status}]\n")
        if pieces:
            with _PRINT_LOCK:
                self._write("".join(pieces))


_PRINT_LOCK = threading.Lock()


# --- side by side ----------------------------------------------------------------------------


def show_side_by_side(*views: LiveView) -> None:
    """Show several views next to each other (start them afterwards, e.g. with ``start``).

    Without widgets each view prints its whole answer, under its title, once it ended --
    two streams printed into one terminal at the same time would be unreadable.
    """
    widgets = [v.widget for v in views]
    if views and all(w is not None for w in widgets):
        import ipywidgets as w

        for view in views:
            view._shown = True
        share = f"{100 / len(views):.4f}%"
        for widget in widgets:
            widget.layout.width = share
            widget.layout.padding = "4px 8px"
        box = w.HBox(widgets, layout=w.Layout(width="100%", align_items="flex-start"))
        if _in_ipython():
            _display_box(box, list(views))
        return
    for view in views:
        if isinstance(view._ui, _TextUI):
            view._ui.buffered = True


def _display_box(box: Any, views: list[LiveView]) -> None:
    from IPython.display import display

    def plain() -> str:
        if not all(v.done for v in views):
            return "（并排的实时视图：正在接收……）"
        blocks = []
        for view in views:
            head = f"【{view.title or view.model}】"
            blocks.append(f"{head}\n{view._plain()}")
        return "\n\n".join(blocks)

    bundle = dict(box._repr_mimebundle_())
    bundle["text/plain"] = plain()
    handle = display(bundle, raw=True, display_id=True)
    lock = threading.Lock()

    def maybe_update(_view: LiveView) -> None:
        with lock:
            if all(v.done for v in views):
                handle.update({**bundle, "text/plain": plain()}, raw=True)

    for view in views:
        view.add_finish_callback(maybe_update)
