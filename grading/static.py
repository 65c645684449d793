"""Reading a student's code without running it.

* :func:`app_problem`: app.py must make its own HTTP requests with ``requests``; importing the
  course kit (``lesson_helpers``) or an SDK (``openai``, ``httpx``...), importing by name at
  run time, or starting another program does not count.
* :func:`tampering` : an exercise's code must not touch the checks that grade it -- the
  ``lesson_helpers.checks`` modules, ``print``, ``sys.stdout``/``sys.stderr``, ``builtins``,
  ``sys.modules``, the caller's frames or IPython's hooks. Such a cell is not run.
* :func:`borrowing`: an exercise's code may use from the course kit only what its skeleton
  already uses: the kit holds a finished version of almost every exercise (``SSEParser``,
  ``assemble``, ``Throttle``...), and handing that in is not doing the exercise.
"""

from __future__ import annotations

import ast
import re

__all__ = ["app_problem", "borrowing", "kit_names", "tampering"]

_BORROWED = {
    "lesson_helpers": "课程的 lesson_helpers",
    "openai": "openai SDK",
    "anthropic": "anthropic SDK",
    "httpx": "httpx",
    "aiohttp": "aiohttp",
    "pycurl": "pycurl",
    "litellm": "litellm",
}
_RUNNERS = {"subprocess", "multiprocessing", "pty", "runpy", "ctypes"}
_RUN_CALLS = {"system", "popen", "spawnl", "spawnv", "spawnve", "execv", "execve", "execl"}
_DYNAMIC = {"__import__", "exec", "eval", "compile"}
# Modules that import by a name put together at run time (or reach the builtins that do).
_IMPORTERS = {"importlib", "pkgutil", "zipimport", "site", "builtins"}


