"""Recordings of provider responses: the file format, reading, writing and checking it.

A recording is one HTTP exchange with a provider, kept so that it can be replayed offline
byte for byte and at its real pace (``python -m lesson_helpers serve --replay FILE``, see
:mod:`lesson_helpers.local_server.replay`). ``python -m lesson_helpers record`` makes them
(:mod:`lesson_helpers.record`); the kit ships some in ``lesson_helpers/data/recordings/``.

The file format (UTF-8 JSON lines, ``.jsonl``; one JSON object per line, so a pull request
shows each piece of the stream as one line)::

    {"format": "lesson-helpers-recording", "version": 1, "description": "...",
     "source": "recorded", "api": "chat", "request": {...}, "response": {...}, ...}
    {"t": 0.512, "text": "data: {\\"id\\":\\"...\\", ...}\\n\\n"}
    {"t": 0.561, "base64": "5L2g5aW95Y"}
    {"t": 0.563, "text": "..."}
    {"end": 1.204, "outcome": "complete"}

**Line 1, the header** (an object; keys not listed here are an error, so a typo is noticed):

* ``format`` = ``"lesson-helpers-recording"``, ``version`` = ``1`` -- required;
* ``description`` -- one line saying what it is (``GET /v1/models`` shows it), required;
* ``source`` -- ``"recorded"`` (captured from a real server by ``record``) or
  ``"reconstructed"`` (written from a provider's public documentation); a reconstructed
  recording must say what it is ``based_on`` (documentation URLs, facts it reuses);
* ``api`` -- ``"chat"`` (``POST …/chat/completions``), ``"responses"`` (``POST …/responses``)
  or ``"messages"`` (``POST …/messages``, Anthropic's format): a replay answers on that API only;
* ``request`` -- ``{"method", "path", "body"}``: what was sent (the path on the provider's
  host, the JSON body). Never a header, so never a key;
* ``response`` -- ``{"status", "headers", "at"}`` plus optional ``"transfer"`` and
  ``"content_encoding"``: the status code; the headers that matter (``Content-Type``,
  ``Cache-Control``, ``Retry-After``, ``X-RateLimit-*``; never ``Authorization``, cookies or
  ``Set-Cookie``); ``at``, seconds from sending the request until the status line and headers
  arrived; how the body travelled (``"chunked"``, ``"length"`` -- a ``Content-Length`` -- or
  ``"close"``, ended by closing the connection); and its ``Content-Encoding`` (e.g. ``gzip``)
  if it had one. The body in the file is always the *decoded* body, so a replay sends it
  without ``Content-Encoding``;
* optional: ``provider`` (a preset name such as ``siliconflow``), ``host``
  (``https://api.siliconflow.cn``: scheme and host only), ``recorded_at`` (UTC, ISO 8601),
  ``note`` (anything a reviewer should know).

**Then one line per piece of the body**, in the order the pieces arrived: ``t`` is the
arrival time in seconds from sending the request (never decreasing, never before
``response.at``), and the bytes are either ``text`` -- when they are valid UTF-8 on their
own -- or ``base64`` -- when they are not, e.g. when a character was split between two
pieces: the bytes stay exact. A piece is never empty. The body is the pieces joined, exactly
as received after de-chunking and content decoding.

**The last line** says how the body ended: ``end`` (seconds, not before the last piece) and
``outcome``: ``"complete"`` (the body ended properly), ``"cut"`` (the connection broke),
``"timeout"`` (the recorder gave up waiting) or ``"interrupted"`` (stopped with Ctrl-C). A
file without it is incomplete and is refused. Blank lines are ignored.

Every problem in a file is a :class:`RecordingError`: one line naming the file and the line.
:func:`write` refuses to write a recording that holds a key (see :func:`find_secret`).

Standard library only: the local server imports it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import os
import re
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = [
    "APIS",
    "FORMAT",
    "OUTCOMES",
    "SHIPPED",
    "SUFFIX",
    "VERSION",
    "Piece",
    "Recording",
    "RecordingError",
    "dumps",
    "find_secret",
    "holds_secret",
    "kept_headers",
    "loads",
    "read",
    "resolve",
    "shipped_names",
    "write",
]

FORMAT = "lesson-helpers-recording"
VERSION = 1
SUFFIX = ".jsonl"
APIS = {"chat": "/chat/completions", "responses": "/responses", "messages": "/messages"}
"""Each API a recording may be made with, and its path after the base URL (``…/v1``)."""
OUTCOMES = ("complete", "cut", "timeout", "interrupted")
TRANSFERS = ("chunked", "length", "close")
SOURCES = ("recorded", "reconstructed")
SHIPPED: Traversable = files("lesson_helpers") / "data" / "recordings"
"""The recordings that ship with the kit (``connect(replay="siliconflow_seed")``)."""

# The response headers a recording keeps (lower case); everything else is dropped.
_KEPT = ("content-type", "cache-control", "retry-after")
_KEPT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_NEVER = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_KEYS = {
    "format",
    "version",
    "description",
    "source",
    "based_on",
    "api",
    "request",
    "response",
    "provider",
    "host",
    "recorded_at",
    "note",
}
_RESPONSE_KEYS = {"status", "headers", "at", "transfer", "content_encoding"}
_REQUEST_KEYS = {"method", "path", "body"}
SECRET_PIECE = 8  # a recording may hold no piece of the key this long (nor the whole key)
_MIN_SECRET = 4  # a shorter key cannot be looked for without false alarms


class RecordingError(ValueError):
    """A recording that cannot be read or written; the message is one line (Chinese)."""

    def _render_traceback_(self) -> list[str]:
        """IPython (Jupyter) shows this instead of a traceback."""
        return [f"RecordingError: {self}"]


@dataclass(frozen=True)
class Piece:
    """Bytes that arrived together, ``t`` seconds after the request was sent."""

    t: float
    data: bytes


@dataclass(frozen=True, eq=True)
class Recording:
    """One recorded exchange (see the module docstring for what each field means)."""

    api: str
    request: dict[str, Any]
    status: int
    headers: dict[str, str]
    pieces: tuple[Piece, ...]
    end: float
    description: str
    outcome: str = "complete"
    head_at: float = 0.0
    transfer: str = "chunked"
    content_encoding: str = ""
    source: str = "recorded"
    based_on: str = ""
    provider: str = ""
    host: str = ""
    recorded_at: str = ""
    note: str = ""
    name: str = field(default="", compare=False)  # the file's stem (not stored in the file)

    @property
    def body(self) -> bytes:
        """The whole body, as received."""
        return b"".join(piece.data for piece in self.pieces)

    @property
    def model_id(self) -> str:
        """The model a replay server offers it as: ``replay:<file stem>``."""
        return f"replay:{self.name}"

    def header(self, name: str, default: str = "") -> str:
        """A recorded response header, by name in any case."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    def header_line(self) -> dict[str, Any]:
        """The first line of the file, as an object."""
        line: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "description": self.description,
            "source": self.source,
        }
        if self.based_on:
            line["based_on"] = self.based_on
        for key in ("provider", "host", "recorded_at"):
            if getattr(self, key):
                line[key] = getattr(self, key)
        line["api"] = self.api
        line["request"] = self.request
        response: dict[str, Any] = {
            "status": self.status,
            "headers": self.headers,
            "at": self.head_at,
            "transfer": self.transfer,
        }
        if self.content_encoding:
            response["content_encoding"] = self.content_encoding
        line["response"] = response
        if self.note:
            line["note"] = self.note
        return line


