"""``python -m lesson_helpers record``: ask once, show the answer as it arrives, save it all.

>>> record(load_settings(), "你好", "hello.jsonl")      # doctest: +SKIP

The request goes to the provider from ``.env`` / the environment (``LLM_BASE_URL``,
``LLM_API_KEY``, ``LLM_MODEL``, ``LLM_PROVIDER``; ``LLM_PROVIDER=local`` records the kit's own
practice server). Whatever comes back is recorded -- a stream, a JSON answer, a 401, an HTML
page from a gateway, a stream that breaks off -- in the format of :mod:`lesson_helpers.recording`:
the request without any header (so without the key), the status, the headers that matter, and
the body exactly as received (de-chunked and decoded), each piece with the time it arrived.

The file is written all at once at the end, and only when it holds no piece of the key: a
server that echoes the key (in any response header, even one a recording drops, or in the
body) gets nothing written. What the terminal
shows goes through :class:`~lesson_helpers.errors.StreamRedactor` and hides any 8 characters
of the key too. Every failure is a :class:`RecordError` (one line).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import urllib3.exceptions

from .client import proxy_problem
from .config import Settings
from .errors import StreamRedactor, error_fields, redact
from .recording import (
    APIS,
    SECRET_PIECE,
    SUFFIX,
    Piece,
    Recording,
    RecordingError,
    holds_secret,
    kept_headers,
    write,
)
from .sse import SSEParser, iter_pieces

__all__ = [
    "ANTHROPIC_VERSION",
    "RecordError",
    "Recorded",
    "check_out_path",
    "print_summary",
    "record",
    "request_body",
    "shown_url",
    "summary",
]

ANTHROPIC_VERSION = "2023-06-01"
MAX_TOKENS = 1024  # the messages API needs max_tokens; a short lesson answer fits
_TIMEOUTS = (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError)
_READ_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WHY = {
    "cut": "连接在响应结束前断开了",
    "timeout": "等了 {timeout:g} 秒没有新数据，不再等了",
    "interrupted": "按了 Ctrl-C",
}


class RecordError(Exception):
    """Recording failed; ``str`` is one line saying what happened and what to do."""


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: the recording, where it went, and the text it showed."""

    recording: Recording
    path: Path
    text: str  # the answer text as shown (the key hidden)


class _Shown:
    """The answer as it may be shown: no key, and no 8 characters of it in a row.

    :class:`StreamRedactor` hides the key and any 12 of its characters; on top of that every
    run of 8 characters of it is masked, the end of the text held back only while it could
    be the start of one (ordinary text is shown at once)."""

    def __init__(self, secret: str, write: Callable[[str], None]) -> None:
        self._redactor = StreamRedactor(secret)
        self._write = write
        self._pending = ""
        self._pieces: set[str] = set()
        if len(secret) >= 4:
            width = min(len(secret), SECRET_PIECE)
            self._pieces = {secret[i : i + width] for i in range(len(secret) - width + 1)}
        self._secret = secret if self._pieces else ""
        self.text = ""

    def feed(self, text: str) -> None:
        self._emit(self._redactor.feed(text), final=False)

    def end(self) -> None:
        self._emit(self._redactor.flush(), final=True)

    def _emit(self, text: str, final: bool) -> None:
        pending = self._pending + text
        spans: list[list[int]] = []
        for start, stop in sorted(self._matches(pending)):
            if spans and start <= spans[-1][1]:  # overlapping or touching: one mask
                spans[-1][1] = max(spans[-1][1], stop)
            else:
                spans.append([start, stop])
        cut = len(pending) if final else len(pending) - self._held(pending)
        for start, stop in spans:
            if start < cut < stop:  # never cut through a mask
                cut = stop
        shown, done = [], 0
        for start, stop in spans:
            if stop <= cut:
                shown += [pending[done:start], "***"]
                done = stop
        shown.append(pending[done:cut])
        self._pending = pending[cut:]
        out = "".join(shown)
        if out:
            self.text += out
            self._write(out)

    def _held(self, text: str) -> int:
        """How much of the end of ``text`` to hold back: the longest end (shorter than a
        piece) that occurs in the key, since more text may make it a piece of the key."""
        if not self._secret:
            return 0
        for size in range(min(len(text), SECRET_PIECE - 1), 0, -1):
            if text[-size:] in self._secret:
                return size
        return 0

    def _matches(self, text: str) -> list[tuple[int, int]]:
        found = []
        for piece in self._pieces:
            start = text.find(piece)
            while start != -1:
                found.append((start, start + len(piece)))
                start = text.find(piece, start + 1)
        return found


