"""Fixtures for the checks: the app under test and local practice servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesson_helpers.local_server import LocalServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--app", default="app.py", help="the program to grade (default: app.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): how many points the check is worth")


@pytest.fixture(scope="session")
def app(request: pytest.FixtureRequest) -> Path:
    path = Path(request.config.getoption("--app")).resolve()
    if not path.is_file():
        pytest.fail(
            f"找不到要评分的程序 {path.name}：请在仓库根目录运行，或用 --app 指定路径。",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def server():
    """A local server that answers at full speed."""
    with LocalServer(pace=0) as srv:
        yield srv


@pytest.fixture(scope="session")
def slow_server():
    """A local server that sends one token every 25 ms, so streaming can be seen."""
    with LocalServer(pace=0.025) as srv:
        yield srv
