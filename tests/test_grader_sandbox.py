"""The grader treats the submission as untrusted (issue "Hardening"): nothing from the
student's folder is imported by the grader, and the student's program runs with a minimal
environment, in its own process group, under limits, with bounded output, and every process it
starts is dead before the results are written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grading import sandbox

ROOT = Path(__file__).resolve().parent.parent
STUDENT_APP = ROOT / "student" / "app.py"
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


@pytest.fixture(scope="module")
def no_lessons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-lessons")


def grade(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, prefix=()):
    return subprocess.run(
        [sys.executable, *prefix, "-m", "grading", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=120,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead
    except FileNotFoundError:
        return True


# -- nothing from the submission runs inside the grader -------------------------------------
def _planted(repo: Path, marks: Path, with_grading: bool) -> Path:
    """A submission whose folder holds modules named like the grader's own imports."""
    spy = f"""\
        import sys
        with open({str(marks)!r}, "a", encoding="utf-8") as f:
            who = "grader" if "grading" in sys.modules else "program"
            f.write(who + " imported " + __name__ + "\\n")
        """
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STUDENT_APP, repo / "app.py")
    write(repo / "requests.py", spy)
    write(repo / "pytest.py", spy)
    write(repo / "lesson_helpers" / "__init__.py", spy)
    if with_grading:
        write(repo / "grading" / "__init__.py", spy)
        write(repo / "grading" / "__main__.py", 'print("得分：100/100")\n')
    return repo


@pytest.mark.parametrize("how", ["from the grader's tree", "python -P in the submission"])
def test_the_submission_s_modules_are_never_imported_by_the_grader(tmp_path, no_lessons, how):
    marks = tmp_path / "marks.txt"
    repo = _planted(tmp_path / "repo", marks, with_grading=True)
    args = ["--only", "single_turn", "--lessons", str(no_lessons)]
    if how == "from the grader's tree":
        result = grade("--repo", str(repo), *args)
    else:
        result = grade("--repo", ".", *args, cwd=repo, env={"PYTHONPATH": str(ROOT)}, prefix=["-P"])
    assert "得分：0/15" in result.stdout, result.stdout + result.stderr
    seen = marks.read_text(encoding="utf-8") if marks.exists() else ""
    assert "grader" not in seen, seen


