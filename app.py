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
    # --- BEGIN SOLUTION: request ---
    url = f"{config.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {config.api_key}"}
    body = {
        "model": config.model,
        "messages": messages,
        "stream": True,  # ask the server to send the answer piece by piece
        # OpenAI reports token usage in a stream only when asked; other providers ignore this.
        "stream_options": {"include_usage": True},
    }
    try:
        # stream=True: return after the headers, without waiting for the whole body.
        # timeout=(connect, read): the read timeout counts from the last bytes received.
        response = requests.post(
            url, headers=headers, json=body, stream=True, timeout=(CONNECT_TIMEOUT, config.timeout)
        )
    except requests.Timeout:
        raise ChatError(f"服务器 {config.timeout:g} 秒没有回应：{SLOW}") from None
    except requests.ConnectionError:
        raise ChatError(f"连不上 {config.base_url}：请检查网络、代理和 LLM_BASE_URL。") from None
    if response.status_code != 200:
        raise http_error(response, config)
    content_type = response.headers.get("Content-Type", "")
    if not content_type.startswith("text/event-stream"):  # e.g. a whole JSON answer, a web page
        response.close()
        raise ChatError(
            f"服务器没有发来事件流（Content-Type: {content_type}）：检查 LLM_BASE_URL。"
        )
    return response
    # --- END SOLUTION ---


def read_pieces(response: requests.Response, config: Config) -> Iterator[bytes]:
    """The response body, piece by piece, each piece as soon as it arrives."""
    # --- BEGIN SOLUTION: streaming loop ---
    # Why response.raw.read1() and not response.iter_lines() or response.iter_content()?
    # * read1 returns the bytes that have already arrived (up to 64 KiB) without waiting for
    #   more. When a server (or a proxy) sends a body that ends when the connection closes
    #   (no chunked encoding), iter_content(chunk_size=None) waits for the very end, and
    #   iter_lines() or iter_content(n) wait until 512 (n) bytes have come: the text is late.
    # * It gives bytes, not text: we decode UTF-8 ourselves (see iter_sse_events). requests
    #   guesses "text/event-stream" without a charset to be ISO-8859-1, garbling Chinese, so
    #   never use response.text, response.encoding or iter_lines(decode_unicode=True).
    # * decode_content=True undoes gzip, in case the server compressed the body.
    while True:
        try:
            piece = response.raw.read1(65536, decode_content=True)
        except Exception as exc:  # urllib3's errors (the library under requests), unwrapped
            if "timed out" in str(exc).lower():
                raise ChatError(
                    f"服务器 {config.timeout:g} 秒没有发来新内容，回答不完整：{SLOW}"
                ) from None
            raise ChatError("连接在回答结束前断开了，回答不完整：请重试。") from None
        if not piece:  # b"": the server has finished the body
            return
        yield piece
    # --- END SOLUTION ---


def iter_sse_events(pieces: Iterable[bytes]) -> Iterator[tuple[str, str]]:
    """Cut the byte stream into Server-Sent Events: yield (event type, data) for each one."""
    # --- BEGIN SOLUTION: SSE line handling ---
    buffer = b""
    event_type, data_lines = "", []
    for piece in pieces:
        # Split the *bytes* at b"\n" first and decode only whole lines: a Chinese character is
        # 3 bytes in UTF-8 and may be cut between two pieces, but byte 0x0A (\n) never occurs
        # inside a character, so every complete line decodes cleanly.
        buffer += piece
        *lines, buffer = buffer.split(b"\n")  # the last part is an unfinished line: keep it
        for raw_line in lines:
            line = raw_line.removesuffix(b"\r").decode("utf-8", errors="replace")  # CRLF too
            if line == "":  # a blank line ends the event
                if data_lines:
                    yield event_type or "message", "\n".join(data_lines)
                event_type, data_lines = "", []
            elif line.startswith(":"):
                continue  # a comment, e.g. the keep-alive ": ping": nothing to do
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data_lines.append(value)
                elif name == "event":
                    event_type = value  # e.g. "error"; other fields (id, retry) don't matter here
    # --- END SOLUTION ---


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
    # --- BEGIN SOLUTION: delta assembly ---
    for event_type, data in events:
        if data == "[DONE]":  # the server's "that was all"
            reply.done = True
            break
        if event_type == "error":  # some servers report a failure as "event: error" ...
            raise ChatError(f"服务器在回答中途报错：{provider_message(data)}")
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise ChatError(f"服务器发来的数据不是 JSON 对象：{data[:60]!r}")
        if "error" in chunk:  # ... others send {"error": {...}} as an ordinary event
            raise ChatError(f"服务器在回答中途报错：{provider_message(data)}")
        if chunk.get("usage"):  # SiliconFlow: in every chunk, counting up; OpenAI: at the end
            reply.usage = chunk["usage"]
        choices = chunk.get("choices") or []  # OpenAI's final usage chunk has no choices
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):  # reasoning models "think" before they answer
            screen.show("reasoning", delta["reasoning_content"])
            reply.reasoning += delta["reasoning_content"]
        if delta.get("content"):
            screen.show("answer", delta["content"])
            reply.content += delta["content"]
        if choice.get("finish_reason"):  # the last chunk says why the answer ended
            reply.finish_reason = choice["finish_reason"]
    # --- END SOLUTION ---


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
