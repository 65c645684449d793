"""Checks on the repository itself: no `.env` and no key anywhere in its history.

A push publishes every commit, so they look at the whole history (see
:mod:`grading.repo_scan`), not just the files of the last commit. Finding either fails the
whole submission: the key is public, and the first thing to do is to revoke it.
Untracked files -- like your own `.env` -- are fine.
"""

from __future__ import annotations

from .checks import check, fail
from .repo_scan import Finding, RepoScan

__all__ = ["REPO_CHECKS", "gate"]


def _env_fix(found: Finding) -> str:
    if found.where == "暂存区":
        return (
            f"{found.path} 被 git add 了（还没提交）：运行 git rm --cached {found.path}，"
            "确认 .gitignore 里有 .env；如果已经推送过，先到服务商后台作废里面的密钥。"
        )
    return (
        f"{found.path} 被提交到了仓库（{found.where}），里面的密钥等于公开了：先到服务商后台"
        f"作废这个密钥，再改写历史把它从所有提交里删掉（git filter-repo --invert-paths "
        f"--path {found.path}，再 git push --force）；只 git rm --cached 不够，旧提交里还有它。"
    )


def _key_fix(found: Finding) -> str:
    if found.where in ("工作区", "暂存区"):
        return (
            f"{found.path} 里有像密钥的字符串（{found.masked}，{found.where}，还没提交）："
            "先到服务商后台作废它，再从文件里删掉；密钥只放在 .env 里，代码用 os.getenv 读取。"
        )
    return (
        f"{found.path}（{found.where}）里有像密钥的字符串（{found.masked}）：先到服务商后台"
        "作废这个密钥，再改写历史把它从所有提交里删掉（git filter-repo --replace-text，"
        "再 git push --force）；只改文件或 git rm --cached 不够，旧提交里还有它。"
    )


@check(5, "整个提交历史里都没有 .env")
def check_env_not_committed(scan: RepoScan) -> None:
    if scan.problem:
        fail(scan.problem)
    if scan.env_files:
        fail(_env_fix(scan.env_files[0]))


@check(5, "整个提交历史里都没有密钥（sk-…、Bearer … 等）")
def check_no_key_in_history(scan: RepoScan) -> None:
    if scan.problem:
        fail(scan.problem)
    if scan.keys:
        fail(_key_fix(scan.keys[0]))


def gate(scan: RepoScan) -> str | None:
    """Why the whole submission fails (a key is public), or None."""
    if scan.env_files:
        return _env_fix(scan.env_files[0])
    if scan.keys:
        return _key_fix(scan.keys[0])
    return None


REPO_CHECKS = [check_env_not_committed, check_no_key_in_history]
