"""A small chat client on top of ``requests``: the request, the stream, the errors.

>>> client = ChatClient(settings)                      # doctest: +SKIP
>>> for chunk in client.stream([{"role": "user", "content": "你好"}]):
...     print(chunk["choices"][0]["delta"].get("content") or "", end="")

Every failure is raised as a :class:`~lesson_helpers.errors.LLMError` whose ``str`` is one
line. A stream that breaks keeps what arrived: ``error.partial_text`` and ``error.result``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3.exceptions

from .chunks import ChatResult, ChunkAssembler, ChunkError, from_completion
from .config import Settings
from .errors import (
    ConnectError,
    LLMError,
    RateLimitError,
    ServerError,
    RequestTimeout,
    StreamError,
    error_from_response,
    provider_message,
    redact,
)
from .sse import SSEParser

__all__ = ["ChatClient", "ChatStream"]

log = logging.getLogger("lesson_helpers.client")

_RETRYABLE = (RateLimitError, ServerError, ConnectError)
# What reading a streaming body can raise once we read it through urllib3 directly.
_READ_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)


class ChatStream:
    """A streaming reply: iterate it for chunk dicts; ``result`` holds what has arrived.

    Iteration ends normally after ``data: [DONE]``. Any problem raises one
    :class:`~lesson_helpers.errors.LLMError` carrying the partial text; the text is
    also still in ``result``.
    """

    def __init__(self, response: requests.Response, secret: str, timeout: float) -> None:
        self.response = response
        self.request_id = response.headers.get("x-request-id", "") or response.headers.get(
            "x-siliconcloud-trace-id", ""
        )
        self.assembler = ChunkAssembler()
        self.done = False  # True once data: [DONE] arrived
        self.events = 0
        self._secret = secret
        self._timeout = timeout
        self._closed = False

    @property
    def result(self) -> ChatResult:
        return self.assembler.result()

    def _fail(self, cls: type[LLMError], what: str, **kwargs: Any) -> LLMError:
        result = self.result
        return cls(
            what,
            request_id=self.request_id,
            partial_text=result.content,
            result=result,
            **kwargs,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._chunks()
        finally:
            self.close()

    def text(self) -> Iterator[str]:
        """Only the new answer text of choice 0, piece by piece."""
        for chunk in self:
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) == 0:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece

    def _pieces(self) -> Iterator[bytes]:
        raw = self.response.raw
        while True:
            try:
                piece = raw.read1(65536, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                raise self._fail(
                    RequestTimeout,
                    f"流式回答中途停了 {self._timeout:g} 秒没有新数据",
                ) from None
            except _READ_ERRORS as exc:
                raise self._fail(
                    StreamError, f"连接在回答结束前断开（{type(exc).__name__}）"
                ) from None
            if not piece:
                return
            yield piece

    def _chunks(self) -> Iterator[dict[str, Any]]:
        parser = SSEParser()
        for piece in self._pieces():
            for event in parser.feed(piece):
                self.events += 1
                if event.data == "[DONE]":
                    self.done = True
                    return
                chunk = self._decode(event.data, event.event)
                try:
                    self.assembler.add(chunk)
                except ChunkError as exc:
                    raise self._fail(StreamError, f"服务器发来的数据块格式不对：{exc}") from None
                yield chunk
        if not self.result.finish_reason:
            raise self._fail(StreamError, "连接在回答结束前断开（没有收到 [DONE]）")
        log.info("stream ended without [DONE] after finish_reason; the answer is complete")

    def _decode(self, data: str, event_type: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            shown = redact(data, self._secret)[:60]
            raise self._fail(
                StreamError, f"第 {self.events} 个事件不是合法的 JSON：{shown!r}"
            ) from None
        if event_type == "error" or (isinstance(chunk, dict) and "error" in chunk):
            raise self._fail(
                StreamError,
                "服务器在流中途报告了错误",
                provider_message=redact(provider_message(data), self._secret),
            )
        if not isinstance(chunk, dict):
            raise self._fail(StreamError, f"第 {self.events} 个事件不是 JSON 对象")
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChatClient:
    """Chat with any OpenAI-compatible provider (SiliconFlow, DeepSeek, OpenAI, local).

    Retries 429, 5xx and connection failures with exponential backoff and jitter, honouring
    ``Retry-After``, at most ``max_retries`` times and ``max_retry_wait`` seconds in all --
    and only before any part of the answer has been received.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[LLMError, float, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.session = session or requests.Session()
        self._sleep = sleep
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"ChatClient({self.settings})"

    # -- public API -----------------------------------------------------------------------
    def chat(
        self, messages: list[dict[str, Any]], *, model: str | None = None, **params: Any
    ) -> ChatResult:
        """One non-streaming request; returns the whole answer."""
        response = self._post(self._body(messages, model, False, params), stream=False)
        try:
            body = json.loads(response.content.decode("utf-8"))
            return from_completion(body)
        except (ValueError, ChunkError):
            raise StreamError(
                "服务器返回的不是对话结果的 JSON", request_id=self._request_id(response)
            ) from None
        finally:
            response.close()

    def stream(
        self, messages: list[dict[str, Any]], *, model: str | None = None, **params: Any
    ) -> ChatStream:
        """Start a streaming request; iterate the returned :class:`ChatStream` for chunks."""
        response = self._post(self._body(messages, model, True, params), stream=True)
        content_type = response.headers.get("Content-Type", "")
        if "text/event-stream" not in content_type and "json" in content_type:
            return _JSONAsStream(response, self.settings.api_key.reveal(), self.settings.timeout)
        return ChatStream(response, self.settings.api_key.reveal(), self.settings.timeout)

    def models(self) -> list[str]:
        """The model ids the provider lists (``GET /models``)."""
        response = self._send("GET", "/models", None, stream=False)
        try:
            data = json.loads(response.content.decode("utf-8")).get("data", [])
            return [m["id"] for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, AttributeError):
            raise StreamError("模型列表不是预期的 JSON") from None
        finally:
            response.close()

    # -- internals ------------------------------------------------------------------------
    def _body(
        self, messages: list[dict[str, Any]], model: str | None, stream: bool, params: dict
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or self.settings.model, "messages": messages}
        if stream:
            body["stream"] = True
        body.update(params)
        return body

    @staticmethod
    def _request_id(response: requests.Response) -> str:
        return response.headers.get("x-request-id", "")

    def _post(self, body: dict[str, Any], stream: bool) -> requests.Response:
        return self._send("POST", "/chat/completions", body, stream)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, stream: bool
    ) -> requests.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return self._send_once(method, path, body, stream)
            except _RETRYABLE as error:
                attempt += 1
                wait = self._backoff(error, attempt)
                spent = time.monotonic() - started
                if attempt > self.max_retries or spent + wait > self.max_retry_wait:
                    raise
                log.info("retry %d/%d in %.1fs: %s", attempt, self.max_retries, wait, error)
                if self._on_retry:
                    self._on_retry(error, wait, attempt)
                self._sleep(wait)

    @staticmethod
    def _backoff(error: LLMError, attempt: int) -> float:
        if error.retry_after is not None:
            return error.retry_after
        base = 0.5 * 2 ** (attempt - 1)
        return base + random.uniform(0, base)  # "full jitter" keeps a class from retrying in step

    def _send_once(
        self, method: str, path: str, body: dict[str, Any] | None, stream: bool
    ) -> requests.Response:
        settings = self.settings
        secret = settings.api_key.reveal()
        url = settings.base_url + path
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if secret:
            headers.update(settings.auth_headers())
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                headers=headers,
                stream=stream,
                timeout=(settings.connect_timeout, settings.timeout),
            )
        except requests.Timeout:
            raise RequestTimeout(
                f"{settings.timeout:g} 秒内没有收到服务器的回应（{_host(url)}）"
            ) from None
        except requests.ConnectionError as exc:
            reason = _connection_reason(exc)
            raise ConnectError(f"连不上 {_host(url)}（{reason}）") from None
        except requests.RequestException as exc:
            raise LLMError(f"请求没有发出去（{type(exc).__name__}）") from None
        if response.status_code >= 400:
            text = response.content.decode("utf-8", errors="replace")
            response.close()
            raise error_from_response(
                response.status_code,
                text,
                dict(response.headers),
                secret,
                self._request_id(response),
            )
        return response


