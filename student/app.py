# 学生版 app.py：请补全下面标着 TODO 1～4 的四个地方（在编辑器里搜索 "TODO"）。
# 每完成一个，就运行一次 `python app.py 你好` 看看进展；
# 全部完成后，运行 `python -m grading` 自测得分。
# （本文件由 scripts/make_student_edition.py 从参考答案生成。）
"""A streaming chat program in one file: ask a question, watch the answer arrive piece by piece.

    python app.py "什么是流式输出？"   # one question, one streamed answer, then exit
    python app.py                      # a conversation; type /clear to forget it, /quit to leave

Ctrl-C stops an answer (what arrived stays on the screen); errors are one or two lines on stderr.

Settings come from a `.env` file (found next to this file or in a folder above it) or from
environment variables, which win over `.env`:

    LLM_API_KEY    your API key (required)
    LLM_BASE_URL   default https://api.siliconflow.cn/v1
                   (DeepSeek: https://api.deepseek.com/v1, OpenAI: https://api.openai.com/v1)
    LLM_MODEL      default Qwen/Qwen2.5-7B-Instruct
    LLM_TIMEOUT    seconds to wait for the next piece of the answer, default 60
    LLM_PROVIDER   optional shortcut for LLM_BASE_URL and LLM_MODEL: siliconflow, deepseek, openai

Only two libraries: requests (HTTP) and python-dotenv (reads `.env`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import requests
from dotenv import load_dotenv

# Base URL and model for each LLM_PROVIDER; LLM_BASE_URL and LLM_MODEL override them.
PRESETS = {
    "siliconflow": ("https://api.siliconflow.cn/v1", "Qwen/Qwen2.5-7B-Instruct"),
    "deepseek": ("https://api.deepseek.com/v1", "deepseek-chat"),
    "openai": ("https://api.openai.com/v1", "gpt-4o-mini"),
}
CONNECT_TIMEOUT = 10  # seconds to wait for the server to accept the connection
QUIT_COMMANDS = {"/quit", "/exit", "quit", "exit", "退出"}
CLEAR_COMMANDS = {"/clear", "清空"}
# app.py cannot start the course's local practice server itself (it imports nothing from the
# course kit), so it says how to start one in another terminal.
LOCAL_SERVER_HINT = (
    "不用密钥也能练习：另开一个终端运行 python -m lesson_helpers serve --port 8000，"
    "再设置 LLM_BASE_URL=http://127.0.0.1:8000/v1 和 LLM_API_KEY=local-practice-key。"
)
SLOW = "请稍后重试，或在 .env 里调大 LLM_TIMEOUT。"
NO_KEY = "没有找到 API Key：请复制 .env.example 为 .env，在 LLM_API_KEY= 后面填上你的密钥。"


class ChatError(Exception):
    """A problem explained to the user in one or two lines (never a traceback).

    ``fatal`` means trying again with the same settings cannot help (a wrong key, a wrong URL).
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Config:
    """The settings: where to send requests, with which key, for which model."""

    api_key: str = field(repr=False)  # repr=False: printing a Config never shows the key
    base_url: str
    model: str
    timeout: float


@dataclass
class Reply:
    """What one streamed answer brought: the text, the model's reasoning, the token usage."""

    content: str = ""
    reasoning: str = ""
    usage: dict | None = None
    finish_reason: str = ""  # why the model stopped: "stop", "length", ...
    done: bool = False  # True once "data: [DONE]" arrived
    interrupted: bool = False  # True if the user pressed Ctrl-C


