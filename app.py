"""A streaming chat program in one file: ask a question, watch the answer arrive piece by piece.

    python app.py "什么是流式输出？"   # 问一个问题，流式显示回答，然后退出
    python app.py                      # 多轮对话：/clear 清空，/quit 退出

Ctrl-C stops an answer (what arrived stays on the screen); errors are one or two lines on stderr.

Settings come from a `.env` file (found next to this file or in a folder above it) or from
environment variables, which win over `.env`:

    LLM_API_KEY    your API key (not needed for a model server on your own computer)
    LLM_BASE_URL   default https://api.siliconflow.cn/v1
                   (DeepSeek: https://api.deepseek.com/v1, OpenAI: https://api.openai.com/v1)
    LLM_MODEL      default Qwen/Qwen2.5-7B-Instruct
    LLM_TIMEOUT    seconds to wait for the next piece of the answer, default 60 (0.1 to 3600)
    LLM_PROVIDER   optional shortcut for LLM_BASE_URL and LLM_MODEL: siliconflow, deepseek,
                   openai, openrouter, groq; on your own computer: ollama, lmstudio, vllm;
                   local (the course's practice server, with LLM_BASE_URL)

Only two libraries: requests (HTTP) and python-dotenv (reads `.env`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from dotenv import find_dotenv, load_dotenv
from dotenv.parser import parse_stream


@dataclass(frozen=True)
class Preset:
    """A provider's address and default model, and whether it wants an API key."""

    base_url: str
    model: str
    needs_key: bool = True


# LLM_PROVIDER 选其中一家；LLM_BASE_URL 和 LLM_MODEL 可以改掉它的网址和模型。
# （和 lesson_helpers/config.py 的 PROVIDERS 是同一张表：有测试检查两者一致。）
PRESETS = {
    "siliconflow": Preset("https://api.siliconflow.cn/v1", "Qwen/Qwen2.5-7B-Instruct"),
    "deepseek": Preset("https://api.deepseek.com/v1", "deepseek-chat"),
    "openai": Preset("https://api.openai.com/v1", "gpt-4o-mini"),
    "openrouter": Preset("https://openrouter.ai/api/v1", "openai/gpt-4o-mini"),
    "groq": Preset("https://api.groq.com/openai/v1", "llama-3.1-8b-instant"),
    # 在你自己电脑上运行的模型服务器：不需要密钥。
    "ollama": Preset("http://localhost:11434/v1", "qwen2.5:7b", needs_key=False),
    "lmstudio": Preset("http://localhost:1234/v1", "qwen2.5-7b-instruct", needs_key=False),
    "vllm": Preset("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct", needs_key=False),
    # 课程的本地练习服务器启动时才选端口：还要设置 LLM_BASE_URL。
    "local": Preset("", "Qwen/Qwen2.5-7B-Instruct", needs_key=False),
}
CONNECT_TIMEOUT = 10  # 等服务器接受连接的秒数
MIN_TIMEOUT = 0.1  # LLM_TIMEOUT 的下限：没有服务器能更快地回答，每次都会超时
MAX_TIMEOUT = 3600  # LLM_TIMEOUT 的上限（socket 没法等 1e10 秒）
QUIT_COMMANDS = {"/quit", "/exit", "quit", "exit", "退出"}
CLEAR_COMMANDS = {"/clear", "清空"}
# app.py 不能自己启动课程的本地练习服务器（它不导入课程工具包里的任何东西），
# 所以只告诉你怎样在另一个终端里启动。
LOCAL_SERVER_HINT = (
    "不用密钥也能练习：另开一个终端运行 python -m lesson_helpers serve --port 8000，"
    "再设置 LLM_BASE_URL=http://127.0.0.1:8000/v1 和 LLM_API_KEY=local-practice-key。"
)
SLOW = "请稍后重试，或在 .env 里调大 LLM_TIMEOUT。"
NO_KEY = "没有找到 API Key：请复制 .env.example 为 .env，在 LLM_API_KEY= 后面填上你的密钥。"