def _modules(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


def app_problem(source: str, name: str = "app.py") -> str | None:
    """Why app.py does not count as making its own requests with requests, or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return f"{name} 第 {exc.lineno} 行有语法错误：{exc.msg}。"
    modules = _modules(tree)
    tops = {module.split(".")[0] for module in modules}
    for top, label in _BORROWED.items():
        if top in tops:
            return (
                f"{name} import 了 {label}：作业要求只用 requests 自己发请求、自己读流"
                f"（和 python-dotenv 读 .env）。删掉 import {top}，"
                "用 requests.post(..., stream=True)。"
            )
    runners = tops & (_RUNNERS | _IMPORTERS)
    if runners:
        return (
            f"{name} import 了 {sorted(runners)[0]}：作业要求程序自己用 requests 发请求，"
            "不要调用别的程序或按名字动态导入模块。"
        )
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in ("__builtins__", "__import__"):
            return (
                f"{name} 用了 {node.id}：作业要求程序自己用 requests 发请求，"
                "不要按名字动态导入模块。"
            )
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Attribute) and func.attr in _RUN_CALLS:
                called = func.attr
            if called in _DYNAMIC or called in _RUN_CALLS:
                return (
                    f"{name} 用了 {called}(...)：作业要求程序自己用 requests 发请求，"
                    "不要执行动态拼出来的代码或调用别的程序。"
                )
    if "requests" not in tops:
        return f"{name} 没有 import requests：作业要求用 requests 发请求（requests.post）。"
    return None


# -- exercises --------------------------------------------------------------------------------
_CHECKS_TEXT = re.compile(r"lesson_helpers\s*\.\s*checks|lesson_helpers\W+import\W+.*\bchecks\b")
_BANNED_MODULES = {"builtins", "IPython", "ctypes", "gc", "inspect", "importlib", "__main__"}
_BANNED_NAMES = {
    "__builtins__": "__builtins__",
    "__import__": "__import__",
    "get_ipython": "get_ipython()",
    "exec": "exec(...)",
    "eval": "eval(...)",
    "compile": "compile(...)",
    "globals": "globals()",
    "setattr": "setattr(...)",
    "delattr": "delattr(...)",
    "breakpoint": "breakpoint()",
}
_BANNED_ATTRS = {
    "__stdout__",
    "__stderr__",
    "__globals__",
    "__builtins__",
    "_getframe",
    "f_back",
    "f_globals",
    "f_locals",
    "f_builtins",
    "tb_frame",
    "gi_frame",
    "cr_frame",
    "redirect_stdout",
    "redirect_stderr",
    "settrace",
    "setprofile",
    "displayhook",
    "excepthook",
    "modules",
    "dup2",
}
_REBOUND = {"print", "sys", "builtins"}  # names an exercise must not rebind at top level
_ROOTS = {"sys", "builtins", "print"}  # objects whose attributes it must not assign


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _flatten(targets: list[ast.AST]) -> list[ast.AST]:
    out: list[ast.AST] = []
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            out += _flatten(list(target.elts))
        elif isinstance(target, ast.Starred):
            out += _flatten([target.value])
        else:
            out.append(target)
    return out


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign | ast.Delete):
        return _flatten(list(node.targets))
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return _flatten([node.target])
    if isinstance(node, ast.For | ast.AsyncFor):
        return _flatten([node.target])
    if isinstance(node, ast.With | ast.AsyncWith):
        return _flatten([item.optional_vars for item in node.items if item.optional_vars])
    if isinstance(node, ast.NamedExpr):
        return [node.target]
    return []


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: str | None = None
        self.depth = 0  # inside a function: local names cannot reach the checks

    def note(self, what: str) -> None:
        if self.found is None:
            self.found = what

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.depth == 0 and node.name in _REBOUND:
            self.note(f"重新定义 {node.name}")
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if self.depth == 0 and node.name in _REBOUND:
            self.note(f"重新定义 {node.name}")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in node.names:
            if name in _REBOUND:
                self.note(f"global {name}")

    visit_Nonlocal = visit_Global  # noqa: N815

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in ("sys", "contextlib", "os"):
            for alias in node.names:
                if alias.name in _BANNED_ATTRS or alias.name in ("stdout", "stderr"):
                    self.note(f"from {node.module} import {alias.name}")
        self.visit_Import(node)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if self.depth == 0 and bound in _REBOUND and alias.name != bound:
                self.note(f"import … as {bound}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _BANNED_NAMES:
            self.note(_BANNED_NAMES[node.id])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _BANNED_ATTRS:
            self.note(f".{node.attr}")
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        for target in _targets(node):
            root = _root(target)
            if isinstance(target, ast.Name):
                if self.depth == 0 and target.id in _REBOUND:
                    self.note(f"给 {target.id} 赋值")
            elif root in _ROOTS:
                self.note(f"给 {ast.unparse(target)} 赋值")
        super().generic_visit(node)


def tampering(source: str) -> str | None:
    """What in an exercise's code reaches into the checks (a short description), or None."""
    if _CHECKS_TEXT.search(source):
        return "lesson_helpers.checks"
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # it will fail on its own when it runs
    for module in _modules(tree):
        if module.split(".")[0] in _BANNED_MODULES:
            return f"import {module}"
    finder = _Finder()
    finder.visit(tree)
    return finder.found


KIT = "lesson_helpers"


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
    }


def kit_names(sources: list[str]) -> set[str]:
    """The names a notebook's cells bind from the course kit (``from lesson_helpers... import
    X`` gives X; ``import lesson_helpers...`` gives lesson_helpers)."""
    found: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == KIT:
                found |= {alias.asname or alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {
                    alias.asname or alias.name.split(".")[0]
                    for alias in node.names
                    if alias.name.split(".")[0] == KIT
                }
    return found


def borrowing(source: str, skeleton: str, kit: set[str]) -> str | None:
    """The course kit's name an exercise's code uses although its skeleton does not, or None.

    ``kit`` is what the lesson's cells import from the kit (:func:`kit_names`); the module
    itself counts too, however it is reached (``import lesson_helpers.sse``, ``importlib``).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # it will fail on its own when it runs
    try:
        given = ast.parse(skeleton)
    except SyntaxError:
        given = ast.Module(body=[], type_ignores=[])
    allowed = _names(given) | kit_names([skeleton])
    extra_modules = sorted(
        module
        for module in set(_modules(tree)) - set(_modules(given))
        if module.split(".")[0] == KIT
    )
    if extra_modules:
        return extra_modules[0]
    if KIT in source and KIT not in skeleton:  # importlib.import_module("lesson_helpers...")
        return KIT
    used = (_names(tree) | kit_names([source])) & (kit | {KIT})
    extra = sorted(used - allowed)
    return extra[0] if extra else None
