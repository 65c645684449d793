"""``python -m lesson_helpers doctor``: check the setup and say how to fix what is wrong."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .config import ConfigError, load_settings
from .errors import LLMError

__all__ = ["run_doctor"]

OK, WARN, FAIL = "✓", "!", "✗"
_PACKAGES = ("requests", "python-dotenv", "jupyterlab", "ipywidgets")


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _checks() -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info >= (3, 11):  # noqa: UP036 -- doctor may be run by an older Python
        lines.append((OK, f"Python {version}"))
    else:
        lines.append((FAIL, f"Python {version}：需要 3.11 或更新的版本"))
    for name in _PACKAGES:
        try:
            lines.append((OK, f"{name} {metadata.version(name)}"))
        except metadata.PackageNotFoundError:
            lines.append((FAIL, f"缺少 {name}：运行 pip install -r requirements.txt"))

    env = Path(".env")
    if env.is_file():
        lines.append((OK, "找到 .env"))
        tracked = _git("ls-files", "--error-unmatch", ".env")
        if tracked is not None and tracked.returncode == 0:
            lines.append(
                (
                    FAIL,
                    ".env 已被 Git 跟踪，密钥会被提交！先到服务商后台作废这个密钥，"
                    "再运行 git rm --cached .env 并提交",
                )
            )
        ignored = _git("check-ignore", "-q", "--no-index", ".env")
        if ignored is not None and ignored.returncode == 1:
            lines.append((FAIL, ".gitignore 没有忽略 .env：在 .gitignore 里加一行 .env"))
    else:
        lines.append(
            (WARN, "没有 .env：复制 .env.example 为 .env 并填入密钥（不填则使用本地服务器）")
        )

    try:
        settings = load_settings()
    except ConfigError as exc:
        lines.append((FAIL, str(exc)))
        return lines
    if settings.has_key and not settings.is_local:
        where = f"{settings.provider}，{settings.base_url}"
        lines.append((OK, f"API Key：{settings.api_key}（{where}）"))
        lines.extend(_reachable(settings))
    else:
        if settings.is_local:  # its base_url is only known once the server has started
            lines.append((OK, "LLM_PROVIDER=local：课程使用本地练习服务器"))
        else:
            lines.append((WARN, "没有 API Key：课程会自动使用本地练习服务器"))
        from .session import connect  # only here: doctor needs the server just for this check

        lines.extend(_reachable(connect(quiet=True)))
    return lines


def _reachable(settings: object) -> list[tuple[str, str]]:
    from .client import ChatClient

    client = ChatClient(settings, max_retries=0)  # type: ignore[arg-type]
    try:
        models = client.models()
    except LLMError as exc:
        return [(FAIL, f"服务不可用：{exc}")]
    lines = [(OK, f"服务可用：{settings.base_url}（{len(models)} 个模型）")]  # type: ignore[attr-defined]
    model = settings.model  # type: ignore[attr-defined]
    if models and model not in models:
        lines.append((FAIL, f"LLM_MODEL={model!r} 不在服务商的模型列表里：请改成列表中的模型名"))
    else:
        lines.append((OK, f"模型：{model}"))
    return lines


def run_doctor() -> int:
    """Print one line per check; return 1 if any check failed."""
    lines = _checks()
    for mark, text in lines:
        print(f"{mark} {text}")
    return 1 if any(mark == FAIL for mark, _ in lines) else 0
