"""The errors the client raises: each message is one line -- what happened, then what to do.

Messages are in Chinese (the students' language), carry the HTTP status when there is one
and the provider's own message when it sent one. They never contain the API key: every
message passes through :func:`redact` before it is stored.

A finished answer can still need a word of explanation (cut at ``max_tokens``, stopped by a
content filter, a tool call instead of text): :func:`finish_note` gives that line.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConnectError",
    "LLMError",
    "NotFoundError",
    "QuotaError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "StreamError",
    "StreamRedactor",
    "error_fields",
    "error_from_response",
    "finish_note",
    "parse_json",
    "provider_message",
    "redact",
]

# Shapes of a credential that may be redacted without knowing the key: ``sk-…`` (OpenAI,
# DeepSeek, SiliconFlow, Anthropic), ``Bearer …`` and ``api-key: …`` headers echoed back.
_KEYLIKE = re.compile(r"(?<![A-Za-z0-9])(sk-|Bearer\s+)[A-Za-z0-9._\-]{6,}")
_KEY_HEADER = re.compile(r"(?i)((?:x-)?api[-_]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,}")
_PIECE = 12  # any piece of the configured key this long is hidden too
_MIN_SECRET = 4  # a shorter "key" cannot be hidden without destroying the text around it
_MASK = "***"
_MAX_PROVIDER_MESSAGE = 200
_MAX_REQUEST_ID = 200
_MAX_BODY = 4000


def _reveal(secret: object) -> str:
    """The plain value of a key given as ``str`` or as a :class:`~lesson_helpers.config.Secret`."""
    if isinstance(secret, str):
        return secret
    reveal = getattr(secret, "reveal", None)
    return reveal() if callable(reveal) else ""


def _spellings(secret: str) -> set[str]:
    """The key as it may appear in text that came back: as is, JSON-escaped, URL-encoded."""
    found = {
        secret,
        json.dumps(secret)[1:-1],
        secret.replace("/", "\\/"),
        urllib.parse.quote(secret, safe=""),
    }
    return {s for s in found if len(s) >= _MIN_SECRET}


def _secret_spans(text: str, secret: str) -> list[list[int]]:
    """Where ``secret`` or any 12+ character piece of it occurs in ``text``: merged spans."""
    spans: list[tuple[int, int]] = []
    for spelling in _spellings(secret):
        width = min(len(spelling), _PIECE)
        pieces = {spelling[i : i + width] for i in range(len(spelling) - width + 1)}
        for piece in pieces:
            start = text.find(piece)
            while start != -1:
                spans.append((start, start + width))
                start = text.find(piece, start + 1)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:  # overlapping or touching: one mask
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _mask_spans(text: str, spans: list[list[int]]) -> str:
    out: list[str] = []
    done = 0
    for start, end in spans:
        out += [text[done:start], _MASK]
        done = end
    out.append(text[done:])
    return "".join(out)


def _hide_secret(text: str, secret: str) -> str:
    """Replace every occurrence of ``secret`` and of any 12+ character piece of it with ***."""
    return _mask_spans(text, _secret_spans(text, secret))


class StreamRedactor:
    """:func:`redact` for text printed as it arrives (keeps line breaks).

    The key may come split over several pieces, so the end of the text is held back while it
    could be the start of the key (or of a 12+ character piece of it): as long as it reads like
    a piece of the key, until more text (or :meth:`flush`) shows what it is. Ordinary text --
    any text that is not part of the key -- is shown at once.

    >>> hide = StreamRedactor("not-a-real-key-0000")
    >>> hide.feed("the key is not-a-real") + hide.feed("-key-0000!") + hide.flush()
    'the key is ***!'
    """

    def __init__(self, secret: object = "") -> None:
        value = _reveal(secret)
        self._secret = value if len(value) >= _MIN_SECRET else ""
        self._spellings = _spellings(self._secret) if self._secret else set()
        self._longest = max((len(s) for s in self._spellings), default=0)
        self._pending = ""

    def _held(self) -> int:
        """Length of the longest end of the pending text that occurs inside the key."""
        text = self._pending
        for size in range(min(len(text), self._longest), 0, -1):
            tail = text[-size:]
            if any(tail in spelling for spelling in self._spellings):
                return size
        return 0

    def feed(self, text: str) -> str:
        """The part of the text so far that is safe to show now."""
        if not self._secret:
            return text
        self._pending += text
        spans = _secret_spans(self._pending, self._secret)
        cut = len(self._pending) - self._held()
        for start, end in spans:
            if start < cut < end:  # never cut through a mask: show it whole
                cut = end
        shown = _mask_spans(self._pending[:cut], [s for s in spans if s[1] <= cut])
        self._pending = self._pending[cut:]
        return shown

    def flush(self) -> str:
        """Whatever is still held back, redacted (at the end of the stream)."""
        rest, self._pending = self._pending, ""
        return _hide_secret(rest, self._secret) if self._secret else rest


def redact(text: str, secret: object = "", *, one_line: bool = True) -> str:
    """Hide the key in text that came from the network, and fold the text onto one line.

    Removed: the exact ``secret`` (a ``str`` or a ``Secret``) and any 12+ character piece of it
    -- whatever the key looks like, also JSON-escaped or URL-encoded -- and anything shaped like
    a key (``sk-…``, ``Bearer …``, ``api-key: …``). ``one_line=False`` keeps the line breaks (for
    an answer printed as it arrives). THE one masking function for network-derived text; the
    ``sk-…abcd`` tail of :func:`lesson_helpers.config.mask_key` is for printing a key on purpose.
    """
    value = _reveal(secret)
    if value and len(value) >= _MIN_SECRET:
        text = _hide_secret(text, value)
    text = _KEYLIKE.sub(lambda m: m.group(1) + _MASK, text)
    text = _KEY_HEADER.sub(lambda m: m.group(1) + _MASK, text)
    return " ".join(text.split()) if one_line else text


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LLMError(Exception):
    """Base class. ``str(error)`` is the one-line message for the student.

    Everything in it that came from the network (``provider_message``, ``request_id``,
    ``body``, text quoted in ``what``) is redacted when the error is built: pass the key as
    ``secret`` (it is used for that and never stored).
    """

    what = "请求失败"
    hint = "请检查网络和 .env 配置后重试。"

    def __init__(
        self,
        what: str | None = None,
        *,
        hint: str | None = None,
        status: int | None = None,
        provider_message: str = "",
        request_id: str = "",
        partial_text: str = "",
        result: Any = None,
        retry_after: float | None = None,
        retries: int = 0,
        body: str = "",
        secret: object = "",
    ) -> None:
        self.what = redact(what or self.what, secret)
        self.hint = redact(hint or self.hint, secret)
        self.status = status
        self.provider_message = _shorten(redact(provider_message, secret), _MAX_PROVIDER_MESSAGE)
        self.request_id = _shorten(redact(request_id, secret), _MAX_REQUEST_ID)
        self.body = _shorten(redact(body, secret, one_line=False), _MAX_BODY)  # the raw error body
        self.partial_text = partial_text
        self.result = result  # a lesson_helpers.chunks.ChatResult with what arrived, if any
        self.retry_after = retry_after
        self.retries = retries  # how many automatic retries came before this error
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status} ")
        parts.append(self.what)
        if self.provider_message:
            parts.append(f"（服务器说：{self.provider_message}）")
        if self.partial_text:
            parts.append(f"；已收到的 {len(self.partial_text)} 个字符已保留，但回答不完整")
        if self.retries:
            parts.append(f"（已自动重试 {self.retries} 次）")
        parts.append(f"。{self.hint}")
        return redact("".join(parts))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the one line."""
        return [f"{type(self).__name__}: {self.message}"]