def test_a_requests_py_in_the_submission_does_not_reach_the_grader(tmp_path, no_lessons):
    """The issue's case: run in the student's folder, the grader imported its requests.py and
    gave an unfinished app.py 100/100."""
    marks = tmp_path / "marks.txt"
    repo = _planted(tmp_path / "repo", marks, with_grading=False)
    result = grade(
        "--only", "single_turn", "--lessons", str(no_lessons),
        cwd=repo, env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert "得分：0/15" in result.stdout, result.stdout + result.stderr
    seen = marks.read_text(encoding="utf-8") if marks.exists() else ""
    assert "grader" not in seen, seen


# -- the student's program: environment, limits, processes, output --------------------------
ENV_DUMP = """\
    import json, os, resource, sys
    limits = {{n: resource.getrlimit(getattr(resource, n))[0]
              for n in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CORE")}}
    with open({out!r}, "w", encoding="utf-8") as f:
        json.dump({{"env": dict(os.environ), "cwd": os.getcwd(), "limits": limits,
                   "session": os.getsid(0) == os.getpid()}}, f)
    """
ALLOWED = {
    "PATH", "HOME", "TMPDIR", "LANG", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE",
    "NO_COLOR", "NO_PROXY", "no_proxy", "LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL", "LLM_TIMEOUT",
    "LLM_PROVIDER", "LC_CTYPE",
}  # fmt: skip


@linux_only
def test_the_program_gets_a_minimal_environment_and_limits(tmp_path, no_lessons):
    out = tmp_path / "seen.json"
    app = write(tmp_path / "repo" / "app.py", ENV_DUMP.format(out=str(out)))
    result_json, summary = tmp_path / "result.json", tmp_path / "summary.md"
    secrets = {
        "GITHUB_TOKEN": "ghs_not-a-real-token",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GRADING_SECRET": "do-not-pass",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "OPENAI_API_KEY": "not-a-real-key",
    }
    grade("--app", str(app), "--only", "single_turn", "--lessons", str(no_lessons),
          "--classroom50", str(result_json), env=secrets)  # fmt: skip
    seen = json.loads(out.read_text(encoding="utf-8"))
    env = seen["env"]
    assert set(env) <= ALLOWED, set(env) - ALLOWED
    assert env["HOME"] != os.environ.get("HOME")
    assert not any(str(tmp_path) in value for value in env.values())  # no path of ours
    assert not Path(seen["cwd"]).resolve().is_relative_to(tmp_path.resolve())  # it ran a copy
    assert seen["session"]  # its own session and process group
    limits = seen["limits"]
    assert 0 < limits["RLIMIT_CPU"] <= 60 and 0 < limits["RLIMIT_AS"] <= 2 << 30
    assert 0 < limits["RLIMIT_FSIZE"] <= 1 << 30 and limits["RLIMIT_CORE"] == 0


SPAWNER = """\
    import os, subprocess, sys, time
    pids = []
    for i in range(100):
        pid = os.fork()
        if pid == 0:
            if i % 2:
                os.setsid()  # leaves the process group
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                              start_new_session=True)  # keeps stdout open
    pids.append(holder.pid)
    with open({out!r}, "w") as f:
        f.write(" ".join(map(str, pids)))
    print("bye", flush=True)
    """


@linux_only
def test_no_child_survives_and_a_grandchild_holding_stdout_does_not_block(tmp_path, no_lessons):
    pids = tmp_path / "pids.txt"
    app = write(tmp_path / "app.py", SPAWNER.format(out=str(pids)))
    started = time.monotonic()
    result = grade("--app", str(app), "--only", "single_turn", "--lessons", str(no_lessons))
    assert time.monotonic() - started < 30, "a grandchild holding stdout blocked the grader"
    assert "得分：0/15" in result.stdout, result.stdout + result.stderr
    children = [int(pid) for pid in pids.read_text().split()]
    assert len(children) == 101
    alive = [pid for pid in children if not dead(pid)]
    for pid in alive:  # clean up before failing
        os.kill(pid, 9)
    assert alive == []


@linux_only
def test_300_mb_of_output_keep_the_grader_s_memory_small(tmp_path, no_lessons):
    app = write(
        tmp_path / "app.py",
        """\
        import sys
        block = b"x" * (1 << 20)
        for _ in range(300):
            sys.stdout.buffer.write(block)
        """,
    )
    peak = tmp_path / "peak.txt"
    # VmHWM: this process's own peak. (ru_maxrss would also count the memory of the process
    # this one was forked from, before it ran python: pytest's.)
    measure = (
        "import re, runpy, sys\n"
        f"sys.argv = ['grading', '--app', {str(app)!r}, '--only', 'single_turn',"
        f" '--lessons', {str(no_lessons)!r}]\n"
        "try:\n    runpy.run_module('grading', run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        "    status = open('/proc/self/status').read()\n"
        f"    open({str(peak)!r}, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', status).group(1))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "得分：0/15" in result.stdout, result.stdout + result.stderr
    assert "MB 文字" in result.stdout
    used = int(peak.read_text()) >> 10
    assert used < 150, f"the grader used {used} MB"


REWRITER = """\
    import os, sys, time
    args = open(f"/proc/{os.getppid()}/cmdline", "rb").read().decode().split("\\0")
    targets = [args[i + 1] for i, a in enumerate(args) if a in ("--classroom50", "--summary")]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(1.5)  # until the grader has written its results
            for target in targets:
                with open(target, "w") as f:
                    f.write("HACKED")
        os._exit(0)
    print("bye")
    """


@linux_only
def test_results_are_written_after_every_student_process_is_dead(tmp_path, no_lessons):
    app = write(tmp_path / "app.py", REWRITER)
    result_json, summary = tmp_path / "result.json", tmp_path / "summary.md"
    grade("--app", str(app), "--only", "single_turn", "--lessons", str(no_lessons),
          "--classroom50", str(result_json), "--summary", str(summary))  # fmt: skip
    time.sleep(2.5)  # the rewriter would have struck by now
    assert json.loads(result_json.read_text(encoding="utf-8"))["score"] == 0
    assert summary.read_text(encoding="utf-8").startswith("## 自动评分：0/15")


# -- the sandbox itself ----------------------------------------------------------------------
def test_a_run_that_does_not_end_is_stopped_with_its_children(tmp_path):
    script = write(
        tmp_path / "hang.py",
        f"""\
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(tmp_path / "child")!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    started = time.monotonic()
    run = sandbox.run_untrusted(
        [sys.executable, str(script)], cwd=tmp_path, env=sandbox.minimal_env(tmp_path), timeout=2
    )
    assert run.timed_out and run.stdout == "started\n"
    assert time.monotonic() - started < 6
    if sys.platform.startswith("linux"):
        child = int((tmp_path / "child").read_text())
        deadline = time.monotonic() + 3
        while not dead(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dead(child)


def test_output_beyond_the_cap_is_counted_not_kept(tmp_path):
    script = write(tmp_path / "loud.py", 'import sys\nsys.stdout.write("a" * 5000 + "b")\n')
    run = sandbox.run_untrusted(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=sandbox.minimal_env(tmp_path),
        keep_bytes=1000,
    )
    assert run.stdout == "a" * 1000 and run.stdout_total == 5001 and run.truncated
    assert run.first_seen("a" * 10) is not None and run.first_seen("b") is None
