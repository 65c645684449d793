"""Settings from `.env` and the environment; the key never shows itself."""

from __future__ import annotations

import codecs
import logging
import pickle
import shutil
import traceback
from pathlib import Path

import pytest

from lesson_helpers import config
from lesson_helpers.config import (
    PROVIDERS,
    ConfigError,
    Secret,
    Settings,
    find_env_file,
    load_settings,
    mask_key,
    project_root,
    read_env_text,
    relative_to_project,
)

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "fake-key-DO-NOT-USE-0123456789"
ENV_NAMES = (
    "LLM_API_KEY",
    "OPENAI_API_KEY",
    "LLM_BASE_URL",
    "OPENAI_BASE_URL",
    "LLM_MODEL",
    "LLM_TIMEOUT",
    "LLM_PROVIDER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No LLM_* / OPENAI_* variables (conftest sets LLM_PROVIDER=local) and an empty cwd."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_env(folder: Path, text: str) -> Path:
    path = folder / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line(error: Exception) -> str:
    text = str(error)
    assert text.strip()
    assert "\n" not in text and "\r" not in text
    return text


# -- reading .env and the environment --------------------------------------------------------
def test_values_come_from_the_env_file(tmp_path):
    env = write_env(
        tmp_path,
        f"LLM_PROVIDER=deepseek\nLLM_API_KEY={FAKE_KEY}\nLLM_MODEL=deepseek-reasoner\n"
        "LLM_TIMEOUT=12.5\n",
    )
    settings = load_settings(env_file=env)
    assert settings.provider == "deepseek"
    assert settings.api_key.reveal() == FAKE_KEY
    assert settings.has_key
    assert settings.model == "deepseek-reasoner"
    assert settings.timeout == 12.5
    assert settings.base_url == "https://api.deepseek.com/v1"
    assert settings.env_file == str(env)
    assert not settings.is_local


def test_env_file_is_found_from_the_current_folder(tmp_path):
    write_env(tmp_path, "LLM_MODEL=from-dotenv\n")
    settings = load_settings()
    assert settings.model == "from-dotenv"
    assert settings.env_file is not None
    assert Path(settings.env_file).resolve() == (tmp_path / ".env").resolve()


def test_missing_env_file_gives_the_defaults(tmp_path):
    settings = load_settings(env_file=tmp_path / "does-not-exist.env")
    assert settings.env_file is None
    assert settings.provider == "siliconflow"
    assert settings.base_url == "https://api.siliconflow.cn/v1"
    assert settings.model == "Qwen/Qwen2.5-7B-Instruct"
    assert settings.timeout == 60
    assert not settings.has_key
    assert settings.api_key.reveal() == ""


def test_real_environment_variables_win_over_env_file(tmp_path, monkeypatch):
    env = write_env(
        tmp_path,
        "LLM_API_KEY=fake-key-from-dotenv-0001\nLLM_MODEL=from-dotenv\nLLM_TIMEOUT=5\n"
        "LLM_PROVIDER=openai\n",
    )
    monkeypatch.setenv("LLM_API_KEY", FAKE_KEY)
    monkeypatch.setenv("LLM_MODEL", "from-environment")
    monkeypatch.setenv("LLM_TIMEOUT", "7")
    monkeypatch.setenv("LLM_PROVIDER", "deepseek")
    settings = load_settings(env_file=env)
    assert settings.api_key.reveal() == FAKE_KEY
    assert settings.model == "from-environment"
    assert settings.timeout == 7
    assert settings.provider == "deepseek"


def test_openai_variables_are_fallbacks(tmp_path, monkeypatch):
    env = write_env(tmp_path, "OPENAI_BASE_URL=http://127.0.0.1:8000/v1\n")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    settings = load_settings(env_file=env)
    assert settings.api_key.reveal() == FAKE_KEY
    assert settings.base_url == "http://127.0.0.1:8000/v1"


def test_openai_key_alone_means_openai_not_the_default_provider(tmp_path, monkeypatch):
    env = write_env(tmp_path, "")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    settings = load_settings(env_file=env)
    assert settings.provider == "openai"
    assert settings.base_url == "https://api.openai.com/v1"


def test_openai_key_is_never_sent_to_another_named_provider(tmp_path, monkeypatch):
    env = write_env(tmp_path, "LLM_PROVIDER=siliconflow\n")
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    settings = load_settings(env_file=env)
    assert not settings.has_key
    assert settings.provider == "siliconflow"


def test_llm_variables_beat_openai_variables(tmp_path, monkeypatch):
    env = write_env(tmp_path, "")
    monkeypatch.setenv("OPENAI_API_KEY", "fake-key-openai-variable")
    monkeypatch.setenv("LLM_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:2/v1")
    settings = load_settings(env_file=env)
    assert settings.api_key.reveal() == FAKE_KEY
    assert settings.base_url == "http://127.0.0.1:2/v1"


@pytest.mark.parametrize(
    ("provider", "base_url", "model"),
    [
        ("siliconflow", "https://api.siliconflow.cn/v1", "Qwen/Qwen2.5-7B-Instruct"),
        ("deepseek", "https://api.deepseek.com/v1", "deepseek-chat"),
        ("openai", "https://api.openai.com/v1", "gpt-4o-mini"),
        ("local", "", "Qwen/Qwen2.5-7B-Instruct"),
    ],
)
def test_provider_presets(tmp_path, monkeypatch, provider, base_url, model):
    monkeypatch.setenv("LLM_PROVIDER", provider)
    settings = load_settings(env_file=tmp_path / "none.env")
    assert settings.provider == provider
    assert settings.base_url == base_url
    assert settings.model == model
    assert settings.is_local == (provider == "local")
    assert PROVIDERS[provider].base_url == base_url


def test_siliconflow_is_the_default_provider(tmp_path):
    settings = load_settings(env_file=write_env(tmp_path, f"LLM_API_KEY={FAKE_KEY}\n"))
    assert settings.provider == "siliconflow"
    assert settings.base_url == "https://api.siliconflow.cn/v1"
    assert settings.model == "Qwen/Qwen2.5-7B-Instruct"


def test_provider_name_is_case_insensitive(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "  DeepSeek ")
    assert load_settings(env_file=tmp_path / "none.env").provider == "deepseek"


def test_unknown_provider_is_a_one_line_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_PROVIDER", "moonshot")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "moonshot" in text
    for name in PROVIDERS:
        assert name in text
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", ""])
def test_timeout_parsing_errors_and_default(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LLM_TIMEOUT", value)
    if value == "":
        assert load_settings(env_file=tmp_path / "none.env").timeout == 60
        return
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "LLM_TIMEOUT" in text
    assert repr(value) in text


@pytest.mark.parametrize(("value", "expected"), [("30", 30.0), ("0.5", 0.5), (" 2.5 ", 2.5)])
def test_timeout_parsing(tmp_path, monkeypatch, value, expected):
    monkeypatch.setenv("LLM_TIMEOUT", value)
    assert load_settings(env_file=tmp_path / "none.env").timeout == expected


@pytest.mark.parametrize("url", ["api.siliconflow.cn/v1", "ftp://example.invalid/v1", "localhost"])
def test_base_url_without_scheme_is_rejected(tmp_path, monkeypatch, url):
    monkeypatch.setenv("LLM_BASE_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "LLM_BASE_URL" in text
    assert "https://" in text  # it shows what a base URL looks like


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://api.siliconflow.cn/v1//", "https://api.siliconflow.cn/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_trailing_slash_is_stripped(tmp_path, monkeypatch, url, expected):
    monkeypatch.setenv("LLM_BASE_URL", url)
    assert load_settings(env_file=tmp_path / "none.env").base_url == expected


def test_env_example_placeholder_counts_as_no_key(tmp_path):
    example = ROOT / ".env.example"
    assert example.is_file()
    shutil.copy(example, tmp_path / ".env")
    settings = load_settings(env_file=tmp_path / ".env")
    assert not settings.has_key
    assert settings.api_key.reveal() == ""
    assert settings.provider == "siliconflow"
    assert settings.timeout == 60


@pytest.mark.parametrize("placeholder", ["your-api-key-here", "YOUR-API-KEY-HERE", "changeme"])
def test_placeholders_count_as_no_key(tmp_path, placeholder):
    settings = load_settings(env_file=write_env(tmp_path, f"LLM_API_KEY={placeholder}\n"))
    assert not settings.has_key


def test_quoted_key_in_env_file_is_unquoted(tmp_path):
    settings = load_settings(env_file=write_env(tmp_path, f'LLM_API_KEY="{FAKE_KEY}"\n'))
    assert settings.api_key.reveal() == FAKE_KEY


@pytest.mark.parametrize("bad", [f"{FAKE_KEY} extra", f"“{FAKE_KEY}”"])
def test_key_with_spaces_or_non_ascii_is_rejected_without_echo(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("LLM_API_KEY", bad)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "LLM_API_KEY" in text
    assert FAKE_KEY not in text
    assert FAKE_KEY not in repr(info.value)


# -- mask_key and Secret ---------------------------------------------------------------------
def test_mask_key_shows_prefix_and_last_four():
    key = "sk-" + "0" * 24 + "abcd"  # built at run time: no key-shaped literal in the repo
    assert mask_key(key) == "sk-…abcd"
    assert mask_key(FAKE_KEY) == "fake-…6789"
    assert mask_key("x" * 16 + "wxyz") == "…wxyz"


@pytest.mark.parametrize("key", ["short", "sk-1234", "a" * 11])
def test_mask_key_hides_short_keys_completely(key):
    assert mask_key(key) == "***"


def test_mask_key_of_nothing():
    assert mask_key("") == "<none>"


def test_mask_key_at_the_length_boundary():
    assert mask_key("a" * 12) == "…aaaa"


def _all_renderings(secret: Secret) -> list[str]:
    return [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret!s}",
        format(secret),
        "{}".format(secret),  # noqa: UP032 -- str.format is what is being tested
        "%s" % secret,  # noqa: UP031 -- %-formatting is what is being tested
        "%r" % (secret,),  # noqa: UP031
        repr([secret]),
        repr({"key": secret}),
    ]


def test_secret_never_shows_its_value():
    secret = Secret(FAKE_KEY)
    for text in _all_renderings(secret):
        assert FAKE_KEY not in text
        assert "0123456789" not in text
    assert str(secret) == "fake-…6789"
    assert repr(secret) == "Secret('fake-…6789')"
    assert secret.reveal() == FAKE_KEY


def test_secret_with_a_format_spec_does_not_leak():
    secret = Secret(FAKE_KEY)
    try:
        text = f"{secret:>60}"
    except TypeError:
        return  # refusing the format spec is fine too
    assert FAKE_KEY not in text


def test_secret_in_logging_is_masked(caplog):
    secret = Secret(FAKE_KEY)
    settings = Settings(api_key=secret, base_url="http://127.0.0.1:1/v1", model="m")
    logger = logging.getLogger("lesson_helpers.tests.secret")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.info("key is %s", secret)
        logger.info("key repr %r", secret)
        logger.info("settings %s / %r", settings, settings)
        logger.info(secret)
    assert len(caplog.records) == 4
    assert FAKE_KEY not in caplog.text
    assert "fake-…6789" in caplog.text


def test_secret_refuses_to_be_pickled():
    with pytest.raises(TypeError):
        pickle.dumps(Secret(FAKE_KEY))
    settings = Settings(api_key=Secret(FAKE_KEY), base_url="http://127.0.0.1:1/v1", model="m")
    with pytest.raises(TypeError):
        pickle.dumps(settings)


def test_secret_truthiness_and_equality():
    assert Secret(FAKE_KEY)
    assert not Secret("")
    assert Secret(FAKE_KEY) == Secret(FAKE_KEY)
    assert Secret(FAKE_KEY) != Secret("fake-key-other-value-0000")
    assert Secret(FAKE_KEY) != FAKE_KEY  # never equal to the bare string
    assert hash(Secret(FAKE_KEY)) == hash(Secret(FAKE_KEY))


def test_settings_repr_and_str_hide_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_API_KEY", FAKE_KEY)
    settings = load_settings(env_file=tmp_path / "none.env")
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert FAKE_KEY not in text
    assert "fake-…6789" in str(settings)
    assert "siliconflow" in str(settings)
    assert settings.auth_headers() == {"Authorization": f"Bearer {FAKE_KEY}"}


# -- provider presets (issue 14) -------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "base_url", "needs_key"),
    [
        ("openrouter", "https://openrouter.ai/api/v1", True),
        ("groq", "https://api.groq.com/openai/v1", True),
        ("ollama", "http://localhost:11434/v1", False),
        ("lmstudio", "http://localhost:1234/v1", False),
        ("vllm", "http://localhost:8000/v1", False),
        ("local", "", False),
        ("siliconflow", "https://api.siliconflow.cn/v1", True),
    ],
)
def test_more_presets(tmp_path, monkeypatch, provider, base_url, needs_key):
    monkeypatch.setenv("LLM_PROVIDER", provider)
    settings = load_settings(env_file=tmp_path / "none.env")
    assert settings.base_url == base_url
    assert settings.model == PROVIDERS[provider].model and settings.model
    assert PROVIDERS[provider].needs_key is needs_key
    assert settings.needs_key is needs_key
    assert not settings.has_key
    assert settings.is_local == (provider == "local")  # a real model on this machine is not


def test_every_preset_has_a_label_and_local_ones_say_how_to_start():
    for name, preset in PROVIDERS.items():
        assert preset.name == name and preset.label
        if not preset.needs_key and name != "local":
            assert preset.start_hint and preset.base_url.startswith("http://localhost:")
        if preset.needs_key:
            assert preset.key_page.startswith("https://")


# -- .env encodings (issue 16) -----------------------------------------------------------------
ENV_TEXT = (
    f"# 课程的密钥（不要提交）\nLLM_PROVIDER=deepseek\nLLM_API_KEY={FAKE_KEY}\nLLM_MODEL=模型甲\n"
)


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (ENV_TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + ENV_TEXT.encode("utf-8"), "utf-8-sig"),
        (ENV_TEXT.encode("gbk"), "gbk"),  # Notepad's "ANSI" on Chinese Windows
        # PowerShell 5: echo ... > .env writes UTF-16 LE with a BOM and CRLF line ends
        (ENV_TEXT.replace("\n", "\r\n").encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + ENV_TEXT.encode("utf-16-be"), "utf-16"),
        (
            ENV_TEXT.replace("模型甲", "m")
            .replace("课程的密钥（不要提交）", "k")
            .encode("utf-16-le"),
            "utf-16-le",
        ),
    ],
)
def test_env_file_in_any_common_encoding_is_read(tmp_path, encoded, encoding):
    path = tmp_path / ".env"
    path.write_bytes(encoded)
    settings = load_settings(env_file=path)
    assert settings.provider == "deepseek"
    assert settings.api_key.reveal() == FAKE_KEY
    assert settings.model in ("模型甲", "m")
    assert settings.env_encoding == encoding
    assert read_env_text(path) == (encoded.decode(encoding), encoding)


