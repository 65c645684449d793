"""Settings from `.env` and the environment, with the API key kept out of sight.

Variables (real environment variables always win over `.env`):

* ``LLM_API_KEY``   -- else ``OPENAI_API_KEY``, which then means OpenAI (or ``OPENAI_BASE_URL``)
                       unless ``LLM_PROVIDER`` names another provider
* ``LLM_BASE_URL``  -- else the provider's preset
* ``LLM_MODEL``     -- else the provider's default model
* ``LLM_TIMEOUT``   -- read timeout in seconds (default 60, at least 0.1, at most a day)
* ``LLM_PROVIDER``  -- a preset from :data:`PROVIDERS`: ``siliconflow`` (default), ``deepseek``,
                       ``openai``, ``openrouter``, ``groq`` (hosted, with a key); ``ollama``,
                       ``lmstudio``, ``vllm`` (a model server on this machine, no key needed);
                       ``local`` (the kit's practice server)

The `.env` is looked for in the current folder and its parents, up to the project root (the
nearest folder with ``.git`` or ``pyproject.toml``) and never above it; without a project root
only the current folder counts. It may be saved as UTF-8 (with or without BOM), UTF-16 with BOM
(PowerShell 5's ``echo … > .env``) or GBK (Notepad's "ANSI" on Chinese Windows):
:attr:`Settings.env_encoding` says which one was read.

A line python-dotenv cannot read (say, a quote that never closes) is a :class:`ConfigError`
naming the line when it sets an ``LLM_*``/``OPENAI_*`` variable that the environment does not
set already (rather than silently going on without that setting); other such lines are skipped
and listed in :attr:`Settings.env_problems`, which doctor shows.

Every problem is a :class:`ConfigError` whose message is one line with the fix; it never
contains the key.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

__all__ = [
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "PROVIDERS",
    "ConfigError",
    "EnvLineProblem",
    "Provider",
    "Secret",
    "Settings",
    "base_url_problem",
    "env_line_problems",
    "find_env_file",
    "key_problem",
    "load_settings",
    "mask_key",
    "model_problem",
    "project_root",
    "read_env_text",
    "relative_to_project",
]

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 86400.0  # a day: larger values overflow the socket timers (1e10 raised OverflowError)
# Less is a typo (1e-3 for 1e3?): no server answers that fast, every request would time out.
MIN_TIMEOUT = 0.1
# Values from .env.example and common tutorials that mean "no key yet".
PLACEHOLDER_KEYS = {"your-api-key-here", "sk-xxx", "sk-...", "<your key>", "changeme"}
CONNECT_TIMEOUT = 10.0
ROOT_MARKERS = (".git", "pyproject.toml")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""

    def _render_traceback_(self) -> list[str]:
        """IPython (Jupyter) shows this instead of a traceback: the one line with the fix."""
        return [f"ConfigError: {self}"]


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    model: str
    key_page: str
    needs_key: bool = True  # False: a model server on this machine that takes any key or none
    label: str = ""  # the product's name, for messages
    start_hint: str = ""  # how to start it when it does not answer (local model servers)


PROVIDERS: dict[str, Provider] = {
    "siliconflow": Provider(
        "siliconflow",
        "https://api.siliconflow.cn/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        "https://cloud.siliconflow.cn/account/ak",
        label="硅基流动 SiliconFlow",
    ),
    "deepseek": Provider(
        "deepseek",
        "https://api.deepseek.com/v1",
        "deepseek-chat",
        "https://platform.deepseek.com",
        label="DeepSeek",
    ),
    "openai": Provider(
        "openai",
        "https://api.openai.com/v1",
        "gpt-4o-mini",
        "https://platform.openai.com/api-keys",
        label="OpenAI",
    ),
    "openrouter": Provider(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "openai/gpt-4o-mini",
        "https://openrouter.ai/settings/keys",
        label="OpenRouter",
    ),
    "groq": Provider(
        "groq",
        "https://api.groq.com/openai/v1",
        "llama-3.1-8b-instant",
        "https://console.groq.com/keys",
        label="Groq",
    ),
    "ollama": Provider(
        "ollama",
        "http://localhost:11434/v1",
        "qwen2.5:7b",
        "",
        needs_key=False,
        label="Ollama",
        start_hint="启动 Ollama（打开 Ollama 应用，或运行 ollama serve），"
        "再运行 ollama pull {model}",
    ),
    "lmstudio": Provider(
        "lmstudio",
        "http://localhost:1234/v1",
        "qwen2.5-7b-instruct",
        "",
        needs_key=False,
        label="LM Studio",
        start_hint="在 LM Studio 里加载模型 {model}，再在 Developer 页面打开本地服务器"
        "（或运行 lms server start）",
    ),
    "vllm": Provider(
        "vllm",
        "http://localhost:8000/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        "",
        needs_key=False,
        label="vLLM",
        start_hint="运行 vllm serve {model}（默认端口 8000）",
    ),
    # The local practice server picks its own port; base_url is filled in when it starts.
    "local": Provider(
        "local", "", "Qwen/Qwen2.5-7B-Instruct", "", needs_key=False, label="本地练习服务器"
    ),
}


def mask_key(key: str) -> str:
    """Show just enough of a key to recognise it: ``sk-…abcd``. Short keys become ``***``."""
    if not key:
        return "<none>"
    if len(key) < 12:
        return "***"
    prefix = key[: key.index("-") + 1] if "-" in key[:5] else ""
    return f"{prefix}…{key[-4:]}"


class Secret:
    """A string that never shows itself in repr, str, f-strings or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: use it only to build the Authorization header."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return mask_key(self._value)

    def __repr__(self) -> str:
        return f"Secret({mask_key(self._value)!r})"

    def __reduce__(self) -> tuple:  # pickling would write the key somewhere: refuse
        raise TypeError("Secret cannot be pickled")


