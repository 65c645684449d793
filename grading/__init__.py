"""The autograder for app.py: ``python -m grading`` prints a score and a hint per failed check.

See :mod:`grading.grade`. The checks live in ``check_app.py`` (the program, run against the
local practice server) and ``check_repo.py`` (no `.env`, no key in the repository).
"""
