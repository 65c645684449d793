"""Make the student edition: app.py and the lessons with their solutions cut out.

    python scripts/make_student_edition.py               # (re)write student/app.py and
                                                         #   student/notebooks/
    python scripts/make_student_edition.py --check       # exit 1 if any of them is stale
    python scripts/make_student_edition.py --template DIR [--grader OWNER/REPO@REF]
                                                         # an assignment repository in DIR

**app.py.** Each part students write themselves sits between two marker lines::

    # --- BEGIN SOLUTION: request ---
    ...the reference solution...
    # --- END SOLUTION ---

The student edition replaces every such region by the TODO instructions below and a
``raise NotImplementedError("TODO n: ...")``; app.py's ``main()`` turns that into one line
("app.py 还没写完：TODO 1：...") instead of a traceback. Everything else is copied unchanged, so
the two files never drift apart.

**The lessons.** The notebooks in notebooks/ are the teacher edition (nbgrader's format: see
grading/editions.py). ``grading.editions.student_notebook`` makes each student edition: solution
regions replaced by a stub, teacher-only cells dropped, outputs cleared. A lesson that still
has a hidden reference cell of the old format (tag ``solution``) is skipped with a warning,
since that cell would carry the solution into the student edition.

**An assignment repository** (``--template DIR``): the student notebooks in ``notebooks/``, the
student ``app.py`` at the root, the grader and the kit it runs on, the workflow
(scripts/template/grade.yml: it runs the teacher's grader, pinned with ``--grader`` or with the
repository's Actions variables GRADER_REPOSITORY / GRADER_REF), the setup files, a README, a
requirements.txt with only what the assignment needs, and a pytest setup whose one test asks the
grader for full marks.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for grading.editions, when run as a script

from grading.editions import BEGIN as NOTEBOOK_BEGIN  # noqa: E402
from grading.editions import EditionError, student_notebook  # noqa: E402

SOLUTION = ROOT / "app.py"
STUDENT_DIR = ROOT / "student"
STUDENT = STUDENT_DIR / "app.py"
TEACHER_NOTEBOOKS = ROOT / "notebooks"
OLD_SOLUTION_TAG = "solution"  # the old format's hidden reference cells

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


# -- the lessons ------------------------------------------------------------------------------
class LessonError(ValueError):
    """A teacher notebook that cannot be made into a student edition (the message says why)."""


def student_lesson(path: Path) -> str:
    """The student edition of the teacher notebook at ``path``, as the text of an .ipynb."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if OLD_SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            raise LessonError(
                f"cell {index}: a hidden reference cell (tag {OLD_SOLUTION_TAG!r}, the "
                "old exercise format) would stay in the student edition; convert the exercise to "
                "one nbgrader solution cell"
            )
    try:
        student = student_notebook(nb, path.name)
    except EditionError as exc:
        raise LessonError(str(exc)) from None
    text = nbformat.writes(student)
    return text if text.endswith("\n") else text + "\n"


def student_lessons(folder: Path = TEACHER_NOTEBOOKS) -> tuple[dict[str, str], list[str]]:
    """File name → student edition of every lesson in ``folder``, and the lessons skipped
    (one line each, saying why)."""
    made: dict[str, str] = {}
    skipped: list[str] = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            made[path.name] = student_lesson(path)
        except LessonError as exc:
            skipped.append(f"skipped {path.relative_to(ROOT).as_posix()}: {exc}")
    return made, skipped


def edition_files(app_source: str, student_dir: Path = STUDENT_DIR) -> dict[Path, str]:
    """Every file of the course repository's student edition (student/), with its text."""
    files = {student_dir / "app.py": make_student_edition(app_source)}
    made, _ = student_lessons()
    files.update({student_dir / "notebooks" / name: text for name, text in made.items()})
    return files


def stale_files(app_source: str, student_dir: Path = STUDENT_DIR) -> list[str]:
    """The files of student/ that differ from what this script would write, are missing, or
    should not be there (relative to the folder that holds student/)."""
    expected = edition_files(app_source, student_dir)
    stale = [
        path
        for path, text in expected.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    stale += [p for p in sorted((student_dir / "notebooks").glob("*.ipynb")) if p not in expected]
    return [path.relative_to(student_dir.parent).as_posix() for path in stale]


def write_edition(app_source: str, student_dir: Path = STUDENT_DIR) -> list[Path]:
    """(Re)write student/: app.py and every lesson; remove lessons that are no longer there."""
    files = edition_files(app_source, student_dir)
    (student_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    for path in sorted((student_dir / "notebooks").glob("*.ipynb")):
        if path not in files:
            path.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)


# -- an assignment repository ----------------------------------------------------------------
# What a class's repositories need: the student edition (notebooks/ and app.py), the grader and
# the local server it grades against, the workflow, and the setup files. No solution.
TEMPLATE_FILES = (
    ".gitignore",
    ".env.example",
    "runtime.txt",
)
# The assignment's workflow. It lives here, not in the course repository's .github/: the course
# repository is not graded on push; an assignment repository is, by the teacher's pinned grader.
WORKFLOW = ROOT / "scripts" / "template" / "grade.yml"
GRADER_SPEC = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<ref>[\w./-]+)$")
TEMPLATE_DIRS = ("grading", "lesson_helpers")
SKIPPED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints", ".pytest_cache"})