@dataclass(frozen=True)
class Settings:
    api_key: Secret
    base_url: str
    model: str
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = CONNECT_TIMEOUT
    provider: str = "siliconflow"
    env_file: str | None = field(default=None, compare=False)
    env_encoding: str | None = field(default=None, compare=False)  # how that file was decoded
    # lines of that file that could not be read and were skipped: one line each, no full stop
    env_problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def is_local(self) -> bool:
        """The kit's own practice server (not a real model running on this machine)."""
        return self.provider == "local"

    @property
    def preset(self) -> Provider | None:
        return PROVIDERS.get(self.provider)

    @property
    def needs_key(self) -> bool:
        """False for a model server on this machine (Ollama, LM Studio, vLLM) and ``local``."""
        preset = self.preset
        return preset.needs_key if preset is not None else True

    def auth_headers(self) -> dict[str, str]:
        """The HTTP headers that carry the key (keep the result out of prints and logs)."""
        return {"Authorization": f"Bearer {self.api_key.reveal()}"}

    def __str__(self) -> str:
        return (
            f"provider={self.provider} base_url={self.base_url} model={self.model} "
            f"key={self.api_key} timeout={self.timeout:g}s"
        )


# -- finding and reading .env ------------------------------------------------------------
def project_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current folder) holding ``.git``
    or ``pyproject.toml``; None when there is none."""
    here = Path(start if start is not None else Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return None


def find_env_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The `.env` used: in the current folder or a parent, up to the project root only."""
    here = Path(start if start is not None else Path.cwd()).absolute()
    root = project_root(here)
    folders = (
        [here] if root is None else [here, *here.parents][: len(here.parts) - len(root.parts) + 1]
    )
    for folder in folders:
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when every other byte is NUL (ASCII text saved as UTF-16)."""
    if len(data) < 4 or len(data) % 2:
        return None
    even, odd = data[0::2], data[1::2]
    if odd.count(0) == len(odd) and even.count(0) < len(even):
        return "utf-16-le"
    if even.count(0) == len(even) and odd.count(0) < len(odd):
        return "utf-16-be"
    return None


def read_env_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The text of a `.env` file and the encoding it was read with.

    A BOM decides (UTF-8, UTF-16, UTF-32); else UTF-16 without BOM is recognised by its NUL
    bytes; else UTF-8, and when that fails GBK (Notepad's "ANSI" on Chinese Windows).
    """
    shown = relative_to_project(path)
    try:
        data = Path(path).read_bytes()
    except PermissionError:
        raise ConfigError(
            f"没有权限读取 {shown}：请检查这个文件的权限（例如 chmod 600 {shown}），"
            "或用自己的账户重新创建它。"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"无法读取 {shown}（{reason}）：请检查这个文件是否存在、能否打开。"
        ) from None
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    encodings = [name for bom, name in boms if data.startswith(bom)][:1]
    encodings = encodings or [e for e in (_utf16_without_bom(data),) if e] or ["utf-8", "gbk"]
    for encoding in encodings:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise ConfigError(
        f"{shown} 的编码无法识别（既不是 UTF-8，也不是 GBK 或 UTF-16）："
        "请用编辑器把它另存为 UTF-8 编码。"
    )