# -- writing ------------------------------------------------------------------------------------
def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _piece_line(piece: Piece) -> dict[str, Any]:
    try:
        return {"t": piece.t, "text": piece.data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"t": piece.t, "base64": base64.b64encode(piece.data).decode("ascii")}


def dumps(recording: Recording) -> str:
    """The file's text: the header line, one line per piece, the end line."""
    lines = [_line(recording.header_line())]
    lines += [_line(_piece_line(piece)) for piece in recording.pieces]
    lines.append(_line({"end": recording.end, "outcome": recording.outcome}))
    return "\n".join(lines) + "\n"


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The response headers a recording keeps (the module docstring lists them), with their
    names in the usual ``Content-Type`` spelling; credentials and cookies never."""
    kept: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in _NEVER:
            continue
        if low in _KEPT or low.startswith(_KEPT_PREFIXES):
            kept["-".join(part.capitalize() for part in low.split("-"))] = value
    return kept


def _spellings(secret: str) -> set[str]:
    """The key as it may be written: as is, JSON-escaped, with ``\\/``, URL-encoded."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.replace("/", "\\/"),
        urllib.parse.quote(secret, safe=""),
    }


def _pieces_of(secret: str) -> set[str]:
    pieces: set[str] = set()
    for spelling in _spellings(secret):
        width = min(len(spelling), SECRET_PIECE)
        pieces.update(spelling[i : i + width] for i in range(len(spelling) - width + 1))
    return pieces