LESSONS_COMMAND = (
    "jupyter lab --notebook-dir=. --ContentsManager.allow_hidden=True notebooks/00_setup.ipynb"
)

TEMPLATE_REQUIREMENTS = """\
# What this assignment needs, and no more: the lessons (the notebooks in notebooks/), your
# app.py, and the grader (python -m grading). Nothing else is installed.
#
# Opening and running the lessons:
jupyterlab>=4.2
# Lesson 04's live view:
ipywidgets>=8.1
# Lesson 05 compares app.py with the official SDK:
openai>=3.57
# Lesson 08 reads the Messages API stream with the official anthropic SDK too:
anthropic>=2.15
# app.py and the lessons talk to the model with these:
requests>=2.32
urllib3>=2.3
python-dotenv>=1.0
# The grader (python -m grading):
-r grading/requirements.txt
# The kit's helper package (lesson_helpers), importable from the notebooks:
-e .
"""

TEMPLATE_PYTEST = """\
[tool.pytest.ini_options]
# `pytest` in an assignment repository asks one question: is the assignment finished?
# tests/test_assignment.py runs the grader (python -m grading) and passes only at full marks.
# (The course repository's own test settings, nbval on the teacher's notebooks, do not apply.)
testpaths = ["tests"]
addopts = "-p no:cacheprovider"
"""

TEMPLATE_TEST = '''\
"""`pytest` in this repository: is the assignment finished?

It runs the grader, exactly as `python -m grading` does (your notebooks and app.py, against the
bundled local practice server: no key, no network), and passes only at full marks. When it
fails, the message is the grader's report: which exercise or check failed, and a hint.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_grader_gives_full_marks() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grading"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=1200,
        check=False,
    )
    report = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, "还没有满分（python -m grading 的报告如下）：\\n" + report
'''

TEMPLATE_README = f"""\
# 作业：课程练习 + 流式对话程序 app.py

这个仓库就是你的作业，要完成两部分：

1. **课程练习**：`notebooks/` 里的每一课（学生版）都有几个练习。每个练习是一个代码格，
   函数的名字、参数和说明已经写好；删掉函数体里那一行 `raise NotImplementedError("还没完成")`，
   换成你的代码。先运行练习格，再运行紧挨着它的检查格：`✓` 表示做对了，`✗`（红色）说明哪里不对、
   还差什么。
2. **`app.py`**：补全标着 **TODO 1～4** 的四个地方（在编辑器里搜索 “TODO”），让它能边生成边显示
   大模型的回答。第 5 课讲它。

要改的只有 `notebooks/` 里的练习格和 `app.py`；`grading/`、`lesson_helpers/` 是评分程序和
课程包，不用动。

## 准备（只需一次）

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
```

Windows（PowerShell）：

```powershell
python -m venv .venv; .venv\\Scripts\\Activate.ps1; pip install -r requirements.txt
```

`requirements.txt` 只装作业需要的东西：运行课程的 JupyterLab 和课程用到的库、`app.py` 用的
`requests` 与 `python-dotenv`，以及评分程序。

## 上课

在仓库根目录（先激活 `.venv`）运行：

```bash
{LESSONS_COMMAND}
```

JupyterLab 以仓库根目录为根，一打开就是第 0 课；从 `00_setup` 开始按顺序做。

## 密钥（可以不配）

没有密钥也能做全部练习：课程会自动启动自带的本地练习服务器（只在本机，不联网、不花钱）。
想用真实的服务商，就把 `.env.example` 复制为 `.env`，在 `LLM_API_KEY=` 后面填上你的密钥
（推荐硅基流动；第 0 课一步步讲）。**永远不要提交 `.env`**：它已经写在 `.gitignore` 里。

## 运行 app.py

```bash
python app.py 你好        # 问一个问题
python app.py             # 多轮对话：/clear 清空，/quit 退出
```

`app.py` 不会自己启动本地练习服务器。没有密钥时，另开一个终端运行
`python -m lesson_helpers serve --port 8000`，再设置
`LLM_BASE_URL=http://127.0.0.1:8000/v1` 和 `LLM_API_KEY=local-practice-key`
（写进 `.env` 或环境变量）。

## 自测得分

```bash
python -m grading
```

它用自带的本地练习服务器运行你的 notebook 练习和 `app.py`，打印每一课、每一项的结果，
没通过的给出原因，最后是总分。`pytest` 做同一件事：满分时通过，否则失败并显示同一份报告。
每次 `git push`，GitHub Actions 也会评分（见仓库的 Actions 页面）。
"""


