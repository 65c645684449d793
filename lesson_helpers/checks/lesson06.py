"""Self-checks for lesson 06 (when things go wrong).

* :func:`check_should_retry` -- ``should_retry(error, shown) -> bool``: retry 429, 5xx and
  connection failures, but never once some text was shown, and never 4xx or timeouts.
* :func:`check_backoff` -- ``backoff(attempt, retry_after=None) -> float``: the server's
  ``Retry-After`` if given, else exponential backoff with jitter (0.5-1 s, 1-2 s, 2-4 s, ...).
* :func:`check_bug_report` -- ``bug_report(error, settings) -> str``: a report with the
  request id, the error's one line, the model and the address -- and never the key.

Every check prints one ``✓`` line, or a ``✗`` line followed by the input that failed, what was
expected, what came back and a hint. It returns nothing (so a check cell shows only that
line) and never raises because of the student's code. The settings used here hold obviously
fake keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Secret, Settings
from ..errors import (
    AuthError,
    BadRequestError,
    ConnectError,
    LLMError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    StreamError,
)
from .report import check, same
from .report import crash as _crash
from .report import fail as _fail

__all__ = ["check_backoff", "check_bug_report", "check_should_retry"]


def _describe(error: LLMError) -> str:
    status = "" if error.status is None else f"status={error.status}"
    return f"{type(error).__name__}({status})"


# --------------------------------------------------------------------------------------------
# should_retry
# --------------------------------------------------------------------------------------------

_SHOWN_HINT = (
    "屏幕上已经有文字了：重试会得到一个全新的回答（模型每次写的都不一样），接在半句话后面"
    "只会让人糊涂。已经显示过文字，就不再重试，不管是什么错误。"
)

# (error, shown, expected, hint when wrong)
_RETRY_CASES: list[tuple[LLMError, str, bool, str]] = [
    (
        RateLimitError(status=429, retry_after=1.0),
        "",
        True,
        "429 是“太频繁了”：等一等再发通常就会成功，要重试。",
    ),
    (ServerError(status=500), "", True, "5xx 是服务器那边的问题，常常是暂时的：要重试。"),
    (
        ServerError(status=502, provider_message="502 Bad Gateway"),
        "",
        True,
        "502 是网关出错，常常是暂时的：要重试。",
    ),
    (ServerError(status=503), "", True, "503 是服务器过载，过一会儿就好：要重试。"),
    (
        ConnectError("连不上 api.example.com（连接被拒绝）"),
        "",
        True,
        "连不上服务器（ConnectError，它的 status 是 None）也值得重试：网络抖动常常是暂时的。"
        "不要只看 error.status，用 "
        "isinstance(error, (RateLimitError, ServerError, ConnectError))。",
    ),
    (
        AuthError(status=401),
        "",
        False,
        "401 是密钥的问题：原样重发一百次还是错的，应该去检查 .env。",
    ),
    (AuthError(status=403), "", False, "403 是账户没有权限：重试没有用，要去服务商后台看。"),
    (NotFoundError(status=404), "", False, "404 是模型名或网址写错了：重试没有用。"),
    (
        BadRequestError(status=400),
        "",
        False,
        "400 是请求本身有误：原样重发还是错。只有 429 这一个 4xx 值得重试。",
    ),
    (
        RequestTimeout("等待回答超时"),
        "",
        False,
        "超时不自动重试：服务器可能还在处理这个请求，重发会再花一次钱，等待时间也会翻倍。",
    ),
    (ServerError(status=500), "你好！有什么", False, _SHOWN_HINT),
    (RateLimitError(status=429), "你", False, _SHOWN_HINT),
    (StreamError("连接在回答结束前断开", partial_text="你好！"), "你好！", False, _SHOWN_HINT),
]


def _should_retry_ok(func: Callable[[LLMError, str], bool]) -> bool:
    """Run ``func`` on the errors a client meets, with and without text already shown."""
    for error, shown, expected, hint in _RETRY_CASES:
        what = f"should_retry({_describe(error)}, shown={shown!r})"
        try:
            got = func(error, shown)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, hint)
        if not isinstance(got, bool):
            return _fail(what, expected, got, "返回 True 或 False（布尔值）。")
        if not same(got, expected):
            return _fail(what, expected, got, hint)
    print(
        f"✓ should_retry：{len(_RETRY_CASES)} 种情况都判断对了——"
        "该重试的重试，显示过文字就不再重试。"
    )
    return True


# --------------------------------------------------------------------------------------------
# backoff
# --------------------------------------------------------------------------------------------

_SAMPLES = 60


def _call_backoff(func: Callable[..., Any], attempt: int, retry_after: float | None) -> Any:
    if retry_after is None:
        return func(attempt)
    return func(attempt, retry_after)


def _backoff_ok(func: Callable[..., float]) -> bool:
    """Check Retry-After first, then the exponential range and the jitter of each attempt."""
    for retry_after, hint in (
        (2.0, "服务器在 Retry-After 里说了要等几秒，就照它说的等：直接返回 retry_after。"),
        (
            0.0,
            "Retry-After: 0 的意思是“马上可以重试”，应当返回 0。注意 `if retry_after:` 会把 0 "
            "当成“没有”；要写 `if retry_after is not None:`。",
        ),
    ):
        what = f"backoff(1, retry_after={retry_after})"
        try:
            got = _call_backoff(func, 1, retry_after)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, hint)
        if not same(got, retry_after):
            return _fail(what, retry_after, got, hint)
    for attempt in (1, 2, 3, 4):
        base = 0.5 * 2 ** (attempt - 1)
        what = f"backoff({attempt})"
        try:
            samples = [_call_backoff(func, attempt, None) for _ in range(_SAMPLES)]
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, "没有 Retry-After 时，retry_after 是 None。")
        bad = [s for s in samples if type(s) not in (int, float)]
        if bad:
            return _fail(what, "秒数（float）", bad[0], "返回等待的秒数，一个数。")
        expected = f"{base:g} 到 {2 * base:g} 之间的随机数"
        low, high = min(samples), max(samples)
        if low < base - 1e-9:
            if attempt >= 3 and high <= attempt + 1e-9:  # 0.5 * attempt (+ jitter): linear
                hint = "要按指数增长：每多失败一次，等待翻倍（0.5、1、2、4……），不是每次多加 0.5。"
            else:
                hint = (
                    "抖动加在基础等待之上：base = 0.5 * 2 ** (attempt - 1)，再加 "
                    "random.uniform(0, base)，所以结果不会比 base 小。"
                )
            return _fail(what, expected, low, hint)
        if high > 2 * base + 1e-9:
            return _fail(
                what,
                expected,
                high,
                "随机的部分最多再加一个 base：base + random.uniform(0, base)，结果在 base 到 "
                "2×base 之间。（注意 attempt 从 1 开始：第 1 次重试等 0.5 到 1 秒。）",
            )
        if len(set(samples)) == 1:
            return _fail(
                what,
                expected,
                f"每次都是 {samples[0]!r}",
                "要加一点随机（抖动，jitter）：否则一群同时被拒的客户端会在同一时刻一起重试，"
                "再一起被拒。用 random.uniform(0, base)。",
            )
    print("✓ backoff：先听 Retry-After；没有时按 0.5、1、2、4 秒翻倍，并加上随机抖动。")
    return True


# --------------------------------------------------------------------------------------------
# bug_report
# --------------------------------------------------------------------------------------------

_REPORT_SETTINGS = (
    Settings(
        api_key=Secret("fake-key-for-tests-0123456789"),
        base_url="https://api.example.com/v1",
        model="example/model-a",
    ),
    Settings(
        api_key=Secret("another-fake-key-for-tests-42"),
        base_url="http://127.0.0.1:8000/v1",
        model="example/model-b",
    ),
    Settings(
        api_key=Secret("third-fake-key-for-tests-77"),
        base_url="https://llm.example.org/v1",
        model="example/model-c",
    ),
)
_REPORT_ERRORS = (
    StreamError(
        "服务器在流中途报告了错误",
        provider_message="Upstream inference worker failed.",
        request_id="req-0123456789abcdef",
        partial_text="你好！有什么",
    ),
    AuthError(
        status=401, provider_message="Incorrect API key provided.", request_id="req-401-feed"
    ),
    ConnectError("连不上 llm.example.org（连接被拒绝，服务没有在这个端口运行）"),
)


def _check_report(
    func: Callable[[LLMError, Settings], str], error: LLMError, settings: Settings
) -> bool:
    what = f"bug_report({_describe(error)}, settings)"
    key = settings.api_key.reveal()
    try:
        report = func(error, settings)
    except Exception as exc:  # the student's code may raise anything
        hint = "要能处理各种错误。"
        if error.status is None or not error.request_id:
            hint = (
                "这个错误没有状态码或请求 id（ConnectError 根本没连上服务器：status 是 None，"
                "request_id 是空字符串）。写成 error.request_id or '无' 这样就不会出错。"
            )
        return _crash(what, exc, hint)
    if type(report) is not str:
        return _fail(what, "一段文字（str）", report, "返回一个字符串，可以有好几行。")
    if key in report:
        return _fail(
            f"{what}：报告里出现了密钥！",
            "没有密钥的报告",
            "（含有密钥，不显示）",
            "报告会贴到群里、发给服务商：绝不能带密钥。不要用 settings.api_key.reveal() 或 "
            "settings.auth_headers()；settings.model 和 settings.base_url 就够了。",
        )
    if "bearer" in report.lower() or "authorization" in report.lower():
        return _fail(
            f"{what}：报告里有 Authorization 请求头",
            "不含请求头的报告",
            report,
            "请求头里装的是密钥：报告里不要放请求头，哪怕打了码。",
        )
    if error.request_id and error.request_id not in report:
        return _fail(
            f"{what}：报告里没有请求 id",
            error.request_id,
            report,
            "服务商凭请求 id 在日志里找到你的那次请求：把 error.request_id 写进报告。",
        )
    if str(error) not in report:
        return _fail(
            f"{what}：报告里没有错误说明",
            str(error),
            report,
            "把 str(error) 整行写进报告：里面有状态码、服务器的原话和已经收到多少字。",
        )
    for name, value in (("模型名", settings.model), ("接口地址", settings.base_url)):
        if value not in report:
            return _fail(
                f"{what}：报告里没有{name}",
                value,
                report,
                "写上 settings.model 和 settings.base_url："
                "同一个错误，换个模型或服务商可能就没有了。",
            )
    return True


def _bug_report_ok(func: Callable[[LLMError, Settings], str]) -> bool:
    """Call ``func`` on three errors with three fake settings; look for what must (not) be in."""
    for error, settings in zip(_REPORT_ERRORS, _REPORT_SETTINGS, strict=True):
        if not _check_report(func, error, settings):
            return False
    print("✓ bug_report：有请求 id、错误说明、模型和地址，而且没有密钥——可以放心贴出去了。")
    return True


@check
def check_should_retry(func: Callable[[LLMError, str], bool]) -> None:
    """Print one ✓ line, or ✗ with what failed and a hint."""
    _should_retry_ok(func)


@check
def check_backoff(func: Callable[..., float]) -> None:
    """Print one ✓ line, or ✗ with what failed and a hint."""
    _backoff_ok(func)


@check
def check_bug_report(func: Callable[[LLMError, Settings], str]) -> None:
    """Print one ✓ line, or ✗ with what failed and a hint."""
    _bug_report_ok(func)
