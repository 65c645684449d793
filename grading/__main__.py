"""``python -m grading``: grade a submission (see grading/grade.py).

The grader must never import anything from the submission: a ``requests.py``, ``pytest.py``,
``lesson_helpers/`` or ``grading/`` in the student's folder would run inside the grader. So
before anything else is imported, ``sys.path`` keeps the grader's own tree first and loses the
current folder (unless that *is* the grader's tree). Run it from the grader's tree, or with
``python -P`` and ``PYTHONPATH=<grader>``, and give the submission as ``--repo DIR``.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the tree this grader was loaded from


def _trusted_path() -> None:
    here = Path.cwd().resolve()

    def resolved(entry: str) -> Path:
        try:
            return Path(entry or here).resolve()
        except OSError:
            return Path(entry)

    entries = [e for e in sys.path if resolved(e) != ROOT]
    if here != ROOT:
        entries = [e for e in entries if e not in ("", ".") and resolved(e) != here]
    sys.path[:] = [str(ROOT), *entries]
    os.environ.pop("PYTHONSTARTUP", None)


_trusted_path()

try:
    import requests  # noqa: F401 -- the grader's own HTTP client
except ImportError as missing:
    print(
        f"评分程序缺少 {missing.name}：请先运行 pip install -r grading/requirements.txt，"
        "再运行 python -m grading。",
        file=sys.stderr,
    )
    sys.exit(2)

from grading.grade import main  # noqa: E402

try:
    sys.exit(main())
except Exception as bug:  # one line, not a traceback (GRADING_DEBUG=1 shows it)
    if os.environ.get("GRADING_DEBUG"):
        raise
    print(
        f"评分程序自己出错了（{type(bug).__name__}：{str(bug)[:200]}）：请把这一行告诉老师"
        "（设置 GRADING_DEBUG=1 再运行可以看到详细信息）。",
        file=sys.stderr,
    )
    sys.exit(2)
