"""Running a student's app.py against the local practice server, and reading what it did.

The checks never import the student's program: they run it as a separate process, exactly as
a person would (``python app.py 你好``), and look at its output, its exit status, and the
requests the local server received.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from lesson_helpers.local_server import MODELS, Exchange, LocalServer, ModelSpec, register
from lesson_helpers.sse import SSEParser

SEED_QUESTION = "你好"
SEED_ANSWER = "你好！有什么问题或者需要帮助的吗？"
FOLLOW_UP = "我刚才问了什么"
FOLLOW_UP_ANSWER = f"你刚才问的是：「{SEED_QUESTION}」"
BASE_MODEL = "Qwen/Qwen2.5-7B-Instruct"
CUT_MODEL = "fault-cut-mid-stream"
WRONG_KEY = "wrong-key-for-grading"
RUN_TIMEOUT = 20.0  # seconds a run of app.py may take before it is stopped

_ENV_NAMES = re.compile(r"^(LLM_|OPENAI_)|^PYTHONUNBUFFERED$")


@dataclass
class Run:
    """One run of app.py: what it printed, when, and how it ended."""

    returncode: int | None  # None: still running after the timeout, so it was stopped
    stdout: str
    stderr: str
    started: float
    ended: float
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)  # stdout pieces, timed

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def first_seen(self, text: str) -> float | None:
        """Seconds after the start at which ``text`` had fully appeared on stdout."""
        seen = b""
        wanted = text.encode()
        for moment, piece in self.arrivals:
            seen += piece
            if wanted in seen:
                return moment - self.started
        return None

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def app_env(base_url: str, api_key: str | None, model: str, **extra: str) -> dict[str, str]:
    """The environment for a run: this process's, minus any real settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not _ENV_NAMES.search(k)}
    env.update(
        LLM_BASE_URL=base_url,
        LLM_MODEL=model,
        LLM_TIMEOUT="10",
        NO_COLOR="1",
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="1",
        # The local server is on this machine: a system proxy (HTTP_PROXY) must not carry it.
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if api_key is not None:
        env["LLM_API_KEY"] = api_key
    env.update(extra)
    return env


def run_app(
    app: Path,
    args: list[str],
    env: dict[str, str],
    stdin: str | None = None,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run ``python app.py ARGS`` and record its output as it arrives."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(app), *args],
        cwd=app.parent,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    arrivals: list[tuple[float, bytes]] = []
    errors: list[bytes] = []

    def read_stdout() -> None:
        while piece := os.read(process.stdout.fileno(), 65536):  # type: ignore[union-attr]
            arrivals.append((time.monotonic(), piece))

    def read_stderr() -> None:
        errors.append(process.stderr.read())  # type: ignore[union-attr]

    readers = [threading.Thread(target=read_stdout), threading.Thread(target=read_stderr)]
    for reader in readers:
        reader.start()
    try:
        if stdin:
            process.stdin.write(stdin.encode())  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:
        pass  # the program ended without reading its input
    try:
        returncode: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        returncode = None
    ended = time.monotonic()
    for reader in readers:
        reader.join(timeout=5)
    stdout = b"".join(piece for _, piece in arrivals)
    return Run(
        returncode,
        stdout.decode("utf-8", errors="replace"),
        b"".join(errors).decode("utf-8", errors="replace"),
        started,
        ended,
        arrivals,
    )


class Recorder:
    """A model on the local server that answers like ``base`` and keeps every request body."""

    _numbers = itertools.count(1)

    def __init__(self, base: str) -> None:
        self.base = base
        self.model = f"grading-{next(self._numbers)}/{base}"
        self.bodies: list[dict] = []
        register(ModelSpec(self.model, f"records requests, answers like {base}", self._handle))

    def _handle(self, exchange: Exchange) -> None:
        self.bodies.append(exchange.body)
        MODELS[self.base].handler(exchange)


def text_before_cut(server: LocalServer, model: str, question: str) -> str:
    """The answer text a broken-stream model sends before it cuts the connection."""
    response = requests.post(
        f"{server.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": question}], "stream": True},
        headers={"Authorization": f"Bearer {server.api_key}"},
        stream=True,
        timeout=10,
    )
    parser, text = SSEParser(), ""
    try:
        while piece := response.raw.read1(65536, decode_content=True):
            for event in parser.feed(piece):
                if event.data == "[DONE]":
                    return text
                for choice in event.json().get("choices") or []:
                    text += (choice.get("delta") or {}).get("content") or ""
    except Exception:  # the cut itself: exactly what we are waiting for
        pass
    finally:
        response.close()
    return text


