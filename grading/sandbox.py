"""Running an untrusted program (the student's app.py) so that it cannot harm the grader.

Every run gets:

* a minimal environment (:func:`minimal_env`): PATH, a fresh HOME, LANG, a few PYTHON*
  basics and what the caller adds -- never the grader's own variables (``GITHUB_TOKEN``,
  ``GITHUB_STEP_SUMMARY``, the result file's path, proxies, real keys);
* its own session and process group (``start_new_session``), killed as a whole at the end;
  on Linux the grader is also a *child subreaper* (:func:`enable_orphan_reaping`), so
  processes that left the group (``setsid``, double fork) come back to it and are killed too;
* resource limits (:class:`Limits`: CPU time, address space, file size, number of
  processes), set by :mod:`grading.limits_exec` before the program starts;
* a wall-clock timeout;
* bounded output: the first ``keep_bytes`` of each stream are kept, the rest is read and
  counted but dropped, so 300 MB of output cost the grader 1 MB. The readers stop shortly
  after the program ends, even if a grandchild still holds the pipe open.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KEEP_BYTES",
    "Limits",
    "Run",
    "enable_orphan_reaping",
    "kill_process_tree",
    "minimal_env",
    "reap_orphans",
    "run_untrusted",
]

KEEP_BYTES = 1 << 20  # output kept per stream; the rest is counted and dropped
READ_GRACE = 1.0  # seconds to keep reading after the program ended and was killed
LIMITS_EXEC = Path(__file__).resolve().with_name("limits_exec.py")
POSIX = os.name == "posix"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one untrusted program (and everything it starts)."""

    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30  # address space: plenty for python + requests (~40 MB)
    file_bytes: int = 64 << 20  # the largest file it may write
    extra_processes: int = 128  # processes/threads beyond what this user already runs

    def as_json(self) -> str:
        processes = _user_tasks()
        return json.dumps(
            {
                "cpu": self.cpu_seconds,
                "memory": self.memory_bytes,
                "file_size": self.file_bytes,
                "processes": None if processes is None else processes + self.extra_processes,
                "core": 0,
            }
        )


def _user_tasks() -> int | None:
    """How many tasks (threads) this user runs now: RLIMIT_NPROC counts them all (Linux)."""
    if not sys.platform.startswith("linux") or os.getuid() == 0:
        return None  # root ignores RLIMIT_NPROC; elsewhere /proc is missing
    uid, count = str(os.getuid()), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def minimal_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of an untrusted run: only what a Python program needs."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
        # The local server is on this machine: no proxy may carry its requests.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if os.name == "nt":  # what Python itself needs on Windows
        for name in ("SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(USERPROFILE=str(home), TEMP=str(home), TMP=str(home))
    env.update(extra or {})
    return env


class _Capture:
    """One output stream: the first ``keep`` bytes, when they arrived, and the total count."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept = bytearray()
        self.total = 0
        self.times: list[float] = []  # time of each read that added kept bytes ...
        self.ends: list[int] = []  # ... and the kept length after it
        self._lock = threading.Lock()

    def add(self, piece: bytes, moment: float) -> None:
        with self._lock:
            self.total += len(piece)
            room = self.keep - len(self.kept)
            if room > 0:
                self.kept += piece[:room]
                self.times.append(moment)
                self.ends.append(len(self.kept))

    def snapshot(self) -> tuple[bytes, list[float], list[int], int]:
        with self._lock:
            return bytes(self.kept), list(self.times), list(self.ends), self.total


def _pump(fd: int, capture: _Capture) -> None:
    try:
        while piece := os.read(fd, 65536):
            capture.add(piece, time.monotonic())
    except OSError:
        pass


@dataclass
class Run:
    """One run of an untrusted program: what it printed, when, and how it ended."""

    returncode: int | None  # None: still running at the timeout, so it was stopped
    stdout: str
    stderr: str
    started: float
    ended: float
    stdout_total: int = 0  # bytes it wrote, including the ones dropped
    stderr_total: int = 0
    _raw: bytes = field(default=b"", repr=False)
    _times: list[float] = field(default_factory=list, repr=False)
    _ends: list[int] = field(default_factory=list, repr=False)

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def truncated(self) -> bool:
        return self.stdout_total > len(self._raw)

    def first_seen(self, text: str) -> float | None:
        """Seconds after the start at which ``text`` had fully appeared on stdout."""
        position = self._raw.find(text.encode())
        if position < 0:
            return None
        index = bisect.bisect_left(self._ends, position + len(text.encode()))
        return self._times[index] - self.started if index < len(self._times) else None


# -- process trees --------------------------------------------------------------------------
_reaping = False
_protected: set[int] = set()


def enable_orphan_reaping() -> bool:
    """Make this process a child subreaper (Linux): orphaned descendants of untrusted programs
    are re-parented to it instead of init, so :func:`reap_orphans` can find and kill them.

    Only for a process that owns all its children (the grader's command line): children that
    exist now are left alone. Returns False where this is not available.
    """
    global _reaping
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
            return False
    except (OSError, AttributeError):
        return False
    _protected.update(_children())
    _reaping = True
    return True


def _children() -> list[int]:
    """The process ids of this process's children (Linux /proc)."""
    me = os.getpid()
    found: set[int] = set()
    try:
        for task in os.scandir(f"/proc/{me}/task"):
            with contextlib.suppress(OSError):
                with open(f"{task.path}/children", encoding="ascii") as f:
                    found.update(int(pid) for pid in f.read().split())
        return sorted(found)
    except OSError:
        pass
    for entry in os.scandir("/proc"):  # kernels without the children file
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry.name))
    return sorted(found)


