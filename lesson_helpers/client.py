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
  bounded. A read timeout is not retried: the server may still be working on the request,
  and neither is an empty account (:class:`~lesson_helpers.errors.QuotaError`).
* **Timeouts**: ``(connect_timeout, timeout)`` on every request; ``timeout``
  (``LLM_TIMEOUT``) is the longest silence allowed between two pieces of the response.
* **One merge per chunk**: a :class:`ChatStream` owns the stream's only
  :class:`~lesson_helpers.chunks.ChunkAssembler` (``stream.assembler``); ``text()`` yields
  what the assembler says each chunk added, and a live view reads the same assembler.
* **A broken stream** (cut, stall, an error event, an event that is not valid JSON, a
  chunk of the wrong shape) stops the iteration with a
  :class:`~lesson_helpers.errors.StreamError` (or ``RequestTimeout``) that carries the text
  received so far. An event with malformed JSON is not skipped: the piece it carried is
  lost, so whatever came after it could not be trusted to be the whole answer.
* **Nothing raw escapes**: a body cut short, a bad gzip body, an invalid URL, a SOCKS proxy
  without PySocks, an absurd timeout -- each is one ``LLMError`` line.
* **The key** is only ever in the request headers: never in a message, a log line, a repr,
  or an exception's context or traceback. Everything taken from a response (messages, the
  request id, bodies, events) goes through :func:`~lesson_helpers.errors.redact` with the
  key before it is stored; requests' exceptions carry the request and its headers, so they
  are dropped, and ``response.request`` keeps a masked ``Authorization`` header.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3.exceptions

from .chunks import (
    ChatResult,
    ChoiceDelta,
    ChunkAssembler,
    ChunkError,
    completion_to_chunk,
    from_completion,
)
from .config import (
    MAX_TIMEOUT,
    MIN_TIMEOUT,
    Secret,
    Settings,
    base_url_problem,
    key_problem,
    model_problem,
)
from .errors import (
    MALFORMED_HINT,
    ConnectError,
    LLMError,
    QuotaError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StreamError,
    error_fields,
    error_from_response,
    parse_json,
    redact,
)
from .sse import SSEError, SSEParser, iter_pieces

__all__ = ["ChatClient", "ChatStream", "backoff_delay", "debug_output_warning", "proxy_problem"]

log = logging.getLogger("lesson_helpers.client")

_RETRYABLE = (RateLimitError, ServerError, ConnectError)
_TIMEOUTS = (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError)
_BAD_ENCODING = (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError)
# What reading a streaming body can raise once we read it through urllib3 directly.
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
_MAX_HTML = 65536  # bytes of an unexpected HTML page worth reading for its <title>
_MAX_ERROR_BODY = 1024 * 1024  # bytes of an error body worth reading
_PIECE_SIZE = 65536
_PROXY_VARIABLES = ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY")
_PROXY_VARIABLES += ("http_proxy",)


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
    """The provider's id for this request (quote it in a bug report -- never the key).

    It is what the server sent: pass it through :func:`~lesson_helpers.errors.redact` before
    showing it (a proxy may echo anything in ``X-Request-Id``)."""
    headers = response.headers
    return (
        headers.get("x-request-id", "")
        or headers.get("x-siliconcloud-trace-id", "")
        or headers.get("request-id", "")
    )


def debug_output_warning() -> str:
    """One line when this process prints HTTP traffic (``http.client`` debug level > 0)."""
    if http.client.HTTPConnection.debuglevel > 0:
        return (
            "注意：http.client 的调试输出已打开（debuglevel > 0），它会把请求头连同密钥打印出来："
            "分享输出前请关掉（http.client.HTTPConnection.debuglevel = 0）。"
        )
    return ""


def proxy_problem(url: str) -> str:
    """One line when a proxy from the environment would be used for ``url`` but cannot be:
    a ``socks5://`` proxy needs PySocks, which ``requests`` does not install. "" otherwise."""
    try:
        proxies = requests.utils.get_environ_proxies(url)
    except (ValueError, OSError):
        return ""
    socks = [p for p in proxies.values() if str(p).lower().startswith("socks")]
    if not socks:
        return ""
    try:
        import socks as _socks  # noqa: F401 -- PySocks, what requests needs for socks proxies
    except ImportError:
        names = [n for n in _PROXY_VARIABLES if os.environ.get(n, "").lower().startswith("socks")]
        which = names[0] if names else "代理变量"
        return (
            f"环境变量 {which} 设置了 SOCKS 代理（socks5://…），但没有安装 PySocks，"
            '请求发不出去：运行 pip install "requests[socks]"，或取消这个变量'
            "（也可以在 NO_PROXY 里加上这个网址）。"
        )
    return ""


