"""The autograder on app.py: the student edition and the course repository as it is do not
score full marks (the reference does: see test_grader_notebooks.py, which grades it together
with the notebooks), and typical mistakes and cheats each get their own hint.

Every test runs ``python -m grading`` as a separate process from the grader's own tree, the
way the workflow does, with an empty lessons folder (the notebooks are graded in
test_grader_notebooks.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
MARKER = re.compile(r"^[ \t]*# --- (BEGIN|END) SOLUTION.*\n", re.MULTILINE)
SOLUTION = MARKER.sub("", APP.read_text(encoding="utf-8"))  # the reference, as a student's
APP_CHECKS = [
    "single_turn",
    "streams_live",
    "multi_turn",
    "wrong_key",
    "broken_stream",
    "split_utf8",
    "crlf",
    "close_delimited",
    "uses_requests",
]


@pytest.fixture(scope="module")
def no_lessons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-lessons")


def grade(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, lessons: Path | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--lessons", str(lessons)] if lessons else []
    return subprocess.run(
        [sys.executable, "-m", "grading", *extra, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=180,
        check=False,
    )


def score(output: str) -> tuple[int, int]:
    found = re.search(r"得分：(\d+)/(\d+)", output)
    assert found, output
    return int(found.group(1)), int(found.group(2))


def hints(output: str) -> str:
    return "\n".join(line for line in output.splitlines() if "提示：" in line)


def write_app(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "app.py"
    path.write_text(text, encoding="utf-8")
    return path


def mutant(tmp_path: Path, *changes: tuple[str, str]) -> Path:
    """A copy of the reference app.py with one typical mistake made on purpose."""
    text = SOLUTION
    for old, new in changes:
        assert old in text, f"app.py changed: update this test's mutation {old!r}"
        text = text.replace(old, new)
    return write_app(tmp_path, text)


# -- the reference, the student edition, the course repository ------------------------------
def test_untouched_course_repository_does_not_grade_full_marks(no_lessons):
    result = grade(lessons=no_lessons)  # the course repo as cloned: student/app.py, unfinished
    assert result.returncode == 1
    assert score(result.stdout) == (10, 100)  # only the two repository checks pass
    assert "自动评分：student/app.py" in result.stdout
    todo = "app.py 还没写完：TODO 1：发送流式请求（open_stream）"
    assert hints(result.stdout).count(todo) == len(APP_CHECKS)
    assert "Traceback" not in result.stdout + result.stderr


def test_the_reference_in_the_course_repository_is_refused(no_lessons):
    result = grade("--app", "app.py", lessons=no_lessons)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "student/app.py" in lines[0] and "参考答案" in lines[0], lines
    assert "得分" not in result.stdout


def test_a_course_repository_without_student_app_is_refused(tmp_path, no_lessons):
    (tmp_path / "student").mkdir()
    shutil.copyfile(APP, tmp_path / "app.py")
    result = grade("--repo", str(tmp_path), lessons=no_lessons)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("找不到 student/app.py")
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_app_is_one_line(no_lessons):
    result = grade("--app", "no_such_app.py", lessons=no_lessons)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("找不到 no_such_app.py")
    assert len(result.stderr.strip().splitlines()) == 1


def test_pass_score_decides_the_exit_status(no_lessons):
    result = grade("--only", "env_not", "--pass-score", "5", lessons=no_lessons)
    assert score(result.stdout) == (5, 5)
    assert result.returncode == 0


def test_classroom50_result_json_lists_the_same_checks_as_the_summary(tmp_path, no_lessons):
    out, summary = tmp_path / "result.json", tmp_path / "summary.md"
    env = {"CLASSROOM": "c", "ASSIGNMENT": "app", "SUBMISSION_TAG": "submit/1", "COMMIT_URL": "u"}
    app = write_app(tmp_path, SOLUTION)
    result = grade(
        "--app",
        str(app),
        "--only",
        "single,crlf",
        "--classroom50",
        str(out),
        "--summary",
        str(summary),
        env=env,
        lessons=no_lessons,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["schema"] == "classroom50/result/v1"
    assert (data["score"], data["max-score"]) == (22, 22)
    assert data["assignment"] == "app" and data["review"] == "u"
    names = [test["test-name"] for test in data["tests"]]
    assert names == [
        "单轮对话：python app.py 问题，逐字显示服务器发来的回答",
        "用 CRLF（\\r\\n）换行的流：文字一字不差（fault-crlf）",
    ]
    table = summary.read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in names)


# -- typical mistakes, each with its own hint ----------------------------------------------
# Each group is one app.py with several mistakes that each break a different check, graded in
# one run: every check fails with the hint for its own mistake.
MISTAKES = {
    "A": [
        (
            "streams_live",
            'print(text, end="", flush=True)',
            'print(text, end="")',
            "flush=True",
        ),
        (
            "multi_turn",
            "reply = stream_reply(config, messages)",
            "reply = stream_reply(config, messages[-1:])",
            "只有新问题",
        ),
        (
            "wrong_key",
            "raise http_error(response, config)",
            "response.raise_for_status()",
            "密钥错误时程序崩溃了",
        ),
        ("crlf", 'raw_line.removesuffix(b"\\r")', "raw_line", 'removesuffix(b"\\r")'),
        (
            "broken_stream",
            'raise ChatError("连接在回答结束前断开了，回答不完整：请重试。") from None',
            "return",
            "程序却当作正常结束",
        ),
    ],
    "B": [
        (
            "streams_live",
            "response.raw.read1(65536, decode_content=True)",
            "response.raw.read()",
            "读取方式不是流式的",
        ),
        (
            "multi_turn",
            'messages.append({"role": "assistant", "content": reply.content})',
            "pass",
            "没有上一轮的回答",
        ),
        (
            "wrong_key",
            'f"HTTP {status}：{message}\\n{hint}"',
            'f"HTTP {status}：{message} {config.api_key}"',
            "出现了密钥本身",
        ),
    ],
    # app.py runs on the standard library, requests and python-dotenv only (grading.runtime):
    # another import is refused by name, and the program cannot even start.
    "the SDK": [
        (
            "uses_requests",
            "import requests\n",
            "import requests\nimport openai  # noqa: F401\n",
            "import 了 openai SDK",
        ),
        ("single_turn", "", "", "只能用标准库、requests 和 python-dotenv"),
    ],
    "the kit": [
        (
            "uses_requests",
            "import requests\n",
            "import requests\nimport lesson_helpers  # noqa: F401\n",
            "import 了 课程的 lesson_helpers",
        ),
        ("single_turn", "", "", "只能用标准库、requests 和 python-dotenv"),
    ],
    # These break every check: graded on one. (7-byte reads split some character whatever the
    # timing: on a busy machine the server's pieces can arrive merged, hiding the mistake.)
    "decode each piece": [
        (
            "split_utf8",
            '*ends, rest = piece.split(b"\\n")',
            '*ends, rest = piece.decode("utf-8", "replace").encode().split(b"\\n")',
            "",
        ),
        (
            "split_utf8",
            "response.raw.read1(65536, decode_content=True)",
            "response.raw.read1(7)",
            "decode 整行",
        ),
    ],
    "latin-1": [
        (
            "single_turn",
            '.decode("utf-8", errors="replace")  # CRLF too',
            '.decode("latin-1")',
            "乱码",
        )
    ],
    "raw SSE": [
        (
            "single_turn",
            'screen.show("answer", delta["content"])',
            'screen.show("answer", data)',
            "原始的 SSE 行或 JSON",
        )
    ],
    "no stream: true": [
        (
            "single_turn",
            '"stream": True,  # 请服务器',
            '"stream": False,  # 请服务器',
            '没有 "stream": true',
        )
    ],
}


@pytest.mark.parametrize("group", sorted(MISTAKES))
def test_typical_mistakes_get_specific_hints(tmp_path, no_lessons, group):
    mistakes = MISTAKES[group]
    app = mutant(tmp_path, *[(old, new) for _, old, new, _ in mistakes])
    if group == "A":  # the cut is then taken for the end by stream_reply too
        text = app.read_text(encoding="utf-8")
        text = text.replace(
            "if not (reply.done or reply.finish_reason or reply.interrupted):", "if False:"
        )
        app.write_text(text, encoding="utf-8")
    mistakes = [m for m in mistakes if m[3]]  # the ones with a hint to look for
    checks = ",".join({check: None for check, *_ in mistakes})
    result = grade("--app", str(app), "--only", checks, lessons=no_lessons)
    assert result.returncode == 1, result.stdout
    got, total = score(result.stdout)
    assert got == 0 and total > 0, result.stdout
    lines = hints(result.stdout).splitlines()
    assert len(lines) == len(mistakes), result.stdout
    for expected in (hint for *_, hint in mistakes):
        assert sum(expected in line for line in lines) == 1, (expected, result.stdout)


# -- cheats ---------------------------------------------------------------------------------
PRINT_ONLY = """\
import sys