class AuthError(LLMError):
    what = "认证失败：API Key 无效、缺失或无权访问"
    hint = "请检查 .env 里的 LLM_API_KEY 是否完整、是否属于 LLM_BASE_URL 对应的服务商。"


class NotFoundError(LLMError):
    what = "找不到：模型名或网址不对"
    hint = "请检查 LLM_MODEL 是否是该服务商提供的模型名，LLM_BASE_URL 是否写对（通常以 /v1 结尾）。"


class BadRequestError(LLMError):
    what = "请求内容有误"
    hint = "请检查 messages 的格式和参数；若是上下文太长，请缩短对话或调小 max_tokens。"


class RateLimitError(LLMError):
    what = "请求太频繁或额度用完（限流）"
    hint = "请稍等片刻再试；若一直如此，请检查账户余额和限额。"


class ServerError(LLMError):
    what = "服务商那边出错了"
    hint = "这不是你的代码的问题：请稍后重试，或换一个模型。"


class ConnectError(LLMError):
    what = "连不上服务器"
    hint = "请检查网络、代理和 LLM_BASE_URL。"


class RequestTimeout(LLMError):  # noqa: N818 -- the public name of the API
    what = "等待回答超时"
    hint = "服务器太久没有发来数据：请稍后重试，或在 .env 里调大 LLM_TIMEOUT。"


