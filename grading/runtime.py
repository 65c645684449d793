"""The Python a student's app.py runs on: the standard library, requests and python-dotenv.

The grader's own environment also holds the course kit (``lesson_helpers``, installed
editable), the ``openai`` SDK and the grader itself. :mod:`grading.static` refuses an app.py
that imports them by name; this makes sure a name put together at run time finds nothing
either. :func:`make_runtime` builds a virtual environment without pip and without the
grader's site-packages, and copies into it only the libraries the assignment allows.
"""

from __future__ import annotations

import os
import shutil
import sys
import venv
from importlib import metadata
from pathlib import Path, PurePath

__all__ = ["ALLOWED", "RuntimeSetupError", "make_runtime"]

# The assignment's libraries and what they need to run (PySocks only when installed: requests
# uses it for a socks proxy).
ALLOWED = ("requests", "urllib3", "idna", "certifi", "charset-normalizer", "python-dotenv")
OPTIONAL = ("PySocks",)


class RuntimeSetupError(Exception):
    """The runtime could not be built (one line: what happened and how to fix it)."""


def _top_level(dist: metadata.Distribution) -> list[str]:
    """The names a distribution puts directly into site-packages (packages, modules, metadata)."""
    names: dict[str, None] = {}
    for file in dist.files or ():
        parts = PurePath(file).parts
        if parts and parts[0] not in ("..", "__pycache__") and not parts[0].endswith(".pth"):
            names[parts[0]] = None
    return list(names)


def _site_packages(prefix: Path) -> Path:
    if os.name == "nt":
        return prefix / "Lib" / "site-packages"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return prefix / "lib" / version / "site-packages"


def _python(prefix: Path) -> Path:
    return prefix / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_runtime(into: Path) -> Path:
    """A fresh virtual environment in ``into`` holding only the allowed libraries; its python.

    Raises RuntimeSetupError when an allowed library is missing from the grader's environment.
    """
    venv.create(into, with_pip=False, symlinks=os.name != "nt", clear=True)
    target = _site_packages(into)
    if not target.is_dir():
        raise RuntimeSetupError(
            f"建好的评分环境里没有 {target} 文件夹：请用 CPython 3.11 或更新的版本运行评分。"
        )
    for name in (*ALLOWED, *OPTIONAL):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in OPTIONAL:
                continue
            raise RuntimeSetupError(
                f"评分程序的环境里没有安装 {name}：请先运行 "
                "python -m pip install -r grading/requirements.txt。"
            ) from None
        for top in _top_level(dist):
            source = Path(str(dist.locate_file(top)))
            if source.is_dir():  # with its __pycache__: each run then imports without compiling
                shutil.copytree(source, target / top, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, target / top)
    return _python(into)