def holds_secret(text: str | bytes, secret: str) -> bool:
    """True when ``text`` holds ``secret`` or any 8+ character piece of it (also JSON-escaped or
    URL-encoded). A key shorter than 4 characters is not looked for."""
    if len(secret) < _MIN_SECRET:
        return False
    pieces = _pieces_of(secret)
    if isinstance(text, bytes):
        return any(piece.encode() in text for piece in pieces)
    return any(piece in text for piece in pieces)


def _written(*values: str) -> str:
    """Values as they are in the file (JSON-escaped) and as they are, for a search."""
    return "\n".join([*values, *(_line(value) for value in values)])


def find_secret(recording: Recording, secret: str) -> str:
    """Where ``recording`` holds ``secret`` or any 8+ character piece of it (also JSON-escaped,
    URL-encoded, or split between two pieces of the body): "请求", "响应头", "录音的说明" or
    "响应体"; "" when it holds none. What is searched is everything that came from the
    request, the server or the recorder -- not the format's own field names. A key shorter
    than 4 characters is not looked for."""
    if len(secret) < _MIN_SECRET:
        return ""
    pieces = _pieces_of(secret)
    about = (recording.description, recording.based_on, recording.note, recording.provider)
    places = [
        ("请求", _line(recording.request)),
        ("响应头", _written(*recording.headers.values(), recording.content_encoding)),
        ("录音的说明", _written(*about, recording.host, recording.recorded_at)),
        ("响应体", "\n".join(_line(_piece_line(piece)) for piece in recording.pieces)),
    ]
    for place, text in places:
        if any(piece in text for piece in pieces):
            return place
    body = recording.body  # a key split between two pieces, or inside a base64 piece
    if any(piece.encode() in body for piece in pieces):
        return "响应体"
    return ""