class ChatError(Exception):
    """A problem explained to the user in one or two lines (never a traceback).

    ``fatal`` means trying again with the same settings cannot help (a wrong key, a wrong URL).
    ``too_long`` means what was sent may be too long: show_error says what to do about that.
    """

    def __init__(self, message: str, *, fatal: bool = False, too_long: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.too_long = too_long


@dataclass(frozen=True)
class Config:
    """The settings: where to send requests, with which key, for which model."""

    api_key: str = field(repr=False)  # repr=False：打印 Config 时不会显示密钥
    base_url: str
    model: str
    timeout: float


@dataclass
class Reply:
    """What one streamed answer brought: the text, the model's reasoning, the token usage."""

    content: str = ""
    reasoning: str = ""
    refusal: str = ""  # OpenAI：模型拒绝回答时说的理由（代替回答）
    tool_calls: dict[int, dict] = field(default_factory=dict)  # 模型要求调用的函数
    usage: dict | None = None
    finish_reason: str = ""  # 模型为什么停下："stop"、"length"……
    done: bool = False  # 收到 "data: [DONE]" 后为 True
    interrupted: bool = False  # 用户按了 Ctrl-C 时为 True


def dotenv_problem(text: str) -> tuple[str, str]:
    """(variable name, what is wrong) for a line of `.env` that python-dotenv cannot read."""
    start = re.match(r"(?:export\s+)?(['\"]?)([A-Za-z_]\w*)(\s*=\s*)?", text)
    if start is None:
        return "", "不是「名字=值」的写法：应当形如 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct"
    key_quote, name, equals = start.groups()
    value = text[start.end() :].split("\n")[0]
    quote = value[:1]
    if key_quote:
        return name, f"的名字前面多了一个 {key_quote}：请删掉它"
    if not equals:
        return name, "不是「名字=值」的写法：名字里不能有空格，名字和值之间用等号（=）"
    if quote in ("'", '"') and not re.match(rf"{quote}(\\.|[^{quote}\\])*{quote}", value):
        return name, f"的引号没有闭合：请在值的末尾补上 {quote}，或删掉开头的 {quote}"
    if quote in ("'", '"'):
        return name, "在引号后面还有别的内容：整个值都要放在引号里（引号后面只能写 # 开头的注释）"
    return name, "python-dotenv 读不懂：请检查这一行的引号和等号"


def read_dotenv() -> None:
    """Copy `.env` into os.environ (variables already set win), or say why it cannot be read.

    A line python-dotenv cannot read (a quote that never closes...) is an error when it sets
    one of our LLM_ variables; other such lines (for other programs) are skipped.
    """
    path = find_dotenv()  # 在 app.py 所在的文件夹里找，找不到就往上一层找……
    if not path:
        return
    try:
        with open(path, encoding="utf-8-sig") as file:  # -sig：开头有 BOM 也没关系
            text = file.read()
    except UnicodeDecodeError:  # 存成了 GBK（记事本的“ANSI”）或 UTF-16（PowerShell 的 echo）
        raise ChatError(".env 不是 UTF-8 编码：请用编辑器把它另存为 UTF-8。") from None
    except OSError as error:  # 例如没有读取权限
        raise ChatError(f".env 读不出来（{error.strerror}）：检查这个文件的权限。") from None
    readable, start = [], 0  # 读得懂的行；下一段从 text 的第几个字符开始
    for binding in parse_stream(io.StringIO(text)):
        piece = binding.original.string  # 一行（前面也许有空行），有时是几行
        if not binding.error:
            readable.append(piece)
        else:  # 读不懂：python-dotenv 会打印一句英文警告，然后跳过它
            name, problem = dotenv_problem(piece.lstrip())
            if name.startswith("LLM_") and name not in os.environ:  # 我们要用的设置：不能跳过
                blank = len(piece) - len(piece.lstrip())  # 前面那些空行
                number = text.count("\n", 0, start + blank) + 1
                raise ChatError(f".env 第 {number} 行（{name}）{problem}。")
        start += len(piece)
    load_dotenv(stream=io.StringIO("".join(readable)))  # 环境变量里已经有的，不会被覆盖


def check_base_url(base_url: str) -> None:
    """Raise ChatError unless ``base_url`` is a web address requests can send to."""
    example = "应当形如 https://api.siliconflow.cn/v1"
    if not base_url.isascii() or any(char.isspace() for char in base_url):
        # 例如中文输入法打出的全角冒号“：”：urlsplit 会抛出 ValueError，requests 也发不出去
        raise ChatError(
            f"LLM_BASE_URL={base_url!r} 里有空格或全角字符：请用英文输入法重新输入，{example}"
        )
    try:
        parts = urlsplit(base_url)  # 方括号不配对（"http://[::1/v1"）时抛出 ValueError
        # 端口是 "abc" 或 99999 时，.port 也会抛出 ValueError
        scheme, host, port = parts.scheme, parts.hostname or "", parts.port
    except ValueError:
        scheme, host, port = "", "", None
    # 主机名里用点隔开的每一段都不能是空的（"api..com"）：requests 底下的 urllib3 会抛出异常
    host_ok = all(0 < len(label) <= 63 for label in host.removesuffix(".").split("."))
    if scheme not in ("http", "https") or not host_ok or port == 0:
        raise ChatError(f"LLM_BASE_URL={base_url!r} 不是网址：{example}")


def read_timeout() -> float:
    """LLM_TIMEOUT in seconds, from MIN_TIMEOUT to MAX_TIMEOUT (default 60)."""
    text = os.getenv("LLM_TIMEOUT", "").strip() or "60"
    try:
        timeout = float(text)
    except ValueError:
        timeout = 0
    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:  # "nan" 和 "inf" 也过不了这一关
        raise ChatError(
            f"LLM_TIMEOUT={text!r} 不对：请写 {MIN_TIMEOUT:g} 到 {MAX_TIMEOUT} 之间的秒数，"
            "例如 LLM_TIMEOUT=60。"
        )
    return timeout


def load_config() -> Config:
    """Read the settings from `.env` and the environment, and check them."""
    read_dotenv()
    # LLM_PROVIDER 选一个预设（不写就是硅基流动）。不认识的名字要报错：瞎猜的话，
    # 密钥可能被发给不属于它的服务商。
    provider = os.getenv("LLM_PROVIDER", "").strip().lower() or "siliconflow"
    if provider not in PRESETS:
        names = ", ".join(PRESETS)
        raise ChatError(f"LLM_PROVIDER={provider!r} 无法识别：请改成 {names} 之一，或删掉这一行。")
    preset = PRESETS[provider]
    api_key = os.getenv("LLM_API_KEY", "").strip()
    base_url = (os.getenv("LLM_BASE_URL", "").strip() or preset.base_url).rstrip("/")
    model = os.getenv("LLM_MODEL", "").strip() or preset.model
    if api_key == "your-api-key-here":  # .env.example 里的占位符
        api_key = ""
    if not api_key and preset.needs_key:
        raise ChatError(f"{NO_KEY}\n{LOCAL_SERVER_HINT}")
    if not base_url:  # LLM_PROVIDER=local：需要练习服务器的地址
        raise ChatError(f"app.py 不能自己启动本地练习服务器。\n{LOCAL_SERVER_HINT}")
    if not (api_key.isascii() and api_key.isprintable()) or " " in api_key:
        raise ChatError(
            "LLM_API_KEY 里有空格或中文字符：请在 .env 里只粘贴密钥本身（不加中文引号和注释）。"
        )
    if any(char.isspace() or not char.isprintable() for char in model):  # 例如一个换行
        raise ChatError(
            f"LLM_MODEL={model!r} 里有空格、换行或看不见的字符："
            f"模型名是连在一起的一个词，例如 {PRESETS['siliconflow'].model}。"
        )
    check_base_url(base_url)
    return Config(api_key, base_url, model, read_timeout())


def hide_key(text: str, key: str) -> str:
    """``text`` with the key made unreadable (also any piece of it 12 characters long or more).

    A server may send your key back (in an error message, a web page, a broken event), and what
    the program prints can end up in a screenshot or a chat: so text from the network passes
    through here before it is shown. Keys shorter than 8 characters ("ollama", "EMPTY") are
    placeholders for servers that need none, not secrets: hiding them would garble answers.
    """
    if len(key) < 12:
        return text.replace(key, "***") if len(key) >= 8 else text
    pieces = {key[i : i + 12] for i in range(len(key) - 11)}
    if not any(piece in text for piece in pieces):  # 通常都不包含：先快速检查一遍
        return text
    hidden = [False] * len(text)
    for start in range(len(text) - 11):
        if text[start : start + 12] in pieces:
            hidden[start : start + 12] = [True] * 12
    return "".join("*" if hide else char for char, hide in zip(text, hidden, strict=True))


def error_body(response: requests.Response) -> str:
    """The start of a response's body (64 KiB at most), as text: enough for an explanation.

    If the body breaks off or cannot be decompressed, what arrived until then.
    """
    body = b""
    try:
        while len(body) < 65536:
            more = response.raw.read1(65536 - len(body), decode_content=True)
            if not more:
                break
            body += more
    except Exception:  # 半路断了（Content-Length 比实际收到的多）、gzip 坏了……
        pass
    response.close()
    return body.decode("utf-8", errors="replace")


def provider_message(text: str) -> str:
    """The provider's own error message from an error body (JSON or not), on one short line."""
    if text.lstrip().startswith("<"):  # 一个 HTML 网页，例如代理或校园网登录页
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = f"一个网页「{title.group(1).strip() if title else ''}」，不是 API 的回答"
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and "choices" in body:  # 一个完整的回答，而不是流
        text = "一个完整的 JSON 回答，而不是一块一块发来的事件流"
    elif isinstance(body, dict):
        # OpenAI、DeepSeek：{"error": {"message": ...}}；硅基流动：{"code": ..., "message": ...}
        error = body.get("error") or body
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("msg") or error.get("detail") or text)
        else:
            text = str(error)  # 例如 Ollama：{"error": "model not found"}
    elif isinstance(body, str):  # 硅基流动的密钥错误：只有一个 JSON 字符串 "Invalid token"
        text = body
    return " ".join(text.split())[:200] or "（没有说明）"


