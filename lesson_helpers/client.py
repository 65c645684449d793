"""A small chat client on top of ``requests``: the request, the stream, the errors.

>>> client = ChatClient(settings)                      # doctest: +SKIP
>>> for chunk in client.stream([{"role": "user", "content": "你好"}]):
...     print(chunk["choices"][0]["delta"].get("content") or "", end="")

Every failure is raised as a :class:`~lesson_helpers.errors.LLMError` whose ``str`` is one
line. A stream that breaks keeps what arrived: ``error.partial_text`` and ``error.result``.

The rules, in one place:

* **Retries** (429, 5xx, connection failures) happen only while waiting for the response
  headers -- never once a stream was handed to the caller, because by then part of the
  answer may be on the screen and a second answer would not continue the first one.
  Waits grow exponentially with jitter (:func:`backoff_delay`) unless the server sent
  ``Retry-After``; attempts (``max_retries``) and total waiting (``max_retry_wait``) are
  bounded. A read timeout is not retried: the server may still be working on the request.
* **Timeouts**: ``(connect_timeout, timeout)`` on every request; ``timeout``
  (``LLM_TIMEOUT``) is the longest silence allowed between two pieces of the response.
* **A broken stream** (cut, stall, an error event, an event that is not valid JSON) stops
  the iteration with a :class:`~lesson_helpers.errors.StreamError` (or ``RequestTimeout``)
  that carries the text received so far. An event with malformed JSON is not skipped: the
  piece it carried is lost, so whatever came after it could not be trusted to be the whole
  answer -- the client keeps the text before it and says the answer is incomplete.
* **The key** is only ever in the request headers: never in a message, a log line, a repr,
  or an exception's context (requests' exceptions carry the request and its headers, so
  they are dropped, and ``response.request`` keeps a masked ``Authorization`` header).
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
from .config import Secret, Settings
from .errors import (
    ConnectError,
    LLMError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StreamError,
    error_from_response,
    provider_message,
    redact,
)
from .sse import SSEParser

__all__ = ["ChatClient", "ChatStream", "backoff_delay"]

log = logging.getLogger("lesson_helpers.client")

_RETRYABLE = (RateLimitError, ServerError, ConnectError)
# What reading a streaming body can raise once we read it through urllib3 directly.
_READ_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)
_MAX_HTML = 65536  # bytes of an unexpected HTML page worth reading for its <title>


def backoff_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, 3, ...).

    The server's ``Retry-After`` wins. Otherwise exponential backoff with jitter: the
    ``attempt``-th wait is ``base * 2**(attempt - 1)`` plus a random share of that again
    (0.5-1 s, then 1-2 s, 2-4 s, ...), at most ``cap``. The randomness keeps a class of
    students who were all refused at once from all retrying at the same instant.
    """
    if retry_after is not None:
        return retry_after
    step = min(cap, base * 2 ** (attempt - 1))
    return min(cap, step + (rng or random).uniform(0, step))


def request_id_of(response: requests.Response) -> str:
    """The provider's id for this request (quote it in a bug report -- never the key)."""
    headers = response.headers
    return (
        headers.get("x-request-id", "")
        or headers.get("x-siliconcloud-trace-id", "")
        or headers.get("request-id", "")
    )


def _forget_key(response: requests.Response) -> None:
    """Mask the key in the already-sent request that ``requests`` keeps on the response."""
    for item in (*response.history, response):
        request = item.request
        if request is not None and "Authorization" in request.headers:
            request.headers["Authorization"] = "Bearer ***"


