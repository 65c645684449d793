"""Each provider's own error bodies (wrong key, no balance, rate limited) in its own shape.

The bodies are in tests/fixtures/provider_errors/ (reconstructed from the providers' public
documentation, see the README there). Each is served by a scripted HTTP server and read by the
real ChatClient, streaming and not: the one-line error must be of the right kind, show the
provider's own words, be retried only when waiting can help, and never show the key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lesson_helpers import errors
from lesson_helpers.client import ChatClient
from lesson_helpers.config import Secret, Settings
from lesson_helpers.errors import (
    AuthError,
    LLMError,
    QuotaError,
    RateLimitError,
    error_fields,
    error_from_response,
)

FIXTURES = Path(__file__).parent / "fixtures" / "provider_errors"
FILES = sorted(FIXTURES.glob("*.json"))
FAKE_KEY = "fake-key-provider-errors-0000"
HELLO = [{"role": "user", "content": "你好"}]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- stdlib name
        pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fixture = self.server.fixture  # type: ignore[attr-defined]
        self.server.hits += 1  # type: ignore[attr-defined]
        data = fixture["body"].encode("utf-8")
        self.send_response(fixture["status"])
        for name, value in fixture["headers"].items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer  # noqa: N815


@pytest.fixture(params=FILES, ids=[f.stem for f in FILES])
def provider(request) -> Iterator[tuple[dict[str, Any], ThreadingHTTPServer, str]]:
    fixture = load(request.param)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.fixture = fixture  # type: ignore[attr-defined]
    srv.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    yield fixture, srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def client_for(url: str, provider_name: str) -> ChatClient:
    settings = Settings(
        api_key=Secret(FAKE_KEY),
        base_url=url,
        model="some-model",
        timeout=10,
        connect_timeout=5,
        provider=provider_name,
    )
    return ChatClient(settings, max_retries=2, sleep=lambda seconds: None)


def test_the_fixtures_are_complete():
    found = {(load(f)["provider"], load(f)["case"]) for f in FILES}
    for provider_name in ("siliconflow", "deepseek", "openai"):
        for case in ("wrong_key", "insufficient_balance", "rate_limit"):
            assert (provider_name, case) in found
    for path in FILES:
        fixture = load(path)
        assert fixture["reconstructed_from"].startswith("https://")
        assert 400 <= fixture["status"] < 600
        json.loads(fixture["body"])  # each body is the provider's JSON, as sent
        assert fixture["expect"]["says"] in fixture["body"]


def test_siliconflow_bodies_have_their_own_top_level_shape():
    for path in FIXTURES.glob("siliconflow_*.json"):
        body = json.loads(load(path)["body"])
        assert set(body) == {"code", "message", "data"} and isinstance(body["code"], int)
    for path in [*FIXTURES.glob("openai_*.json"), *FIXTURES.glob("deepseek_*.json")]:
        body = json.loads(load(path)["body"])
        assert set(body) == {"error"}
        assert {"message", "type", "param", "code"} <= set(body["error"])


@pytest.mark.parametrize("call", ["chat", "stream", "models"])
def test_the_client_shows_the_providers_own_message(provider, call):
    fixture, srv, url = provider
    client = client_for(url, fixture["provider"])
    with pytest.raises(LLMError) as info:
        if call == "models":
            client.models()
        elif call == "stream":
            list(client.stream(HELLO))
        else:
            client.chat(HELLO)
    error = info.value
    expect = fixture["expect"]
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert type(error).__name__ == expect["class"]
    assert error.status == fixture["status"]
    assert f"HTTP {fixture['status']}" in text
    assert expect["says"] in text  # the provider's own words
    assert expect["says"] in error.provider_message
    assert FAKE_KEY not in text + repr(error) + error.body
    assert srv.hits == (3 if expect["retried"] else 1)  # rate limits are retried, the rest not
    assert error.retries == (2 if expect["retried"] else 0)


def test_the_kind_of_each_error(provider):
    fixture, _srv, _url = provider
    error = error_from_response(fixture["status"], fixture["body"], fixture["headers"], FAKE_KEY)
    kind = {"QuotaError": QuotaError, "AuthError": AuthError, "RateLimitError": RateLimitError}
    assert type(error) is kind[fixture["expect"]["class"]]
    if fixture["case"] == "insufficient_balance":
        assert "余额" in str(error)
        assert "充值" in error.hint


def test_error_fields_read_every_shape():
    siliconflow = '{"code":20015,"message":"Invalid token","data":null}'
    assert error_fields(siliconflow) == {"message": "Invalid token", "code": "20015", "type": ""}
    openai = '{"error":{"message":"m","type":"insufficient_quota","param":null,"code":"c"}}'
    assert error_fields(openai) == {"message": "m", "code": "c", "type": "insufficient_quota"}
    assert error_fields('"Invalid token"')["message"] == "Invalid token"
    assert error_fields("Invalid token\n")["message"] == "Invalid token"
    assert error_fields('{"detail": [{"msg": "field required"}]}')["message"] == "field required"
    assert error_fields('[{"error": {"message": "in a list", "code": 429}}]') == {
        "message": "in a list",
        "code": "429",
        "type": "",
    }
    assert error_fields('{"error": "just a string"}')["message"] == "just a string"
    assert error_fields("")["message"] == ""
    assert "QuotaError" in errors.__all__
