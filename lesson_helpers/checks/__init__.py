"""Self-check functions for the lessons' exercises, one module per lesson.

Each check prints "✓ ..." on stdout when the answer is right, or "✗ ..." on stderr with a
specific hint that says what is wrong and where to look -- never a bare assertion traceback.
An exercise that is still the student edition's stub gets "✗ 还没完成：...". See
:mod:`lesson_helpers.checks.report`.
"""

from .report import uses_exercise

__all__ = ["uses_exercise"]
