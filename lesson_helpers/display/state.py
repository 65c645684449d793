"""What one streamed answer holds so far, and how fast it came (no drawing, no threads).

:class:`StreamState` reads the answer from a :class:`~lesson_helpers.chunks.ChunkAssembler`
-- the stream's own one for a ``ChatStream`` -- and never keeps a copy of it while the
stream runs: per chunk it only counts the deltas and notes the time. It adds what the
assembler does not know: the state (waiting → thinking → answering → done, stopped or
failed), the time to the first token, tokens per second and the error line. When the stream
ends the answer is frozen as it was last shown, so nothing that arrives after a Stop changes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..chunks import ChatResult, ChoiceDelta, ChunkAssembler, ToolCall
from ..errors import redact
from .secrecy import hide_key

__all__ = [
    "ANSWERING",
    "CALLING",
    "DONE",
    "END_STATES",
    "ERROR",
    "STOPPED",
    "THINKING",
    "WAITING",
    "Answer",
    "Frame",
    "StreamState",
]

# The states a view goes through, as shown in its status line.
WAITING = "等待中"
THINKING = "思考中"
ANSWERING = "生成中"
CALLING = "调用工具中"
DONE = "完成"
STOPPED = "已停止"
ERROR = "出错"
END_STATES = (DONE, STOPPED, ERROR)

_FINISH_NOTES = {
    "length": "达到 max_tokens 上限",
    "content_filter": "被内容审核拦下",
    "tool_calls": "模型要求调用工具",
}


@dataclass(frozen=True)
class Answer:
    """Choice 0 as a view shows it: the key hidden, tool calls as (name, arguments)."""

    text: str = ""
    reasoning: str = ""
    refusal: str = ""
    tool_calls: tuple[tuple[str, str], ...] = ()


class StreamState:
    """State and metrics of one streamed answer; the text is read from ``assembler``."""

    def __init__(
        self,
        assembler: ChunkAssembler | None = None,
        *,
        secret: object = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assembler = assembler if assembler is not None else ChunkAssembler()
        self.secret = secret
        self.clock = clock
        self.state = WAITING
        self.raw_model = ""  # as given or as the first chunk said (see ``model``)
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.deltas = 0  # pieces of text, reasoning, refusal or tool call of choice 0
        self.chunks = 0  # chunks read from the stream
        self.started: float | None = None
        self.first: float | None = None  # the first piece of choice 0
        self.last: float | None = None  # the latest piece of choice 0
        self.ended: float | None = None
        self._final: tuple[Answer, ChatResult, dict | None] | None = None

    # -- changes ------------------------------------------------------------------------
    def begin(self, model: str = "") -> None:
        self.raw_model = model
        self.started = self.clock()

    def attach(self, assembler: ChunkAssembler, secret: object = "") -> None:
        """Read from this assembler (a ChatStream's own) and hide this key (before any chunk)."""
        self.assembler = assembler
        if secret:
            self.secret = secret

    def take(self, chunk: Any, news: list[ChoiceDelta]) -> bool:
        """Note one chunk, already merged into the assembler, and what it added.

        Returns True when choice 0 changed (there is something new to show).
        """
        self.chunks += 1
        if not self.raw_model and isinstance(chunk, dict) and isinstance(chunk.get("model"), str):
            self.raw_model = chunk["model"]
        changed = False
        for delta in news:
            if delta.index != 0:
                continue
            changed = True
            pieces = (
                bool(delta.content)
                + bool(delta.reasoning_content)
                + bool(delta.refusal)
                + sum(1 for call in delta.tool_calls if call.name or call.arguments)
            )
            if not pieces:
                continue  # e.g. only a finish_reason
            self.deltas += pieces
            self.last = self.clock()
            self.first = self.first or self.last
            if delta.content or delta.refusal:
                self.state = ANSWERING
            elif delta.tool_calls:
                self.state = CALLING
            elif self.state == WAITING:
                self.state = THINKING
        return changed

    def end(self, state: str, error: str | None = None) -> bool:
        """The stream ended (DONE, STOPPED or ERROR); False if it had ended already."""
        if self.state in END_STATES:
            return False
        self.state, self.error, self.ended = state, error, self.clock()
        return True

    def freeze(self, shown: Answer) -> None:
        """Keep the answer as the last render showed it: reads after the end give exactly that."""
        self._final = (shown, self._hidden_result(), self.assembler.usage)

    # -- reading ------------------------------------------------------------------------
    def answer(self) -> Answer:
        """Choice 0 so far, the key hidden."""
        if self._final is not None:
            return self._final[0]
        return Answer(self.text, self.reasoning, self.refusal, self.tool_calls)

    @property
    def text(self) -> str:
        """The answer (choice 0) so far, the key hidden."""
        if self._final is not None:
            return self._final[0].text
        return hide_key(self.assembler.content(), self.secret)

    @property
    def reasoning(self) -> str:
        """The reasoning (choice 0) so far, the key hidden."""
        if self._final is not None:
            return self._final[0].reasoning
        return hide_key(self.assembler.reasoning(), self.secret)

    @property
    def refusal(self) -> str:
        """The refusal (choice 0) so far, the key hidden."""
        if self._final is not None:
            return self._final[0].refusal
        return hide_key(self.assembler.refusal(), self.secret)

    @property
    def tool_calls(self) -> tuple[tuple[str, str], ...]:
        """The tool calls (choice 0) so far as (name, arguments), the key hidden."""
        if self._final is not None:
            return self._final[0].tool_calls
        secret = self.secret
        return tuple(
            (hide_key(c.name, secret), hide_key(c.arguments, secret))
            for c in self.assembler.tool_calls()
        )

    def raw_answer(self) -> tuple[str, str, str, list[ToolCall]]:
        """Choice 0 as received (for a view to hide piece by piece as it grows)."""
        a = self.assembler
        return a.content(), a.reasoning(), a.refusal(), a.tool_calls()

    @property
    def done(self) -> bool:
        return self.state in END_STATES

    @property
    def model(self) -> str:
        """The model's name (from the first chunk that has one unless given), the key hidden."""
        return redact(self.raw_model, self.secret) if self.raw_model else ""

    @property
    def result(self) -> ChatResult:
        """Everything assembled so far (all choices), the key hidden."""
        return self._final[1] if self._final is not None else self._hidden_result()

    @property
    def usage(self) -> dict | None:
        return self._final[2] if self._final is not None else self.assembler.usage

    @property
    def finish_reason(self) -> str | None:
        return self.result.finish_reason if self._final else self.assembler.finish_reason()

    @property
    def ttft(self) -> float | None:
        """Seconds from the start to the first token (reasoning or answer)."""
        if self.started is None or self.first is None:
            return None
        return self.first - self.started

    @property
    def elapsed(self) -> float:
        """Seconds since the start (until the end, once the stream ended)."""
        if self.started is None:
            return 0.0
        end = self.ended if self.ended is not None else self.clock()
        return end - self.started

    def tokens_per_second(self, usage: dict | None = None) -> float | None:
        """Output tokens per second after the first one (usage when known, else deltas)."""
        if self.first is None or self.last is None or self.last <= self.first:
            return None
        usage = self.usage if usage is None else usage
        tokens = self.deltas
        if usage and isinstance(usage.get("completion_tokens"), int):
            tokens = usage["completion_tokens"]
        return tokens / (self.last - self.first)

    def status_line(self, renders: int | None = None) -> str:
        """Model · state · why it ended · time to first token · tokens/s · usage (· renders)."""
        usage = self.usage or {}
        parts = [self.raw_model or "（模型未知）", self.state]
        note = _FINISH_NOTES.get(self.finish_reason or "")
        if note:
            parts.append(note)
        if self.ttft is not None:
            parts.append(f"首个 token {self.ttft:.2f} 秒")
        rate = self.tokens_per_second(usage)
        if rate is not None:
            parts.append(f"{rate:.1f} tokens/s")
        if all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")):
            total = usage.get("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
            parts.append(
                f"用量 {usage['prompt_tokens']}+{usage['completion_tokens']}={total} tokens"
            )
        if renders is not None:
            parts.append(f"渲染 {renders} 次 / {self.deltas} 个 delta")
        return redact(" · ".join(parts), self.secret)  # the model name came from the network

    def _hidden_result(self) -> ChatResult:
        result, secret = self.assembler.result(), self.secret
        if not secret:
            return result
        choices = [
            replace(
                c,
                content=hide_key(c.content, secret),
                reasoning_content=hide_key(c.reasoning_content, secret),
                refusal=hide_key(c.refusal, secret),
                tool_calls=[
                    replace(t, arguments=hide_key(t.arguments, secret)) for t in c.tool_calls
                ],
            )
            for c in result.choices
        ]
        return replace(result, model=redact(result.model, secret), choices=choices)


@dataclass(frozen=True)
class Frame:
    """Everything one render shows; taken at once, drawn afterwards."""

    title: str
    answer: Answer
    state: str
    status: str
    error: str | None
    final: bool
