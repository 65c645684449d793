"""Re-run lessons against the local server and store their outputs (what nbval then checks).

    python scripts/regen_notebooks.py                 # every notebook in notebooks/
    python scripts/regen_notebooks.py notebooks/02_sse_parsing.ipynb

Runs each notebook on a fresh kernel with no API key (so the local practice server answers),
from the notebook's own folder, exactly as nbval will. Run it with the virtual environment's
Python (``.venv/bin/python scripts/regen_notebooks.py``) so the outputs show what students see.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def regenerate(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in nb.cells:  # keep diffs small and stored outputs free of run-specific data
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    print(f"regenerated {path.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    # Exactly what a student with no key sees (empty variables win over a developer's .env).
    for name in ("LLM_PROVIDER", "LLM_BASE_URL", "OPENAI_BASE_URL", "LLM_MODEL"):
        os.environ.pop(name, None)
    os.environ["LLM_API_KEY"] = ""
    os.environ["OPENAI_API_KEY"] = ""
    if any(a.startswith("-") for a in argv):
        print(__doc__.strip().splitlines()[0] + "\n\n" + __doc__.split("\n\n")[1])
        return 0 if set(argv) <= {"-h", "--help"} else 2
    paths = [Path(a).resolve() for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    missing = [a for a, path in zip(argv, paths, strict=False) if not path.is_file()]
    if missing:
        print(f"regen_notebooks: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    for path in paths:
        regenerate(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
