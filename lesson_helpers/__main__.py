"""Command line: ``python -m lesson_helpers serve | doctor | chat``.

Exit codes: 0 done; 1 an error (one line on stderr); 2 wrong usage; 3 the answer ended but is
not complete (cut at ``max_tokens``, stopped by a content filter, a tool call or only
reasoning instead of an answer: one line on stderr says which); 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

from .chunks import ChatResult
from .config import ConfigError
from .errors import LLMError, StreamRedactor, finish_note

USAGE_EXAMPLES = """例子:
  python -m lesson_helpers serve --port 8000           启动本地练习服务器
  python -m lesson_helpers doctor                      检查环境、.env 和服务商
  python -m lesson_helpers chat "什么是流式输出？"       问一个问题，流式打印回答
"""
EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130
MAX_PACE = 60.0  # seconds between tokens; more than this is a typo, not a lesson
# finish reasons after which the printed answer is not the whole answer
_INCOMPLETE = {"length", "content_filter", "tool_calls", "function_call", None}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``prog: error: what（-h 查看用法）``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}（运行 {self.prog} -h 查看用法）\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"端口要写 0 到 65535 之间的整数（0 = 任选一个空闲端口），收到的是 {text!r}"
        )
    return port


def _pace(text: str) -> float:
    try:
        pace = float(text)
    except ValueError:
        pace = math.nan
    if not 0 <= pace <= MAX_PACE:  # also false for nan
        raise argparse.ArgumentTypeError(
            f"每个 token 的间隔要写 0 到 {MAX_PACE:g} 之间的秒数（例如 0.02），收到的是 {text!r}"
        )
    return pace


def _serve(args: argparse.Namespace) -> int:
    from .config import mask_key
    from .local_server import DEFAULT_API_KEY, LocalServer

    api_key = None if args.no_auth else args.api_key
    try:
        server = LocalServer(port=args.port, api_key=api_key, pace=args.pace)
    except OSError as exc:
        print(
            f"无法在端口 {args.port} 上启动：{exc.strerror}。换一个端口，或用 --port 0。",
            file=sys.stderr,
        )
        return EXIT_ERROR
    print(server.base_url, flush=True)
    if api_key is None:
        key_text = "不检查密钥"
    elif api_key == DEFAULT_API_KEY:  # not a secret: it only opens this local server
        key_text = f"密钥 {api_key}"
    else:
        key_text = f"密钥 {mask_key(api_key)}"
    print(
        f"本地练习服务器已启动（{key_text}，每个 token 间隔 {args.pace:g} 秒）。Ctrl-C 停止。",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("已停止。", flush=True)
    return 0


class _Answer:
    """The answer as printed: the key never shows, even if a server put it in the text."""

    def __init__(self, secret: object) -> None:
        self._hide = StreamRedactor(secret)
        self.printed = False

    def write(self, piece: str) -> None:
        shown = self._hide.feed(piece)
        if shown:
            print(shown, end="", flush=True)
            self.printed = True

    def end(self) -> None:
        """Print what was held back, and end the answer's line."""
        rest = self._hide.flush()
        if rest:
            print(rest, end="", flush=True)
            self.printed = True
        if self.printed:
            print(flush=True)


def _chat(args: argparse.Namespace) -> int:
    from .session import chat_client

    question = " ".join(args.question).strip()
    if not question:
        print(
            "请在 chat 后面写上问题，例如：python -m lesson_helpers chat 什么是流式输出？",
            file=sys.stderr,
        )
        return EXIT_USAGE
    answer: _Answer | None = None
    stream = None
    try:
        client = chat_client(quiet=False)
        answer = _Answer(client.settings.api_key)
        stream = client.stream([{"role": "user", "content": question}], model=args.model)
        for piece in stream.text():
            answer.write(piece)
    except KeyboardInterrupt:
        printed = answer is not None and answer.printed
        if answer is not None:
            answer.end()
        what = "上面是收到的部分回答" if printed else "还没有收到回答"
        print(f"（已停止：{what}）", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LLMError:
        if answer is not None:
            answer.end()  # the partial answer's line ends before the error line
        raise
    finally:
        if stream is not None:
            stream.close()
    answer.end()
    return _report_end(stream.result)


def _report_end(result: ChatResult) -> int:
    """The usage line, and why the answer ended when that was unusual; the exit code."""
    usage = result.usage
    if usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        total = usage.get("total_tokens")
        print(f"[用量] 提问 {prompt} + 回答 {completion} = {total} tokens", file=sys.stderr)
    note = finish_note(result)
    if note:
        print(f"注意：{note}", file=sys.stderr)
    if result.finish_reason in _INCOMPLETE or not result.content:
        return EXIT_INCOMPLETE
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m lesson_helpers",
        description="Course kit helpers: local server, setup check, quick chat.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run the local OpenAI-compatible practice server")
    serve.add_argument("--port", type=_port, default=0, help="port (0 = any free port)")
    serve.add_argument("--api-key", default="local-practice-key", help="key clients must send")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a key")
    serve.add_argument("--pace", type=_pace, default=0.02, help="seconds between tokens")
    sub.add_parser("doctor", help="check Python, packages, .env, the key and the provider")
    chat = sub.add_parser("chat", help="ask one question and stream the answer")
    chat.add_argument("question", nargs="*")
    chat.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "doctor":
            from .doctor import run_doctor

            return run_doctor()
        return _chat(args)
    except (LLMError, ConfigError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("（已停止）", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