# -- reading a failed run -------------------------------------------------------------------
# The last line of a traceback, and what it usually means in this assignment.
_CRASH_HINTS = (
    (r"NotImplementedError", "还有 TODO 没有完成"),
    (r"KeyError: 'content'|KeyError: 'delta'", "有的 chunk 没有这个字段：用 .get(...) 读取"),
    (r"KeyError: 'choices'", "OpenAI 的最后一个用量 chunk 的 choices 是空的：用 .get(...)"),
    (r"IndexError", "choices 可能是空列表（例如只带 usage 的最后一个 chunk）：先判断再取 [0]"),
    (
        r"TypeError: can only concatenate str \(not \"NoneType\"\)|NoneType",
        'delta 里的 content 可能是 null（None）：先判断 if delta.get("content") 再拼接',
    ),
    (
        r"JSONDecodeError",
        "不是每个 data 都是 JSON：先处理 data: [DONE]，并跳过空行和以 : 开头的注释行",
    ),
    (
        r"UnicodeDecodeError",
        '一个汉字的 UTF-8 字节可能被切在两块之间：先按 b"\\n" 切行，再解码整行',
    ),
    (
        r"ChunkedEncodingError|ProtocolError|IncompleteRead|ConnectionError",
        "连接断开时读取会抛出异常：用 try/except 接住，改为 raise ChatError(...)",
    ),
    (r"HTTPError|status", "状态码不是 200 时要 raise http_error(response, config)"),
)
_MOJIBAKE = re.compile(r"[\u00c0-\u00ef][\u0080-\u00bf]")
_RAW_SSE = re.compile(r'(^|\n)data: ?\{|"choices" ?:|"object" ?: ?"chat\.completion')


def crash_line(run: Run) -> str | None:
    """The last line of a traceback in stderr, if the program crashed."""
    if "Traceback (most recent call last)" not in run.stderr:
        return None
    return run.error_lines[-1].strip() if run.error_lines else "Traceback"


def crash_hint(line: str) -> str:
    for pattern, hint in _CRASH_HINTS:
        if re.search(pattern, line):
            return hint
    return "读一读 python app.py 你好 打印的 Traceback，从最后一行找原因"


def common_problem(run: Run, what: str) -> str | None:
    """A hint for the problems any check can run into, or None. ``what``: what was tested."""
    unfinished = re.search(r"TODO \d+[^\n]*", run.stderr)
    if unfinished and ("还没写完" in run.stderr or "NotImplementedError" in run.stderr):
        todo = unfinished.group(0).strip()
        return f"app.py 还没写完：{todo}。先完成它（在 app.py 里搜索 TODO）。"
    crash = crash_line(run)
    if crash:
        return f"{what}时程序崩溃了（{crash[:120]}）：{crash_hint(crash)}。"
    if run.timed_out:
        return (
            f"{what}时程序 {RUN_TIMEOUT:g} 秒内没有结束：收到 data: [DONE] 后要跳出循环，"
            '读到 b""（服务器发完了）时要结束；带参数运行时回答完就退出。'
        )
    if _MOJIBAKE.search(run.stdout):
        return (
            "输出里的中文是乱码（像“ä½ å¥½”）：把收到的字节用 UTF-8 解码，"
            "不要用 response.text、response.encoding 或 iter_lines(decode_unicode=True)。"
        )
    if _RAW_SSE.search(run.stdout):
        return (
            "输出里有原始的 SSE 行或 JSON（data: {...}）：只打印每个 chunk 里 "
            "choices[0].delta.content 的文字。"
        )
    return None


def shown(text: str, limit: int = 80) -> str:
    """Text for a hint: one line, shortened."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[:limit] + "…"
