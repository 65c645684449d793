"""The live view's driver: reads the stream (here or in a thread), renders when the throttle
says so, and handles Stop. What it shows is in :mod:`.state`, how it draws in :mod:`.widget`
and :mod:`.text`, when it draws in :mod:`.throttle`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from ..chunks import ChatResult, ChoiceDelta, ChunkAssembler
from .secrecy import ShownText, error_line, hide_key
from .state import DONE, ERROR, STOPPED, Answer, Frame, StreamState
from .text import TextUI, plain_text
from .throttle import Throttle
from .widget import WidgetUI, detect_mode, in_ipython

__all__ = ["MODES", "LiveView"]

MODES = ("auto", "widget", "text", "silent")

Source = Iterable[Any] | Callable[[], Iterable[Any]]
Updates = Iterator[tuple[Any, list[ChoiceDelta]]]


class LiveView:
    """A live view of one streamed chat answer (see :mod:`lesson_helpers.display`).

    ``mode``: ``"auto"`` (widgets in Jupyter, text elsewhere), ``"widget"``, ``"text"``
    (print to ``out``, default ``sys.stdout``) or ``"silent"`` (draw nothing; for tests and
    benchmarks). ``markdown=False`` shows the answer as plain wrapped text. ``secret``: a key
    to hide from everything shown (a ``ChatStream`` brings its own).
    """

    def __init__(
        self,
        title: str = "",
        *,
        mode: str = "auto",
        markdown: bool = True,
        max_fps: float = 25.0,
        out: TextIO | None = None,
        secret: object = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not max_fps > 0:
            raise ValueError("max_fps must be positive")
        self.title = title
        self.mode = detect_mode() if mode == "auto" else mode
        self.max_fps = max_fps
        self.renders = 0  # how many times the view was drawn
        self.rendered_text = ""  # the answer text as the latest render showed it
        self.stream_state = StreamState(secret=secret)
        self._throttle = Throttle(1.0 / max_fps)
        self._lock = threading.Lock()  # guards state changes and the throttle
        self._render_lock = threading.Lock()  # keeps renders in order
        self._shown: dict[str, ShownText] = {}  # what each text field may show so far
        self._final_drawn = False
        self._started = False
        self._placed = False  # the widget is in a cell's output
        self._stop_requested = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_finish: list[Callable[[LiveView], None]] = []
        self._ui: WidgetUI | TextUI | None = None
        if self.mode == "widget":
            self._ui = WidgetUI(markdown, on_stop=self.stop)
        elif self.mode == "text":
            self._ui = TextUI(out)

    # -- what the view holds (read from its StreamState) ----------------------------------
    @property
    def text(self) -> str:
        """The answer (choice 0) received so far."""
        return self.stream_state.text

    @property
    def reasoning(self) -> str:
        """The reasoning (choice 0) so far (``reasoning_content``, ``reasoning``, thinking)."""
        return self.stream_state.reasoning

    @property
    def refusal(self) -> str:
        """The refusal (choice 0) so far, when the model declined to answer."""
        return self.stream_state.refusal

    @property
    def tool_calls(self) -> tuple[tuple[str, str], ...]:
        """The tool calls (choice 0) so far, as ``(name, arguments)`` pairs."""
        return self.stream_state.tool_calls

    @property
    def result(self) -> ChatResult:
        """Everything assembled so far (all choices, usage, finish reason)."""
        return self.stream_state.result

    @property
    def state(self) -> str:
        return self.stream_state.state

    @property
    def error(self) -> str | None:
        """The one-line error message, when the stream ended with an error."""
        return self.stream_state.error

    @property
    def exception(self) -> BaseException | None:
        """The exception that ended the stream, if one did."""
        return self.stream_state.exception

    @property
    def done(self) -> bool:
        """True once the stream ended: finished, stopped or failed."""
        return self._finished.is_set()

    @property
    def model(self) -> str:
        return self.stream_state.model

    @property
    def usage(self) -> dict | None:
        return self.stream_state.usage

    @property
    def finish_reason(self) -> str | None:
        return self.stream_state.finish_reason

    @property
    def deltas(self) -> int:
        """Pieces of answer, reasoning, refusal or tool call received (choice 0)."""
        return self.stream_state.deltas

    @property
    def chunks(self) -> int:
        """Items read from the stream."""
        return self.stream_state.chunks

    @property
    def ttft(self) -> float | None:
        """Seconds from the start to the first token (reasoning or answer)."""
        return self.stream_state.ttft

    @property
    def elapsed(self) -> float:
        """Seconds since the start (until the end, once the stream ended)."""
        return self.stream_state.elapsed

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second after the first one (usage when known, else deltas)."""
        return self.stream_state.tokens_per_second()

    @property
    def widget(self) -> Any:
        """The ipywidgets box (widget mode only, else None)."""
        return self._ui.root if isinstance(self._ui, WidgetUI) else None

    @property
    def stop_button(self) -> Any:
        """The Stop button (widget mode only, else None)."""
        return self._ui.stop_button if isinstance(self._ui, WidgetUI) else None

    def status_line(self, *, counts: bool = False) -> str:
        """Model · state · time to first token · tokens/s · usage (· renders / deltas)."""
        return self.stream_state.status_line(self.renders if counts else None)

    def plain_text(self) -> str:
        """What front ends without widgets show for this view (nbconvert, GitHub)."""
        return plain_text(self._frame(final=self.done, answer=self.stream_state.answer()))

    def __repr__(self) -> str:
        return (
            f"LiveView(state={self.state!r}, chars={len(self.text)}, "
            f"deltas={self.deltas}, renders={self.renders})"
        )

    # -- showing --------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        self.show()

    def show(self) -> LiveView:
        """Put the widget in the current cell's output (done by run/start if not yet)."""
        if isinstance(self._ui, WidgetUI) and not self._placed:
            self._placed = True
            if in_ipython():
                self._ui.display(self.plain_text())
        return self

    def take_place(self) -> Any:
        """For a container showing this view (:func:`show_side_by_side`): the widget, which
        the view then no longer displays by itself. In text mode None, and the view prints its
        whole answer once it ended (two streams printed at once would be unreadable)."""
        if isinstance(self._ui, TextUI):
            self._ui.buffered = True
        self._placed = True
        return self.widget

    # -- running --------------------------------------------------------------------------
    def run(self, source: Source, *, model: str = "") -> None:
        """Read the whole stream here, updating the view as it goes; returns at the end.

        Never raises for a failed stream: see :attr:`error`. Interrupting the kernel (■,
        KeyboardInterrupt) stops the stream and keeps the partial text.
        """
        self._begin(model, background=False)
        self._consume(source, blocking=True)

    def start(self, source: Source, *, model: str = "") -> LiveView:
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
            self.stream_state.begin(model)
            first = self._throttle.offer(time.monotonic())  # the view appears at once
        if isinstance(self._ui, WidgetUI):
            self._ui.set_blocking(not background)
        self.show()
        if first:
            self._render()
        threading.Thread(target=self._tick, name="lesson-live-view-ticker", daemon=True).start()

    def _updates(self, iterable: Any) -> tuple[Updates, Any]:
        """(chunk, what it added) for each item, and the iterator to close on an early end.

        A ``ChatStream`` merges each chunk into its own assembler once; the view reads that
        assembler and merges nothing. Any other iterable gets one assembler of the view's own.
        """
        assembler = getattr(iterable, "assembler", None)
        updates = getattr(iterable, "updates", None)
        if isinstance(assembler, ChunkAssembler) and callable(updates):
            self.stream_state.attach(assembler, getattr(iterable, "secret", ""))
            stream_updates = updates()
            return stream_updates, stream_updates
        items = iter(iterable)
        return self._merged(items), items

    def _merged(self, items: Iterator[Any]) -> Updates:
        assembler = self.stream_state.assembler
        for item in items:
            if isinstance(item, str):
                item = {"choices": [{"index": 0, "delta": {"content": item}}]}
            elif not isinstance(item, dict):
                raise TypeError(f"expected chunk dicts or str, got {type(item).__name__}")
            with self._lock:
                if self.stream_state.done:
                    return
                news = assembler.add(item)
            yield item, news

    def _consume(self, source: Source, blocking: bool) -> None:
        iterable: Any = None
        closable: Any = None
        try:
            iterable = source() if callable(source) and not hasattr(source, "__iter__") else source
            updates, closable = self._updates(iterable)
            for chunk, news in updates:
                if self._stop_requested.is_set():
                    break
                self._take(chunk, news)
        except KeyboardInterrupt:
            if not blocking:
                raise
            self._stop_requested.set()
        except Exception as exc:
            if not self._stop_requested.is_set():
                self.stream_state.exception = exc
                self._finish(ERROR, error_line(exc, self.stream_state.secret))
        finally:
            if self._stop_requested.is_set() or self.stream_state.exception is not None:
                _close(closable, iterable)
            self._finish(STOPPED if self._stop_requested.is_set() else DONE)

    def _take(self, chunk: Any, news: list[ChoiceDelta]) -> None:
        with self._lock:
            if self.stream_state.done:
                return
            due = self.stream_state.take(chunk, news) and self._throttle.offer(time.monotonic())
        if due:
            self._render()

    def _finish(self, state: str, error: str | None = None) -> None:
        with self._lock:
            if not self.stream_state.end(state, error):
                return
            self._throttle.finish()  # the end changes the status line: always drawn
        self._render(final=True)
        with self._lock:
            callbacks, self._on_finish = self._on_finish, []
            self._finished.set()
        for callback in callbacks:
            callback(self)

    # -- rendering ------------------------------------------------------------------------
    def _tick(self) -> None:
        """Draw what is pending even when no new delta comes (the stream paused)."""
        while not self._finished.wait(self._throttle.interval):
            with self._lock:
                due = self._throttle.poll(time.monotonic())
            if due:
                self._render()

    def _show(self, key: str, raw: str, final: bool) -> str:
        shown = self._shown.get(key)
        if shown is None or shown.secret is not self.stream_state.secret:  # a ChatStream's key
            shown = self._shown[key] = ShownText(self.stream_state.secret)
        return shown.update(raw, final=final)

    def _frame(self, *, final: bool, answer: Answer) -> Frame:
        state = self.stream_state
        return Frame(
            title=self.title,
            answer=answer,
            state=state.state,
            status=state.status_line(self.renders if isinstance(self._ui, WidgetUI) else None),
            error=state.error,
            final=final,
        )

    def _render(self, final: bool = False) -> None:
        with self._render_lock:
            if self._final_drawn:
                return
            self._final_drawn = final
            self.renders += 1
            text, reasoning, refusal, calls = self.stream_state.raw_answer()
            answer = Answer(
                self._show("text", text, final),
                self._show("reasoning", reasoning, final),
                self._show("refusal", refusal, final),
                tuple(
                    (  # a name is a label, shown whole: only a 12+ piece of the key hides
                        hide_key(c.name, self.stream_state.secret),
                        self._show(f"arguments{i}", c.arguments, final),
                    )
                    for i, c in enumerate(calls)
                ),
            )
            if final:
                self.stream_state.freeze(answer)
            frame = self._frame(final=final, answer=answer)
            if self._ui is not None:
                self._ui.render(frame)
            self.rendered_text = answer.text
        if final and isinstance(self._ui, WidgetUI):
            self._ui.finish(plain_text(frame))


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