def test_a_bad_value_in_a_gbk_env_says_which_encoding_was_assumed(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(f"LLM_API_KEY=“{FAKE_KEY}”\n".encode("gbk"))
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=path)
    text = assert_one_line(info.value)
    assert "中文引号" in text and "GBK" in text
    path.write_text(f"LLM_API_KEY=“{FAKE_KEY}”\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=path)
    assert "GBK" not in str(info.value)  # UTF-8: nothing was guessed


def test_env_file_in_no_known_encoding_is_one_line(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"LLM_MODEL=\xff\xfe\xfd\x80\x80\x80\n")  # neither UTF-8 nor GBK
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=path)
    text = assert_one_line(info.value)
    assert ".env" in text and "UTF-8" in text


def test_unreadable_env_file_is_one_line(tmp_path, monkeypatch):
    path = write_env(tmp_path, f"LLM_API_KEY={FAKE_KEY}\n")
    real = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self.name == ".env":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod 000 does not stop root
    for found in (path, None):  # given explicitly, and found in the current folder
        with pytest.raises(ConfigError) as info:
            load_settings(env_file=found)
        text = assert_one_line(info.value)
        assert "权限" in text and ".env" in text
        assert str(tmp_path) not in text  # the path is shown relative, never the home folder
        shown = "".join(traceback.format_exception(info.value))
        assert "PermissionError" not in shown  # no chained traceback under the line


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (FAKE_KEY[:6] + "ｋ" + FAKE_KEY[7:], "全角"),  # a full-width letter
        (f"“{FAKE_KEY}”", "中文引号"),
        (f"{FAKE_KEY[:10]}\u200b{FAKE_KEY[10:]}", "零宽"),  # zero-width space, pasted from the web
        (f"{FAKE_KEY[:10]}\x07{FAKE_KEY[10:]}", "控制字符"),
        (f"{FAKE_KEY} extra", "空格"),
    ],
)
def test_bad_characters_in_the_key_are_named_in_one_line(tmp_path, bad, says):
    path = tmp_path / ".env"
    path.write_text(f"LLM_API_KEY={bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=path)
    text = assert_one_line(info.value)
    assert "LLM_API_KEY" in text and says in text
    assert FAKE_KEY[:12] not in text and FAKE_KEY[-12:] not in text
    assert FAKE_KEY[-12:] not in repr(info.value)


@pytest.mark.parametrize("value", ["1e10", "inf", "86401", "-inf", "1e-300", "0.05", "0"])
def test_absurd_timeouts_are_config_errors(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LLM_TIMEOUT", value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "LLM_TIMEOUT" in text and repr(value) in text


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http:///v1", "主机名"),
        ("http://127.0.0.1:99999/v1", "端口"),
        ("http://127.0.0.1:abc/v1", "端口"),
        ("https://api.siliconflow.cn /v1", "空格"),
        ("https：//api.siliconflow.cn/v1", "不是网址"),  # a full-width colon
        ("http://127.0.0.1：40181/v1", "全角"),  # the IME's colon before the port
        ("http://[::1/v1", "方括号"),  # urlsplit: ValueError("Invalid IPv6 URL")
        ("http://::1]/v1", "方括号"),
        ("http://[not-an-ip]/v1", "方括号"),  # urlsplit: "does not appear to be an IP"
        ("http://api..siliconflow.cn/v1", "主机名"),  # urllib3: LocationParseError
        ("http://.siliconflow.cn/v1", "主机名"),
    ],
)
def test_invalid_base_urls_are_config_errors(tmp_path, monkeypatch, url, says):
    monkeypatch.setenv("LLM_BASE_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert "LLM_BASE_URL" in text and says in text


@pytest.mark.parametrize("value", ["1e-300", "0.099"])
def test_a_timeout_too_short_for_any_server_says_the_minimum(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LLM_TIMEOUT", value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    assert "太小" in assert_one_line(info.value) and "0.1 秒" in str(info.value)


def test_the_shortest_timeout_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_TIMEOUT", "0.1")
    assert load_settings(env_file=tmp_path / "none.env").timeout == 0.1


def test_config_error_shows_one_line_in_ipython():
    error = ConfigError("LLM_TIMEOUT='abc' 不是正数：请写秒数，例如 LLM_TIMEOUT=60。")
    assert error._render_traceback_() == [f"ConfigError: {error}"]


# -- where .env is looked for (issue 16) -------------------------------------------------------
def test_env_file_is_found_up_to_the_project_root(tmp_path, monkeypatch):
    project = tmp_path / "course"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname='x'\n", encoding="utf-8")
    write_env(project, "LLM_MODEL=from-project\n")
    monkeypatch.chdir(project / "notebooks")
    settings = load_settings()
    assert settings.model == "from-project"
    assert Path(settings.env_file).resolve() == (project / ".env").resolve()
    assert find_env_file() == (project / ".env").absolute()
    assert project_root() == project.absolute()


def test_env_file_above_the_repository_root_is_not_used(tmp_path, monkeypatch):
    write_env(
        tmp_path, f"LLM_API_KEY={FAKE_KEY}\nLLM_MODEL=from-above\n"
    )  # e.g. in the home folder
    repo = tmp_path / "homework"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    monkeypatch.chdir(repo / "src")
    settings = load_settings()
    assert settings.env_file is None
    assert not settings.has_key
    assert settings.model != "from-above"
    assert find_env_file() is None


def test_without_a_project_only_the_current_folder_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "ROOT_MARKERS", (".no-such-marker-for-tests",))
    write_env(tmp_path, "LLM_MODEL=from-parent\n")
    (tmp_path / "child").mkdir()
    monkeypatch.chdir(tmp_path / "child")
    assert project_root() is None
    assert load_settings().env_file is None
    monkeypatch.chdir(tmp_path)
    assert load_settings().model == "from-parent"


def test_env_file_path_is_shown_relative_to_the_project(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "a").mkdir()
    assert relative_to_project(tmp_path / "a" / ".env") == "a/.env"
    assert relative_to_project(tmp_path / ".env") == ".env"


# -- lines python-dotenv cannot read ------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ('LLM_API_KEY="fake-key-for-review-0000\n', 1, "（LLM_API_KEY）的引号没有闭合"),
        ("# 密钥\n\nLLM_MODEL='qwen\n", 3, "（LLM_MODEL）的引号没有闭合"),
        ('X=1\r\n\r\n  LLM_BASE_URL="http://127.0.0.1:8000/v1\r\n', 3, "引号没有闭合"),
        ('LLM_MODEL="qwen" 2.5\n', 1, "引号后面还有别的内容"),
        ("export LLM_API_KEY: fake-key-for-review-0000\n", 1, "「名字=值」"),
        ("'LLM_PROVIDER=local\n", 1, "名字前面多了一个 '"),
        ('OPENAI_API_KEY="fake-key-for-review-0000\n', 1, "（OPENAI_API_KEY）"),
    ],
)
def test_an_unreadable_kit_line_is_one_line_naming_it(tmp_path, caplog, text, line, says):
    env = write_env(tmp_path, text)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError) as info:
        load_settings(env_file=env)
    message = assert_one_line(info.value)
    assert message.startswith(f".env 第 {line} 行") and says in message
    assert "fake-key-for-review" not in message and "qwen" not in message
    assert not caplog.records  # python-dotenv's "could not parse statement" stays quiet


