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
* :func:`lookup`: an exercise's code must name what it uses: no lookups by a name built at run
  time (``vars()``, ``getattr(x, "SSE" + "Parser")``, ``__dict__``, ``operator.attrgetter``),
  no modules that run or find code by name (``pickle``, ``runpy``, ``pkgutil``,
  ``subprocess``...) and nothing imported from outside the standard library but ``requests``
  -- else the other two cannot see what it uses. (The grader also looks at what the exercise
  cell defined once it ran: :mod:`grading.probe`.)
"""

from __future__ import annotations

import ast
import re
import sys

__all__ = ["app_problem", "borrowing", "kit_names", "lookup", "tampering", "top_level_names"]

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
    found = lookup(source, libraries=frozenset({"dotenv"}))
    if found:
        return (
            f"{name} 用了 {found}：作业只用标准库、requests 和 python-dotenv，自己发请求、"
            "自己读流；不要按运行时拼出来的名字查找或运行代码。"
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
# Attributes it must not assign on anything (an output stream's, reached by any name).
_STREAM_ATTRS = {"write", "writelines", "flush", "stdout", "stderr", "stdin"}


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
        self.bases: set[int] = set()  # the Name nodes that are an attribute's object

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
            if isinstance(node, ast.Import) and alias.name in _ROOTS and alias.asname:
                self.note(f"import {alias.name} as {alias.asname}")  # sys under another name

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _BANNED_NAMES:
            self.note(_BANNED_NAMES[node.id])
        elif node.id in ("sys", "builtins") and isinstance(node.ctx, ast.Load):
            if id(node) not in self.bases:  # x = sys; x.stderr = ...
                self.note(f"把 {node.id} 本身当作值使用")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _BANNED_ATTRS:
            self.note(f".{node.attr}")
        if isinstance(node.value, ast.Name):
            self.bases.add(id(node.value))
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        for target in _targets(node):
            root = _root(target)
            if isinstance(target, ast.Name):
                if self.depth == 0 and target.id in _REBOUND:
                    self.note(f"给 {target.id} 赋值")
            elif root in _ROOTS:
                self.note(f"给 {ast.unparse(target)} 赋值")
            elif isinstance(target, ast.Attribute) and target.attr in _STREAM_ATTRS:
                self.note(f"给 {ast.unparse(target)} 赋值")
            elif root is None and _has_attribute(target):  # type(sys.stderr).write = ...
                self.note(f"给 {ast.unparse(target)} 赋值")
        super().generic_visit(node)


def _has_attribute(target: ast.AST) -> bool:
    while isinstance(target, ast.Attribute | ast.Subscript):
        if isinstance(target, ast.Attribute):
            return True
        target = target.value
    return False


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


# -- names built at run time ------------------------------------------------------------------
# Modules that run code, or find objects, by a name put together at run time.
_LOOKUP_MODULES = {
    "_frozen_importlib",
    "_frozen_importlib_external",
    "_imp",
    "_operator",
    "_pickle",
    "bdb",
    "cProfile",
    "code",
    "codeop",
    "concurrent",
    "copyreg",
    "ctypes",
    "doctest",
    "imp",
    "importlib",
    "logging.config",
    "marshal",
    "multiprocessing",
    "pdb",
    "pickle",
    "pickletools",
    "pkgutil",
    "profile",
    "pty",
    "pydoc",
    "runpy",
    "shelve",
    "site",
    "subprocess",
    "timeit",
    "trace",
    "types",
    "unittest",
    "zipimport",
}
# Attributes (and imported names) that look up or run by name, or start another program.
_LOOKUP_ATTRS = {
    "attrgetter",
    "methodcaller",
    "get_type_hints",
    "ForwardRef",
    "get_field",
    "import_module",
    "load_module",
    "exec_module",
    "find_spec",
    "resolve_name",
    "locate",
    "ProcessPoolExecutor",
    "create_subprocess_exec",
    "create_subprocess_shell",
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "startfile",
    *_RUN_CALLS,
    "spawnlp",
    "spawnvp",
    "execlp",
    "execle",
    "execvp",
    "execvpe",
}
_LOOKUP_NAMES = {"vars": "vars()", "locals": "locals()", "dir": "dir()"}
# IPython's history: earlier cells' sources and results (a kit object a cell showed).
_HISTORY = re.compile(r"In|Out|_ih|_oh|_dh|_i+|_i?\d+|_{2,3}")
# The special names and attributes an exercise may use; any other __x__ is refused.
_DUNDER_NAMES = {"__name__", "__doc__", "__class__"}
_DUNDER_ATTRS = {
    "__init__",
    "__post_init__",
    "__name__",
    "__qualname__",
    "__class__",
    "__doc__",
    "__repr__",
    "__str__",
    "__len__",
    "__iter__",
    "__next__",
    "__aiter__",
    "__anext__",
    "__enter__",
    "__exit__",
    "__aenter__",
    "__aexit__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__hash__",
    "__bool__",
    "__contains__",
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__call__",
}
_LITERAL_ATTR = ("getattr", "hasattr")  # fine only as getattr(x, "name"[, default])
_ALLOWED_IMPORTS = {"requests"}  # besides the standard library and the skeleton's own


def _dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _literal_lookups(tree: ast.AST) -> set[int]:
    """The ``getattr``/``hasattr`` Name nodes called with a string literal as the name."""
    fine = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _LITERAL_ATTR
            and len(node.args) >= 2
            and not any(isinstance(arg, ast.Starred) for arg in node.args)
            and not node.keywords
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            fine.add(id(node.func))
    return fine


def lookup(source: str, skeleton: str = "", libraries: frozenset[str] = frozenset()) -> str | None:
    """What in an exercise's code finds or runs code by a name built at run time, or imports
    from outside the standard library (a short description), or None.

    What the skeleton itself imports is allowed (the course kit's modules are
    :func:`borrowing`'s business), and so are the ``libraries`` (top-level names) with
    their submodules.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None  # it will fail on its own when it runs
    try:
        given = set(_modules(ast.parse(skeleton)))
    except SyntaxError:
        given = set()
    for module in _modules(tree):
        top = module.split(".")[0]
        if top == KIT or module in given:
            continue
        if module in _LOOKUP_MODULES or top in _LOOKUP_MODULES:
            return f"import {module}"
        if top not in sys.stdlib_module_names and top not in _ALLOWED_IMPORTS | libraries:
            return f"import {module}（不是 Python 标准库）"
    fine = _literal_lookups(tree)
    in_order = sorted(
        ast.walk(tree), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))
    )
    for node in in_order:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in _LOOKUP_ATTRS or _dunder(alias.name):
                    return f"from {node.module} import {alias.name}"
        elif isinstance(node, ast.Name):
            if node.id in _LOOKUP_NAMES:
                return _LOOKUP_NAMES[node.id]
            if node.id in _LITERAL_ATTR and id(node) not in fine:
                return f"{node.id}(...) 的属性名不是直接写出的字符串"
            if _HISTORY.fullmatch(node.id):
                return f"{node.id}（IPython 的运行记录）"
            if _dunder(node.id) and node.id not in _DUNDER_NAMES:
                return node.id
        elif isinstance(node, ast.Attribute):
            if node.attr in _LOOKUP_ATTRS or (
                _dunder(node.attr) and node.attr not in _DUNDER_ATTRS
            ):
                return f".{node.attr}"
    return None


def top_level_names(source: str) -> tuple[list[str], list[str]]:
    """(the names an exercise cell binds at top level other than by import -- def, class,
    assignment, for, with, := --, the names it reads anywhere), each in order, once."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [], []
    bound: dict[str, None] = {}
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound[node.name] = None
            continue  # what is inside binds names of its own
        for target in _targets(node):
            if isinstance(target, ast.Name):
                bound[target.id] = None
        if isinstance(node, ast.ExceptHandler) and node.name:
            bound[node.name] = None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt | ast.expr | ast.ExceptHandler | ast.match_case):
                todo.append(child)
            elif isinstance(child, ast.comprehension | ast.withitem):
                todo.append(child)
    for node in ast.walk(tree):  # a function may bind them too, once it runs
        if isinstance(node, ast.Global):
            bound.update(dict.fromkeys(node.names))
    read = {
        node.id: None
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return list(bound), list(read)