def relative_to_project(path: str | os.PathLike[str]) -> str:
    """A path as messages show it: relative to the project root (never the home folder)."""
    absolute = Path(path).absolute()
    root = project_root(absolute.parent)
    for base in (root, Path.cwd()):
        if base is not None:
            try:
                return absolute.relative_to(base).as_posix()
            except ValueError:
                continue
    return absolute.name


@dataclass(frozen=True)
class EnvLineProblem:
    """A line of a `.env` file that python-dotenv cannot read."""

    line: int  # where the line starts, counting from 1
    name: str  # the LLM_*/OPENAI_* variable it sets, else "" (never shown: it might be a key)
    problem: str  # what is wrong with it and how to fix it

    def message(self, shown: str) -> str:
        """One line: ``.env 第 3 行（LLM_API_KEY）的引号没有闭合：…`` (no full stop)."""
        which = f"（{self.name}）" if self.name else ""
        return f"{shown} 第 {self.line} 行{which}{self.problem}"


# what a line starts with: an optional "export ", an optional quote, the variable's name
_ENV_LINE_START = re.compile(r"(?:export\s+)?(['\"]?)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)?")
_KIT_PREFIXES = ("LLM_", "OPENAI_")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _describe_env_error(text: str) -> tuple[str, str]:
    """(name, what is wrong) for the text of a binding python-dotenv reported as an error."""
    first = text.splitlines()[0] if text else ""
    start = _ENV_LINE_START.match(first)
    if start is None:
        return "", "不是「名字=值」的写法：应当形如 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct"
    key_quote, name, equals = start.groups()
    name = name if name.startswith(_KIT_PREFIXES) else ""
    if key_quote:
        return name, f"的名字前面多了一个 {key_quote}：请删掉它"
    if not equals:
        return name, (
            "不是「名字=值」的写法：名字里不能有空格，名字和值之间用等号（=），"
            "例如 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct"
        )
    value = first[start.end() :]
    quote = value[:1]
    if quote in ("'", '"') and not re.match(rf"{quote}(?:\\.|[^{quote}\\])*{quote}", value):
        return name, f"的引号没有闭合：请在值的末尾补上 {quote}，或删掉开头的 {quote}"
    if quote in ("'", '"'):
        return name, "在引号后面还有别的内容：整个值都要放在引号里（引号后面只能写 # 开头的注释）"
    return name, "python-dotenv 读不懂：请检查这一行的引号和等号"


def env_line_problems(text: str) -> tuple[str, list[EnvLineProblem]]:
    """The text of a `.env` without the lines python-dotenv cannot read, and those lines."""
    text = text.removeprefix("\ufeff")  # python-dotenv drops it too
    kept: list[str] = []
    problems: list[EnvLineProblem] = []
    offset = 0  # where the binding starts in text
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.error:
            start = offset + len(original) - len(original.lstrip())  # after the blank lines
            line = 1 + len(_LINE_BREAK.findall(text, 0, start))
            name, problem = _describe_env_error(original.lstrip())
            problems.append(EnvLineProblem(line, name, problem))
        else:
            kept.append(original)
        offset += len(original)
    return "".join(kept), problems


