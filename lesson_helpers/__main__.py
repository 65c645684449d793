"""Command line: ``python -m lesson_helpers serve | doctor | chat | record``.

Exit codes: 0 done; 1 an error (one line on stderr); 2 wrong usage; 3 the answer ended but is
not complete (cut at ``max_tokens``, stopped by a content filter, a tool call or only
reasoning instead of an answer: one line on stderr says which; for ``record``: the recording
was written, but the response broke off); 130 stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from typing import NoReturn

from .chunks import ChatResult
from .config import ConfigError, Secret, model_problem
from .errors import LLMError, StreamRedactor, finish_note

USAGE_EXAMPLES = """例子:
  python -m lesson_helpers serve --port 8000           启动本地练习服务器
  python -m lesson_helpers doctor                      检查环境、.env 和服务商
  python -m lesson_helpers chat "什么是流式输出？"       问一个问题，流式打印回答
  python -m lesson_helpers record --out hello.jsonl "你好"
                                                       录下服务商的一次回答（不含密钥）
  python -m lesson_helpers serve --replay hello.jsonl  回放录音：模型 replay:hello
"""
EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130
MAX_PACE = 60.0  # seconds between tokens; more than this is a typo, not a lesson
MAX_REPLAY_SPEED = 1000.0
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


def _seconds_between(text: str, high: float, what: str) -> float:
    """A number from 0 to ``high`` (not nan or inf), or an argparse error saying ``what``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= high:  # also false for nan
        raise argparse.ArgumentTypeError(f"{what}，收到的是 {text!r}")
    return value


def _pace(text: str) -> float:
    return _seconds_between(
        text, MAX_PACE, f"每个 token 的间隔要写 0 到 {MAX_PACE:g} 之间的秒数（例如 0.02）"
    )


def _speed(text: str) -> float:
    return _seconds_between(
        text,
        MAX_REPLAY_SPEED,
        f"回放速度要写 0 到 {MAX_REPLAY_SPEED:g} 之间的数（1 = 原速，2 = 两倍速，0 = 不等待）",
    )


def _model(text: str) -> str:
    problem = model_problem(text.strip(), "--model")
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip()


def _param(text: str) -> tuple[str, object]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(
            f"--param 要写成 名字=值（例如 max_tokens=5 或 temperature=0），收到的是 {text!r}"
        )
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value  # not JSON: the text itself
    return name.strip(), parsed


def _serve(args: argparse.Namespace) -> int:
    from .config import mask_key
    from .local_server import DEFAULT_API_KEY, LocalServer
    from .recording import RecordingError

    api_key = None if args.no_auth else args.api_key
    try:
        server = LocalServer(
            port=args.port,
            api_key=api_key,
            pace=args.pace,
            replay=args.replay or None,
            replay_speed=args.replay_speed,
        )
    except RecordingError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return EXIT_ERROR
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
    if args.replay:
        replayed = [m for m in server.models if m.startswith("replay:")]
        pace = "不等待" if not args.replay_speed else f"{args.replay_speed:g} 倍速"
        print(f"回放 {len(replayed)} 段录音（{pace}）：{'、'.join(replayed)}", flush=True)
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
    return _report_end(stream.result, client.settings.api_key)


class _Printed:
    """Prints text as it comes (already free of the key) and remembers whether it did."""

    printed = False

    def append(self, text: str) -> None:
        print(text, end="", flush=True)
        self.printed = True


def _record(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .record import RecordError, check_out_path, print_summary, record, shown_url
    from .recording import RecordingError
    from .session import local_server

    question = " ".join(args.question).strip()
    if not question:
        print(
            "请在 record 后面写上问题，例如："
            'python -m lesson_helpers record --out hello.jsonl "你好"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    shown = _Printed()
    try:
        check_out_path(args.out, args.force)  # before anything is sent
        settings = load_settings()
        if settings.is_local:  # the kit's practice server, in this process
            server = local_server()
            settings = replace(
                settings, base_url=server.base_url, api_key=Secret(server.api_key or "")
            )
        elif settings.needs_key and not settings.has_key:
            print(
                "没有配置密钥（LLM_API_KEY）：录制要连真实的服务商，请先在 .env 里配好密钥"
                "（想录本地练习服务器的回答，就设 LLM_PROVIDER=local）。",
                file=sys.stderr,
            )
            return EXIT_ERROR
        model = args.model or settings.model
        print(f"正在录制：{shown_url(settings.base_url)}，模型 {model}", file=sys.stderr)
        result = record(
            settings,
            question,
            args.out,
            api=args.api,
            model=args.model,
            system=args.system,
            params=dict(args.param),
            description=args.description,
            force=args.force,
            show=shown.append,
        )
    except (RecordError, RecordingError) as exc:
        if shown.printed:
            print(flush=True)  # end the answer's line before the error line
        print(f"错误：{exc}", file=sys.stderr)
        return EXIT_ERROR
    if shown.printed:
        print(flush=True)
    print_summary(result, settings)
    if result.recording.outcome == "interrupted":
        return EXIT_INTERRUPTED
    return 0 if result.recording.outcome == "complete" else EXIT_INCOMPLETE


def _report_end(result: ChatResult, secret: object) -> int:
    """The usage line, and why the answer ended when that was unusual; the exit code."""
    usage = result.usage
    if usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        total = usage.get("total_tokens")
        print(f"[用量] 提问 {prompt} + 回答 {completion} = {total} tokens", file=sys.stderr)
    note = finish_note(result, secret)
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
    serve.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="PATH",
        help="replay a recording (a .jsonl file, a folder of them, or a shipped recording's "
        "name) as model replay:<name>; may be given several times",
    )
    serve.add_argument(
        "--replay-speed",
        type=_speed,
        default=1.0,
        metavar="N",
        help="replay N times as fast (1 = as recorded, 0 = without waiting)",
    )
    sub.add_parser("doctor", help="check Python, packages, .env, the key and the provider")
    chat = sub.add_parser("chat", help="ask one question and stream the answer")
    chat.add_argument("question", nargs="*")
    chat.add_argument("--model", type=_model, default=None)
    rec = sub.add_parser(
        "record", help="ask one question and record the provider's response (no key in it)"
    )
    rec.add_argument("question", nargs="*")
    rec.add_argument("--out", required=True, metavar="FILE", help="the recording (.jsonl)")
    rec.add_argument(
        "--model", type=_model, default=None, help="model (default: LLM_MODEL or the preset's)"
    )
    rec.add_argument("--system", default=None, help="a system prompt")
    rec.add_argument(
        "--api", choices=["chat", "responses", "messages"], default="chat", help="which API"
    )
    rec.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one more field of the request body, e.g. max_tokens=5 (VALUE as JSON if it is)",
    )
    rec.add_argument("--description", default=None, help="one line saying what it is")
    rec.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "doctor":
            from .doctor import run_doctor

            return run_doctor()
        if args.command == "record":
            return _record(args)
        return _chat(args)
    except (LLMError, ConfigError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("（已停止）", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