def _forget_key(response: requests.Response) -> None:
    """Mask the key in the already-sent request that ``requests`` keeps on the response."""
    for item in (*response.history, response):
        request = item.request
        if request is not None and "Authorization" in request.headers:
            request.headers["Authorization"] = "Bearer ***"


def _read_failure(exc: BaseException, timeout: float) -> tuple[type[LLMError], str, str | None]:
    """(error class, what happened, hint or None) for an exception raised while reading a body."""
    if isinstance(exc, _TIMEOUTS):
        return RequestTimeout, f"{timeout:g} 秒没有收到新数据", None
    if isinstance(exc, _BAD_ENCODING):
        return (
            StreamError,
            "服务器发来的压缩数据（Content-Encoding）解不开",
            "数据在路上被改坏了（常见于代理或网关）：请关掉代理或换个网络再试；"
            "若反复出现，请把请求 id 报告给服务商（不要附上密钥）。",
        )
    return StreamError, f"连接在回答结束前断开（{type(exc).__name__}）", None


class _Body:
    """Read a whole (error or JSON) body, keeping what arrived when reading fails."""

    def __init__(self, response: requests.Response, limit: int, timeout: float) -> None:
        self.data = b""
        self.failure: tuple[type[LLMError], str, str | None] | None = None
        parts: list[bytes] = []
        size = 0
        try:
            for piece in iter_pieces(response.raw, _PIECE_SIZE):
                parts.append(piece)
                size += len(piece)
                if size >= limit:
                    break
        except (*_READ_ERRORS, OverflowError, ValueError) as exc:
            self.failure = _read_failure(exc, timeout)
        finally:
            response.close()
        self.data = b"".join(parts)[:limit]

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class ChatStream:
    """A streaming reply: iterate it for chunk dicts; ``result`` holds what has arrived.

    ``stream.assembler`` is the stream's only :class:`~lesson_helpers.chunks.ChunkAssembler`:
    each chunk is merged into it once, as it arrives. Iteration ends normally after
    ``data: [DONE]``. Any problem raises one :class:`~lesson_helpers.errors.LLMError` carrying
    the partial text; the text is also still in ``result``.
    """

    def __init__(self, response: requests.Response, secret: str | Secret, timeout: float) -> None:
        self.response = response
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        self.request_id = redact(request_id_of(response), self._secret)
        self.assembler = ChunkAssembler()
        self.done = False  # True once data: [DONE] arrived
        self.events = 0
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
            secret=self._secret,
            **kwargs,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for chunk, _news in self._run():
            yield chunk

    def updates(self) -> Iterator[tuple[dict[str, Any], list[ChoiceDelta]]]:
        """Each chunk with what it added to :attr:`assembler` (a live view reads these: the
        chunk is merged once, here, and never again)."""
        return self._run()

    @property
    def secret(self) -> Secret:
        """The key this stream was sent with (a ``Secret``: masked when printed), so that a
        view can hide it from what the server sends back."""
        return self._secret

    def text(self) -> Iterator[str]:
        """Only the new answer text of choice 0, piece by piece (from the assembler's deltas)."""
        for _chunk, news in self._run():
            for delta in news:
                if delta.index == 0 and delta.content:
                    yield delta.content

    def _run(self) -> Iterator[tuple[dict[str, Any], list[ChoiceDelta]]]:
        """Each chunk with what it added; closes the response however the iteration ends."""
        failure: LLMError | None = None
        try:
            yield from self._merged()
        except LLMError as error:
            failure = error
        finally:
            self.close()
        if failure is not None:
            # Re-raised from here with a fresh traceback: the frames that read the stream hold
            # the bytes that arrived (a key echoed by a proxy among them) as locals, and a
            # traceback printed with its locals (%xmode Verbose, pytest -l) would show them.
            failure.__context__ = failure.__cause__ = None
            raise failure.with_traceback(None)

    def _pieces(self) -> Iterator[bytes]:
        pieces = iter_pieces(self.response.raw, _PIECE_SIZE)
        while True:
            failure: LLMError | None = None
            try:
                piece = next(pieces, b"")
            except (*_READ_ERRORS, OverflowError, ValueError) as exc:
                cls, what, hint = _read_failure(exc, self._timeout)
                if cls is RequestTimeout:
                    what = (
                        f"流式回答中途停了 {self._timeout:g} 秒没有新数据"
                        if self.events
                        else f"服务器 {self._timeout:g} 秒内没有发来回答的第一个字"
                    )
                failure = self._fail(cls, what, hint=hint)
            if failure is not None:
                raise failure  # outside the except block: no context with connection details
            if not piece:
                return
            yield piece

    def _merged(self) -> Iterator[tuple[dict[str, Any], list[ChoiceDelta]]]:
        parser = SSEParser()
        for piece in self._pieces():
            failure: LLMError | None = None
            try:
                events = parser.feed(piece)
            except SSEError as exc:
                failure = self._too_large(exc)
            if failure is not None:
                raise failure
            for event in events:
                self.events += 1
                if event.data == "[DONE]":
                    self.done = True
                    return
                chunk = self._decode(event.data, event.event)
                yield chunk, self._add(chunk)
        failure = None
        try:
            parser.finish()  # a limit the last piece broke, after the events before it
        except SSEError as exc:
            failure = self._too_large(exc)
        if failure is not None:
            raise failure
        if not self.assembler.finish_reason():
            raise self._fail(StreamError, "连接在回答结束前断开（没有收到 [DONE]）")
        log.info("stream ended without [DONE] after finish_reason; the answer is complete")

    def _too_large(self, exc: SSEError) -> LLMError:
        return self._fail(
            StreamError,
            f"流里有一行（或一个事件）太长，超过了解析器的上限，读不下去了（{exc}）",
            hint="正常的流式回答每个事件只有几百字节：请检查 LLM_BASE_URL 是否指向"
            "对话接口；若它没错，请把请求 id 报告给服务商（不要附上密钥）。",
        )

    def _add(self, chunk: dict[str, Any]) -> list[ChoiceDelta]:
        """Merge one chunk into the stream's assembler (the only merge it gets)."""
        problem = ""
        try:
            return self.assembler.add(chunk)
        except ChunkError as exc:
            problem = str(exc)
        raise self._fail(
            StreamError, f"第 {self.events} 个事件的数据块格式不对：{problem}", hint=MALFORMED_HINT
        )

    def _decode(self, data: str, event_type: str) -> dict[str, Any]:
        failure: LLMError | None = None
        try:
            chunk = parse_json(data)
        except ValueError:
            shown = redact(data, self._secret)
            if len(shown) > 60:  # where it breaks is usually at the end
                shown = "…" + shown[-40:]
            failure = self._fail(StreamError, f"第 {self.events} 个事件不是合法的 JSON：{shown!r}")
        if failure is not None:
            raise failure
        if event_type == "error" or (isinstance(chunk, dict) and chunk.get("error") is not None):
            raise self._fail(
                StreamError,
                "服务器在流中途报告了错误",
                provider_message=error_fields(data)["message"],
                body=data,
            )
        if not isinstance(chunk, dict):
            raise self._fail(
                StreamError,
                f"第 {self.events} 个事件是 JSON 的 {type(chunk).__name__}，不是对象（chunk）",
                hint=MALFORMED_HINT,
            )
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
    """Chat with any OpenAI-compatible provider (SiliconFlow, DeepSeek, OpenAI, Ollama, local...).

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
        outcome = self._completion(response)
        if isinstance(outcome, LLMError):
            raise outcome
        return outcome

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
        body = _Body(response, _MAX_ERROR_BODY, self.settings.timeout)
        failure = self._body_failure(body, response)
        if failure is not None:
            raise failure
        try:
            data = parse_json(body.text).get("data", [])
            return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except (ValueError, AttributeError, TypeError):
            pass
        raise StreamError("模型列表不是预期的 JSON", request_id=self._request_id(response))

    # -- internals ------------------------------------------------------------------------
    def _request_id(self, response: requests.Response) -> str:
        return redact(request_id_of(response), self.settings.api_key)

    def _body(
        self, messages: list[dict[str, Any]], model: str | None, stream: bool, params: dict
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or self.settings.model, "messages": messages}
        if stream:
            body["stream"] = True
        body.update(params)
        return body

    def _body_failure(self, body: _Body, response: requests.Response) -> LLMError | None:
        if body.failure is None:
            return None
        cls, what, hint = body.failure
        return cls(
            f"读取回答时{what}",
            hint=hint,
            status=response.status_code,
            request_id=self._request_id(response),
        )

    def _completion(self, response: requests.Response) -> ChatResult | LLMError:
        """The answer of a non-streaming request, or the error that says why there is none."""
        body = _Body(response, 64 * _MAX_ERROR_BODY, self.settings.timeout)
        failure = self._body_failure(body, response)
        if failure is not None:
            return failure
        common = {
            "status": response.status_code,
            "request_id": self._request_id(response),
            "secret": self.settings.api_key,
        }
        try:
            data = parse_json(body.text)
        except ValueError:
            return StreamError(
                "服务器返回的不是对话结果的 JSON",
                provider_message=error_fields(body.text)["message"],
                body=body.text,
                **common,
            )
        problem = _not_a_completion(data)
        if problem == "error":
            return StreamError(
                "服务器返回了错误",
                provider_message=error_fields(body.text)["message"],
                body=body.text,
                **common,
            )
        if not problem:
            try:
                return from_completion(data)
            except ChunkError as exc:
                problem = str(exc)
        return StreamError(
            f"服务器返回的 JSON 不是完整的对话结果（{problem}）", hint=MALFORMED_HINT, **common
        )

    def _html_instead_of_stream(self, response: requests.Response) -> StreamError:
        """A 200 with a web page: a proxy, a gateway or a Wi-Fi login page answered."""
        page = _Body(response, _MAX_HTML, self.settings.timeout).text
        return StreamError(
            "要求流式回答，收到的却是一个网页（text/html）",
            hint="可能被代理、网关或校园网登录页拦截了：先用浏览器打开任意网页看看，"
            "再检查代理设置和 LLM_BASE_URL。",
            status=response.status_code,
            provider_message=error_fields(page)["message"],
            request_id=self._request_id(response),
            body=page,
            secret=self.settings.api_key,
        )

    def _post(self, body: dict[str, Any], stream: bool) -> requests.Response:
        return self._send("POST", "/chat/completions", body, stream)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, stream: bool
    ) -> requests.Response:
        problem = self._settings_problem()
        if problem is not None:
            raise problem
        started = time.monotonic()
        attempt = 0
        waited = 0.0
        while True:
            try:
                return self._send_once(method, path, body, stream)
            except LLMError as error:
                if not isinstance(error, _RETRYABLE) or isinstance(error, QuotaError):
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

    def _settings_problem(self) -> LLMError | None:
        """Settings that cannot work (built by hand, not by load_settings), as one line."""
        settings = self.settings
        fix = "请检查 .env（或创建 Settings 时给的值）。"
        problem = (
            base_url_problem(settings.base_url) if settings.base_url else "LLM_BASE_URL 是空的"
        )
        if problem:
            return LLMError(problem, hint=fix)
        for name, value in (
            ("LLM_TIMEOUT", settings.timeout),
            ("连接超时", settings.connect_timeout),
        ):
            if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
                return LLMError(
                    f"{name}={value!r} 不能用："
                    f"超时要写 {MIN_TIMEOUT:g} 到 {MAX_TIMEOUT:g} 秒之间的数",
                    hint="例如 LLM_TIMEOUT=60。",
                )
        problem = key_problem(settings.api_key.reveal()) or model_problem(settings.model)
        if problem:
            return LLMError(problem, hint=fix)
        problem = proxy_problem(settings.base_url)
        if problem:
            return ConnectError(problem, hint="改好代理设置后再试。")
        return None

    def _start_hint(self) -> str | None:
        """How to start the model server of a local preset (Ollama, LM Studio, vLLM)."""
        preset = self.settings.preset
        if preset is None or not preset.start_hint:
            return None
        start = preset.start_hint.format(model=self.settings.model)
        return f"{preset.label} 没有运行？{start}。"

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
                stream=True,  # the body is read here, so that a broken one is one clear line
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
        except requests.exceptions.InvalidSchema as exc:
            failure = _invalid_schema(url, exc)
        except requests.exceptions.TooManyRedirects:
            failure = LLMError(
                f"{_host(url)} 一直把请求重定向到别处（重定向太多次）",
                hint="请检查 LLM_BASE_URL（通常以 /v1 结尾）；也可能是代理或登录页在拦截。",
            )
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema):
            failure = LLMError(
                f"网址 {_host(url)} 无效（主机名或端口不对）",
                hint="请检查 .env 里的 LLM_BASE_URL，应当形如 https://api.siliconflow.cn/v1。",
            )
        except requests.ConnectionError as exc:
            failure = ConnectError(
                f"连不上 {_host(url)}（{_connection_reason(exc)}）", hint=self._start_hint()
            )
        except requests.RequestException as exc:
            failure = LLMError(f"请求没有发出去（{type(exc).__name__}）")
        except (ValueError, OverflowError, UnicodeError) as exc:  # never show str(exc): headers
            failure = LLMError(f"请求没有发出去（{type(exc).__name__}）")
        if failure is not None:
            # Raised outside the except block, so it has no __context__: requests'
            # exceptions carry the prepared request, Authorization header included.
            raise failure
        _forget_key(response)
        if not 200 <= response.status_code < 300:
            raise self._http_error(response)
        return response

    def _http_error(self, response: requests.Response) -> LLMError:
        """The error for a non-2xx response (built here: the body may repeat the key)."""
        body = _Body(response, _MAX_ERROR_BODY, self.settings.timeout)
        note = ""
        if body.failure is not None:
            note = "（错误说明没有传完整：" + body.failure[1] + "）"
        return error_from_response(
            response.status_code,
            body.text,
            dict(response.headers),
            self.settings.api_key,
            request_id_of(response),
            note=note,
        )


def _not_a_completion(data: Any) -> str:
    """Why a parsed JSON body is not a chat completion ("" when it is one, "error" for an error)."""
    if isinstance(data, dict) and data.get("error") is not None:
        return "error"
    if not isinstance(data, dict):
        return f"整个回答是 JSON 的 {type(data).__name__}，不是对象"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return "没有 choices" if choices is None else "choices 不是非空的列表"
    return ""


class _JSONAsStream(ChatStream):
    """The provider ignored ``stream: true`` and sent one JSON answer: replay it as one chunk."""

    def _merged(self) -> Iterator[tuple[dict[str, Any], list[ChoiceDelta]]]:
        body = _Body(self.response, 64 * _MAX_ERROR_BODY, self._timeout)
        if body.failure is not None:
            cls, what, hint = body.failure
            raise self._fail(cls, f"读取回答时{what}", hint=hint)
        text = body.text
        try:
            data = parse_json(text)
        except ValueError:
            raise self._fail(
                StreamError, "要求流式回答，服务器却返回了无法解析的 JSON", body=text
            ) from None
        problem = _not_a_completion(data)
        if problem == "error":
            raise self._fail(
                StreamError,
                "服务器返回了错误",
                provider_message=error_fields(text)["message"],
                body=text,
            )
        chunk: dict[str, Any] | None = None
        if not problem:
            try:
                chunk = completion_to_chunk(data)  # every field kept: tool calls, fingerprint...
            except ChunkError as exc:
                problem = str(exc)
        if chunk is None:
            raise self._fail(
                StreamError,
                f"要求流式回答，服务器却返回了别的 JSON（{problem}）",
                hint=MALFORMED_HINT,
            )
        news = self._add(chunk)
        self.done = True
        yield chunk, news


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _invalid_schema(url: str, exc: requests.exceptions.InvalidSchema) -> LLMError:
    if "socks" in str(exc).lower():
        problem = proxy_problem(url) or 'SOCKS 代理需要 PySocks：运行 pip install "requests[socks]"'
        return ConnectError(problem, hint="改好代理设置后再试。")
    return LLMError(
        f"网址 {_host(url)} 的协议不对",
        hint="LLM_BASE_URL 要以 http:// 或 https:// 开头，形如 https://api.siliconflow.cn/v1。",
    )


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
    if "proxy" in text.lower():
        return "连不上代理服务器，请检查 HTTP_PROXY / HTTPS_PROXY 等代理设置"
    return "网络错误"
