"""The fault lab: models whose id starts with ``fault-`` misbehave on purpose.

Choose one as the model name and the local server answers the way a real provider, proxy or
network does when something goes wrong: an HTTP error, an error in the middle of a stream, a
cut connection, a stall -- or an oddity a good client must simply cope with (keep-alive
comments, CRLF line ends, a close-delimited body, UTF-8 characters split between writes).

The text a scenario streams is the normal scripted reply (``你好`` gets the seed's answer), so
a recoverable scenario must give exactly the same text as ``Qwen/Qwen2.5-7B-Instruct``.

Waiting scenarios (``fault-stall``, ``fault-slow-first-token``) read an optional
``"fault_delay": seconds`` from the request body, so tests and lessons can keep them short.
"""

from __future__ import annotations

import hashlib
import itertools
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .exchange import ChunkBuilder, Exchange, encode_json
from .models import ModelSpec, register
from .replies import prompt_tokens, reasoning_pieces, reply_pieces

__all__ = ["SCENARIOS", "SLOW_FIRST_TOKEN_DELAY", "STALL_DELAY"]

STALL_DELAY = 3.0  # seconds of silence in fault-stall (longer than a short read timeout)
SLOW_FIRST_TOKEN_DELAY = 1.0  # seconds before the first token in fault-slow-first-token
_MAX_DELAY = 30.0
_CUT_AFTER = 3  # content tokens sent before a mid-stream fault
_SPLIT_PAUSE = 0.002  # seconds between the pieces of fault-split-utf8

Handler = Callable[[Exchange], None]
SCENARIOS: dict[str, ModelSpec] = {}


def _scenario(model_id: str, description: str) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        SCENARIOS[model_id] = register(ModelSpec(model_id, description, handler, "fault-lab"))
        return handler

    return add


# -- building the normal reply ------------------------------------------------------------
def _delay(ex: Exchange, default: float) -> float:
    value = ex.body.get("fault_delay")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value:
        return min(float(value), _MAX_DELAY)
    return default


def _chunks(
    ex: Exchange,
    pieces: list[str] | None = None,
    finish: str | None = "stop",
    reasoning: list[str] | None = None,
) -> list[dict]:
    """The chunks of a SiliconFlow-style reply (role chunk, one per token, finish chunk)."""
    pieces = reply_pieces(ex.messages) if pieces is None else pieces
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    chunks = [builder.chunk({"content": "", "reasoning_content": None, "role": "assistant"})]
    for piece in reasoning or []:
        builder.completion_tokens += 1
        chunks.append(builder.chunk({"content": None, "reasoning_content": piece}))
    for piece in pieces:
        builder.completion_tokens += 1
        chunks.append(builder.chunk({"content": piece, "reasoning_content": None}))
    if finish is not None:
        chunks.append(builder.chunk({"content": "", "reasoning_content": None}, finish))
    return chunks


def _event(obj: object, newline: bytes = b"\n") -> bytes:
    return b"data: " + encode_json(obj) + newline + newline


DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Wait:
    """In a list of events: wait ``seconds`` (None: until the next token's slot) instead of
    the usual pace before the next event. ``Wait(0)``: send the next one right away."""

    seconds: float | None


def _paced(ex: Exchange, events: Iterable[bytes | Wait]) -> bool:
    """Write events one token slot apart (a :class:`Wait` replaces the gap before the next
    one). False if the server is stopping: the body has been cut."""
    gap = False  # the first event goes out at once
    for item in events:
        if isinstance(item, Wait) or gap:
            if not ex.sleep(item.seconds if isinstance(item, Wait) else None):
                ex.cut()
                return False
        gap = not isinstance(item, Wait)
        if gap:
            ex.write(item)  # type: ignore[arg-type]
    return True


def _stream(
    ex: Exchange,
    events: Iterable[bytes | Wait],
    then: Callable[[], None] | None = None,
    **start: object,
) -> None:
    """Start a 200 stream (``start``: see Exchange.start_stream), write the events at the
    server's pace, then ``then()`` -- by default end the body properly."""
    ex.start_stream(**start)  # type: ignore[arg-type]
    if _paced(ex, events):
        (then or ex.end_stream)()