HTTP_HINTS = {
    400: "请求内容有误：检查 messages 和 LLM_MODEL。",
    401: "API Key 不对：检查 .env 里的 LLM_API_KEY，以及它是否属于 LLM_BASE_URL 这家服务商。",
    402: "账户余额不足：请到服务商网站充值。",
    403: "密钥没有权限：检查账户余额、实名认证，以及这个模型是否已开通。",
    404: "网址或模型名不对：LLM_BASE_URL 应以 /v1 结尾，LLM_MODEL 要是这家服务商提供的模型。",
    413: "请求体太大（对话太长或附带的内容太多），服务器不肯收。",
    429: "请求太频繁：稍等一会儿再试（免费账户每分钟能发的请求不多）。",
}
# 响应体说钱用完了（硅基流动 403、DeepSeek 402、OpenAI 429 insufficient_quota、
# OpenRouter 402）：等待没用，要充值。
NO_MONEY = re.compile(r"balance|quota|credit|余额|欠费", re.IGNORECASE)
NO_MONEY_HINT = "账户余额或额度用完了：请到服务商网站充值，或检查套餐（等待和重试都没用）。"
NOT_A_STREAM = "请检查 LLM_BASE_URL（应以 /v1 结尾），以及网络是否被代理或登录页拦截。"