class ChatStream:
    """A streaming reply: iterate it for chunk dicts; ``result`` holds what has arrived.

    Iteration ends normally after ``data: [DONE]``. Any problem raises one
    :class:`~lesson_helpers.errors.LLMError` carrying the partial text; the text is
    also still in ``result``.
    """

    def __init__(self, response: requests.Response, secret: str | Secret, timeout: float) -> None:
        self.response = response
        self.request_id = request_id_of(response)
        self.assembler = ChunkAssembler()
        self.done = False  # True once data: [DONE] arrived
        self.events = 0
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
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
            failure: LLMError | None = None
            try:
                piece = raw.read1(65536, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                failure = self._fail(
                    RequestTimeout,
                    f"流式回答中途停了 {self._timeout:g} 秒没有新数据"
                    if self.events
                    else f"服务器 {self._timeout:g} 秒内没有发来回答的第一个字",
                )
            except _READ_ERRORS as exc:
                failure = self._fail(StreamError, f"连接在回答结束前断开（{type(exc).__name__}）")
            if failure is not None:
                raise failure  # outside the except block: no context with connection details
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
            shown = redact(data, self._secret.reveal())
            if len(shown) > 60:  # where it breaks is usually at the end
                shown = "…" + shown[-40:]
            raise self._fail(
                StreamError, f"第 {self.events} 个事件不是合法的 JSON：{shown!r}"
            ) from None
        if event_type == "error" or (isinstance(chunk, dict) and "error" in chunk):
            raise self._fail(
                StreamError,
                "服务器在流中途报告了错误",
                provider_message=redact(provider_message(data), self._secret.reveal()),
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
    and only before any part of the answer has been received. ``on_retry(error, wait,
    attempt)`` is called before each wait (to show "retrying in 1 s").
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
        backoff_base: float = 0.5,
    ) -> None:
        self.settings = settings
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff_base = backoff_base
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
        text = response.content.decode("utf-8", errors="replace")
        response.close()
        try:
            return from_completion(json.loads(text))
        except (ValueError, ChunkError):
            pass
        raise StreamError(
            "服务器返回的不是对话结果的 JSON",
            status=response.status_code,
            provider_message=provider_message(text),
            request_id=request_id_of(response),
        )

    def stream(
        self, messages: list[dict[str, Any]], *, model: str | None = None, **params: Any
    ) -> ChatStream:
        """Start a streaming request; iterate the returned :class:`ChatStream` for chunks."""
        response = self._post(self._body(messages, model, True, params), stream=True)
        content_type = response.headers.get("Content-Type", "").lower()
        if "text/html" in content_type:
            raise self._html_instead_of_stream(response)
        if "text/event-stream" not in content_type and "json" in content_type:
            return _JSONAsStream(response, self.settings.api_key, self.settings.timeout)
        return ChatStream(response, self.settings.api_key, self.settings.timeout)

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

    def _html_instead_of_stream(self, response: requests.Response) -> StreamError:
        """A 200 with a web page: a proxy, a gateway or a Wi-Fi login page answered."""
        try:
            page = response.raw.read(_MAX_HTML, decode_content=True) or b""
        except _READ_ERRORS:
            page = b""
        finally:
            response.close()
        return StreamError(
            "要求流式回答，收到的却是一个网页（text/html）",
            hint="可能被代理、网关或校园网登录页拦截了：先用浏览器打开任意网页看看，"
            "再检查代理设置和 LLM_BASE_URL。",
            status=response.status_code,
            provider_message=provider_message(page.decode("utf-8", errors="replace")),
            request_id=request_id_of(response),
        )

    def _post(self, body: dict[str, Any], stream: bool) -> requests.Response:
        return self._send("POST", "/chat/completions", body, stream)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, stream: bool
    ) -> requests.Response:
        started = time.monotonic()
        attempt = 0
        waited = 0.0
        while True:
            try:
                return self._send_once(method, path, body, stream)
            except LLMError as error:
                if not isinstance(error, _RETRYABLE):
                    error.retries = attempt
                    raise
                attempt += 1
                wait = self._backoff(error, attempt)
                spent = max(time.monotonic() - started, waited)
                if attempt > self.max_retries or spent + wait > self.max_retry_wait:
                    error.retries = attempt - 1
                    raise
                log.info("retry %d/%d in %.1fs: %s", attempt, self.max_retries, wait, error)
                if self._on_retry:
                    self._on_retry(error, wait, attempt)
                self._sleep(wait)
                waited += wait

    def _backoff(self, error: LLMError, attempt: int) -> float:
        return backoff_delay(attempt, error.retry_after, base=self.backoff_base)

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.settings.api_key:
            headers.update(self.settings.auth_headers())
        return headers

    def _send_once(
        self, method: str, path: str, body: dict[str, Any] | None, stream: bool
    ) -> requests.Response:
        # The key lives only in the headers built inline below: no local variable of this
        # frame holds it, so even a traceback printed with its locals cannot show it.
        settings = self.settings
        url = settings.base_url + path
        failure: LLMError | None = None
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                headers=self._headers(stream),
                stream=stream,
                timeout=(settings.connect_timeout, settings.timeout),
            )
        except requests.ConnectTimeout:
            failure = ConnectError(
                f"连不上 {_host(url)}（{settings.connect_timeout:g} 秒内没能建立连接）"
            )
        except requests.Timeout:
            failure = RequestTimeout(
                f"{settings.timeout:g} 秒内没有收到服务器的回应（{_host(url)}）"
            )
        except requests.ConnectionError as exc:
            failure = ConnectError(f"连不上 {_host(url)}（{_connection_reason(exc)}）")
        except requests.RequestException as exc:
            failure = LLMError(f"请求没有发出去（{type(exc).__name__}）")
        if failure is not None:
            # Raised outside the except block, so it has no __context__: requests'
            # exceptions carry the prepared request, Authorization header included.
            raise failure
        _forget_key(response)
        if response.status_code >= 400:
            raise self._http_error(response)
        return response

    def _http_error(self, response: requests.Response) -> LLMError:
        """The error for a 4xx/5xx response (built here: the body may repeat the key)."""
        text = response.content.decode("utf-8", errors="replace")
        response.close()
        return error_from_response(
            response.status_code,
            text,
            dict(response.headers),
            self.settings.api_key.reveal(),
            request_id_of(response),
        )


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
