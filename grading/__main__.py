"""``python -m grading``: grade app.py (see grading/grade.py)."""

import sys

try:
    import pytest  # noqa: F401 -- the checks run on pytest
except ImportError:
    print(
        "评分程序需要 pytest：请先运行 pip install -r grading/requirements.txt，"
        "再运行 python -m grading。",
        file=sys.stderr,
    )
    sys.exit(2)

from grading.grade import main

sys.exit(main())
