"""Self-checks for lesson 01 (an API call by hand).

* :func:`check_make_request` -- ``make_request(settings, question) -> (url, headers, body)``:
  the URL, the headers (key and JSON content type) and the JSON body of a non-streaming chat
  request, built from the settings, never from hard-coded values.
* :func:`check_explain_error` -- ``explain_error(status, body) -> str``: the provider's own
  message from an error body, whatever shape the provider uses.

Every check prints one ``✓`` line, or a ``✗`` line followed by the input that failed, what was
expected, what came back and a hint. It returns nothing (so a check cell shows only that line) and
never raises because of the student's code. The settings used here hold obviously fake keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..config import Secret, Settings, mask_key
from .report import check, same
from .report import crash as _crash
from .report import fail as _fail

__all__ = ["check_explain_error", "check_make_request"]


# --------------------------------------------------------------------------------------------
# make_request
# --------------------------------------------------------------------------------------------

_CASES = (
    (
        Settings(
            api_key=Secret("fake-key-for-tests"),
            base_url="https://api.example.com/v1",
            model="example/model-a",
        ),
        "你好",
    ),
    (
        Settings(
            api_key=Secret("another-fake-key-42"),
            base_url="http://127.0.0.1:8000/v1",
            model="example/model-b",
        ),
        "什么是流式输出？",
    ),
)


def _header(headers: dict[str, Any], name: str) -> Any:
    """Header lookup ignoring case, as HTTP does."""
    for key, value in headers.items():
        if type(key) is str and key.lower() == name.lower():
            return value
    return None


def _url_hint(url: Any, base_url: str) -> str:
    expected = base_url + "/chat/completions"
    if not isinstance(url, str):
        return "url 应当是一个字符串。"
    if url == base_url:
        return "只有 base_url 还不够：后面要接上路径 /chat/completions。"
    if "//chat" in url:
        return "出现了两个斜杠 //：base_url 末尾没有 /，直接拼 '/chat/completions' 就行。"
    if url.endswith("/chat/completions/"):
        return "末尾多了一个 /。"
    if "/v1/v1" in url:
        return "/v1 重复了：settings.base_url 已经以 /v1 结尾。"
    if url.endswith("chat/completions") and not url.startswith(base_url):
        return f"前半部分不对：要用 settings.base_url（这里是 {base_url!r}），不要把网址写死。"
    if "completion" in url and not url.endswith("/chat/completions"):
        return "路径是 /chat/completions（completions 是复数，前面还有 chat/）。"
    return f"url = settings.base_url + '/chat/completions'，这里应是 {expected!r}。"


def _auth_hint(value: Any, key: str) -> str:
    if value is None:
        return "headers 里没有 Authorization：密钥要放在 'Authorization' 这个请求头里。"
    if not isinstance(value, str):
        return "请求头的值要是字符串。"
    if value == key:
        return "少了前缀：格式是 'Bearer ' + 密钥（Bearer 后面有一个空格）。"
    if value == "Bearer" + key:
        return "Bearer 和密钥之间要有一个空格。"
    if "…" in value or "***" in value or "Secret(" in value or mask_key(key) in value:
        return (
            "你放进去的是打码后的密钥（str(settings.api_key) 只会给出打码的样子）。"
            "真正的值要用 settings.api_key.reveal() 取出。"
        )
    if value.lower() == f"bearer {key}".lower() and not value.startswith("Bearer "):
        return "大小写：按惯例写成 'Bearer '（B 大写），后面接密钥原样。"
    if key not in value:
        return "密钥不对：要用 settings.api_key.reveal()，不要把密钥写死在代码里。"
    return "格式是 f'Bearer {settings.api_key.reveal()}'，前后不要有多余的字符或空格。"


def _check_body(what: str, body: Any, settings: Settings, question: str) -> bool:
    expected = {"model": settings.model, "messages": [{"role": "user", "content": question}]}
    if isinstance(body, str | bytes):
        return _fail(
            f"{what}：body 是 {type(body).__name__}",
            expected,
            body,
            "body 返回 dict 就好：发送时写 requests.post(url, headers=..., json=body)，"
            "requests 会替你转成 JSON。",
        )
    if not isinstance(body, dict):
        return _fail(f"{what}：body 不是 dict", expected, body, "body 是一个 dict。")
    if not same(body.get("model"), settings.model):
        hint = (
            "body 里缺少 'model'：服务器要知道用哪个模型。"
            if "model" not in body
            else "model 要用 settings.model，不要写死模型名。"
        )
        return _fail(f"{what}：body['model'] 不对", settings.model, body.get("model"), hint)
    messages = body.get("messages")
    want = expected["messages"]
    if not same(messages, want):
        if not isinstance(messages, list):
            hint = (
                "messages 是一个列表，里面每条消息是一个 dict："
                "[{'role': 'user', 'content': 问题}]。"
            )
        elif len(messages) != 1:
            hint = "这个请求只需要一条消息：用户的问题。"
        elif not isinstance(messages[0], dict):
            hint = "每条消息是一个 dict，有 'role' 和 'content' 两个键。"
        elif messages[0].get("role") != "user":
            hint = "用户说的话，role 是 'user'（不是 'human' 或 'assistant'）。"
        elif messages[0].get("content") != question:
            hint = "content 就是参数 question 本身，原样放进去。"
        else:
            hint = "消息里只要 'role' 和 'content' 两个键。"
        return _fail(f"{what}：body['messages'] 不对", want, messages, hint)
    if body.get("stream", False) is not False:
        return _fail(
            f"{what}：body['stream'] 不对",
            False,
            body.get("stream"),
            "这个练习是普通（非流式）请求：stream 不写，"
            "或者写 False（布尔值，不是字符串 'false'）。",
        )
    try:
        text = json.dumps(body, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return _crash(f"{what}：json.dumps(body)", exc, "body 里只能有 JSON 认识的类型。")
    if settings.api_key.reveal() in text:
        return _fail(
            f"{what}：body 里出现了密钥",
            expected,
            "（已隐藏）",
            "密钥只放在 Authorization 请求头里，绝不放进 body。",
        )
    return True


def _check_request(func: Callable[..., Any], settings: Settings, question: str) -> bool:
    what = f"make_request(settings, {question!r})"
    key = settings.api_key.reveal()
    try:
        result = func(settings, question)
    except Exception as exc:  # the student's code may raise anything
        return _crash(
            what,
            exc,
            "会用到 settings 的三个字段："
            "settings.base_url、settings.model、settings.api_key.reveal()。",
        )
    if not isinstance(result, tuple | list) or len(result) != 3:
        return _fail(
            f"{what} 的返回值",
            "(url, headers, body)",
            result,
            "返回三样东西：return url, headers, body",
        )
    url, headers, body = result
    expected_url = settings.base_url + "/chat/completions"
    if not same(url, expected_url):
        return _fail(f"{what}：url 不对", expected_url, url, _url_hint(url, settings.base_url))
    if not isinstance(headers, dict):
        return _fail(f"{what}：headers 不是 dict", "{...}", headers, "headers 是一个 dict。")
    auth = _header(headers, "Authorization")
    if not same(auth, f"Bearer {key}"):
        shown = "（里面是密钥，不显示）" if isinstance(auth, str) and key in auth else auth
        return _fail(
            f"{what}：Authorization 请求头不对",
            "Bearer <密钥原文>（即 'Bearer ' + settings.api_key.reveal()）",
            shown,
            _auth_hint(auth, key),
        )
    content_type = _header(headers, "Content-Type")
    if type(content_type) is not str or not content_type.startswith("application/json"):
        return _fail(
            f"{what}：Content-Type 请求头不对",
            "application/json",
            content_type,
            "告诉服务器 body 是 JSON：headers 里加上 'Content-Type': 'application/json'。",
        )
    return _check_body(what, body, settings, question)


@check
def check_make_request(func: Callable[..., Any]) -> None:
    """Call ``func`` with two different fake settings and check what it builds."""
    for settings, question in _CASES:
        if not _check_request(func, settings, question):
            return
    print("✓ make_request：网址、请求头和请求体都对，而且都来自 settings，没有写死。")


# --------------------------------------------------------------------------------------------
# explain_error
# --------------------------------------------------------------------------------------------

_OPENAI_HINT = "OpenAI 格式（本地服务器也是）：先 json.loads(body)，消息在 ['error']['message']。"

# (status, body, expected, hint when wrong)
_ERROR_CASES: list[tuple[int, str, str, str]] = [
    (
        401,
        '{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error",'
        '"param":null,"code":"invalid_api_key"}}',
        "Incorrect API key provided.",
        _OPENAI_HINT,
    ),
    (
        404,
        '{"error":{"message":"The model `no-such-model` does not exist.",'
        '"type":"invalid_request_error","param":"model","code":"model_not_found"}}',
        "The model `no-such-model` does not exist.",
        _OPENAI_HINT,
    ),
    (
        429,
        '{"error": {"message": "Rate limit reached. Please try again later.", '
        '"type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}\n',
        "Rate limit reached. Please try again later.",
        _OPENAI_HINT + "（JSON 里有空格、末尾有换行也没关系，json.loads 都能处理。）",
    ),
    (
        400,
        '{"code":20012,"message":"Model does not exist. Please check it carefully.","data":null}',
        "Model does not exist. Please check it carefully.",
        "硅基流动的这种格式没有 'error' 这一层：消息在解析结果的顶层 ['message']。"
        "先看有没有 'error'，没有再看 'message'。",
    ),
    (
        400,
        '{"error":"messages must not be empty"}',
        "messages must not be empty",
        "有的服务商的 'error' 直接就是一个字符串（不是 dict）：那就返回这个字符串。"
        "用 isinstance(error, dict) / isinstance(error, str) 区分。",
    ),
    (
        401,
        "Invalid token",
        "Invalid token",
        "body 不一定是 JSON：json.loads 抛出 json.JSONDecodeError 时，直接返回原文。",
    ),
    (
        503,
        "  Service Unavailable\n",
        "Service Unavailable",
        "不是 JSON 时返回原文，但要去掉首尾的空白（strip()）。",
    ),
    (
        502,
        "",
        "HTTP 502",
        "body 是空的：没有消息可读，至少告诉用户状态码，返回 f'HTTP {status}'。",
    ),
]


def _explain_error_ok(func: Callable[[int, str], str]) -> bool:
    for status, body, expected, hint in _ERROR_CASES:
        what = f"explain_error({status}, {body!r})"
        try:
            got = func(status, body)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, hint)
        if same(got, expected):
            continue
        if isinstance(got, dict):
            hint = "你返回的是一个 dict（整个 error 对象）：要的是其中 'message' 的字符串。"
        elif isinstance(got, str) and got.strip() == expected:
            hint = "内容对了，但首尾多了空白：返回前 strip() 一下。"
        elif isinstance(got, str) and got == body and body.strip()[:1] == "{":
            hint = "你原样返回了整个 body：要先 json.loads，再取出里面的消息。"
        return _fail(what, expected, got, hint)
    print(f"✓ explain_error：{len(_ERROR_CASES)} 种错误响应都读出了服务器自己的说明。")
    return True


@check
def check_explain_error(func: Callable[[int, str], str]) -> None:
    """Run ``func`` on error bodies in the shapes real providers use."""
    _explain_error_ok(func)