class StreamError(LLMError):
    what = "流式回答中途出错"
    hint = "请重试；若反复出现，请记下请求 id 向服务商反馈（不要附上密钥）。"


class QuotaError(AuthError):
    """No money or quota left (402; OpenAI's 429 ``insufficient_quota``; SiliconFlow's 403
    "balance is insufficient"). Not retried: waiting does not refill an account."""

    what = "账户余额不足或额度已用完"
    hint = "请到服务商后台充值、查看用量和限额，或换用免费模型；重试不会成功。"


# Hints for a malformed chunk or event: sending the same request again gets the same shape.
MALFORMED_HINT = (
    "这是服务器（或中间的代理）发来的数据格式问题，原样重试多半还是一样："
    "请换一个模型或服务商，或把请求 id 和这行说明报告给服务商（不要附上密钥）。"
)


def parse_json(text: str) -> Any:
    """``json.loads`` that raises only ``ValueError``: JSON nested too deeply for Python's
    parser (``[[[[…`` a few thousand deep) raises ``RecursionError`` there."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _error_object(data: Any) -> dict[str, Any] | None:
    """The dict that describes the error in a parsed error body, whatever its shape.

    OpenAI, DeepSeek, Groq, OpenRouter, Ollama: ``{"error": {"message", "type", "code", ...}}``;
    SiliconFlow and vLLM: the fields at the top level (``{"code": 20012, "message": ..., "data":
    null}``); FastAPI: ``{"detail": ...}``; some gateways: a list holding one of these.
    """
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str) and error:
        return {**data, "message": error}
    return data


def _text_of(value: Any, depth: int = 0) -> str:
    if isinstance(value, str):
        return value.strip()
    if depth > 4:  # a message is never buried deeper than this
        return ""
    if isinstance(value, list) and value:  # FastAPI: "detail": [{"msg": ...}, ...]
        return _text_of(value[0], depth + 1)
    if isinstance(value, dict):
        for key in ("message", "msg", "detail"):
            found = _text_of(value.get(key), depth + 1)
            if found:
                return found
    return ""


def error_fields(body: str) -> dict[str, str]:
    """``{"message", "code", "type"}`` of an error body (each "" when absent), whatever its shape.

    ``message`` is the provider's own words (for an HTML page: its title and a note that a page
    came instead of JSON; for plain text: the text). ``code`` is a string even when the provider
    sends a number (SiliconFlow's ``20015``).
    """
    text = body.strip()
    fields = {"message": "", "code": "", "type": ""}
    if not text:
        return fields
    try:
        data = parse_json(text)
    except ValueError:
        if text[:1] == "<":
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            found = title.group(1).strip() if title else "一个 HTML 页面"
            fields["message"] = f"{found}（返回的是网页而不是 JSON，可能是代理或网关出错）"
        else:
            fields["message"] = text
        return fields
    if isinstance(data, str):  # a JSON string such as "Invalid token"
        fields["message"] = data.strip() or text
        return fields
    error = _error_object(data)
    if error is None:
        fields["message"] = text
        return fields
    fields["message"] = _text_of(error) or _text_of(data) or text
    for name in ("code", "type"):
        value = error.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            fields[name] = str(value)
    return fields


def provider_message(body: str) -> str:
    """The provider's own error text from an error body, whatever its shape."""
    return error_fields(body)["message"]


_BY_STATUS: dict[int, type[LLMError]] = {
    400: BadRequestError,
    401: AuthError,
    402: QuotaError,
    403: AuthError,
    404: NotFoundError,
    408: RequestTimeout,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}
# How providers say "no money left" (OpenAI: 429 insufficient_quota; DeepSeek: 402
# "Insufficient Balance"; SiliconFlow: 403 "... balance is insufficient"; OpenRouter: 402).
_NO_MONEY_CODES = {"insufficient_quota", "insufficient_balance", "billing_not_active"}
_NO_MONEY_WORDS = (
    "insufficient balance",
    "balance is insufficient",
    "insufficient_quota",
    "exceeded your current quota",
    "insufficient credits",
    "余额不足",
)


def _out_of_money(status: int, fields: dict[str, str]) -> bool:
    if status == 402:
        return True
    if status not in (400, 403, 429):
        return False
    if fields["code"].lower() in _NO_MONEY_CODES or fields["type"].lower() in _NO_MONEY_CODES:
        return True
    message = fields["message"].lower()
    return any(word in message for word in _NO_MONEY_WORDS)


def _retry_after(headers: dict[str, str]) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    value = (headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, round((when - datetime.now(UTC)).total_seconds(), 3))


def error_from_response(
    status: int,
    body: str,
    headers: dict[str, str],
    secret: object = "",
    request_id: str = "",
    *,
    note: str = "",
) -> LLMError:
    """Turn a non-2xx HTTP response into the matching :class:`LLMError`.

    ``secret`` (the configured key) is removed from everything taken from the response;
    ``note`` is added to what happened (e.g. that the body was cut short).
    """
    fields = error_fields(body)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else LLMError)
    message = redact(fields["message"], secret)
    what = hint = None
    retry_after = _retry_after(headers)
    if status == 403:
        what = "没有权限：密钥是对的，但账户不能使用这个模型或接口"
        hint = "请检查账户是否实名认证、余额是否充足、这个模型是否已开通。"
    if _out_of_money(status, fields):
        cls, what, hint = QuotaError, None, None
        if status == 402:
            what = "账户余额不足（需要付费）"
            hint = "请到服务商后台充值，或换用免费模型。"
    elif cls is RateLimitError and retry_after is not None:
        hint = f"服务器要求等待 {retry_after:g} 秒后再试。"
    if "context" in message.lower() or "too long" in message.lower():
        hint = "对话太长，超过了模型的上下文长度：请清空或缩短历史，或调小 max_tokens。"
    elif status == 413:
        hint = "请求体太大（对话太长或附带的内容太多）：请清空或缩短历史后再试。"
    if 300 <= status < 400:
        what = f"服务器要求跳转到别的网址（HTTP {status}），客户端没有跟过去"
        hint = "请检查 LLM_BASE_URL：通常以 https:// 开头、以 /v1 结尾。"
    if note:
        what = (what or cls.what) + note
    return cls(
        what,
        status=status,
        provider_message=message,
        hint=hint,
        request_id=request_id,
        retry_after=retry_after,
        body=body,
        secret=secret,
    )