def http_error(response: requests.Response, config: Config) -> ChatError:
    """A ChatError for a response that is not the event stream we asked for, with a hint.

    It says what the server said (with the key hidden, should the server repeat it).
    """
    status = response.status_code
    text = hide_key(error_body(response), config.api_key)
    # 再藏一次：JSON 里转义过的密钥，解码后才现出原形
    message = hide_key(provider_message(text), config.api_key)
    if status == 200:  # 一个网页，或一次性发来的整个回答：都不是我们要的
        content_type = hide_key(response.headers.get("Content-Type", ""), config.api_key)
        return ChatError(
            f"服务器没有发来事件流（Content-Type: {content_type}）：{message}\n{NOT_A_STREAM}"
        )
    no_money = status in (402, 403, 429) and NO_MONEY.search(text) is not None
    hint = NO_MONEY_HINT if no_money else HTTP_HINTS.get(status, "")
    if not hint and status >= 500:
        hint = "服务商那边出错了：稍后再试。"
    too_long = status in (400, 413)  # 也许是发送的内容太长
    if too_long and re.search(r"context.length|too long", message, re.IGNORECASE):
        hint = "发送的内容超过了模型的上下文长度（它一次能读的 token 数）。"
    fatal = status in (401, 402, 403, 404) or no_money
    return ChatError(f"HTTP {status}：{message}\n{hint}".strip(), fatal=fatal, too_long=too_long)


def request_error(error: requests.RequestException, config: Config) -> ChatError:
    """A ChatError for a request that got no answer at all (requests raised ``error``)."""
    if isinstance(error, requests.ReadTimeout):
        return ChatError(f"服务器 {config.timeout:g} 秒没有回应：{SLOW}")
    if isinstance(error, requests.TooManyRedirects):
        return ChatError(
            "服务器一直把请求转到别的网址（重定向循环）：请检查 LLM_BASE_URL。", fatal=True
        )
    if "SOCKS" in str(error):  # 设置了 ALL_PROXY=socks5://…，却没有安装 PySocks
        return ChatError(
            "代理设置（ALL_PROXY 等）用的是 SOCKS，但没有安装 PySocks："
            "运行 pip install pysocks，或去掉这个代理设置。",
            fatal=True,
        )
    if isinstance(error, requests.ConnectionError):  # 没有网络、地址不对、代理、TLS 出错
        return ChatError(f"连不上 {config.base_url}：请检查网络、代理和 LLM_BASE_URL。")
    return ChatError(
        f"请求没能发出（{type(error).__name__}）：请检查 LLM_BASE_URL 和代理设置。", fatal=True
    )


