"""Keeping the key out of everything a live view shows.

A server (or a proxy in front of it) may send the key back: in the answer, in the model
name, in an error. Whatever the view shows -- the answer, the reasoning, tool calls, the
status line, the error -- passes through the kit's one masking code in
:mod:`lesson_helpers.errors` with the stream's own key first.
"""

from __future__ import annotations

from ..errors import StreamRedactor, redact

__all__ = ["MAX_ERROR", "ShownText", "error_line", "hide_key"]

MAX_ERROR = 300  # characters of an error message the view shows


def hide_key(text: str, secret: object) -> str:
    """``text`` with the key (and any 12+ character piece of it) hidden; line breaks kept.

    Only the configured key is hidden here: an answer that merely *talks about* keys
    (``sk-...``) is shown as the model wrote it.
    """
    if not secret or not text:
        return text
    redactor = StreamRedactor(secret)
    return redactor.feed(text) + redactor.flush()


class ShownText:
    """One growing text (the answer, the reasoning, ...) as a live view may show it.

    ``update(raw)`` takes the whole text received so far and returns what may be shown: the
    key is hidden even when it arrives split over several renders, because the end of the
    text is held back while it could still be the start of the key (see
    :class:`~lesson_helpers.errors.StreamRedactor`). ``final=True`` shows the rest.
    Without a key it is the text itself, no copy.
    """

    def __init__(self, secret: object = "") -> None:
        self.secret = secret
        self._redactor = StreamRedactor(secret) if secret else None
        self._fed = 0
        self.shown = ""

    def update(self, raw: str, *, final: bool = False) -> str:
        if self._redactor is None:
            self.shown = raw
            return raw
        if len(raw) > self._fed:  # the text only ever grows
            self.shown += self._redactor.feed(raw[self._fed :])
            self._fed = len(raw)
        if final:
            self.shown += self._redactor.flush()
        return self.shown


def error_line(exc: BaseException, secret: object = "") -> str:
    """The exception as one line for the view, with the key and key-like strings hidden.

    The kit's own errors (``LLMError``) already are one line in Chinese; anything else is
    shown as ``Type: message``.
    """
    text = " ".join(str(exc).split())
    if not hasattr(exc, "partial_text") or not text:  # not one of the kit's LLMErrors
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = redact(text, secret)
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
