"""The lessons' entry point: use the provider from `.env`, or start the local server.

>>> settings = connect()     # doctest: +SKIP
未配置密钥（或 LLM_PROVIDER=local）：已自动启动本地练习服务器（127.0.0.1，不联网、不花钱）。
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from .client import ChatClient, debug_output_warning, proxy_problem
from .config import ConfigError, Secret, Settings, load_settings
from .local_server import MODELS, LocalServer
from .local_server.replay import ReplaySource, install
from .recording import resolve

__all__ = ["chat_client", "connect", "local_server"]

_lock = threading.Lock()
_server: LocalServer | None = None

LOCAL_NOTICE = (
    "未配置密钥（或 LLM_PROVIDER=local）：已自动启动本地练习服务器（127.0.0.1，不联网、不花钱）。"
)


def _bypass_proxies_for_loopback() -> None:
    """Keep requests for this machine away from a system proxy (HTTP_PROXY is common with VPN
    tools): requests, httpx and the openai SDK all honour NO_PROXY."""
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        missing = [h for h in ("127.0.0.1", "localhost") if h not in hosts]
        if missing:
            os.environ[name] = ",".join(hosts + missing)


def local_server() -> LocalServer:
    """The one local server of this Python process, started on first use."""
    global _server
    with _lock:
        if _server is None:
            _bypass_proxies_for_loopback()
            _server = LocalServer().start()
        return _server


def connect(
    *,
    quiet: bool = False,
    local: bool | None = None,
    replay: ReplaySource | None = None,
    replay_speed: float = 1.0,
) -> Settings:
    """Settings for the lessons, printing one line that says where requests will go.

    With a key in `.env` (and ``LLM_PROVIDER`` not ``local``) the real provider is used; a
    model server on this machine (``LLM_PROVIDER=ollama``, ``lmstudio``, ``vllm``) is used
    without a key. Otherwise the local practice server is started in the background and used
    instead. A configuration problem raises :class:`~lesson_helpers.config.ConfigError`,
    which a notebook shows as one line with the fix (never a traceback).

    ``replay``: recordings to replay (files, folders, or names of the kit's own recordings
    such as ``"siliconflow_seed"``; see :mod:`lesson_helpers.recording`). They are added to
    the local server as ``replay:<name>`` models, played at ``replay_speed`` (0: at once),
    and the settings point at the local server with the first of them as the model, key or
    no key. A malformed recording raises
    :class:`~lesson_helpers.recording.RecordingError` (one line naming the file and line).
    """
    if replay is not None:
        return _connect_replay(replay, replay_speed, quiet)
    settings = load_settings()
    if local is None:
        use_local = settings.is_local or (settings.needs_key and not settings.has_key)
    else:
        use_local = local
    if not use_local:
        problem = proxy_problem(settings.base_url)
        if problem:
            raise ConfigError(problem)
        if not quiet:
            preset = settings.preset
            where = ""
            if preset is not None and not preset.needs_key:
                where = f"（{preset.label}，本机，不需要密钥）"
            print(f"请求将发往 {settings.base_url}{where}，模型 {settings.model}。")
            _warn_debug_output()
        return settings
    server = local_server()
    model = settings.model if settings.model in MODELS else "Qwen/Qwen2.5-7B-Instruct"
    if not quiet:
        print(LOCAL_NOTICE)
        _warn_debug_output()
    return replace(
        settings,
        provider="local",
        base_url=server.base_url,
        api_key=Secret(server.api_key or ""),
        model=model,
    )


def _connect_replay(replay: ReplaySource, speed: float, quiet: bool) -> Settings:
    recordings = resolve(replay)  # a bad file: one line, before anything starts
    settings = load_settings()
    server = local_server()
    models = install(server, recordings, speed)
    if not quiet:
        ids = [model.id for model in models]
        names = "、".join(ids) if len(ids) <= 4 else "、".join(ids[:3]) + f" 等 {len(ids)} 段"
        pace = "不等待" if not speed else "按录下的节奏" if speed == 1 else f"{speed:g} 倍速"
        print(f"回放录音（本地练习服务器，不联网、不花钱，{pace}）：{names}。")
        _warn_debug_output()
    return replace(
        settings,
        provider="local",
        base_url=server.base_url,
        api_key=Secret(server.api_key or ""),
        model=models[0].id,
    )


def _warn_debug_output() -> None:
    warning = debug_output_warning()
    if warning:
        print(warning)


def chat_client(*, quiet: bool = False, **kwargs: object) -> ChatClient:
    """A :class:`ChatClient` for :func:`connect`'s settings."""
    return ChatClient(connect(quiet=quiet), **kwargs)  # type: ignore[arg-type]