question = " ".join(sys.argv[1:])
if question:
    print("你好！有什么问题或者需要帮助的吗？")
else:
    for line in sys.stdin:
        print("你刚才问的是：「你好」")
"""

# Knows the local server's rules and the grader's old fixed values: prints the answer the
# server would give to the question it was asked, after a request so the server sees one.
# (It finds the rules where the kit is on disk: the grader never puts them on its path.)
RULE_READER = (
    f"import os, sys\nsys.path.insert(0, {str(ROOT)!r})\n"
    + """\
import requests
from lesson_helpers.local_server.replies import reply_pieces

question = " ".join(sys.argv[1:]) or "你好"
base, key, model = (os.environ[n] for n in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"))
messages = [{"role": "user", "content": question}]
body = {"model": model, "messages": messages, "stream": True}
auth = {"Authorization": f"Bearer {key}"}
requests.post(f"{base}/chat/completions", json=body, headers=auth, timeout=10).close()
print("".join(reply_pieces(messages)))
"""
)


def test_an_app_that_only_prints_expected_answers_scores_nothing(tmp_path, no_lessons):
    app = write_app(tmp_path, PRINT_ONLY)
    result = grade("--app", str(app), "--only", "single,multi,split,crlf,close", lessons=no_lessons)
    assert score(result.stdout)[0] == 0, result.stdout
    assert "没有收到任何请求" in hints(result.stdout)


def test_an_app_that_computes_answers_from_the_question_fails(tmp_path, no_lessons):
    app = write_app(tmp_path, RULE_READER)
    result = grade("--app", str(app), "--only", "single,crlf", lessons=no_lessons)
    assert score(result.stdout)[0] == 0, result.stdout
    assert "回答不对" in hints(result.stdout)


# Puts together at run time the names the static check looks for, to run on the kit's client
# or the SDK; writes down what it could reach.
NAME_BUILDER = """\
import sys
import requests  # noqa: F401
from pkgutil import resolve_name

with open(LOG, "a", encoding="utf-8") as log:
    for name in ("lesson_" + "helpers.client:ChatClient", "open" + "ai:OpenAI"):
        try:
            log.write(resolve_name(name).__module__ + " is reachable\\n")
        except ImportError as error:
            log.write(f"not reachable: {error}\\n")
sys.exit(1)
"""


def test_a_name_put_together_at_run_time_finds_neither_kit_nor_sdk(tmp_path, no_lessons):
    log = tmp_path / "reached.log"
    app = write_app(tmp_path, f"LOG = {str(log)!r}\n" + NAME_BUILDER)
    subprocess.run([sys.executable, str(app)], check=False, timeout=60)
    assert log.read_text(encoding="utf-8").count("is reachable") == 2  # on the grader's Python
    log.unlink()
    result = grade("--app", str(app), "--only", "single,uses_requests", lessons=no_lessons)
    assert score(result.stdout)[0] == 0, result.stdout
    assert "import 了 pkgutil" in hints(result.stdout)
    seen = log.read_text(encoding="utf-8").splitlines()
    assert seen and all(line.startswith("not reachable") for line in seen), seen


# The kit copied under another name, which the static check does not know: a finished client.
RENAMED_KIT = """\
import sys
import requests  # noqa: F401
import mykit

client = mykit.chat_client(quiet=True)
question = " ".join(sys.argv[1:]) or "你好"
for piece in client.stream([{"role": "user", "content": question}]).text():
    print(piece, end="", flush=True)
print()
"""


def test_a_copy_of_the_kit_under_another_name_scores_nothing(tmp_path, no_lessons):
    shutil.copytree(ROOT / "lesson_helpers", tmp_path / "mykit")
    app = write_app(tmp_path, RENAMED_KIT)
    result = grade("--app", str(app), "--only", "single,uses_requests", lessons=no_lessons)
    assert result.returncode == 1, result.stdout + result.stderr
    assert score(result.stdout)[0] == 0, result.stdout
    lines = hints(result.stdout).splitlines()
    assert len(lines) == 2 and all("行课程包的代码" in line for line in lines), result.stdout
    assert "mykit/" in lines[0] and "lesson_helpers/" in lines[0]


def test_one_module_of_the_kit_pasted_next_to_app_py_is_found(tmp_path, no_lessons):
    source = (ROOT / "lesson_helpers" / "sse.py").read_text(encoding="utf-8")
    (tmp_path / "parser.py").write_text(source, encoding="utf-8")
    app = write_app(tmp_path, SOLUTION)
    result = grade("--app", str(app), "--only", "single", lessons=no_lessons)
    assert score(result.stdout)[0] == 0, result.stdout
    assert "parser.py 里有" in hints(result.stdout) and "lesson_helpers/sse.py" in result.stdout


def test_the_reference_s_own_lines_are_not_taken_for_the_kit(tmp_path):
    from grading.kit_copy import find_kit_code, kit_lines

    modules = kit_lines(ROOT / "lesson_helpers", APP.read_text(encoding="utf-8"))
    for text in (SOLUTION, (ROOT / "student" / "app.py").read_text(encoding="utf-8")):
        write_app(tmp_path, text)
        assert find_kit_code(tmp_path, modules) is None


def test_a_lessons_folder_that_is_not_there_is_one_line(tmp_path):
    result = grade("--app", str(write_app(tmp_path, SOLUTION)), lessons=tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--lessons" in result.stderr, result.stderr


def test_every_run_uses_new_questions_models_and_keys(tmp_path, no_lessons):
    log = tmp_path / "seen.jsonl"
    spy = (
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a', encoding='utf-8') as f:\n"
        "    f.write(json.dumps([sys.argv[1:], os.environ.get('LLM_MODEL'),"
        " os.environ.get('LLM_API_KEY')]) + '\\n')\n"
    )
    app = write_app(tmp_path, spy + SOLUTION.replace("from __future__ import annotations\n", ""))
    for _ in range(2):
        result = grade("--app", str(app), "--only", "single,wrong_key", lessons=no_lessons)
        assert score(result.stdout) == (25, 25), result.stdout
    runs = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(runs) == 4  # two checks, twice
    questions = [tuple(args) for args, _, _ in runs]
    models = [model for _, model, _ in runs]
    keys = [key for _, _, key in runs]
    assert len(set(questions)) == 4 and ("你好",) not in questions
    assert len(set(models)) == 4
    assert not any(m.startswith("fault-") or m == "Qwen/Qwen2.5-7B-Instruct" for m in models)
    assert len(set(keys)) == 4  # a fresh server key per run, a fresh wrong key per check


# -- an assignment repository, and the workflow that grades it ------------------------------
def test_a_generated_assignment_repository_grades_itself(tmp_path):
    repo = tmp_path / "assignment"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_student_edition.py"), "--template", repo],
        check=True,
        capture_output=True,
    )
    shutil.copyfile(APP, repo / "app.py")  # the reference, markers and all: it is a solution
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "start"]):
        who = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
        subprocess.run(["git", "-C", str(repo), *who, *args], check=True, env=env)
    result = grade("--only", "single,env_not,key_in", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert score(result.stdout) == (25, 25)


def test_a_refused_submission_still_gets_a_result_json(tmp_path, no_lessons):
    out = tmp_path / "result.json"
    result = grade("--app", "app.py", "--classroom50", str(out), lessons=no_lessons)
    assert result.returncode == 2
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["score"] == 0 and not data["tests"][0]["passed"]
    assert "student/app.py" in data["tests"][0]["test-name"]


def test_the_workflow_runs_the_teacher_s_pinned_grader_on_the_workspace():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / "scripts" / "template" / "grade.yml").read_text("utf-8"))
    assert workflow["permissions"] == {"contents": "read"}
    steps = workflow["jobs"]["grade"]["steps"]
    checkouts = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout")]
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    grader = next(s for s in checkouts if "repository" in s["with"])
    assert grader["with"]["repository"] == "${{ env.GRADER_REPOSITORY }}"
    assert grader["with"]["ref"] == "${{ env.GRADER_REF }}"
    submission = next(s for s in checkouts if "repository" not in s["with"])
    assert submission["with"]["fetch-depth"] == 0  # the whole history, for the key scan
    assert steps.index(grader) < steps.index(submission)
    text = "\n".join(str(s.get("run", "")) for s in steps)
    assert 'mv trusted-grader "$RUNNER_TEMP/grader"' in text  # out of the workspace
    grade_step = next(s for s in steps if "python -m grading" in str(s.get("run", "")))
    assert grade_step["working-directory"] == "${{ runner.temp }}/grader"
    assert '--repo "$GITHUB_WORKSPACE"' in grade_step["run"]
    assert "-u GITHUB_STEP_SUMMARY" in grade_step["run"]  # the program cannot find it
    assert 'pip install -r "$RUNNER_TEMP/grader/grading/requirements.txt"' in text
    everything = (ROOT / "scripts" / "template" / "grade.yml").read_text("utf-8")
    assert "secrets." not in everything and "github.token" not in everything
    assert "GITHUB_TOKEN" not in everything