def finish_note(result: Any, secret: object = "") -> str:
    """One line about an answer that ended normally but unusually; "" when nothing to say.

    ``result`` is a :class:`lesson_helpers.chunks.ChatResult` (its first choice is read).
    What the note quotes from the answer (a tool's name, a refusal, an unknown finish_reason)
    came from the network: the key ``secret`` is removed from it like from any other message.
    """
    return redact(_finish_note(result), secret)


def _finish_note(result: Any) -> str:
    reason = getattr(result, "finish_reason", None)
    content = getattr(result, "content", "") or ""
    reasoning = getattr(result, "reasoning_content", "") or ""
    tool_calls = getattr(result, "tool_calls", None) or []
    if reason == "length":
        if not content and reasoning:
            return (
                "模型只写了思考过程（reasoning_content），还没写正式回答就用完了 max_tokens"
                "（finish_reason=length）：请调大 max_tokens。"
            )
        return (
            "回答写到一半就停了：达到了 max_tokens 上限（finish_reason=length）。"
            "请调大 max_tokens，或让模型回答得更简短。"
        )
    if reason == "content_filter":
        return (
            "回答被服务商的内容审核拦下了（finish_reason=content_filter），已收到的部分不完整："
            "请换个说法再试。"
        )
    if reason == "tool_calls" or (tool_calls and reason in (None, "stop")):
        names = "、".join(call.name for call in tool_calls if getattr(call, "name", "")) or "工具"
        return (
            f"模型没有直接回答，而是请求调用 {names}（finish_reason={reason}）："
            "你的程序要执行它，再把结果作为 tool 消息发回去。"
        )
    if reason is None:
        return "没有收到 finish_reason：回答可能不完整。"
    refusal = getattr(result, "refusal", "") or ""
    if refusal and not content:
        return f"模型拒绝了这个请求（refusal）：{_shorten(refusal, 200)}"  # redact folds lines
    if reason == "stop" and not content:
        return "模型返回了空回答（finish_reason=stop，content 为空）。"
    if reason != "stop":
        return f"回答以不常见的 finish_reason={reason} 结束：请查看服务商文档。"
    return ""