def _texts(api: str, data: Any) -> list[str]:
    """The answer text in one event's data, or in a whole JSON answer."""
    if not isinstance(data, dict):
        return []
    if api == "chat":
        out = []
        for choice in data.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                part = choice.get("delta") or choice.get("message") or {}
                content = part.get("content") if isinstance(part, dict) else None
                if isinstance(content, str):
                    out.append(content)
        return out
    if api == "responses":
        if data.get("type") == "response.output_text.delta":
            return [data["delta"]] if isinstance(data.get("delta"), str) else []
        items = data.get("output") if data.get("object") == "response" else None
        return [
            part["text"]
            for item in items or []
            if isinstance(item, dict)
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
            if isinstance(part.get("text"), str)
        ]
    delta = data.get("delta")
    if data.get("type") == "content_block_delta" and isinstance(delta, dict):
        return [delta["text"]] if isinstance(delta.get("text"), str) else []
    if data.get("type") == "message":
        return [
            block["text"]
            for block in data.get("content") or []
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        ]
    return []


class _Display:
    """Shows the answer text of the body's pieces as they arrive."""

    def __init__(self, api: str, shown: _Shown, streamed: bool) -> None:
        self.api = api
        self.shown = shown
        self.streamed = streamed
        self.parser = SSEParser()

    def feed(self, data: bytes) -> None:
        if not self.streamed:
            return
        try:
            events = self.parser.feed(data)
        except ValueError:  # an event too large to show: it is still recorded
            self.streamed = False
            return
        for event in events:
            try:
                parsed = json.loads(event.data)
            except ValueError:
                continue
            for text in _texts(self.api, parsed):
                self.shown.feed(text)

    def whole(self, body: bytes) -> None:
        """A JSON answer (not a stream): show its text at the end."""
        try:
            parsed = json.loads(body.decode("utf-8", errors="replace"))
        except ValueError:
            return
        for text in _texts(self.api, parsed):
            self.shown.feed(text)


# -- the request ----------------------------------------------------------------------------------
def request_body(
    api: str, model: str, question: str, system: str | None, params: dict[str, Any]
) -> dict[str, Any]:
    """The JSON body ``record`` sends for ``api``."""
    body: dict[str, Any]
    if api == "chat":
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        body = {"model": model, "messages": messages, "stream": True}
    elif api == "responses":
        body = {"model": model, "input": question, "stream": True}
        if system:
            body["instructions"] = system
    else:
        body = {"model": model, "max_tokens": MAX_TOKENS}
        if system:
            body["system"] = system
        body["messages"] = [{"role": "user", "content": question}]
        body["stream"] = True
    body.update(params)
    return body