def open_stream(config: Config, messages: list[dict]) -> requests.Response:
    """POST the conversation and return the response as soon as its headers have arrived."""
    # --- BEGIN SOLUTION: request ---
    url = f"{config.base_url}/chat/completions"
    # 没有密钥（本机的模型服务器）：就不发 Authorization 请求头。
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    body = {
        "model": config.model,
        "messages": messages,
        "stream": True,  # 请服务器一块一块地发回答
        # OpenAI 只有被要求时才在流里报告 token 用量；别家会忽略这一项。
        "stream_options": {"include_usage": True},
    }
    try:
        # stream=True：收到响应头就返回，不等整个响应体。
        # timeout=(连接, 读取)：读取超时从最后一次收到字节时算起。
        response = requests.post(
            url, headers=headers, json=body, stream=True, timeout=(CONNECT_TIMEOUT, config.timeout)
        )
    except requests.RequestException as error:  # 没有得到回应：连不上、超时……
        raise request_error(error, config) from None
    content_type = response.headers.get("Content-Type", "")
    # 不是 200（例如密钥错误），或是 200 却不是事件流（例如一个网页）：说明原因。
    if response.status_code != 200 or not content_type.startswith("text/event-stream"):
        raise http_error(response, config)
    return response
    # --- END SOLUTION ---


def read_pieces(response: requests.Response, config: Config) -> Iterator[bytes]:
    """The response body, piece by piece, each piece as soon as it arrives."""
    # --- BEGIN SOLUTION: streaming loop ---
    # 为什么用 response.raw.read1()，而不用 response.iter_lines() 或 response.iter_content()？
    # * read1 立刻返回已经到达的字节（最多 64 KiB），不等更多。服务器（或代理）发来靠关闭
    #   连接表示结束的响应体（没有分块编码）时，iter_content(chunk_size=None) 要等到最后，
    #   iter_lines() 和 iter_content(n) 要等凑够 512（n）个字节：文字会迟到。
    # * 它给的是字节，不是文字：UTF-8 由我们自己解码（见 iter_sse_events）。没写 charset 的
    #   "text/event-stream"，requests 会猜成 ISO-8859-1，中文变成乱码，所以永远不要用
    #   response.text、response.encoding 或 iter_lines(decode_unicode=True)。
    # * decode_content=True：服务器压缩（gzip）过的响应体，会先解压。
    while True:
        try:
            piece = response.raw.read1(65536, decode_content=True)
        except Exception as exc:  # urllib3（requests 底下的库）的异常，没有被包装
            if "timed out" in str(exc).lower():
                raise ChatError(
                    f"服务器 {config.timeout:g} 秒没有发来新内容，回答不完整：{SLOW}"
                ) from None
            if "decode" in str(exc).lower():  # 说是 "Content-Encoding: gzip"，其实不是
                raise ChatError("服务器发来的压缩数据解不开，回答不完整：请重试。") from None
            raise ChatError("连接在回答结束前断开了，回答不完整：请重试。") from None
        if not piece:  # b""：服务器把响应体发完了
            return
        yield piece
    # --- END SOLUTION ---


