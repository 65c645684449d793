"""Looking for a committed `.env` or a key anywhere in a repository's history.

A push publishes every commit, not just the last one: a key that was committed once and then
deleted (or ``git rm --cached``) is still public. So the scan reads every blob reachable from
any ref (all branches, tags, the stash), the index, the working copies of tracked files and
every commit message -- whatever their size, including notebooks and files with NUL bytes
(UTF-16 text too). It never prints a key: findings carry the masked form only.

Git runs without the user's or the system's configuration, hooks or fsmonitor, so a
repository cannot make the grader run a command of its choosing.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from lesson_helpers.config import mask_key

__all__ = ["Finding", "RepoScan", "find_keys", "is_env_file", "scan_repository"]

# Shapes of real keys and tokens: OpenAI-style sk-… (OpenAI, DeepSeek, SiliconFlow, Anthropic,
# OpenRouter), Groq, Google, Hugging Face, GitHub, and long Bearer tokens.
_KEY = re.compile(
    rb"(?<![A-Za-z0-9_\-])(?:"
    rb"sk-[A-Za-z0-9_\-]{20,}"
    rb"|gsk_[A-Za-z0-9]{20,}"
    rb"|AIza[0-9A-Za-z_\-]{30,}"
    rb"|hf_[A-Za-z0-9]{30,}"
    rb"|gh[pousr]_[A-Za-z0-9]{30,}"
    rb"|github_pat_[A-Za-z0-9_]{30,}"
    rb")"
    rb"|Bearer\s+[A-Za-z0-9._\-]{24,}"
)
# In a .env-like file (.envrc, .env.example, x.env) any KEY/TOKEN/SECRET assignment with a real
# value counts, whatever the key looks like.
_ASSIGNMENT = re.compile(
    rb"(?im)^\s*(?:export\s+)?[A-Z0-9_]*(?:KEY|TOKEN|SECRET)[A-Z0-9_]*\s*=\s*[\"']?"
    rb"([^\s\"'#]{8,})"
)
# Values that are obviously not keys: placeholders, the local server's key, test fakes.
_HARMLESS = (
    b"fake",
    b"example",
    b"placeholder",
    b"dummy",
    b"your",
    b"xxxx",
    b"not-a-real",
    b"redacted",
    b"test",
    b"local-practice-key",
    b"changeme",
    b"${",
    b"$(",
)
_CHUNK = 8 << 20  # read big files in pieces
_OVERLAP = 512  # ... overlapping, so a key across two pieces is still found
ENV_EXAMPLES = {".env.example", ".env.sample", ".env.template", ".env.dist"}


@dataclass(frozen=True)
class Finding:
    path: str  # where it was found (a file, or "提交说明" for a commit message)
    where: str  # "提交 1a2b3c4", "暂存区" or "工作区"
    masked: str = ""  # the key, masked (sk-…abcd); empty for a committed .env


@dataclass
class RepoScan:
    problem: str | None = None  # why the repository could not be checked (one line)
    env_files: list[Finding] = field(default_factory=list)
    keys: list[Finding] = field(default_factory=list)


def is_env_file(path: str) -> bool:
    """`.env` or `.env.local` and friends (the file with the real key), not `.env.example`."""
    name = PurePosixPath(path).name
    return name == ".env" or (name.startswith(".env.") and name not in ENV_EXAMPLES)


def _env_like(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.startswith(".env") or name.endswith(".env")


def find_keys(data: bytes, env_like: bool = False) -> list[bytes]:
    """Key-like strings in ``data`` (raw bytes: any encoding, NUL bytes allowed)."""
    variants = [data]
    if b"\x00" in data:  # UTF-16 text (PowerShell's `echo > .env`) or a binary file
        variants.append(data.replace(b"\x00", b""))
    found: list[bytes] = []
    for text in variants:
        candidates = [m.group(0) for m in _KEY.finditer(text)]
        if env_like:
            candidates += [m.group(1) for m in _ASSIGNMENT.finditer(text)]
        for candidate in candidates:
            token = candidate.split()[-1]  # "Bearer xyz" -> "xyz"
            if not any(word in token.lower() for word in _HARMLESS) and token not in found:
                found.append(token)
    return found


def _mask(token: bytes) -> str:
    return mask_key(token.decode("ascii", errors="replace"))


def _scan_stream(stream: _Limited | IO[bytes], size: int, env_like: bool) -> list[bytes]:
    """find_keys over ``size`` bytes read from ``stream`` piece by piece (bounded memory)."""
    found: list[bytes] = []
    tail = b""
    left = size
    while left > 0:
        piece = stream.read(min(_CHUNK, left))
        if not piece:
            break
        left -= len(piece)
        for token in find_keys(tail + piece, env_like):
            if token not in found:
                found.append(token)
        tail = piece[-_OVERLAP:]
    return found


# -- git ------------------------------------------------------------------------------------
class _Git:
    """git with no configuration from outside the repository, no hooks, no prompts."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(home),
            "LANG": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_PAGER": "cat",
        }
        if os.name == "nt" and "SYSTEMROOT" in os.environ:
            self.env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]

    def command(self, *args: str) -> list[str]:
        return [
            "git",
            "-c",
            "core.fsmonitor=false",
            "-c",
            f"core.hooksPath={os.devnull}",
            "-c",
            "core.quotePath=false",
            "-c",
            f"safe.directory={self.root}",
            "-C",
            str(self.root),
            *args,
        ]

    def run(self, *args: str, check: bool = True) -> bytes:
        done = subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
        return done.stdout

    def blobs(self, shas: list[str]) -> Iterator[tuple[str, int, _Limited]]:
        """(sha, size, stream positioned at the content) for each blob, via cat-file --batch."""
        process = subprocess.Popen(
            self.command("cat-file", "--batch"),
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

        def feed() -> None:
            try:
                for sha in shas:
                    process.stdin.write(sha.encode() + b"\n")  # type: ignore[union-attr]
                process.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        out: IO[bytes] = process.stdout  # type: ignore[assignment]
        try:
            for _ in shas:
                header = out.readline().split()
                if len(header) < 3:  # "<sha> missing"
                    continue
                sha, kind, size = header[0].decode(), header[1], int(header[2])
                content = _Limited(out, size)
                if kind == b"blob":
                    yield sha, size, content
                while content.read(_CHUNK):  # whatever the scan left unread
                    pass
                out.read(1)  # the newline after the content
        finally:
            process.kill()
            process.wait()
            writer.join(timeout=5)


class _Limited:
    """A view of the next ``size`` bytes of a stream."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int) -> bytes:
        data = self.stream.read(min(n, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        return data


def scan_repository(path: Path) -> RepoScan:
    """Scan the repository that contains ``path``."""
    with tempfile.TemporaryDirectory(prefix="grading-git-") as home:
        return _scan(path, Path(home))


def _scan(path: Path, home: Path) -> RepoScan:
    probe = _Git(path, home)
    try:
        top = subprocess.run(
            probe.command("rev-parse", "--show-toplevel"),
            env=probe.env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
    except OSError:
        return RepoScan(
            "没有找到 Git：装上 Git（https://git-scm.com），在 git clone 下来的仓库里评分。"
        )
    if top.returncode != 0:
        return RepoScan(
            "这里不是 Git 仓库，没法检查提交历史里有没有密钥：请在 git clone 下来的仓库里评分"
            "（或先 git init 并提交）。"
        )
    git = _Git(Path(top.stdout.decode("utf-8", "replace").strip()), home)
    if git.run("rev-parse", "--is-shallow-repository").strip() == b"true":
        return RepoScan(
            "这是一个浅克隆（只有最近的提交），看不到完整的历史："
            "先运行 git fetch --unshallow 再评分。"
        )
    scan = RepoScan()
    _scan_names(git, scan)
    _scan_contents(git, scan)
    return scan


def _split(data: bytes) -> list[str]:
    return [name.decode("utf-8", "replace") for name in data.split(b"\0") if name]


def _scan_names(git: _Git, scan: RepoScan) -> None:
    """A .env that was ever committed (even if deleted later), or is staged now."""
    ever = _split(git.run("log", "--all", "-m", "--no-renames", "--name-only", "--format=", "-z"))
    staged = _split(git.run("ls-files", "-z"))
    seen: set[str] = set()
    for name in [*ever, *staged]:
        if not is_env_file(name) or name in seen:
            continue
        seen.add(name)
        commit = git.run("log", "--all", "-1", "--format=%h", "--", name).strip().decode()
        scan.env_files.append(Finding(name, f"提交 {commit}" if commit else "暂存区"))


def _scan_contents(git: _Git, scan: RepoScan) -> None:
    paths: dict[str, str] = {}  # blob sha -> a path it was seen at
    for line in git.run("rev-list", "--all", "--objects").splitlines():
        sha, _, name = line.decode("utf-8", "replace").partition(" ")
        paths.setdefault(sha, name)
    staged: dict[str, str] = {}
    for entry in git.run("ls-files", "-s", "-z").split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) >= 2:
            staged.setdefault(parts[1].decode(), name.decode("utf-8", "replace"))
    candidates = [sha for sha, name in paths.items() if name] + [
        sha for sha in staged if sha not in paths
    ]
    reported: set[bytes] = set()

    def report(tokens: Iterable[bytes], name: str, where: str) -> None:
        for token in tokens:
            if token not in reported:
                reported.add(token)
                scan.keys.append(Finding(name, where, _mask(token)))

    for sha, size, stream in git.blobs(candidates):
        name = paths.get(sha) or staged.get(sha, "")
        tokens = _scan_stream(stream, size, _env_like(name))
        if tokens:
            if sha in paths:
                commit = git.run("log", "--all", "-1", "--format=%h", f"--find-object={sha}")
                where = f"提交 {commit.strip().decode()}"
            else:
                where = "暂存区"
            report(tokens, name, where)
    for name in set(staged.values()):  # what `git commit -a` would publish next
        file = git.root / name
        if file.is_file() and not file.is_symlink():
            with file.open("rb") as stream:
                report(_scan_stream(stream, file.stat().st_size, _env_like(name)), name, "工作区")
    messages = git.run("log", "--all", "--format=%B%x00")
    report(find_keys(messages), "提交说明", "提交历史")