class _JSONAsStream(ChatStream):
    """The provider ignored ``stream: true`` and sent one JSON answer: replay it as one chunk."""

    def _chunks(self) -> Iterator[dict[str, Any]]:
        text = self.response.content.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            raise self._fail(StreamError, "要求流式回答，服务器却返回了无法解析的 JSON") from None
        if isinstance(body, dict) and "error" in body:
            raise self._fail(
                StreamError, "服务器返回了错误", provider_message=provider_message(text)
            )
        try:
            result = from_completion(body)
        except ChunkError:
            raise self._fail(StreamError, "要求流式回答，服务器却返回了别的 JSON") from None
        chunk = {
            "id": result.id,
            "object": "chat.completion.chunk",
            "created": result.created,
            "model": result.model,
            "choices": [
                {
                    "index": c.index,
                    "delta": {
                        "role": c.role or "assistant",
                        "content": c.content,
                        "reasoning_content": c.reasoning_content or None,
                    },
                    "finish_reason": c.finish_reason,
                }
                for c in result.choices
            ],
            "usage": result.usage,
        }
        self.assembler.add(chunk)
        self.done = True
        yield chunk


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "域名解析失败，请检查网址拼写和网络"
    if "refused" in text.lower():
        return "连接被拒绝，服务没有在这个端口运行"
    if "timed out" in text.lower():
        return "连接超时"
    if "SSL" in text or "certificate" in text.lower():
        return "TLS/证书错误，可能是代理拦截了 HTTPS"
    return "网络错误"