def iter_sse_events(pieces: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """Cut the byte stream into Server-Sent Events: yield (event type, data) for each one."""
    # --- BEGIN SOLUTION: SSE line handling ---
    unfinished: list[bytes] = []  # 还没结束的那一行的各块
    event_type, data_lines = "", []
    for piece in pieces:
        # 先按 b"\n" 切开*字节*，只解码完整的行：一个汉字在 UTF-8 里占 3 个字节，可能被切在
        # 两块之间；但字节 0x0A（\n）绝不会出现在一个字符的中间，所以完整的一行总能解码。
        # 只在新来的这一块里找 b"\n"，一行结束时才把它的各块拼起来一次
        # （每块都 buffer += piece 的话，很长的一行会被复制几百遍：很慢）。
        *ends, rest = piece.split(b"\n")  # rest：还没结束的一行的开头
        for end in ends:
            unfinished.append(end)
            raw_line = b"".join(unfinished)
            unfinished.clear()
            line = raw_line.removesuffix(b"\r").decode("utf-8", errors="replace")  # CRLF too
            if line == "":  # 空行表示一个事件结束
                if data_lines:
                    yield event_type or "message", "\n".join(data_lines)
                event_type, data_lines = "", []
            elif line.startswith(":"):
                continue  # 注释，例如保活用的 ": ping"：什么也不用做
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data_lines.append(value)
                elif name == "event":
                    event_type = value  # 例如 "error"；其他字段（id、retry）这里用不到
        if rest:
            unfinished.append(rest)
    # --- END SOLUTION ---


def without_key(events: Iterable[tuple[str, str]], key: str) -> Iterator[tuple[str, str]]:
    """The events with the key hidden in their data (see hide_key)."""
    for event_type, text in events:
        yield event_type, hide_key(text, key)


# -- 读一个 chunk：把各家服务商的格式变成同一个样子 ------------------------------------
# 各家的 chat.completion.chunk 大体一样，细节不同：思考过程叫 "reasoning_content"（DeepSeek、
# 硅基流动）或 "reasoning"（Groq、OpenRouter、vLLM、Ollama）；"content" 是字符串，或是一串
# 片段（Mistral）；工具调用分几段发来，有的带 "index"，有的不带。下面这些函数把它们都变成
# 同一个样子，交给 collect_reply。
def bad_chunk(name: str, value: object) -> ChatError:
    """The ChatError for a chunk with a field of a type no provider sends."""
    return ChatError(
        f"服务器发来的数据格式不对（{name} 不该是 {type(value).__name__}），回答不完整：请重试。"
    )


def text_field(value: object, name: str) -> str:
    """A text field of a chunk: a string, or "" for null (None) or a missing field."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_chunk(name, value)
    return value


def usage_of(chunk: dict) -> dict | None:
    """The token usage in a chunk: in "usage", or in Groq's "x_groq": {"usage": ...}."""
    usage = chunk.get("usage")
    groq = chunk.get("x_groq")
    if usage is None and isinstance(groq, dict):
        usage = groq.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise bad_chunk("usage", usage)
    return usage or None


def first_choice(chunk: dict) -> dict:
    """The chunk's choice with index 0, or {} if it has none.

    OpenAI's last chunk carries only the usage; with n > 1 the choices take turns in chunks.
    """
    choices = chunk.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise bad_chunk("choices", choices)
    choice = next((c for c in choices if c.get("index") in (0, None)), {})
    text_field(choice.get("finish_reason"), "finish_reason")  # 只能是字符串或 null
    return choice


def thinking_text(thinking: object) -> str:
    """The text of a "thinking" part: a string, or a list of {"type": "text", "text": ...}."""
    if not isinstance(thinking, list):
        return text_field(thinking, "thinking")
    if not all(isinstance(inner, dict) for inner in thinking):
        raise bad_chunk("thinking", thinking)
    return "".join(text_field(inner.get("text"), "thinking") for inner in thinking)


def content_texts(content: object) -> tuple[str, str]:
    """(answer, reasoning) in delta.content: a string, or a list of parts (Mistral).

    {"type": "text", "text": ...} is answer; {"type": "thinking", "thinking": ...} is reasoning.
    """
    if not isinstance(content, list):
        return text_field(content, "content"), ""
    answer, reasoning = [], []
    for part in content:
        if not isinstance(part, dict):
            raise bad_chunk("content 的一部分", part)
        if part.get("type") == "text":
            answer.append(text_field(part.get("text"), "content"))
        elif part.get("type") == "thinking":
            reasoning.append(thinking_text(part.get("thinking")))
        # 其他片段（图片、引用）不是要打印的文字：跳过
    return "".join(answer), "".join(reasoning)


def tool_fragments(tool_calls: object) -> list[dict]:
    """delta.tool_calls as a list of {"index": int or None, "id", "name", "arguments"}."""
    if tool_calls is None:
        return []
    if not isinstance(tool_calls, list):
        raise bad_chunk("tool_calls", tool_calls)
    fragments = []
    for call in tool_calls:
        if not isinstance(call, dict):
            raise bad_chunk("tool_calls 的一部分", call)
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise bad_chunk("tool_calls 的 function", function)
        index = call.get("index")
        if index is not None and (type(index) is not int or index < 0):
            raise bad_chunk("tool_calls 的 index", index)
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # 少数服务器把参数发成一个对象
            arguments = json.dumps(arguments, ensure_ascii=False)
        fragments.append(
            {
                "index": index,
                "id": text_field(call.get("id"), "tool_calls 的 id"),
                "name": text_field(function.get("name"), "tool_calls 的 name"),
                "arguments": text_field(arguments, "tool_calls 的 arguments"),
            }
        )
    return fragments


def plain_delta(delta: object) -> dict:
    """A choice's delta with the same fields whatever the provider sent.

    {"reasoning_content": str, "content": str, "refusal": str, "tool_calls": [fragments]},
    each text "" when the chunk has none.
    """
    if delta is None:
        delta = {}
    if not isinstance(delta, dict):
        raise bad_chunk("delta", delta)
    answer, thinking = content_texts(delta.get("content"))
    reasoning = text_field(delta.get("reasoning_content"), "reasoning_content")
    reasoning = reasoning or text_field(delta.get("reasoning"), "reasoning") or thinking
    return {
        "reasoning_content": reasoning,
        "content": answer,
        "refusal": text_field(delta.get("refusal"), "refusal"),
        "tool_calls": tool_fragments(delta.get("tool_calls")),
    }


def add_tool_call(calls: dict[int, dict], fragment: dict) -> None:
    """Add one tool-call fragment to the calls so far (keyed by their index).

    A fragment with an index belongs to that call. Without one (Mistral), a fragment with a new
    id starts the next call and one without an id continues the last. An empty id ("id": "",
    DashScope) never replaces the real one.
    """
    index = fragment["index"]
    if index is None:
        last = max(calls, default=-1)
        starts_a_call = last < 0 or fragment["id"] not in ("", calls[last]["id"])
        index = last + 1 if starts_a_call else last
    call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    call["id"] = call["id"] or fragment["id"]
    call["name"] += fragment["name"]
    call["arguments"] += fragment["arguments"]


LABELS = {"reasoning": "[思考] ", "answer": "[回答] ", "refusal": "[拒绝] "}


class Screen:
    """Prints an answer as it arrives; reasoning is labelled (and dimmed in a terminal)."""

    def __init__(self) -> None:
        color = sys.stdout.isatty() and not os.getenv("NO_COLOR")
        self.dim, self.normal = ("\033[2m", "\033[0m") if color else ("", "")
        self.part = ""  # 正在打印什么：""、"reasoning"、"answer" 或 "refusal"

    def show(self, part: str, text: str) -> None:
        if part != self.part:
            if self.part:  # 刚才在打印别的部分：先换行
                print(self.normal)
            if self.part or part != "answer":  # 一开始就是回答的话，不用加标签
                style = self.dim if part == "reasoning" else ""
                print(f"{style}{LABELS[part]}", end="")
            self.part = part
        print(text, end="", flush=True)  # flush：现在就显示，不要等缓冲区满了才显示

    def end(self) -> None:
        if self.part:
            print(self.normal if self.part == "reasoning" else "", flush=True)
        self.part = ""


def collect_reply(events: Iterable[tuple[str, str]], reply: Reply, screen: Screen) -> None:
    """Show each piece of the answer as its event arrives, and add it to ``reply``."""
    # --- BEGIN SOLUTION: delta assembly ---
    for event_type, data in events:
        if data == "[DONE]":  # 服务器说“发完了”
            reply.done = True
            break
        if event_type == "error":  # 有的服务器用 "event: error" 报告出错……
            raise ChatError(f"服务器在回答中途报错：{provider_message(data)}")
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):  # 不是 JSON，或者嵌套得深得离谱
            chunk = None
        if not isinstance(chunk, dict):
            raise ChatError(f"服务器发来的数据不是 JSON 对象：{data[:60]!r}")
        if chunk.get("error"):  # ……有的把 {"error": {...}} 当普通事件发来
            raise ChatError(f"服务器在回答中途报错：{provider_message(data)}")
        usage = usage_of(chunk)  # 硅基流动：每个 chunk 都有，逐渐增加；OpenAI：在最后
        if usage:
            reply.usage = usage
        choice = first_choice(chunk)  # OpenAI 最后那个只带用量的 chunk：{}
        delta = plain_delta(choice.get("delta"))  # 不管哪家服务商，都是同样的字段
        if delta["reasoning_content"]:  # 推理模型先“思考”，再回答
            screen.show("reasoning", delta["reasoning_content"])
            reply.reasoning += delta["reasoning_content"]
        if delta["content"]:
            screen.show("answer", delta["content"])
            reply.content += delta["content"]
        if delta["refusal"]:  # OpenAI：模型拒绝回答，理由写在这里
            screen.show("refusal", delta["refusal"])
            reply.refusal += delta["refusal"]
        for fragment in delta["tool_calls"]:  # 模型要求调用一个函数
            add_tool_call(reply.tool_calls, fragment)
        if choice.get("finish_reason"):  # 最后一个 chunk 说明回答为什么结束
            reply.finish_reason = choice["finish_reason"]
    # --- END SOLUTION ---


