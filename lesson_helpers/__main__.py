"""Command line: ``python -m lesson_helpers serve | doctor | chat``."""

from __future__ import annotations

import argparse
import sys

from .config import ConfigError
from .errors import LLMError

USAGE_EXAMPLES = """例子:
  python -m lesson_helpers serve --port 8000           启动本地练习服务器
  python -m lesson_helpers doctor                      检查环境、.env 和服务商
  python -m lesson_helpers chat "什么是流式输出？"       问一个问题，流式打印回答
"""


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
        return 1
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


def _chat(args: argparse.Namespace) -> int:
    from .session import chat_client

    question = " ".join(args.question).strip()
    if not question:
        print(
            "请在 chat 后面写上问题，例如：python -m lesson_helpers chat 什么是流式输出？",
            file=sys.stderr,
        )
        return 2
    client = chat_client(quiet=False)
    stream = client.stream([{"role": "user", "content": question}], model=args.model)
    printed = False
    try:
        for piece in stream.text():
            print(piece, end="", flush=True)
            printed = True
    except LLMError:
        if printed:
            print()  # end the partial answer's line before the error line
        raise
    except KeyboardInterrupt:
        print("\n（已停止，上面是收到的部分回答）")
        return 130
    finally:
        stream.close()
    print()
    usage = stream.result.usage
    if usage:
        prompt, answer = usage.get("prompt_tokens"), usage.get("completion_tokens")
        total = usage.get("total_tokens")
        print(f"[用量] 提问 {prompt} + 回答 {answer} = {total} tokens", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lesson_helpers",
        description="Course kit helpers: local server, setup check, quick chat.",
        epilog=USAGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local OpenAI-compatible practice server")
    serve.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    serve.add_argument("--api-key", default="local-practice-key", help="key clients must send")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a key")
    serve.add_argument("--pace", type=float, default=0.02, help="seconds between tokens")
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
        return 1


if __name__ == "__main__":
    sys.exit(main())
