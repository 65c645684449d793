"""Drawing a live view as text: a terminal is append-only, so each render prints what is new.

The answer is printed as it is; reasoning, a refusal and each tool call get a label the
first time they print (``〔思考〕``, ``〔拒绝〕``, ``〔工具调用 get_weather〕``), and again with
``（续）`` if the output switches back to them. The last render prints the status line.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .state import END_STATES, STOPPED, Frame

__all__ = ["TextUI", "plain_text"]

_PRINT_LOCK = threading.Lock()  # views printing into one terminal: whole renders, not mixed


class TextUI:
    """Prints only what is new at each render."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.buffered = False  # side by side: print the whole answer once it ended
        self._printed: dict[str, int] = {}  # section -> characters printed
        self._section: str | None = None  # the section printed last
        self._started = False

    def _write(self, text: str) -> None:
        stream = self.out or sys.stdout
        stream.write(text)
        stream.flush()

    def _sections(self, frame: Frame) -> list[tuple[str, str, str]]:
        """(key, label, text) in the order they print."""
        answer = frame.answer
        sections = [("reasoning", "〔思考〕", answer.reasoning), ("text", "〔回答〕", answer.text)]
        sections.append(("refusal", "〔拒绝〕", answer.refusal))
        for i, (name, arguments) in enumerate(answer.tool_calls):
            sections.append((f"tool{i}", f"〔工具调用 {name or i + 1}〕", arguments))
        return sections

    def render(self, frame: Frame) -> None:
        if self.buffered and not frame.final:
            return
        pieces = []
        if not self._started and frame.title:
            pieces.append(f"【{frame.title}】\n")
        self._started = True
        for key, label, text in self._sections(frame):
            started = key in self._printed
            new = text[self._printed.get(key, 0) :]
            if not new and (started or not key.startswith("tool")):
                continue  # nothing new (a tool call's label shows before its arguments)
            if self._section != key:
                if self._section is not None:
                    pieces.append("\n")
                if key != "text" or self._section is not None:  # a plain answer: no label
                    pieces.append(label + "（续）" if started else label)
                self._section = key
            pieces.append(new)
            self._printed[key] = len(text)
        if frame.final:
            if self._section is not None:
                pieces.append("\n")
            if frame.error:
                pieces.append(f"✗ {frame.error}\n")
            pieces.append(f"[{frame.status}]\n")
        if pieces:
            with _PRINT_LOCK:
                self._write("".join(pieces))


def plain_text(frame: Frame) -> str:
    """What front ends without widgets show (nbconvert to Markdown, GitHub): the final view."""
    if frame.state not in END_STATES:
        return "（实时视图：正在接收……）"
    answer = frame.answer
    lines = []
    if answer.reasoning:
        lines += [f"〔思考〕{answer.reasoning}", ""]
    if answer.text or not (answer.refusal or answer.tool_calls):
        lines.append(answer.text)
    if answer.refusal:
        lines.append(f"〔拒绝〕{answer.refusal}")
    for name, arguments in answer.tool_calls:
        lines.append(f"〔工具调用 {name}〕{arguments}")
    if frame.error:
        lines.append(f"✗ {frame.error}")
    elif frame.state == STOPPED:
        lines.append("（已停止）")
    return "\n".join(lines)