def stream_reply(config: Config, messages: list[dict]) -> Reply:
    """Send the conversation, print the answer while it streams in, return what arrived."""
    reply, screen = Reply(), Screen()
    response = None
    try:
        response = open_stream(config, messages)
        # 两个都是生成器：collect_reply 要下一个事件时，才会去读。
        events = iter_sse_events(read_pieces(response, config))
        collect_reply(without_key(events, config.api_key), reply, screen)
    except KeyboardInterrupt:  # Ctrl-C：不再读取，保留已经收到的
        reply.interrupted = True
    finally:
        screen.end()
        if response is not None:
            response.close()  # 挂断连接，服务器就不再生成（也不再计费）
    # 没有 [DONE] 时，只有收到了最后一个 chunk（带 finish_reason），回答才算完整。
    if not (reply.done or reply.finish_reason or reply.interrupted):
        raise ChatError("连接在回答结束前断开了（没有收到 data: [DONE]），回答不完整：请重试。")
    return reply


FINISH_NOTES = {
    "length": "回答达到了长度上限（max_tokens），后面被截掉了。",
    "content_filter": "回答被服务商的内容审核拦下了。",
    "tool_calls": "模型想调用上面的工具（tool_calls），这个程序不会执行工具。",
    "insufficient_system_resource": "服务商资源不足，回答被中途打断了：请稍后重试。",  # DeepSeek
}


