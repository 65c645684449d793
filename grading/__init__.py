"""The autograder: ``python -m grading`` grades app.py, the notebook exercises and the
repository, and prints a score with a hint per failed check.

See :mod:`grading.grade`. The checks live in ``check_app.py`` (the program, run against the
grader's local servers), ``notebooks.py`` (the exercises, run headless) and ``check_repo.py``
(no `.env` and no key anywhere in the history). Untrusted code runs through
:mod:`grading.sandbox`.
"""
