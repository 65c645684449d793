"""``python -m lesson_helpers doctor``: check the setup and say how to fix what is wrong."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .config import ConfigError, Settings, find_env_file, load_settings, relative_to_project
from .errors import ConnectError, LLMError

__all__ = ["DEBUG_OUTPUT_WARNING", "run_doctor"]

OK, WARN, FAIL = "✓", "!", "✗"
_PACKAGES = ("requests", "python-dotenv", "jupyterlab", "ipywidgets")
_ENCODING_NAMES = {"gbk": "GBK", "utf-16": "UTF-16", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}
_ENCODING_NAMES["utf-32"] = "UTF-32"
DEBUG_OUTPUT_WARNING = (
    "调试时当心：http.client 的调试输出（HTTPConnection.debuglevel = 1）和带局部变量的回溯"
    "（%xmode Verbose、pytest -l）会把请求头原样打印出来，其中就有密钥：分享这些输出前先删掉密钥"
)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _env_file_lines(env: Path | None) -> list[tuple[str, str]]:
    if env is None:
        return [(WARN, "没有 .env：复制 .env.example 为 .env 并填入密钥（不填则使用本地服务器）")]
    lines = [(OK, f"找到 .env：{relative_to_project(env)}")]
    tracked = _git(env.parent, "ls-files", "--error-unmatch", env.name)
    if tracked is not None and tracked.returncode == 0:
        lines.append(
            (
                FAIL,
                ".env 已被 Git 跟踪，密钥会被提交！先到服务商后台作废这个密钥，"
                "再运行 git rm --cached .env 并提交",
            )
        )
    ignored = _git(env.parent, "check-ignore", "-q", "--no-index", env.name)
    if ignored is not None and ignored.returncode == 1:
        lines.append((FAIL, ".gitignore 没有忽略 .env：在 .gitignore 里加一行 .env"))
    return lines


def _encoding_line(settings: Settings) -> list[tuple[str, str]]:
    name = _ENCODING_NAMES.get(settings.env_encoding or "")
    if name is None:
        return []
    return [
        (
            WARN,
            f".env 是 {name} 编码，已按 {name} 读取：别的程序（如 app.py）多半只认 UTF-8，"
            "请用编辑器把它另存为 UTF-8",
        )
    ]


def _preset_line(settings: Settings) -> tuple[str, str]:
    preset = settings.preset
    label = preset.label if preset is not None else settings.provider
    if settings.is_local:
        return (OK, "LLM_PROVIDER=local：课程使用本地练习服务器")
    if preset is not None and not preset.needs_key:
        return (
            OK,
            f"LLM_PROVIDER={settings.provider}：{label}，本机的模型服务器，"
            f"{settings.base_url}（不需要密钥）",
        )
    return (OK, f"服务商：{settings.provider}（{label}，{settings.base_url}）")


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

    lines.extend(_env_file_lines(find_env_file()))
    try:
        settings = load_settings()
    except ConfigError as exc:
        lines.append((FAIL, str(exc)))
        return lines
    lines.extend(_encoding_line(settings))
    lines.extend((WARN, f"{problem}（这一行被跳过了）") for problem in settings.env_problems)
    lines.append(_preset_line(settings))
    practice = settings.is_local or (settings.needs_key and not settings.has_key)
    if practice and not settings.is_local:
        lines.append((WARN, "没有 API Key：课程会自动使用本地练习服务器"))
    elif settings.has_key and not settings.is_local:
        lines.append((OK, f"API Key：{settings.api_key}"))
    lines.append((WARN, DEBUG_OUTPUT_WARNING))
    if practice:
        from .session import connect  # only here: doctor needs the server just for this check

        settings = connect(quiet=True)
    lines.extend(_reachable(settings))  # the last lines: does it answer, is the model there
    return lines


def _reachable(settings: Settings) -> list[tuple[str, str]]:
    from .client import ChatClient

    client = ChatClient(settings, max_retries=0)
    failure: LLMError | None = None
    try:
        models = client.models()
    except LLMError as exc:
        failure = exc
    if failure is not None:
        preset = settings.preset
        if isinstance(failure, ConnectError) and preset is not None and preset.start_hint:
            start = preset.start_hint.format(model=settings.model)
            return [(FAIL, f"{preset.label} 没有在 {settings.base_url} 上运行：{start}")]
        return [(FAIL, f"服务不可用：{failure}")]
    lines = [(OK, f"服务可用：{settings.base_url}（{len(models)} 个模型）")]
    model = settings.model
    if models and model not in models:
        hint = "请改成列表中的模型名"
        preset = settings.preset
        if preset is not None and preset.name == "ollama":
            hint = f"运行 ollama pull {model}，或改成 ollama list 里的模型名"
        lines.append((FAIL, f"LLM_MODEL={model!r} 不在服务的模型列表里：{hint}"))
    else:
        lines.append((OK, f"模型：{model}"))
    return lines


def run_doctor() -> int:
    """Print one line per check; return 1 if any check failed."""
    lines = _checks()
    for mark, text in lines:
        print(f"{mark} {text}")
    return 1 if any(mark == FAIL for mark, _ in lines) else 0
