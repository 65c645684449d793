"""Start a program under resource limits: ``python -I -S limits_exec.py LIMITS -- PROGRAM ARGS``.

The grader starts every untrusted program (the student's app.py, a notebook's kernel) through
this tiny script instead of a ``preexec_fn`` (which is unsafe in a process with threads, and
the grader runs its local server in threads). It sets the limits in its own process, then
replaces itself with the program (``os.execv``: same process id, same process group), so the
program and everything it starts inherit them. Standard library only; run with ``-I -S`` so
nothing from the current directory or the environment is imported.

``LIMITS`` is a JSON object: ``{"cpu": seconds, "memory": bytes, "file_size": bytes,
"processes": n, "core": 0}``; a missing or null entry leaves that limit alone.
"""

from __future__ import annotations

import json
import os
import sys

try:
    import resource
except ImportError:  # not POSIX: nothing to set
    resource = None  # type: ignore[assignment]

_NAMES = {
    "cpu": "RLIMIT_CPU",
    "memory": "RLIMIT_AS",
    "file_size": "RLIMIT_FSIZE",
    "processes": "RLIMIT_NPROC",
    "core": "RLIMIT_CORE",
}


def apply(limits: dict[str, int | None]) -> None:
    """Lower this process's limits (never raise them above the current hard limit)."""
    if resource is None:
        return
    for key, value in limits.items():
        name = _NAMES.get(key)
        if value is None or name is None or not hasattr(resource, name):
            continue
        which = getattr(resource, name)
        _, hard = resource.getrlimit(which)
        wanted = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        # CPU: the soft limit sends SIGXCPU, the hard one (a second later) SIGKILL.
        new_hard = wanted + 1 if key == "cpu" and hard == resource.RLIM_INFINITY else wanted
        try:
            resource.setrlimit(which, (wanted, new_hard))
        except (ValueError, OSError):
            pass  # e.g. a container that forbids this limit: the others still apply


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: limits_exec.py LIMITS -- PROGRAM [ARGS...]\n")
        sys.exit(2)
    apply(json.loads(argv[0]))
    program = argv[2:]
    try:
        os.execv(program[0], program)
    except OSError as exc:
        sys.stderr.write(f"limits_exec: cannot start {program[0]}: {exc.strerror}\n")
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