def reap_orphans(deadline: float = 5.0) -> int:
    """Kill and reap every child of this process that is not protected (see
    :func:`enable_orphan_reaping`); repeat until none is left. Returns how many were killed."""
    if not _reaping:
        return 0
    killed = 0
    ours = os.getpgrp()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        victims = [pid for pid in _children() if pid not in _protected]
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(OSError):
                group = os.getpgid(pid)
                if group != ours:
                    os.killpg(group, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            killed += 1
        for pid in victims:
            _wait_dead(pid, end)
    return killed


def _wait_dead(pid: int, end: float) -> None:
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)


def kill_process_tree(process: subprocess.Popen[bytes], reap: bool = True) -> None:
    """Kill ``process``, its process group, and (with ``reap`` and reaping enabled) every
    orphan. Runs that go on side by side pass ``reap=False`` and call :func:`reap_orphans`
    once all of them have ended."""
    if POSIX:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # its group: start_new_session made it
    elif process.poll() is None:
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False
        )
    with contextlib.suppress(OSError):
        process.kill()
    process.wait()
    if reap:
        reap_orphans()


# -- one run ----------------------------------------------------------------------------------
def run_untrusted(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes = b"",
    timeout: float = 20.0,
    limits: Limits | None = None,
    keep_bytes: int = KEEP_BYTES,
    reap: bool = True,
) -> Run:
    """Run ``argv`` (``argv[0]`` an absolute path) untrusted; return what it did.

    Every process it started is dead when this returns (with ``reap=False``: its process
    group is; orphans that left it die at the next :func:`reap_orphans`).
    """
    command = list(argv)
    options: dict = {}
    if POSIX:
        limits = limits or Limits()
        command = [sys.executable, "-I", "-S", str(LIMITS_EXEC), limits.as_json(), "--", *argv]
        options["start_new_session"] = True
    else:
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
        **options,
    )
    out, err = _Capture(keep_bytes), _Capture(keep_bytes)
    readers = [
        threading.Thread(target=_pump, args=(process.stdout.fileno(), out), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=_pump, args=(process.stderr.fileno(), err), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        if stdin:
            process.stdin.write(stdin)  # type: ignore[union-attr]  # ours: small, never blocks
        process.stdin.close()  # type: ignore[union-attr]
    except OSError:
        pass  # it ended (or closed its input) without reading
    returncode: int | None
    try:
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    ended = time.monotonic()
    kill_process_tree(process, reap)
    stop_reading = time.monotonic() + READ_GRACE
    for reader in readers:
        reader.join(timeout=max(0.0, stop_reading - time.monotonic()))
    raw, times, ends, out_total = out.snapshot()
    err_raw, _, _, err_total = err.snapshot()
    for stream in (process.stdout, process.stderr):
        if not any(reader.is_alive() for reader in readers):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
    return Run(
        returncode,
        raw.decode("utf-8", errors="replace"),
        err_raw.decode("utf-8", errors="replace"),
        started,
        ended,
        out_total,
        err_total,
        raw,
        times,
        ends,
    )