def _normal_events(ex: Exchange) -> list[bytes]:
    return [_event(c) for c in _chunks(ex)] + [DONE]


def _normal_reply(ex: Exchange) -> None:
    """What Qwen/Qwen2.5-7B-Instruct would send (stream or JSON)."""
    if not ex.stream:
        ex.send_json(200, _completion(ex))
        return
    _stream(ex, _normal_events(ex))


def _completion(ex: Exchange) -> dict:
    pieces = reply_pieces(ex.messages)
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    builder.completion_tokens = len(pieces)
    message = {"role": "assistant", "content": "".join(pieces), "reasoning_content": None}
    return {
        "id": builder.id,
        "object": "chat.completion",
        "created": builder.created,
        "model": builder.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "system_fingerprint": "",
        "usage": builder.usage(),
    }


def _html(title: str, text: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{text}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


# -- HTTP errors before any answer --------------------------------------------------------
@_scenario("fault-401", "HTTP 401：密钥错误（不管你发的是什么密钥）。")
def _unauthorized(ex: Exchange) -> None:
    ex.send_error(
        401, "Incorrect API key provided. Check your key in the console.", "invalid_api_key"
    )


@_scenario("fault-403", "HTTP 403：密钥有效，但账户无权使用这个模型（未实名或余额不足）。")
def _forbidden(ex: Exchange) -> None:
    ex.send_error(
        403,
        "Your account is not allowed to use this model: complete identity verification "
        "or top up your balance.",
        "model_access_denied",
        err_type="permission_error",
    )


@_scenario("fault-404", "HTTP 404：假装这个模型不存在（模型名写错时就是这样）。")
def _not_found(ex: Exchange) -> None:
    ex.send_error(
        404,
        f"The model `{ex.model}` does not exist or you do not have access to it.",
        "model_not_found",
        param="model",
    )


@_scenario("fault-400", "HTTP 400：请求体有误（假装 temperature 超出了范围）。")
def _bad_request(ex: Exchange) -> None:
    ex.send_error(
        400,
        "Invalid value for 'temperature': must be a number between 0 and 2.",
        "invalid_value",
        param="temperature",
    )


@_scenario("fault-context-too-long", "HTTP 400：对话太长，超过了模型的上下文长度。")
def _context_too_long(ex: Exchange) -> None:
    ex.send_error(
        400,
        "This model's maximum context length is 32768 tokens. However, you requested "
        "40960 tokens (36864 in the messages, 4096 in the completion). Please reduce the "
        "length of the messages or completion.",
        "context_length_exceeded",
        param="messages",
    )


@_scenario("fault-413", "HTTP 413：请求体太大，被网关（nginx）挡下，返回的是 HTML 网页。")
def _too_large(ex: Exchange) -> None:
    body = _html("413 Request Entity Too Large", "413 Request Entity Too Large")
    ex.send_bytes(413, body, "text/html")


def _conversation_key(ex: Exchange) -> str:
    return hashlib.sha256(encode_json([ex.model, ex.messages, ex.stream])).hexdigest()


@_scenario(
    "fault-429-retry-after",
    "HTTP 429 + Retry-After: 1：同一段对话第一次被限流，等 1 秒重试就成功。",
)
def _rate_limited_once(ex: Exchange) -> None:
    # Odd-numbered requests for the same conversation are refused, even-numbered ones answered:
    # the retry succeeds, and running the same cell again shows the 429 again.
    if ex.memory.bump(_conversation_key(ex)) % 2:
        ex.send_error(
            429,
            "Rate limit reached for requests per minute (RPM): limit 3, used 3.",
            "rate_limit_exceeded",
            err_type="rate_limit_error",
            headers={"Retry-After": "1"},
        )
        return
    _normal_reply(ex)


@_scenario("fault-429", "HTTP 429：一直限流，而且不告诉你要等多久（没有 Retry-After）。")
def _rate_limited(ex: Exchange) -> None:
    ex.send_error(
        429,
        "Request was rejected due to rate limiting. Please try again later.",
        "rate_limit_exceeded",
        err_type="rate_limit_error",
    )


@_scenario("fault-500", "HTTP 500：服务商内部出错。")
def _internal_error(ex: Exchange) -> None:
    ex.send_error(
        500,
        "The server had an error while processing your request.",
        "internal_error",
        err_type="server_error",
    )


@_scenario("fault-502-html", "HTTP 502：网关（代理）出错，返回的是 HTML 网页而不是 JSON。")
def _bad_gateway(ex: Exchange) -> None:
    ex.send_bytes(502, _html("502 Bad Gateway", "502 Bad Gateway"), "text/html")


@_scenario("fault-503", "HTTP 503：模型过载，暂时不可用。")
def _unavailable(ex: Exchange) -> None:
    ex.send_error(
        503,
        "The model is overloaded. Please try again later.",
        "model_overloaded",
        err_type="server_error",
    )


# -- answers that are not the expected stream ---------------------------------------------
@_scenario("fault-json-not-stream", "要了流式（stream: true），却收到一个完整的 JSON 回答。")
def _json_not_stream(ex: Exchange) -> None:
    ex.send_json(200, _completion(ex))


@_scenario("fault-html-200", "HTTP 200，却是一个 HTML 登录页（被校园网或代理拦截）。")
def _login_page(ex: Exchange) -> None:
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>校园网认证</title></head>\n"
        "<body><form action='/login'>请先登录校园网：<input name='user'></form></body></html>\n"
    )
    ex.send_bytes(200, page.encode(), "text/html; charset=utf-8")