def test_an_unreadable_line_of_another_program_is_skipped_and_listed(tmp_path, caplog):
    env = write_env(tmp_path, 'NOTE="fake-key-for-review-0000\nLLM_MODEL=qwen-test\n')
    with caplog.at_level(logging.WARNING):
        settings = load_settings(env_file=env)
    assert settings.model == "qwen-test"
    assert not caplog.records
    assert settings.env_problems == (
        '.env 第 1 行的引号没有闭合：请在值的末尾补上 "，或删掉开头的 "',
    )


def test_an_unreadable_line_the_environment_overrides_is_only_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_MODEL", "from-the-environment")
    env = write_env(tmp_path, "LLM_MODEL='qwen\nLLM_TIMEOUT=5\n")
    settings = load_settings(env_file=env)
    assert settings.model == "from-the-environment" and settings.timeout == 5
    assert len(settings.env_problems) == 1 and "LLM_MODEL" in settings.env_problems[0]


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("a\nb", "换行"),  # LLM_MODEL=$'a\nb': the "请求将发往…，模型 a" line would break in two
        ("Qwen/Qwen2.5 7B", "空格"),
        ("Qwen/Qwen2.5\u30007B", "空格"),  # a full-width space
        ("qwen2.5\u200b", "控制字符"),  # zero-width space, pasted from the web
        ("qwen\x1b[2J", "控制字符"),
    ],
)
def test_a_model_name_with_whitespace_or_control_characters_is_one_line(
    tmp_path, monkeypatch, model, says
):
    monkeypatch.setenv("LLM_MODEL", model)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=tmp_path / "none.env")
    text = assert_one_line(info.value)
    assert text.startswith(f"LLM_MODEL={model!r} ") and says in text
    assert text.isprintable()
