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
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConnectError",
    "LLMError",
    "NotFoundError",
    "RateLimitError",
    "RequestTimeout",
    "ServerError",
    "StreamError",
    "error_from_response",
    "finish_note",
    "provider_message",
    "redact",
]

_KEYLIKE = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9._\-]{6,}")
_MAX_PROVIDER_MESSAGE = 200


def redact(text: str, secret: str = "") -> str:
    """Remove the key (and anything shaped like one) and fold the text onto one line."""
    if secret:
        text = text.replace(secret, "***")
    text = _KEYLIKE.sub(lambda m: m.group(1) + "***", text)
    return " ".join(text.split())


class LLMError(Exception):
    """Base class. ``str(error)`` is the one-line message for the student."""

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
    ) -> None:
        self.what = what or self.what
        self.hint = hint or self.hint
        self.status = status
        self.provider_message = redact(provider_message)[:_MAX_PROVIDER_MESSAGE]
        self.request_id = request_id
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


def provider_message(body: str) -> str:
    """The provider's own error text from an error body, whatever its shape."""
    text = body.strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        if text[:1] == "<":
            title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
            found = title.group(1).strip() if title else "一个 HTML 页面"
            return f"{found}（返回的是网页而不是 JSON，可能是代理或网关出错）"
        return text
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "msg", "detail"):
                value = error.get(key)
                if isinstance(value, str) and value:
                    return value
        elif isinstance(error, str):
            return error
        for key in ("message", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    return text


_BY_STATUS: dict[int, type[LLMError]] = {
    400: BadRequestError,
    401: AuthError,
    402: AuthError,
    403: AuthError,
    404: NotFoundError,
    408: RequestTimeout,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def _retry_after(headers: dict[str, str]) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    value = (headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, round((when - datetime.now(UTC)).total_seconds(), 3))


def error_from_response(
    status: int, body: str, headers: dict[str, str], secret: str = "", request_id: str = ""
) -> LLMError:
    """Turn a non-2xx HTTP response into the matching :class:`LLMError`."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else LLMError)
    message = redact(provider_message(body), secret)
    what = hint = None
    retry_after = _retry_after(headers)
    if status == 403:
        what = "没有权限：密钥是对的，但账户不能使用这个模型或接口"
        hint = "请检查账户是否实名认证、余额是否充足、这个模型是否已开通。"
    if status == 402:
        what = "账户余额不足（需要付费）"
        hint = "请到服务商后台充值，或换用免费模型。"
    if cls is RateLimitError and retry_after is not None:
        hint = f"服务器要求等待 {retry_after:g} 秒后再试。"
    if "context" in message.lower() or "too long" in message.lower():
        hint = "对话太长，超过了模型的上下文长度：请清空或缩短历史，或调小 max_tokens。"
    elif status == 413:
        hint = "请求体太大（对话太长或附带的内容太多）：请清空或缩短历史后再试。"
    return cls(
        what,
        status=status,
        provider_message=message,
        hint=hint,
        request_id=request_id,
        retry_after=retry_after,
    )


def finish_note(result: Any) -> str:
    """One line about an answer that ended normally but unusually; "" when nothing to say.

    ``result`` is a :class:`lesson_helpers.chunks.ChatResult` (its first choice is read).
    """
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
    if reason == "stop" and not content:
        return "模型返回了空回答（finish_reason=stop，content 为空）。"
    if reason != "stop":
        return f"回答以不常见的 finish_reason={reason} 结束：请查看服务商文档。"
    return ""
