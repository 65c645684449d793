"""Make the student edition of app.py: the same program with its key parts cut out.

    python scripts/make_student_edition.py               # (re)write student/app.py
    python scripts/make_student_edition.py --check       # exit 1 if student/app.py is stale
    python scripts/make_student_edition.py --template DIR
                                                         # an assignment repository in DIR

In app.py, each part students write themselves sits between two marker lines::

    # --- BEGIN SOLUTION: request ---
    ...the reference solution...
    # --- END SOLUTION ---

The student edition replaces every such region by the TODO instructions below and a
``raise NotImplementedError("TODO n: ...")``; app.py's ``main()`` turns that into one line
("app.py 还没写完：TODO 1：...") instead of a traceback. Everything else is copied unchanged, so
the two files never drift apart.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "app.py"
STUDENT = ROOT / "student" / "app.py"

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# --- BEGIN SOLUTION: (?P<name>[\w -]+?) ---[ \t]*$")
END = re.compile(r"^[ \t]*# --- END SOLUTION ---[ \t]*$")

BANNER = """\
# 学生版 app.py：请补全下面标着 TODO 1～4 的四个地方（在编辑器里搜索 "TODO"）。
# 每完成一个，就运行一次 `python app.py 你好` 看看进展；
# 全部完成后，运行 `python -m grading` 自测得分。
# （本文件由 scripts/make_student_edition.py 从参考答案生成。）
"""


@dataclass(frozen=True)
class Todo:
    number: int
    summary: str  # goes into the NotImplementedError: one line, shown when the program runs
    steps: str  # the instructions, as comment lines


TODOS: dict[str, Todo] = {
    "request": Todo(
        1,
        "发送流式请求（open_stream）",
        """\
用 requests.post 向 f"{config.base_url}/chat/completions" 发一个 POST 请求：
  * 请求头：{"Authorization": f"Bearer {config.api_key}"}
    （config.api_key 是空的——本机的 Ollama 等不要密钥——就不发这个请求头）
  * JSON 请求体：model（config.model）、messages，以及 "stream": True；
    再加上 "stream_options": {"include_usage": True}，
    OpenAI 才会在流里告诉你 token 用量
  * 关键字参数 stream=True（否则 requests 会等整个回答下载完才返回），
    以及 timeout=(CONNECT_TIMEOUT, config.timeout)
用 try/except 接住 requests.RequestException（连不上、超时、网址不对……），
改为 raise request_error(error, config)：它把每种情况说成一句中文。
状态码不是 200，或者 Content-Type 不以 "text/event-stream" 开头（例如一个网页）：
raise http_error(response, config)。最后 return response。""",
    ),
    "streaming loop": Todo(
        2,
        "一块一块地读取响应体（read_pieces）",
        """\
写一个 while True 循环，每次调用 response.raw.read1(65536, decode_content=True)：
它立刻返回已经到达的字节（最多 64 KiB），不会等缓冲区装满。
  * 读到 b""：服务器把回答发完了，return
  * 否则：yield 这一块字节
read1 在断线或超时的时候会抛出异常：用 try/except Exception as exc 接住；
异常信息里有 "timed out" 就 raise ChatError("……秒没有发来新内容……")，
有 "decode" 就是压缩数据（gzip）解不开，也说一句，
否则 raise ChatError("连接在回答结束前断开了……")。
想一想：为什么不用 response.iter_lines()？
（提示：第 05 课，以及“靠关闭连接表示结束”的响应）""",
    ),
    "SSE line handling": Todo(
        3,
        "把字节流切成一个个 SSE 事件（iter_sse_events）",
        """\
SSE 的规则：
  * 一行以 b"\\n" 结束（也可能是 b"\\r\\n"：去掉行尾的 b"\\r"）
  * 空行表示一个事件结束：把这个事件的 data 行用 "\\n" 连起来，
    yield (事件类型, 数据)；事件类型默认是 "message"；没有 data 行就不 yield
  * 以 ":" 开头的行是注释（服务器的心跳，例如 ": ping"），跳过
  * "data: xxx" 把 xxx 加进当前事件的 data 行；
    "event: error" 把事件类型设为 error（冒号后面的一个空格要去掉）
每来一块字节，按 b"\\n" 切开：最后一段还不是完整的一行，留着等下一块。
只对完整的一行 .decode("utf-8")：一个汉字占 3 个字节，可能被切在两块之间。
一行可能很长（几 MB，分成几百块到达）：只切新来的这一块，把没结束的那一行的
各块放进一个列表，行结束时再 b"".join(...)；每块都 buffer += piece 再切整个
buffer，会把越来越长的一行复制几百遍。
不要用 response.text、response.encoding 或 iter_lines(decode_unicode=True)：
中文会变成乱码。""",
    ),
    "delta assembly": Todo(
        4,
        "处理每个事件，把 delta 拼成回答（collect_reply）",
        """\