# -- streams that break -------------------------------------------------------------------
@_scenario("fault-error-event", '流到一半，服务器发来 data: {"error": ...} 然后结束。')
def _error_event(ex: Exchange) -> None:
    chunks = _chunks(ex, finish=None)[: 1 + _CUT_AFTER]
    error = {
        "error": {
            "message": "Upstream inference worker failed while generating the response.",
            "type": "server_error",
            "code": "upstream_error",
        }
    }
    _stream(ex, [_event(c) for c in chunks] + [_event(error)])


@_scenario("fault-cut-mid-stream", "流到一半连接突然断开，没有 [DONE]。")
def _cut(ex: Exchange) -> None:
    chunks = _chunks(ex, finish=None)[: 1 + _CUT_AFTER]
    _stream(ex, [_event(c) for c in chunks], then=ex.cut)


@_scenario("fault-malformed-json", "流中有一个事件的 JSON 被截断了（不是合法 JSON）。")
def _malformed(ex: Exchange) -> None:
    events = _normal_events(ex)
    bad = 1 + _CUT_AFTER
    # Cut right after the first character of the text, as a broken proxy might.
    start = events[bad].find(b'"content":"')
    end = start + len(b'"content":"') + 3 if start >= 0 else len(events[bad]) // 2
    broken = events[bad][:end].decode("utf-8", errors="ignore")
    events[bad] = broken.encode() + b"\n\n"
    _stream(ex, events)


@_scenario("fault-stall", "流到一半停住几秒（默认 3 秒，可用 fault_delay 调），超过读超时。")
def _stall(ex: Exchange) -> None:
    events = _normal_events(ex)
    head, tail = events[: 1 + _CUT_AFTER], events[1 + _CUT_AFTER :]
    _stream(ex, [*head, Wait(_delay(ex, STALL_DELAY)), *tail])


# -- oddities a client must cope with (the text must come out exactly right) ---------------
@_scenario(
    "fault-slow-first-token",
    "第一个 token 要等很久（默认 1 秒，可用 fault_delay 调），之后一切正常。",
)
def _slow_first_token(ex: Exchange) -> None:
    _stream(ex, [Wait(_delay(ex, SLOW_FIRST_TOKEN_DELAY)), *_normal_events(ex)])


@_scenario("fault-keepalive", "事件之间夹着保活注释行（: ping），文字应当完全正常。")
def _keepalive(ex: Exchange) -> None:
    events = [b": ping\n\n"]
    for data in _normal_events(ex):
        events += [data, b": keep-alive\n\n"]
    _stream(ex, events)


@_scenario("fault-crlf", "用 CRLF（\\r\\n）而不是 LF 换行，文字应当完全正常。")
def _crlf(ex: Exchange) -> None:
    events = [_event(c, b"\r\n") for c in _chunks(ex)] + [b"data: [DONE]\r\n\r\n"]
    _stream(ex, events)