def _read_env(
    env_file: str | os.PathLike[str] | None,
) -> tuple[dict[str, str], str | None, str | None, tuple[str, ...]]:
    """Environment variables over `.env` values (python-dotenv, never overriding the env),
    and the lines of `.env` that were skipped."""
    path: Path | None
    if env_file is None:
        path = find_env_file()
    else:
        path = Path(env_file) if Path(env_file).is_file() else None
    values: dict[str, str] = {}
    encoding = None
    skipped: list[str] = []
    if path is not None:
        text, encoding = read_env_text(path)
        text, problems = env_line_problems(text)  # else python-dotenv logs English warnings
        shown = relative_to_project(path)
        for problem in problems:
            if problem.name and problem.name not in os.environ:  # a setting the kit would use
                raise ConfigError(problem.message(shown) + "。")
            skipped.append(problem.message(shown))
        parsed = dotenv_values(stream=io.StringIO(text))
        values = {k: v for k, v in parsed.items() if v is not None}
    values.update(os.environ)
    return values, (str(path) if path is not None else None), encoding, tuple(skipped)


def _pick(values: dict[str, str], *names: str) -> str:
    for name in names:
        value = values.get(name, "").strip()
        if value:
            return value
    return ""


_ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}
_CHINESE_QUOTES = set("“”‘’「」『』＂＇")


def key_problem(key: str) -> str:
    """What is wrong with the characters of a key, as one line with the fix (never the key);
    "" when nothing is."""
    for position, ch in enumerate(key, 1):
        where = f"第 {position} 个字符"
        if ch in _ZERO_WIDTH:
            return (
                f"LLM_API_KEY 里有一个看不见的零宽字符（U+{ord(ch):04X}，{where}），"
                "多半是从网页或聊天软件复制时带进来的：请删掉这一行，重新输入或从服务商后台重新复制密钥。"
            )
        if ch in _CHINESE_QUOTES:
            return (
                f"LLM_API_KEY 里有中文引号（{ch}，{where}）：请删掉引号，"
                '只写密钥本身（要加引号就用英文的 "）。'
            )
        if ch.isspace():
            return (
                f"LLM_API_KEY 里有空格或换行（{where}）：请在 .env 里只粘贴密钥本身，"
                "不加空格和注释。"
            )
        if ch.isascii() and not ch.isprintable():
            return (
                f"LLM_API_KEY 里有控制字符（U+{ord(ch):04X}，{where}）：请删掉这一行，"
                "重新输入或从服务商后台重新复制密钥。"
            )
        if not ch.isascii():
            wide = unicodedata.east_asian_width(ch) == "F"
            kind = "全角字符" if wide else "中文或其他非 ASCII 字符"
            return (
                f"LLM_API_KEY 里有{kind}（U+{ord(ch):04X}，{where}）："
                "密钥只由英文字母、数字和符号组成，请切换到英文（半角）输入法重新输入，"
                "或从服务商后台重新复制。"
            )
    return ""


