"""Running a student's app.py against the grader's local servers, and reading what it did.

The checks never import the student's program: they run it as a separate, untrusted process
(:mod:`grading.sandbox`), exactly as a person would (``python app.py 问题``), from a copy of
its folder, on a Python that holds only the assignment's libraries (:mod:`grading.runtime`),
and look at its output, its exit status and the requests the server received.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .sandbox import Limits, Run, minimal_env, run_untrusted

__all__ = [
    "RUN_TIMEOUT",
    "AppRunner",
    "Run",
    "common_problem",
    "copy_app_folder",
    "crash_hint",
    "crash_line",
    "shown",
]

RUN_TIMEOUT = 15.0  # seconds a run of app.py may take before it is stopped
_SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "__pycache__", "notebooks"}
_SKIP_DIRS |= {".ipynb_checkpoints", ".github", ".devcontainer", "student", "grading"}
_SKIP_DIRS |= {"lesson_helpers", "tests", "benchmarks", "scripts"}
_MAX_FILE = 2 << 20  # bigger files are data: app.py does not need them
_MAX_FILES = 500


def copy_app_folder(app: Path, into: Path) -> Path:
    """Copy app.py's folder (its code, not .git, notebooks, .env or big files) into ``into``;
    return the copy of app.py. The student's program runs there, so it cannot change the
    files the grader reads."""
    source = app.parent
    count = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in _SKIP_DIRS for part in relative.parts[:-1]) or path.is_symlink():
            continue
        if not path.is_file() or path.name.startswith(".env") or relative.parts[0] in _SKIP_DIRS:
            continue
        if path.stat().st_size > _MAX_FILE or count >= _MAX_FILES:
            continue
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        count += 1
    copy = into / app.name
    shutil.copyfile(app, copy)  # always, whatever its name or size
    return copy


APP_LIMITS = Limits(cpu_seconds=int(RUN_TIMEOUT) + 10)


@dataclass
class AppRunner:
    """Runs the copy of app.py: one fresh HOME per run, a minimal environment, limits."""

    app: Path  # the copy (see copy_app_folder)
    scratch: Path  # where each run gets its HOME
    python: Path = Path(sys.executable)  # the grader passes grading.runtime's
    timeout: float = RUN_TIMEOUT
    limits: Limits = APP_LIMITS
    side_by_side: bool = False  # runs overlap: orphans are reaped once all have ended

    def run(
        self,
        args: list[str],
        *,
        base_url: str,
        api_key: str,
        model: str,
        stdin: str = "",
        extra: dict[str, str] | None = None,
    ) -> Run:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=self.scratch))
        env = minimal_env(
            home,
            {
                "LLM_BASE_URL": base_url,
                "LLM_API_KEY": api_key,
                "LLM_MODEL": model,
                "LLM_TIMEOUT": "10",
                "LLM_PROVIDER": "",  # set, so a .env cannot pick another provider
                **(extra or {}),
            },
        )
        return run_untrusted(
            [str(self.python), str(self.app), *args],
            cwd=self.app.parent,
            env=env,
            stdin=stdin.encode(),
            timeout=self.timeout,
            limits=self.limits,
            reap=not self.side_by_side,
        )


# -- reading a failed run -------------------------------------------------------------------
# The last line of a traceback, and what it usually means in this assignment.
_CRASH_HINTS = (
    (r"NotImplementedError", "还有 TODO 没有完成"),
    (
        r"ModuleNotFoundError",
        "评分时 app.py 只能用标准库、requests 和 python-dotenv（作业的要求）：删掉这个 import",
    ),
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
    if run.returncode is not None and run.returncode < 0:
        return (
            f"{what}时程序被系统停止了（信号 {-run.returncode}）：它用了太多内存或 CPU 时间，"
            "或者开了太多进程。"
        )
    if run.truncated:
        return f"{what}时程序输出了 {run.stdout_total // (1 << 20)} MB 文字：只打印回答本身。"
    if "\ufffd" in run.stdout:
        return (
            "输出里有乱码“\ufffd”：一个汉字的 UTF-8 字节被切在了两块之间。要先把字节接起来、"
            '按 b"\\n" 切出完整的一行，再 decode 整行（不要一块一块地 decode）。'
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