def load_config() -> Config:
    """Read the settings from `.env` and the environment, and check them."""
    load_dotenv()  # copies .env into os.environ, without overwriting variables already set
    # LLM_PROVIDER picks a preset (none means SiliconFlow). An unknown name is an error: guessing
    # would send the key to a provider it was not made for.
    provider = os.getenv("LLM_PROVIDER", "").strip().lower() or "siliconflow"
    if provider == "local":  # the course's practice server: app.py needs its address
        if not os.getenv("LLM_BASE_URL", "").strip():
            raise ChatError(f"app.py 不能自己启动本地练习服务器。\n{LOCAL_SERVER_HINT}")
        provider = "siliconflow"  # the local server speaks SiliconFlow's format and models
    if provider not in PRESETS:
        names = ", ".join(PRESETS)
        raise ChatError(f"LLM_PROVIDER={provider!r} 无法识别：请改成 {names} 之一，或删掉这一行。")
    preset_url, preset_model = PRESETS[provider]
    api_key = os.getenv("LLM_API_KEY", "").strip()
    base_url = (os.getenv("LLM_BASE_URL", "").strip() or preset_url).rstrip("/")
    model = os.getenv("LLM_MODEL", "").strip() or preset_model
    if not api_key or api_key == "your-api-key-here":  # .env.example's placeholder
        raise ChatError(f"{NO_KEY}\n{LOCAL_SERVER_HINT}")
    if not api_key.isascii() or any(ch.isspace() for ch in api_key):
        raise ChatError(
            "LLM_API_KEY 里有空格或中文字符：请在 .env 里只粘贴密钥本身（不加中文引号和注释）。"
        )
    if not base_url.startswith(("http://", "https://")):
        raise ChatError(
            f"LLM_BASE_URL={base_url!r} 不是网址：应当形如 https://api.siliconflow.cn/v1"
        )
    timeout_text = os.getenv("LLM_TIMEOUT", "").strip() or "60"
    try:
        timeout = float(timeout_text)
    except ValueError:
        timeout = 0
    if not 0 < timeout < float("inf"):  # also rejects "nan" and "inf"
        raise ChatError(f"LLM_TIMEOUT={timeout_text!r} 不是正数：请写秒数，例如 LLM_TIMEOUT=60。")
    return Config(api_key, base_url, model, timeout)


def provider_message(text: str) -> str:
    """The provider's own error message from an error body (JSON or not), on one short line."""
    if text.lstrip().startswith("<"):  # an HTML page, e.g. from a proxy or a campus-network login
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = f"一个网页「{title.group(1).strip() if title else ''}」，不是 API 的回答"
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body)  # OpenAI: {"error": {...}}; SiliconFlow: {"message": ...}
        if isinstance(error, dict):
            text = str(error.get("message") or error.get("msg") or error)
        else:
            text = str(error)
    return " ".join(text.split())[:200] or "（没有说明）"


HTTP_HINTS = {
    400: "请求内容有误：检查 messages 和 LLM_MODEL；若是对话太长，输入 /clear 清空。",
    401: "API Key 不对：检查 .env 里的 LLM_API_KEY，以及它是否属于 LLM_BASE_URL 这家服务商。",
    403: "密钥没有权限：检查账户余额、实名认证，以及这个模型是否已开通。",
    404: "网址或模型名不对：LLM_BASE_URL 应以 /v1 结尾，LLM_MODEL 要是这家服务商提供的模型。",
    429: "请求太频繁或额度用完了：稍等一会儿再试，或检查账户余额。",
}


def http_error(response: requests.Response, config: Config) -> ChatError:
    """A ChatError for a response whose status is not 200: the status, the reason, a hint."""
    status = response.status_code
    message = provider_message(response.content.decode("utf-8", errors="replace"))
    message = message.replace(config.api_key, "***")  # in case the server repeats the key
    hint = HTTP_HINTS.get(status, "服务商那边出错了：稍后再试。" if status >= 500 else "")
    return ChatError(f"HTTP {status}：{message}\n{hint}".strip(), fatal=status in (401, 403, 404))


def open_stream(config: Config, messages: list[dict]) -> requests.Response:
    """POST the conversation and return the response as soon as its headers have arrived."""
    # TODO 1：发送流式请求（open_stream）
    # 用 requests.post 向 f"{config.base_url}/chat/completions" 发一个 POST 请求：
    #   * 请求头：{"Authorization": f"Bearer {config.api_key}"}
    #   * JSON 请求体：model（config.model）、messages，以及 "stream": True；
    #     再加上 "stream_options": {"include_usage": True}，
    #     OpenAI 才会在流里告诉你 token 用量
    #   * 关键字参数 stream=True（否则 requests 会等整个回答下载完才返回），
    #     以及 timeout=(CONNECT_TIMEOUT, config.timeout)
    # 用 try/except 接住 requests.Timeout 和 requests.ConnectionError，
    # 改为 raise ChatError("一句中文说明")。
    # 状态码不是 200 时：raise http_error(response, config)。
    # Content-Type 不以 "text/event-stream" 开头时（例如一个网页）：
    # 也 raise ChatError(...)。最后 return response。
    raise NotImplementedError("TODO 1：发送流式请求（open_stream）")