def write(path: str | os.PathLike[str], recording: Recording, *, secret: str = "") -> Path:
    """Write ``recording`` to ``path`` (all or nothing: a temporary file, then renamed).

    Refuses (:class:`RecordingError`, nothing written) when the recording holds ``secret``
    or a piece of it (:func:`find_secret`), or would not read back (:func:`loads`)."""
    target = Path(path)
    text = dumps(recording)
    loads(text, target.name)  # never write a file the kit could not read
    where = find_secret(recording, secret) if secret else ""
    if where:
        raise RecordingError(
            f"录下的{where}里有你的密钥（或其中连续 {SECRET_PIECE} 个以上的字符），为了安全，"
            f"没有写入 {target.name}：请检查服务器为什么把密钥发了回来，"
            "或换一个问题、一把专门用来录制的密钥再录。"
        )
    folder = target.parent
    handle, temporary = tempfile.mkstemp(prefix=".recording-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


# -- reading ------------------------------------------------------------------------------------
class _Reader:
    """Checks one file line by line; every problem names the file and the line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.number = 0

    def fail(self, problem: str) -> RecordingError:
        where = f"第 {self.number} 行" if self.number else "开头"
        return RecordingError(f"录音文件 {self.source} {where}：{problem}")

    def obj(self, line: str) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            raise self.fail(
                f"不是合法的 JSON（{reason}）：每一行必须是一个完整的 JSON 对象"
            ) from None
        if not isinstance(value, dict):
            raise self.fail(f"应当是一个 JSON 对象，却是 {type(value).__name__}")
        return value

    def seconds(self, value: Any, name: str, at_least: float = 0.0) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(f"{name} 应当是秒数（一个数），却是 {value!r}")
        if value < at_least:
            raise self.fail(f"{name}={value!r} 比前面的时间 {at_least!r} 还早：时间不能倒退")
        return float(value)

    def text(self, value: Any, name: str, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{name} 应当是一段非空的文字，却是 {value!r}")
        if "\n" in value or "\r" in value:
            raise self.fail(f"{name} 只能有一行（里面有换行符）")
        return value

    def unknown(self, obj: dict[str, Any], allowed: set[str], what: str) -> None:
        extra = sorted(set(obj) - allowed)
        if extra:
            raise self.fail(
                f"{what}里有不认识的字段 {', '.join(extra)}"
                f"（认识的是 {', '.join(sorted(allowed))}）"
            )

    def headers(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(f"response.headers 应当是一个对象，却是 {type(value).__name__}")
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise self.fail(f"响应头的名字 {name!r} 不合法")
            if name.lower() in _NEVER:
                raise self.fail(f"录音里不能有 {name} 响应头（它带着凭据或 cookie）")
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                raise self.fail(
                    f"{name} 由回放的服务器自己决定，不要写在 headers 里（见 response.transfer）"
                )
            if not isinstance(text, str) or any(ch in text for ch in "\r\n\0"):
                raise self.fail(f"响应头 {name} 的值应当是一行文字，却是 {text!r}")
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                raise self.fail(f"响应头 {name} 的值里有 HTTP 头放不下的字符") from None
        return dict(value)


def _header(reader: _Reader, obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("format") != FORMAT:
        raise reader.fail(f'第一行应当是录音的说明，以 "format": "{FORMAT}" 开头')
    version = obj.get("version")
    if version != VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise reader.fail(
                f"这是第 {version} 版的录音格式，这个工具包只认识第 {VERSION} 版：请更新工具包"
            )
        raise reader.fail(f"version 应当是 {VERSION}，却是 {version!r}")
    reader.unknown(obj, _HEADER_KEYS, "说明行")
    source = obj.get("source")
    if source not in SOURCES:
        raise reader.fail(f'source 应当是 "recorded" 或 "reconstructed"，却是 {source!r}')
    based_on = reader.text(obj.get("based_on"), "based_on", required=source == "reconstructed")
    api = obj.get("api")
    if api not in APIS:
        raise reader.fail(f"api 应当是 {'、'.join(APIS)} 之一，却是 {api!r}")
    request = obj.get("request")
    if not isinstance(request, dict):
        raise reader.fail('request 应当是一个对象：{"method", "path", "body"}')
    reader.unknown(request, _REQUEST_KEYS, "request ")
    reader.text(request.get("method"), "request.method")
    path = reader.text(request.get("path"), "request.path")
    if not path.startswith("/"):
        raise reader.fail(f"request.path 应当以 / 开头，却是 {path!r}")
    response = obj.get("response")
    if not isinstance(response, dict):
        raise reader.fail('response 应当是一个对象：{"status", "headers", "at"}')
    reader.unknown(response, _RESPONSE_KEYS, "response ")
    status = response.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise reader.fail(f"response.status 应当是 200 到 599 之间的整数，却是 {status!r}")
    transfer = response.get("transfer", "chunked")
    if transfer not in TRANSFERS:
        raise reader.fail(
            f"response.transfer 应当是 {'、'.join(TRANSFERS)} 之一，却是 {transfer!r}"
        )
    return {
        "api": api,
        "request": request,
        "status": status,
        "headers": reader.headers(response.get("headers", {})),
        "head_at": reader.seconds(response.get("at"), "response.at"),
        "transfer": transfer,
        "content_encoding": reader.text(
            response.get("content_encoding"), "response.content_encoding", required=False
        ),
        "description": reader.text(obj.get("description"), "description"),
        "source": source,
        "based_on": based_on,
        "provider": reader.text(obj.get("provider"), "provider", required=False),
        "host": reader.text(obj.get("host"), "host", required=False),
        "recorded_at": reader.text(obj.get("recorded_at"), "recorded_at", required=False),
        "note": reader.text(obj.get("note"), "note", required=False),
    }


def _piece(reader: _Reader, obj: dict[str, Any], after: float) -> Piece:
    reader.unknown(obj, {"t", "text", "base64"}, "这一段")
    t = reader.seconds(obj.get("t"), "t", after)
    has_text, has_b64 = "text" in obj, "base64" in obj
    if has_text == has_b64:
        raise reader.fail('每一段要有 "text" 或 "base64" 中的一个（且只能有一个）')
    if has_text:
        value = obj["text"]
        if not isinstance(value, str):
            raise reader.fail(f"text 应当是字符串，却是 {type(value).__name__}")
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:
            raise reader.fail(
                "text 里有 UTF-8 表示不了的字符（单独的代理项）：请改用 base64"
            ) from None
    else:
        value = obj["base64"]
        if not isinstance(value, str):
            raise reader.fail(f"base64 应当是字符串，却是 {type(value).__name__}")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise reader.fail("base64 不是合法的 Base64 编码") from None
    if not data:
        raise reader.fail("这一段是空的：空的段不用写")
    return Piece(t, data)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield number, line


def loads(text: str, source: str = "<录音>", name: str = "") -> Recording:
    """Read a recording from its text; :class:`RecordingError` names ``source`` and the line."""
    reader = _Reader(source)
    if text.startswith("\ufeff"):
        text = text[1:]
    fields: dict[str, Any] | None = None
    pieces: list[Piece] = []
    end: tuple[float, str] | None = None
    for reader.number, line in _lines(text):
        obj = reader.obj(line)
        if fields is None:
            fields = _header(reader, obj)
            continue
        if end is not None:
            raise reader.fail("结尾行（带 end 的那一行）之后不能再有内容")
        after = pieces[-1].t if pieces else fields["head_at"]
        if "end" in obj:
            reader.unknown(obj, {"end", "outcome"}, "结尾行")
            outcome = obj.get("outcome")
            if outcome not in OUTCOMES:
                raise reader.fail(f"outcome 应当是 {'、'.join(OUTCOMES)} 之一，却是 {outcome!r}")
            end = (reader.seconds(obj["end"], "end", after), outcome)
            continue
        pieces.append(_piece(reader, obj, after))
    if fields is None:
        reader.number = 0
        raise reader.fail("文件是空的：第一行应当是录音的说明")
    if end is None:
        reader.number = 0
        raise RecordingError(
            f'录音文件 {source} 不完整：最后缺少结尾行 {{"end": 秒数, "outcome": "complete"}}'
            "（文件可能没有写完或被截断了）"
        )
    return Recording(pieces=tuple(pieces), end=end[0], outcome=end[1], name=name, **fields)


def read(path: str | os.PathLike[str] | Traversable) -> Recording:
    """Read and check one recording file; its name (``replay:<name>``) is the file's stem."""
    shown = str(path)
    name = Path(str(path)).name
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem
    try:
        data = path.read_bytes() if isinstance(path, Traversable) else Path(path).read_bytes()
    except FileNotFoundError:
        raise RecordingError(f"找不到录音文件 {shown}：请检查路径是否写对了。") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecordingError(f"无法读取录音文件 {shown}（{reason}）。") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecordingError(
            f"录音文件 {shown} 第 {line} 行：不是 UTF-8 文本（录音文件总是 UTF-8，"
            "不能用 GBK 之类的编码另存）"
        ) from None
    if not stem:
        raise RecordingError(f"录音文件 {shown} 没有名字：文件名应当形如 名字{SUFFIX}")
    return loads(text, shown, stem)


# -- finding recordings -----------------------------------------------------------------------
def shipped_names() -> list[str]:
    """The names of the recordings that ship with the kit."""
    return sorted(
        entry.name[: -len(SUFFIX)] for entry in SHIPPED.iterdir() if entry.name.endswith(SUFFIX)
    )


def _paths_of(source: str | os.PathLike[str]) -> list[Path | Traversable]:
    path = Path(source)
    if path.is_dir():
        found: list[Path | Traversable] = sorted(path.glob(f"*{SUFFIX}"))
        if not found:
            raise RecordingError(f"文件夹 {source} 里没有录音文件（*{SUFFIX}）。")
        return found
    if path.exists():
        return [path]
    text = str(source)
    if "/" not in text and "\\" not in text and not text.endswith(SUFFIX):
        shipped = SHIPPED / f"{text}{SUFFIX}"
        if shipped.is_file():
            return [shipped]
        names = "、".join(shipped_names())
        raise RecordingError(
            f"没有名为 {text!r} 的录音：给出一个 {SUFFIX} 文件或文件夹的路径，"
            f"或者工具包自带的录音名（{names}）。"
        )
    raise RecordingError(f"找不到录音文件 {source}：请检查路径是否写对了。")


def resolve(
    sources: str | os.PathLike[str] | Recording | Iterable[str | os.PathLike[str] | Recording],
) -> list[Recording]:
    """The recordings named by ``sources``: files, folders (every ``*.jsonl`` in them), names of
    the kit's own recordings (``"siliconflow_seed"``), or :class:`Recording` objects -- one or a
    list. Two different recordings with the same name are an error."""
    if isinstance(sources, str | os.PathLike | Recording):
        sources = [sources]
    found: dict[str, tuple[str, Recording]] = {}
    for source in sources:
        if isinstance(source, Recording):
            items = [(f"<{source.name}>", source)]
        else:
            items = [(str(p), read(p)) for p in _paths_of(source)]
        for where, recording in items:
            if not recording.name:
                raise RecordingError("这段录音没有名字（Recording.name）：回放时要用它作模型名。")
            earlier = found.get(recording.name)
            if earlier is not None and earlier[0] != where and earlier[1] != recording:
                raise RecordingError(
                    f"两段录音同名 {recording.name}（{earlier[0]} 和 {where}）："
                    "回放时模型名会冲突，请把其中一个文件改名。"
                )
            found[recording.name] = (where, recording)
    return [recording for _, recording in found.values()]