def template_pyproject(source: str) -> str:
    """The course's pyproject.toml with its pytest settings replaced by the assignment's."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("["):
            skipping = line.strip() == "[tool.pytest.ini_options]"
        if not skipping:
            out.append(line)
    text = "".join(out).rstrip("\n") + "\n\n" + TEMPLATE_PYTEST
    tomllib.loads(text)  # still valid TOML
    return text


def template_devcontainer(source: str) -> str:
    """The course's devcontainer.json, opening the assignment's lesson 00 instead."""
    course = "student/notebooks/00_setup.ipynb"
    if course not in source:
        raise LessonError(f".devcontainer/devcontainer.json does not mention {course}")
    return source.replace(course, "notebooks/00_setup.ipynb")


def parse_grader(spec: str) -> tuple[str, str]:
    """``OWNER/REPO@REF`` → (``OWNER/REPO``, ``REF``)."""
    found = GRADER_SPEC.match(spec)
    if found is None:
        raise LessonError(f"--grader {spec!r}: write it as OWNER/REPO@REF (a commit SHA or tag)")
    return found["repo"], found["ref"]


def template_workflow(text: str, grader: tuple[str, str] | None) -> str:
    """The workflow, with the teacher's pinned grader (repository, ref) filled in if given."""
    if grader is None:
        return text
    repo, ref = grader
    text = text.replace(
        "GRADER_REPOSITORY: ${{ vars.GRADER_REPOSITORY || '' }}",
        f"GRADER_REPOSITORY: ${{{{ vars.GRADER_REPOSITORY || '{repo}' }}}}",
    )
    return text.replace(
        "GRADER_REF: ${{ vars.GRADER_REF || '' }}",
        f"GRADER_REF: ${{{{ vars.GRADER_REF || '{ref}' }}}}",
    )


def write_template(target: Path, source: str, grader: tuple[str, str] | None = None) -> list[Path]:
    """Write an assignment repository to ``target`` (which must not exist or be empty).

    ``grader`` (repository, ref) pins the teacher's grader in its workflow."""
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty")
    lessons, skipped = student_lessons()
    for line in skipped:
        print(line, file=sys.stderr)
    written = [_copy(ROOT / name, target / name) for name in TEMPLATE_FILES]
    for name in TEMPLATE_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if path.is_file() and not SKIPPED_PARTS & set(path.parts) and path.suffix != ".pyc":
                written.append(_copy(path, target / path.relative_to(ROOT)))
    generated = {
        "app.py": make_student_edition(source),
        "README.md": TEMPLATE_README,
        "requirements.txt": TEMPLATE_REQUIREMENTS,
        "pyproject.toml": template_pyproject((ROOT / "pyproject.toml").read_text("utf-8")),
        ".devcontainer/devcontainer.json": template_devcontainer(
            (ROOT / ".devcontainer" / "devcontainer.json").read_text("utf-8")
        ),
        "tests/test_assignment.py": TEMPLATE_TEST,
        ".github/workflows/grade.yml": template_workflow(
            WORKFLOW.read_text(encoding="utf-8"), grader
        ),
        **{f"notebooks/{name}": text for name, text in lessons.items()},
    }
    for name, text in generated.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    _refuse_solutions(target)
    return written


def _refuse_solutions(target: Path) -> None:
    """A last look: the student's files must not hold a solution marker."""
    for path in [target / "app.py", *sorted((target / "notebooks").glob("*.ipynb"))]:
        text = path.read_text(encoding="utf-8")
        if BEGIN.search(text) or NOTEBOOK_BEGIN in text:
            raise LessonError(f"{path.relative_to(target)} still holds a solution marker")


def _copy(source: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="fail if student/ is stale")
    group.add_argument("--template", type=Path, metavar="DIR", help="write an assignment repo")
    parser.add_argument(
        "--grader",
        metavar="OWNER/REPO@REF",
        help="with --template: the teacher's grader the assignment's workflow runs, pinned",
    )
    args = parser.parse_args(argv)
    if args.grader and not args.template:
        parser.error("--grader goes with --template DIR")
    source = SOLUTION.read_text(encoding="utf-8")
    try:
        make_student_edition(source)
        if args.template:
            grader = parse_grader(args.grader) if args.grader else None
            files = write_template(args.template, source, grader)
            print(f"wrote {len(files)} files to {args.template}")
            return 0
        _, skipped = student_lessons()
        for line in skipped:
            print(line, file=sys.stderr)
        if args.check:
            stale = stale_files(source)
            if stale:
                print(
                    f"out of date: {', '.join(stale)}: run python scripts/make_student_edition.py",
                    file=sys.stderr,
                )
                return 1
            print("student/app.py and student/notebooks/ are up to date")
            return 0
        written = write_edition(source)
    except (RegionError, LessonError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {', '.join(sorted({p.parent.relative_to(ROOT).as_posix() + '/' for p in written}))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