def base_url_problem(base_url: str) -> str:
    """What is wrong with a base URL, as one line with the fix; "" when nothing is."""
    example = "应当形如 https://api.siliconflow.cn/v1"
    if not base_url.startswith(("http://", "https://")):
        return f"LLM_BASE_URL={base_url!r} 不是网址：{example}。"
    if any(ch.isspace() for ch in base_url) or not base_url.isascii():
        return f"LLM_BASE_URL={base_url!r} 里有空格或全角字符：请用英文输入法重新输入，{example}。"
    try:
        parts = urllib.parse.urlsplit(base_url)
    except ValueError:  # unbalanced brackets ("http://[::1/v1") or no IP address inside them
        return (
            f"LLM_BASE_URL={base_url!r} 里的方括号不对：方括号只用来括住 IPv6 地址，"
            f"例如 http://[::1]:8000/v1；{example}。"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname:
        return f"LLM_BASE_URL={base_url!r} 里没有主机名：{example}。"
    labels = parts.hostname.removesuffix(".").split(".")
    if not all(0 < len(label) <= 63 for label in labels):  # urllib3 cannot connect to "a..b"
        return (
            f"LLM_BASE_URL={base_url!r} 的主机名不对：点和点之间不能是空的（例如 api..com），"
            f"{example}。"
        )
    if port is not None and not 0 < port < 65536:
        return f"LLM_BASE_URL={base_url!r} 的端口不对：端口是 1 到 65535 之间的数字，{example}。"
    return ""


def model_problem(model: str, name: str = "LLM_MODEL") -> str:
    """What is wrong with the characters of a model name (a newline, a space...), as one line
    with the fix; "" when nothing is. ``name`` says where it came from (``--model``)."""
    for position, ch in enumerate(model, 1):
        if ch.isspace() or not ch.isprintable():
            kind = "空格或换行" if ch.isspace() else "看不见的控制字符"
            return (
                f"{name}={model[:80]!r} 里有{kind}（U+{ord(ch):04X}，第 {position} 个字符）："
                "模型名是连在一起的一个词，例如 Qwen/Qwen2.5-7B-Instruct，请改正后再试。"
            )
    return ""


def _parse_timeout(text: str) -> float:
    if not text:
        return DEFAULT_TIMEOUT
    try:
        timeout = float(text)
    except ValueError:
        timeout = math.nan
    if not 0 < timeout <= MAX_TIMEOUT:  # also false for nan
        if timeout > MAX_TIMEOUT:
            raise ConfigError(
                f"LLM_TIMEOUT={text!r} 太大：请写不超过 {MAX_TIMEOUT:g} 秒（一天）的秒数，"
                "例如 LLM_TIMEOUT=60。"
            )
        raise ConfigError(f"LLM_TIMEOUT={text!r} 不是正数：请写秒数，例如 LLM_TIMEOUT=60。")
    if timeout < MIN_TIMEOUT:
        raise ConfigError(
            f"LLM_TIMEOUT={text!r} 太小：没有服务器能这么快回答，请写至少 {MIN_TIMEOUT:g} 秒，"
            "例如 LLM_TIMEOUT=60。"
        )
    return timeout


def _decoded_as(encoding: str | None, value: str) -> str:
    """When it matters (a value with non-ASCII characters, from a .env that was not UTF-8):
    which encoding the .env was read with -- a wrong guess garbles those characters."""
    if encoding in (None, "utf-8", "utf-8-sig") or value.isascii():
        return ""
    name = {"gbk": "GBK"}.get(encoding, encoding.upper())
    return f"（.env 不是 UTF-8，已按 {name} 编码读取；若那几个字显示不对，请把 .env 另存为 UTF-8）"


def load_settings(env_file: str | os.PathLike[str] | None = None) -> Settings:
    """Read `.env` (see the module docstring for where it is looked for) and the environment."""
    values, path, encoding, skipped = _read_env(env_file)
    provider_name = _pick(values, "LLM_PROVIDER").lower()
    key = _pick(values, "LLM_API_KEY")
    base_url = _pick(values, "LLM_BASE_URL")
    openai_key = _pick(values, "OPENAI_API_KEY")
    if not key and openai_key and provider_name in ("", "openai"):
        # The OpenAI SDK's own variables belong to OpenAI (or to OPENAI_BASE_URL): never send
        # that key to another provider just because it is the default here.
        key, provider_name = openai_key, "openai"
        base_url = base_url or _pick(values, "OPENAI_BASE_URL")
    provider_name = provider_name or "siliconflow"
    if provider_name not in PROVIDERS:
        choices = ", ".join(PROVIDERS)
        raise ConfigError(f"LLM_PROVIDER={provider_name!r} 无法识别：请改成 {choices} 之一。")
    provider = PROVIDERS[provider_name]
    if key.lower() in PLACEHOLDER_KEYS:
        key = ""
    problem = key_problem(key)
    if problem:
        raise ConfigError(problem + _decoded_as(encoding, key))
    base_url = (base_url or provider.base_url).rstrip("/")
    problem = base_url_problem(base_url) if base_url else ""
    if problem:
        raise ConfigError(problem + _decoded_as(encoding, base_url))
    model = _pick(values, "LLM_MODEL") or provider.model
    problem = model_problem(model)
    if problem:
        raise ConfigError(problem)
    return Settings(
        api_key=Secret(key),
        base_url=base_url,
        model=model,
        timeout=_parse_timeout(_pick(values, "LLM_TIMEOUT")),
        provider=provider_name,
        env_file=path,
        env_encoding=encoding,
        env_problems=skipped,
    )
