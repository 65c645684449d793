"""Drawing a live view with ipywidgets: status line + Stop, reasoning, answer, tool calls.

Each render sets a few ``HTML`` widgets' values: one small state-update message per widget
that changed, which the front end applies in place (no flicker). Everything shown is HTML-
escaped; Markdown is rendered with raw HTML escaped too.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from .state import DONE, ERROR, STOPPED, Frame

__all__ = ["WidgetUI", "detect_mode", "in_ipython"]

TEXT_STYLE = (
    "white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; line-break: auto; "
    "line-height: 1.65; margin: 0"
)
_BLOCKING_TIP = "阻塞模式：这一格运行时内核收不到按钮点击；请用工具栏的 ■（中断内核）停止"
_STATE_COLOURS = {ERROR: "#b42318", STOPPED: "#b54708", DONE: "#067647"}


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


def in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _markdown_renderer() -> Callable[[str], str] | None:
    try:
        import mistune  # installed with Jupyter (nbconvert uses it)
    except ImportError:
        return None
    try:
        return mistune.create_markdown(escape=True, plugins=["strikethrough", "table"])
    except Exception:
        return None


def _block(text: str, style: str = "") -> str:
    return f'<div style="{TEXT_STYLE}; {style}">{html.escape(text)}</div>'


class WidgetUI:
    """Status line + Stop button, a collapsible reasoning panel, the answer, the refusal,
    the tool calls and the error, each an ``HTML`` widget with a ``lesson-live-*`` class."""

    def __init__(self, markdown: bool, on_stop: Callable[[], None]) -> None:
        import ipywidgets as w

        def hidden() -> Any:
            return w.HTML(layout=w.Layout(display="none"))

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
        self.refusal = hidden()
        self.tools = hidden()
        self.error = hidden()
        header = w.HBox([self.status, self.stop_button], layout=w.Layout(align_items="center"))
        self.root = w.VBox(
            [header, self.panel, self.answer, self.refusal, self.tools, self.error],
            layout=w.Layout(width="100%", padding="4px 0"),
        )
        for widget, name in (
            (self.root, "lesson-live-view"),
            (self.status, "lesson-live-status"),
            (self.stop_button, "lesson-live-stop"),
            (self.panel, "lesson-live-reasoning"),
            (self.answer, "lesson-live-answer"),
            (self.refusal, "lesson-live-refusal"),
            (self.tools, "lesson-live-tools"),
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

    def display(self, plain: str) -> None:
        from IPython.display import display

        self._handle = display(self.bundle(plain), raw=True, display_id=True)

    def bundle(self, plain: str) -> dict[str, Any]:
        """The widget's MIME bundle, with ``plain`` for front ends that cannot show widgets."""
        bundle = dict(self.root._repr_mimebundle_())
        bundle["text/plain"] = plain
        return bundle

    def finish(self, plain: str) -> None:
        """Give static front ends (nbconvert, GitHub) the final text instead of a repr."""
        if self._handle is not None:
            self._handle.update(self.bundle(plain), raw=True)

    def _answer_html(self, text: str) -> str:
        if self._to_html is not None:
            body = self._to_html(text)
            style = "overflow-wrap: anywhere; line-height: 1.6"
            return f'<div class="lesson-live-text" style="{style}">{body}</div>'
        return f'<div class="lesson-live-text" style="{TEXT_STYLE}">{html.escape(text)}</div>'

    def render(self, frame: Frame) -> None:
        answer = frame.answer
        title = f"<b>{html.escape(frame.title)}</b> · " if frame.title else ""
        colour = _STATE_COLOURS.get(frame.state, "#475467")
        parts = " · ".join(  # keep "首个 token 0.05 秒" etc. on one line each
            f'<span style="white-space: nowrap">{html.escape(part)}</span>'
            for part in frame.status.split(" · ")
        )
        self.status.value = (
            f'<div style="font-size: 0.9em; line-height: 1.4; color: {colour}">{title}{parts}</div>'
        )
        if answer.reasoning:
            if not self._opened_reasoning:
                self._opened_reasoning = True
                self.panel.layout.display = None
                self.panel.selected_index = 0  # open while the model thinks
            self.panel.set_title(0, f"思考过程（{len(answer.reasoning)} 字）")
            self.reasoning.value = _block(answer.reasoning, "color: #667085; font-size: 0.92em")
            if (answer.text or answer.tool_calls) and not self._collapsed_reasoning:
                self._collapsed_reasoning = True
                self.panel.selected_index = None  # fold it away once the answer starts
        self.answer.value = self._answer_html(answer.text)
        if answer.refusal:
            self.refusal.value = _block(f"模型拒绝回答：{answer.refusal}", "color: #b54708")
            self.refusal.layout.display = None
        if answer.tool_calls:
            self.tools.value = "".join(
                '<div style="margin: 4px 0">'
                f'<div style="font-size: 0.9em; color: #475467">工具调用 {i + 1}：'
                f"<code>{html.escape(name or '…')}</code></div>"
                + _block(arguments or "（参数还没到）", "font-family: monospace; font-size: 0.9em")
                + "</div>"
                for i, (name, arguments) in enumerate(answer.tool_calls)
            )
            self.tools.layout.display = None
        if frame.error:
            self.error.value = _block(f"✗ {frame.error}", "color: #b42318")
            self.error.layout.display = None
        if frame.final:
            self.stop_button.disabled = True
            self.stop_button.layout.visibility = "hidden"  # nothing left to stop
