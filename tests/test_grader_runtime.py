"""The Python the grader runs a student's app.py on (grading.runtime): the standard library,
requests and python-dotenv, and nothing of the grader's own environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from grading.runtime import ALLOWED, make_runtime

PROBE = """\
import importlib.util, json, sys
names = sys.argv[1:]
print(json.dumps({name: importlib.util.find_spec(name) is not None for name in names}))
"""


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runtime(tmp_path_factory.mktemp("runtime") / "python")


def run(python: Path, code: str, *args: str) -> str:
    """Run ``code`` from the runtime's own folder (python -c puts the current folder first)."""
    result = subprocess.run(
        [str(python), "-c", code, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        cwd=python.parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_assignment_s_libraries_import_and_work(python):
    out = run(
        python,
        "import requests, dotenv, charset_normalizer, idna, certifi, urllib3\n"
        "print(requests.get.__module__, dotenv.dotenv_values.__module__)\n"
        "print(charset_normalizer.from_bytes('你好'.encode('gbk')).best().encoding)",
    )
    assert out.splitlines()[0] == "requests.api dotenv.main"
    assert out.splitlines()[1]  # charset_normalizer's compiled parts came along


def test_nothing_else_of_the_grader_s_environment_is_there(python):
    here = ("lesson_helpers", "grading", "openai", "anthropic", "httpx", "pytest", "nbclient")
    for name in here:  # on the grader's Python all of them are importable
        __import__(name)
    found = json.loads(run(python, PROBE, *here, "requests", "dotenv", "json"))
    assert found == {**dict.fromkeys(here, False), "requests": True, "dotenv": True, "json": True}


def test_it_is_a_normal_python_with_site(python, tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 42\n", encoding="utf-8")
    app = tmp_path / "app.py"
    app.write_text("import helper\nprint(helper.VALUE)\nexit(3)\n", encoding="utf-8")
    result = subprocess.run(
        [str(python), str(app)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (3, "42\n"), result.stderr  # exit() is there
    prefix = run(python, "import sys; print(sys.prefix != sys.base_prefix)")
    assert prefix == "True\n"


def test_only_the_listed_distributions_are_copied(python):
    site = Path(
        run(
            python, "import requests, pathlib; print(pathlib.Path(requests.__file__).parent.parent)"
        ).strip()
    )
    infos = {p.name.split("-")[0].lower().replace("_", "-") for p in site.glob("*.dist-info")}
    assert infos <= {name.lower() for name in ALLOWED} | {"pysocks"}
    assert {name.lower() for name in ALLOWED} <= infos
    assert not list(site.glob("*.pth")), "no .pth file: the kit's editable install is not there"
