"""Self-check functions for the lessons' exercises, one module per lesson.

Each check prints "✓ ..." when the answer is right, or "✗ ..." with a specific hint that says
what is wrong and where to look -- never a bare assertion traceback.
"""