def print_usage(reply: Reply) -> None:
    """After an answer: the tool calls, why it ended (if unusual), then the tokens it used."""
    for _, call in sorted(reply.tool_calls.items()):
        print(f"[工具调用] {call['name']}({call['arguments']})")
    if reply.finish_reason not in ("", "stop"):
        reason = reply.finish_reason
        print(f"[注意] {FINISH_NOTES.get(reason, f'回答结束的原因是 {reason[:80]!r}。')}")
    if reply.interrupted:
        print("（已停止：上面是停止前收到的部分回答）", file=sys.stderr)
    elif reply.usage:
        names = ("prompt_tokens", "completion_tokens", "total_tokens")
        counts = [reply.usage.get(name) for name in names]
        prompt, completion, total = (n if isinstance(n, int) else "?" for n in counts)
        print(f"[用量] 提问 {prompt} + 回答 {completion} = {total} tokens")
    else:
        print("[用量] 服务器没有告诉我们用了多少 token")


# 发送的内容太长时怎么办：多轮对话可以清空历史，单个问题只能缩短它。
TOO_LONG_ONCE = "若是问题太长，请缩短后再问。"
TOO_LONG_CHAT = "若是对话太长，输入 /clear 清空后再问。"


def show_error(error: ChatError, *, conversation: bool) -> None:
    """Print the error on stderr, with the advice for a request too long that fits the mode."""
    advice = (TOO_LONG_CHAT if conversation else TOO_LONG_ONCE) if error.too_long else ""
    print(f"错误：{error}{advice}", file=sys.stderr)


def ask_once(config: Config, question: str) -> int:
    """One question, one answer: the exit status is 0, or 130 after Ctrl-C."""
    reply = stream_reply(config, [{"role": "user", "content": question}])
    print_usage(reply)
    return 130 if reply.interrupted else 0


def chat_loop(config: Config) -> int:
    """A conversation: every question is sent together with all the turns before it."""
    print(f"和 {config.model} 对话（{config.base_url}）。/clear 清空对话，/quit 退出。")
    messages: list[dict] = []  # 对话历史：模型只“记得”我们再次发给它的内容
    while True:
        try:
            question = input("\n你> ").strip()
        except (EOFError, KeyboardInterrupt):  # 在提示符处按 Ctrl-D（输入结束）或 Ctrl-C
            print()
            return 0
        if question in QUIT_COMMANDS:
            return 0
        if question in CLEAR_COMMANDS:
            messages.clear()
            print("（对话已清空，模型不再记得之前说过什么）")
            continue
        if not question:
            continue
        messages.append({"role": "user", "content": question})
        try:
            reply = stream_reply(config, messages)
        except ChatError as error:
            show_error(error, conversation=True)
            messages.pop()  # 忘掉失败的问题，可以直接再问一次
            if error.fatal:
                return 1
            continue
        if reply.content:  # 把回答（哪怕不完整）留在对话历史里
            messages.append({"role": "assistant", "content": reply.content})
        else:
            messages.pop()
        print_usage(reply)


def main(argv: list[str] | None = None) -> int:
    """Ask once (with a question) or start a conversation; return the exit status."""
    parser = argparse.ArgumentParser(description="流式对话：边生成边显示大模型的回答。")
    parser.add_argument("question", nargs="*", help="要问的问题；不写就进入多轮对话")
    args = parser.parse_args(argv)
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # 终端显示不了的字符变成 "?"，而不是报错
            stream.reconfigure(errors="replace")
    try:
        config = load_config()
        if args.question:
            return ask_once(config, " ".join(args.question))
        return chat_loop(config)
    except ChatError as error:  # 多轮对话自己处理它的错误：这里只有单个问题和设置的错误
        show_error(error, conversation=False)
        return 1
    except NotImplementedError as error:  # 学生版：TODO 还没完成
        print(f"app.py 还没写完：{error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n（已中断）", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