用 for event_type, data in events: 逐个处理 SSE 事件：
  * data == "[DONE]"：回答结束了。reply.done = True，然后 break
  * event_type == "error"：
        raise ChatError("服务器在回答中途报错：" + provider_message(data))
  * 否则 chunk = json.loads(data)；
    解析失败、不是 dict、或者 chunk.get("error") 不为空：也 raise ChatError(...)
  * usage_of(chunk) 不为空：存进 reply.usage
  * choice = first_choice(chunk)（没有 choices 时是 {}）；
    delta = plain_delta(choice.get("delta"))：各家服务商的不同格式都变成同一个样子，
    里面的文字都是 str（没有就是 ""）：
      - delta["reasoning_content"]：screen.show("reasoning", 文字)，
        并加到 reply.reasoning
      - delta["content"]：screen.show("answer", 文字)，并加到 reply.content
      - delta["refusal"]：screen.show("refusal", 文字)，并加到 reply.refusal
      - delta["tool_calls"] 里的每一段：add_tool_call(reply.tool_calls, 这一段)
  * choice.get("finish_reason") 不为空：存进 reply.finish_reason""",
    ),
}


class RegionError(ValueError):
    """The markers in app.py are unbalanced or name an unknown region."""


def make_student_edition(source: str, keep: frozenset[str] = frozenset()) -> str:
    """The student edition of ``source``. Regions named in ``keep`` stay solved."""
    out: list[str] = []
    region: str | None = None
    seen: set[str] = set()
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if region is not None:
                raise RegionError(f"app.py:{number}: BEGIN SOLUTION inside region {region!r}")
            region = begin["name"]
            if region not in TODOS:
                raise RegionError(f"app.py:{number}: unknown region {region!r} (see TODOS)")
            if region in seen:
                raise RegionError(f"app.py:{number}: region {region!r} appears twice")
            seen.add(region)
            if region not in keep:
                out.append(_todo_block(TODOS[region], begin["indent"]))
        elif end:
            if region is None:
                raise RegionError(f"app.py:{number}: END SOLUTION without BEGIN")
            region = None
        elif region is None or region in keep:
            out.append(line)
    if region is not None:
        raise RegionError(f"app.py: region {region!r} is never closed")
    missing = set(TODOS) - seen
    if missing:
        raise RegionError(f"app.py: no region for {sorted(missing)}")
    return BANNER + "".join(out)


def _todo_block(todo: Todo, indent: str) -> str:
    lines = [f"TODO {todo.number}：{todo.summary}", *todo.steps.splitlines()]
    comments = "".join(f"{indent}# {text}".rstrip() + "\n" for text in lines)
    message = f"TODO {todo.number}：{todo.summary}"
    return comments + f'{indent}raise NotImplementedError("{message}")\n'


# -- an assignment repository ----------------------------------------------------------------
# What a class's repositories need: the student edition as app.py, the autograder and the
# local server it grades against, the workflow, and the setup files (no solution, no lessons).
TEMPLATE_FILES = (
    ".gitignore",
    ".env.example",
    ".github/workflows/grade.yml",
    ".devcontainer/devcontainer.json",
    "runtime.txt",
    "pyproject.toml",
    "requirements.txt",
)
TEMPLATE_DIRS = ("grading", "lesson_helpers")

TEMPLATE_README = """\
# 作业：流式对话程序 app.py

补全 `app.py` 里标着 **TODO 1～4** 的四个地方，让它能边生成边显示大模型的回答。

## 准备

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
```

复制 `.env.example` 为 `.env`，在 `LLM_API_KEY=` 后面填上你的密钥（推荐硅基流动）。
**永远不要提交 `.env`**：它已经写在 `.gitignore` 里。

没有密钥也能做：另开一个终端运行 `python -m lesson_helpers serve --port 8000`，然后

```bash
export LLM_BASE_URL=http://127.0.0.1:8000/v1 LLM_API_KEY=local-practice-key
```

## 运行

```bash
python app.py 你好        # 问一个问题
python app.py             # 多轮对话：/clear 清空，/quit 退出
```

## 自测得分

```bash
python -m grading
```

它用自带的本地练习服务器（不联网、不花钱）检查你的程序，打印得分和每一项没通过的原因。
每次 `git push`，GitHub Actions 都会运行同一条命令（见仓库的 Actions 页面）。
"""


def write_template(target: Path, source: str) -> list[Path]:
    """Write an assignment repository to ``target`` (which must not exist or be empty)."""
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty")
    written = []
    for name in TEMPLATE_FILES:
        written.append(_copy(ROOT / name, target / name))
    for name in TEMPLATE_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                written.append(_copy(path, target / path.relative_to(ROOT)))
    (target / "app.py").write_text(make_student_edition(source), encoding="utf-8")
    (target / "README.md").write_text(TEMPLATE_README, encoding="utf-8")
    return [*written, target / "app.py", target / "README.md"]


def _copy(source: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="fail if student/app.py is stale")
    group.add_argument("--template", type=Path, metavar="DIR", help="write an assignment repo")
    args = parser.parse_args(argv)
    source = SOLUTION.read_text(encoding="utf-8")
    try:
        student = make_student_edition(source)
    except RegionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.template:
        try:
            files = write_template(args.template, source)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {len(files)} files to {args.template}")
        return 0
    current = STUDENT.read_text(encoding="utf-8") if STUDENT.exists() else ""
    if args.check:
        if current != student:
            print(
                "student/app.py is out of date: run python scripts/make_student_edition.py",
                file=sys.stderr,
            )
            return 1
        print("student/app.py is up to date")
        return 0
    STUDENT.parent.mkdir(exist_ok=True)
    STUDENT.write_text(student, encoding="utf-8")
    print(f"wrote {STUDENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