@_scenario(
    "fault-close-delimited",
    "不用分块编码：没有长度，靠关闭连接表示结束（Connection: close）。",
)
def _close_delimited(ex: Exchange) -> None:
    _stream(ex, _normal_events(ex), chunked=False)


def _awkward_pieces(data: bytes) -> list[bytes]:
    """Cut inside every multi-byte UTF-8 character, inside ``data:`` and between ``\\n\\n``."""
    cuts = set()
    for i, byte in enumerate(data):
        if byte >= 0xC0:  # the first byte of a multi-byte character: cut right after it
            cuts.add(i + 1)
        if data.startswith(b"data:", i):
            cuts.add(i + 2)
        if data.startswith(b"\n\n", i):
            cuts.add(i + 1)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@_scenario("fault-split-utf8", "字节被切成碎片发送，连一个汉字的 UTF-8 字节都被切开。")
def _split_utf8(ex: Exchange) -> None:
    events: list[bytes | Wait] = []
    for data in _normal_events(ex):  # each piece, a short pause; the pace between events
        for piece in _awkward_pieces(data):
            events += [piece, Wait(_SPLIT_PAUSE)]
        events.append(Wait(None))
    _stream(ex, events)


@_scenario("fault-no-charset", "Content-Type 里没写 charset=utf-8（requests 会猜成 ISO-8859-1）。")
def _no_charset(ex: Exchange) -> None:
    _stream(ex, _normal_events(ex), content_type="text/event-stream")


@_scenario("fault-gzip", "流被网关用 gzip 压缩（Content-Encoding: gzip），文字应当完全正常。")
def _gzip(ex: Exchange) -> None:
    packer = zlib.compressobj(wbits=31)  # 31: gzip header and trailer
    events: list[bytes | Wait] = [
        packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH) for data in _normal_events(ex)
    ]
    events += [Wait(0), packer.flush(zlib.Z_FINISH)]  # the gzip trailer right after the end
    _stream(ex, events, headers={"Content-Encoding": "gzip"})


@_scenario("fault-no-done", "回答完整（有 finish_reason），但最后没有 data: [DONE]。")
def _no_done(ex: Exchange) -> None:
    _stream(ex, [_event(c) for c in _chunks(ex)])


# -- complete streams that end in an unusual way --------------------------------------------
@_scenario("fault-length", "回答写到一半因为达到 max_tokens 上限而停下（finish_reason: length）。")
def _length(ex: Exchange) -> None:
    pieces = reply_pieces(ex.messages)[: _CUT_AFTER + 1]
    _stream(ex, [_event(c) for c in _chunks(ex, pieces, "length")] + [DONE])


@_scenario("fault-content-filter", "回答被内容审核拦下（finish_reason: content_filter）。")
def _content_filter(ex: Exchange) -> None:
    pieces = reply_pieces(ex.messages)[:_CUT_AFTER]
    _stream(ex, [_event(c) for c in _chunks(ex, pieces, "content_filter")] + [DONE])


@_scenario(
    "fault-reasoning-only",
    "推理模型只输出了思考过程（reasoning_content），还没写正式回答就用完了 max_tokens。",
)
def _reasoning_only(ex: Exchange) -> None:
    chunks = _chunks(ex, [], "length", reasoning=reasoning_pieces(ex.messages))
    _stream(ex, [_event(c) for c in chunks] + [DONE])


TOOL_CALL_ARGUMENTS = ('{"city', '": "北', '京"', ', "unit": "c', 'elsius"}')


@_scenario("fault-tool-calls", "模型不回答文字，而是分几块发来一个工具调用（tool_calls）。")
def _tool_calls(ex: Exchange) -> None:
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    start = {
        "index": 0,
        "id": "call_fault_lab_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    chunks = [builder.chunk({"role": "assistant", "content": None, "tool_calls": [start]})]
    for fragment in TOOL_CALL_ARGUMENTS:
        builder.completion_tokens += 1
        call = {"index": 0, "function": {"arguments": fragment}}
        chunks.append(builder.chunk({"content": None, "tool_calls": [call]}))
    chunks.append(builder.chunk({"content": None}, "tool_calls"))
    _stream(ex, [_event(c) for c in chunks] + [DONE])
