"""``python -m grading``: grade app.py (see grading/grade.py)."""

import sys

from grading.grade import main

sys.exit(main())
