"""Checks on the repository itself: no `.env` and no key committed.

They look at what Git tracks (``git ls-files``: committed or staged files), because that is
what a push publishes. Untracked files -- like your own `.env` -- are fine.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

# Shaped like a real key: "sk-" and 20+ key characters, or a long Bearer token.
KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}|\bBearer\s+[A-Za-z0-9._\-]{24,}")
MAX_BYTES = 2_000_000  # bigger files are data, not code


def fail(hint: str) -> None:
    pytest.fail(hint, pytrace=False)


def tracked_files(app: Path) -> tuple[Path, list[str]]:
    """The repository's top folder and the files Git tracks there (skip if not a repository)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(app.parent), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except OSError:
        pytest.skip("没有安装 Git，跳过")
    if top.returncode != 0:
        pytest.skip("不在 Git 仓库里，跳过")
    root = Path(top.stdout.strip())
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"],
        capture_output=True,
        timeout=20,
        check=True,
    )
    names = [name for name in listing.stdout.decode("utf-8", "replace").split("\0") if name]
    return root, names


def mask(key: str) -> str:
    return f"{key[:3]}…{key[-4:]}"


@pytest.mark.points(5)
def check_env_not_committed(app: Path) -> None:
    """没有提交 .env"""
    _, names = tracked_files(app)
    committed = [
        name
        for name in names
        if Path(name).name == ".env"
        or (Path(name).name.startswith(".env.") and Path(name).name != ".env.example")
    ]
    if committed:
        fail(
            f"{committed[0]} 被提交到了仓库，里面的密钥等于公开了：先到服务商后台作废这个密钥，"
            f"再运行 git rm --cached {committed[0]} 并提交（.gitignore 里已经有 .env）。"
        )


@pytest.mark.points(5)
def check_no_key_in_files(app: Path) -> None:
    """仓库里没有密钥（sk-… 或 Bearer …）"""
    root, names = tracked_files(app)
    for name in names:
        path = root / name
        try:
            if not path.is_file() or path.stat().st_size > MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data:
            continue  # a binary file
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            found = KEYLIKE.search(line)
            if found:
                fail(
                    f"{name} 第 {number} 行像是一个真实的密钥（{mask(found.group(0))}）："
                    "先到服务商后台作废它，再从文件里删掉；密钥只放在 .env 里，代码用 "
                    "os.getenv 读取。"
                )
