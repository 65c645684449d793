"""Finding the course kit's code in the student's app.py folder, under whatever name.

:mod:`grading.static` refuses an app.py that imports ``lesson_helpers``, and
:mod:`grading.runtime` keeps the installed kit out of the program's reach; a copy of the kit
(``cp -r lesson_helpers mykit``, or its classes pasted into app.py) would still run. Such a
copy is found by its lines: the kit's own lines, minus those the reference app.py also has
(``for piece in pieces:`` is not borrowing), and only lines long enough to say something.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KitCopy", "find_kit_code", "kit_lines"]

MIN_LENGTH = 20  # shorter lines (``return None``, ``else:``) prove nothing
ENOUGH = 25  # lines of the kit in one file: no one writes that many of them by chance


@dataclass(frozen=True)
class KitCopy:
    file: str  # relative to the app's folder
    lines: int  # how many of its lines are the kit's
    module: str  # the kit module it has the most lines of, e.g. "lesson_helpers/client.py"

    def hint(self) -> str:
        return (
            f"{self.file} 里有 {self.lines} 行课程包的代码（和 {self.module} 一样）："
            "作业要你自己用 requests 写出来，删掉这份拷贝；app.py 的检查都没有运行。"
        )


def _lines(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        line = " ".join(line.split())
        if len(line) >= MIN_LENGTH and not line.startswith("#"):
            found.add(line)
    return found


def kit_lines(kit: Path, reference: str) -> dict[str, set[str]]:
    """Each kit module (by its path from the kit's parent) and its telling lines."""
    common = _lines(reference)
    return {
        path.relative_to(kit.parent).as_posix(): _lines(path.read_text(encoding="utf-8")) - common
        for path in sorted(kit.rglob("*.py"))
    }


def _python_files(folder: Path) -> Iterable[Path]:
    """Python files of the grader's copy (copy_app_folder left out symlinks and big files)."""
    return sorted(p for p in folder.rglob("*") if p.suffix in (".py", ".pyw") and p.is_file())


def find_kit_code(folder: Path, modules: dict[str, set[str]]) -> KitCopy | None:
    """The file of ``folder`` with the most of the kit's lines, if it has enough of them."""
    every = set().union(*modules.values()) if modules else set()
    best: KitCopy | None = None
    for path in _python_files(folder):
        try:
            lines = _lines(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        shared = lines & every
        if len(shared) < ENOUGH or (best and len(shared) <= best.lines):
            continue
        module = max(modules, key=lambda name: len(lines & modules[name]))
        best = KitCopy(path.relative_to(folder).as_posix(), len(shared), module)
    return best