def _headers(api: str, key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if api == "messages":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def shown_url(url: str) -> str:
    """``url`` without a user name, password or query (for messages)."""
    return _host(url) + urllib.parse.urlsplit(url).path


def _host(url: str) -> str:
    """Scheme, host and port only: never a user name, password or query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def check_out_path(out: str | os.PathLike[str], force: bool) -> Path:
    """Where the recording will go, or RecordError before anything is sent."""
    path = Path(out)
    if not path.name.endswith(SUFFIX) or path.name == SUFFIX:
        raise RecordError(f"录音文件名要以 {SUFFIX} 结尾（例如 hello{SUFFIX}），收到的是 {out}。")
    folder = path.parent
    if not folder.is_dir():
        raise RecordError(f"文件夹 {folder} 不存在：先创建它，或换一个 --out 路径。")
    if path.is_dir():
        raise RecordError(f"{out} 是一个文件夹：--out 要写一个文件名，例如 {out}/hello{SUFFIX}。")
    if path.exists() and not force:
        raise RecordError(f"{out} 已经存在：换一个文件名，或加上 --force 覆盖它。")
    if not os.access(folder, os.W_OK):
        raise RecordError(f"没有权限在文件夹 {folder} 里写文件：换一个 --out 路径。")
    return path


def _send(
    session: requests.Session, url: str, payload: bytes, headers: dict[str, str], s: Settings
) -> requests.Response:
    failure = ""
    host = _host(url)
    try:
        return session.post(
            url,
            data=payload,
            headers=headers,
            stream=True,
            timeout=(s.connect_timeout, s.timeout),
            allow_redirects=False,  # a redirect would carry the key elsewhere
        )
    except requests.ConnectTimeout:
        failure = f"连不上 {host}（{s.connect_timeout:g} 秒内没能建立连接）：请检查网络和代理。"
    except requests.Timeout:
        failure = f"{s.timeout:g} 秒内没有收到 {host} 的回应：可以调大 LLM_TIMEOUT 再试。"
    except requests.ConnectionError:
        failure = f"连不上 {host}：请检查网络、代理设置和 .env 里的 LLM_BASE_URL。"
    except (requests.RequestException, ValueError, OverflowError, UnicodeError) as exc:
        failure = f"请求没有发出去（{type(exc).__name__}）：请检查 .env 里的 LLM_BASE_URL。"
    # raised here, outside the except block: requests' exceptions hold the request's headers
    raise RecordError(failure + "没有写任何文件。")


def _transfer(response: requests.Response) -> str:
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return "chunked"
    return "length" if "Content-Length" in response.headers else "close"


def _description(settings: Settings, model: str, question: str, status: int, streamed: bool) -> str:
    preset = settings.preset
    who = preset.label if preset is not None and preset.label else settings.provider
    short = " ".join(question.split())
    short = short if len(short) <= 30 else short[:29] + "…"
    what = "流式回答" if streamed else "回答"
    text = f"{who} {model} 对“{short}”的{what}"
    return text if status == 200 else f"{text}（HTTP {status}）"


def record(
    settings: Settings,
    question: str,
    out: str | os.PathLike[str],
    *,
    api: str = "chat",
    model: str | None = None,
    system: str | None = None,
    params: dict[str, Any] | None = None,
    description: str | None = None,
    force: bool = False,
    show: Callable[[str], None] | None = None,
    session: requests.Session | None = None,
) -> Recorded:
    """Send one request, show its answer text with ``show`` as it arrives, write the recording.

    Raises :class:`RecordError` (nothing sent, or nothing written) or
    :class:`~lesson_helpers.recording.RecordingError` (the recording would hold the key:
    nothing written). Ctrl-C while the body arrives keeps what came (outcome
    ``interrupted``)."""
    if api not in APIS:
        raise RecordError(f"--api 要写 {'、'.join(APIS)} 之一，收到的是 {api!r}。")
    path = check_out_path(out, force)
    if not settings.base_url:
        raise RecordError("LLM_BASE_URL 是空的：请在 .env 里写上服务商的接口地址。")
    problem = proxy_problem(settings.base_url)
    if problem:
        raise RecordError(problem)
    key = settings.api_key.reveal()
    secret = "" if settings.is_local else key  # the practice server's key opens nothing else
    model = model or settings.model
    body = request_body(api, model, question, system, dict(params or {}))
    url = settings.base_url.rstrip("/") + APIS[api]
    session = session or requests.Session()
    if urllib.parse.urlsplit(url).hostname in _LOOPBACK:
        session.trust_env = False  # a system proxy must not get requests for this machine
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    shown = _Shown(secret, show or _print)

    started = time.monotonic()
    response = _send(session, url, payload, _headers(api, key), settings)
    head_at = round(time.monotonic() - started, 3)
    content_type = response.headers.get("Content-Type", "")
    streamed = "text/event-stream" in content_type.lower()
    display = _Display(api, shown, streamed)
    pieces: list[Piece] = []
    outcome = "complete"
    try:
        for data in iter_pieces(response.raw):
            pieces.append(Piece(round(time.monotonic() - started, 3), data))
            display.feed(data)
    except KeyboardInterrupt:
        outcome = "interrupted"
    except _TIMEOUTS:
        outcome = "timeout"
    except _READ_ERRORS:
        outcome = "cut"
    finally:
        response.close()
    end = round(time.monotonic() - started, 3)
    recording = Recording(
        api=api,
        request={"method": "POST", "path": urllib.parse.urlsplit(url).path, "body": body},
        status=response.status_code,
        headers=kept_headers(response.headers.items()),
        pieces=tuple(pieces),
        end=end,
        outcome=outcome,
        head_at=head_at,
        transfer=_transfer(response),
        content_encoding=response.headers.get("Content-Encoding", ""),
        description=" ".join((description or "").split())
        or _description(settings, model, question, response.status_code, streamed),
        source="recorded",
        provider=settings.provider,
        host=_host(url),
        recorded_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        name=path.name[: -len(SUFFIX)],
    )
    if response.status_code == 200 and not streamed:
        display.whole(recording.body)
    shown.end()
    echoed = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    if secret and holds_secret(echoed, secret):  # even in a header a recording would drop
        raise RecordingError(
            f"服务器发回的响应头里有你的密钥（或其中连续 {SECRET_PIECE} 个以上的字符），为了安全，"
            f"没有写入 {path.name}：多半是代理或网关把它发了回来，请检查 LLM_BASE_URL，"
            "并考虑到服务商后台作废这把密钥。"
        )
    try:
        write(path, recording, secret=secret)  # RecordingError when it holds the key
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecordError(f"无法写入 {path}（{reason}）：换一个 --out 路径再录。") from None
    return Recorded(recording, path, shown.text)


def _print(text: str) -> None:
    print(text, end="", flush=True)


def summary(result: Recorded, settings: Settings) -> list[str]:
    """The lines ``record`` prints after the answer (to stderr): what was written, and how
    to replay it; the provider's own words when it answered with an error."""
    recording = result.recording
    secret = "" if settings.is_local else settings.api_key.reveal()
    lines = [
        f"已录制到 {result.path}：HTTP {recording.status}，{len(recording.pieces)} 段，"
        f"{len(recording.body)} 字节，用时 {recording.end:.1f} 秒。"
    ]
    if recording.status >= 400 or "html" in recording.header("Content-Type").lower():
        said = error_fields(recording.body.decode("utf-8", errors="replace"))["message"]
        said = redact(said, secret)
        if len(said) > 200:
            said = said[:199] + "…"
        said = said or "（没有说明）"
        lines.append(f"服务器返回的是错误（HTTP {recording.status}）：{said}——也照样录下来了。")
    if recording.outcome != "complete":
        why = _WHY[recording.outcome].format(timeout=settings.timeout)
        lines.append(f"注意：响应没有正常结束（{why}），录下的是到那时为止收到的部分。")
    lines.append(
        f"回放：python -m lesson_helpers serve --replay {result.path}（模型 {recording.model_id}）"
    )
    return lines


def print_summary(result: Recorded, settings: Settings) -> None:
    for line in summary(result, settings):
        print(line, file=sys.stderr)