def read_pieces(response: requests.Response, config: Config) -> Iterator[bytes]:
    """The response body, piece by piece, each piece as soon as it arrives."""
    # TODO 2：一块一块地读取响应体（read_pieces）
    # 写一个 while True 循环，每次调用 response.raw.read1(65536, decode_content=True)：
    # 它立刻返回已经到达的字节（最多 64 KiB），不会等缓冲区装满。
    #   * 读到 b""：服务器把回答发完了，return
    #   * 否则：yield 这一块字节
    # read1 在断线或超时的时候会抛出异常：用 try/except Exception as exc 接住；
    # 异常信息里有 "timed out" 就 raise ChatError("……秒没有发来新内容……")，
    # 否则 raise ChatError("连接在回答结束前断开了……")。
    # 想一想：为什么不用 response.iter_lines()？
    # （提示：第 05 课，以及“靠关闭连接表示结束”的响应）
    raise NotImplementedError("TODO 2：一块一块地读取响应体（read_pieces）")


def iter_sse_events(pieces: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """Cut the byte stream into Server-Sent Events: yield (event type, data) for each one."""
    # TODO 3：把字节流切成一个个 SSE 事件（iter_sse_events）
    # SSE 的规则：
    #   * 一行以 b"\n" 结束（也可能是 b"\r\n"：去掉行尾的 b"\r"）
    #   * 空行表示一个事件结束：把这个事件的 data 行用 "\n" 连起来，
    #     yield (事件类型, 数据)；事件类型默认是 "message"；没有 data 行就不 yield
    #   * 以 ":" 开头的行是注释（服务器的心跳，例如 ": ping"），跳过
    #   * "data: xxx" 把 xxx 加进当前事件的 data 行；
    #     "event: error" 把事件类型设为 error（冒号后面的一个空格要去掉）
    # 用一个 bytes 缓冲区：每块字节接到缓冲区后面，再按 b"\n" 切开；
    # 最后一段还不是完整的一行，留在缓冲区里等下一块。
    # 只对完整的一行 .decode("utf-8")：一个汉字占 3 个字节，可能被切在两块之间。
    # 不要用 response.text、response.encoding 或 iter_lines(decode_unicode=True)：
    # 中文会变成乱码。
    raise NotImplementedError("TODO 3：把字节流切成一个个 SSE 事件（iter_sse_events）")


class Screen:
    """Prints an answer as it arrives; reasoning is labelled (and dimmed in a terminal)."""

    def __init__(self) -> None:
        color = sys.stdout.isatty() and not os.getenv("NO_COLOR")
        self.dim, self.normal = ("\033[2m", "\033[0m") if color else ("", "")
        self.part = ""  # what is being printed: "", "reasoning" or "answer"

    def show(self, part: str, text: str) -> None:
        if part != self.part:
            if part == "reasoning":
                print(f"{self.dim}[思考] ", end="")
            elif self.part == "reasoning":
                print(f"{self.normal}\n[回答] ", end="")
            self.part = part
        print(text, end="", flush=True)  # flush: show it now, not when a buffer fills up

    def end(self) -> None:
        if self.part:
            print(self.normal if self.part == "reasoning" else "", flush=True)
        self.part = ""


def collect_reply(events: Iterable[tuple[str, str]], reply: Reply, screen: Screen) -> None:
    """Show each piece of the answer as its event arrives, and add it to ``reply``."""
    # TODO 4：处理每个事件，把 delta 拼成回答（collect_reply）
    # 用 for event_type, data in events: 逐个处理 SSE 事件：
    #   * data == "[DONE]"：回答结束了。reply.done = True，然后 break
    #   * event_type == "error"：
    #         raise ChatError("服务器在回答中途报错：" + provider_message(data))
    #   * 否则 chunk = json.loads(data)；
    #     解析失败、不是 dict、或者 chunk 里有 "error"：也 raise ChatError(...)
    #   * chunk.get("usage") 不为空：存进 reply.usage
    #   * choices = chunk.get("choices")（可能是空列表）；取 choices[0] 的 delta：
    #       - delta.get("reasoning_content")：screen.show("reasoning", 文字)，
    #         并加到 reply.reasoning
    #       - delta.get("content")：screen.show("answer", 文字)，并加到 reply.content
    #   * choices[0].get("finish_reason") 不为空：存进 reply.finish_reason
    raise NotImplementedError("TODO 4：处理每个事件，把 delta 拼成回答（collect_reply）")


def stream_reply(config: Config, messages: list[dict]) -> Reply:
    """Send the conversation, print the answer while it streams in, return what arrived."""
    reply, screen = Reply(), Screen()
    response = None
    try:
        response = open_stream(config, messages)
        # Both are generators: nothing is read until collect_reply asks for the next event.
        events = iter_sse_events(read_pieces(response, config))
        collect_reply(events, reply, screen)
    except KeyboardInterrupt:  # Ctrl-C: stop reading, keep what arrived
        reply.interrupted = True
    finally:
        screen.end()
        if response is not None:
            response.close()  # hang up, so the server stops generating (and charging)
    # Without [DONE] the answer is complete only if its last chunk (with finish_reason) came.
    if not (reply.done or reply.finish_reason or reply.interrupted):
        raise ChatError("连接在回答结束前断开了（没有收到 data: [DONE]），回答不完整：请重试。")
    return reply


FINISH_NOTES = {
    "length": "回答达到了长度上限（max_tokens），后面被截掉了。",
    "content_filter": "回答被服务商的内容审核拦下了。",
    "tool_calls": "模型想调用一个工具（tool_calls），这个程序不支持工具调用。",
}


def print_usage(reply: Reply) -> None:
    """After an answer: why it ended, if that is unusual, then the tokens it used."""
    if reply.finish_reason in FINISH_NOTES:
        print(f"[注意] {FINISH_NOTES[reply.finish_reason]}")
    if reply.interrupted:
        print("（已停止：上面是停止前收到的部分回答）", file=sys.stderr)
    elif reply.usage:
        u = reply.usage
        print(
            f"[用量] 提问 {u.get('prompt_tokens')} + 回答 {u.get('completion_tokens')}"
            f" = {u.get('total_tokens')} tokens"
        )
    else:
        print("[用量] 服务器没有告诉我们用了多少 token")


def ask_once(config: Config, question: str) -> int:
    """One question, one answer: the exit status is 0, or 130 after Ctrl-C."""
    reply = stream_reply(config, [{"role": "user", "content": question}])
    print_usage(reply)
    return 130 if reply.interrupted else 0


def chat_loop(config: Config) -> int:
    """A conversation: every question is sent together with all the turns before it."""
    print(f"和 {config.model} 对话（{config.base_url}）。/clear 清空对话，/quit 退出。")
    messages: list[dict] = []  # the history: the model remembers only what we send again
    while True:
        try:
            question = input("\n你> ").strip()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D (end of input) or Ctrl-C at the prompt
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
            print(f"错误：{error}", file=sys.stderr)
            messages.pop()  # forget the failed question, so it can simply be asked again
            if error.fatal:
                return 1
            continue
        if reply.content:  # keep the answer (even a partial one) as part of the history
            messages.append({"role": "assistant", "content": reply.content})
        else:
            messages.pop()
        print_usage(reply)


def main(argv: list[str] | None = None) -> int:
    """Ask once (with a question) or start a conversation; return the exit status."""
    parser = argparse.ArgumentParser(description="流式对话：边生成边显示大模型的回答。")
    parser.add_argument("question", nargs="*", help="要问的问题；不写就进入多轮对话")
    args = parser.parse_args(argv)
    try:
        config = load_config()
        if args.question:
            return ask_once(config, " ".join(args.question))
        return chat_loop(config)
    except ChatError as error:
        print(f"错误：{error}", file=sys.stderr)
        return 1
    except NotImplementedError as error:  # the student edition, before its TODOs are done
        print(f"app.py 还没写完：{error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n（已中断）", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
