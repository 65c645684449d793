"""Settings from `.env` and the environment, with the API key kept out of sight.

Variables (real environment variables always win over `.env`):

* ``LLM_API_KEY``   -- else ``OPENAI_API_KEY``, which then means OpenAI (or ``OPENAI_BASE_URL``)
                       unless ``LLM_PROVIDER`` names another provider
* ``LLM_BASE_URL``  -- else the provider's preset
* ``LLM_MODEL``     -- else the provider's default model
* ``LLM_TIMEOUT``   -- read timeout in seconds (default 60)
* ``LLM_PROVIDER``  -- ``siliconflow`` (default), ``deepseek``, ``openai`` or ``local``
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values, find_dotenv

__all__ = [
    "PROVIDERS",
    "ConfigError",
    "Provider",
    "Secret",
    "Settings",
    "load_settings",
    "mask_key",
]

DEFAULT_TIMEOUT = 60.0
# Values from .env.example and common tutorials that mean "no key yet".
PLACEHOLDER_KEYS = {"your-api-key-here", "sk-xxx", "sk-...", "<your key>", "changeme"}
CONNECT_TIMEOUT = 10.0


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    model: str
    key_page: str


PROVIDERS: dict[str, Provider] = {
    "siliconflow": Provider(
        "siliconflow",
        "https://api.siliconflow.cn/v1",
        "Qwen/Qwen2.5-7B-Instruct",
        "https://cloud.siliconflow.cn/account/ak",
    ),
    "deepseek": Provider(
        "deepseek", "https://api.deepseek.com/v1", "deepseek-chat", "https://platform.deepseek.com"
    ),
    "openai": Provider(
        "openai", "https://api.openai.com/v1", "gpt-4o-mini", "https://platform.openai.com/api-keys"
    ),
    # The local practice server picks its own port; base_url is filled in when it starts.
    "local": Provider("local", "", "Qwen/Qwen2.5-7B-Instruct", ""),
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

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    @property
    def is_local(self) -> bool:
        return self.provider == "local"

    def auth_headers(self) -> dict[str, str]:
        """The HTTP headers that carry the key (keep the result out of prints and logs)."""
        return {"Authorization": f"Bearer {self.api_key.reveal()}"}

    def __str__(self) -> str:
        return (
            f"provider={self.provider} base_url={self.base_url} model={self.model} "
            f"key={self.api_key} timeout={self.timeout:g}s"
        )


def _read_env(env_file: str | os.PathLike[str] | None) -> tuple[dict[str, str], str | None]:
    """Environment variables over `.env` values (python-dotenv, never overriding the env)."""
    path: str | None
    if env_file is None:
        path = find_dotenv(usecwd=True) or None
    else:
        path = str(env_file) if Path(env_file).is_file() else None
    values: dict[str, str] = {}
    if path:
        values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    values.update(os.environ)
    return values, path


def _pick(values: dict[str, str], *names: str) -> str:
    for name in names:
        value = values.get(name, "").strip()
        if value:
            return value
    return ""


def load_settings(env_file: str | os.PathLike[str] | None = None) -> Settings:
    """Read `.env` (searched from the current folder upwards) and the environment."""
    values, path = _read_env(env_file)
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
    if any(ch.isspace() for ch in key) or not key.isascii():
        raise ConfigError(
            "LLM_API_KEY 含有空格或非 ASCII 字符："
            "请在 .env 里只粘贴密钥本身（不加中文引号、空格或注释）。"
        )
    base_url = base_url or provider.base_url
    base_url = base_url.rstrip("/")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"LLM_BASE_URL={base_url!r} 不是网址：应当形如 https://api.siliconflow.cn/v1。"
        )
    timeout_text = _pick(values, "LLM_TIMEOUT")
    try:
        timeout = float(timeout_text) if timeout_text else DEFAULT_TIMEOUT
    except ValueError:
        timeout = -1.0
    if not 0 < timeout < float("inf"):
        raise ConfigError(f"LLM_TIMEOUT={timeout_text!r} 不是正数：请写秒数，例如 LLM_TIMEOUT=60。")
    return Settings(
        api_key=Secret(key),
        base_url=base_url,
        model=_pick(values, "LLM_MODEL") or provider.model,
        timeout=timeout,
        provider=provider_name,
        env_file=path,
    )
