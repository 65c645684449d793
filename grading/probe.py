"""After an exercise cell ran: did it define the course kit's own objects?

:func:`grading.static.borrowing` reads the exercise's code; :func:`grading.static.lookup`
refuses the ways of hiding a name from it. This is the second layer: in the graded notebook,
right after each exercise cell the grader kept, it inserts a cell of its own (:func:`cell`)
that looks at what the exercise cell's top-level names are bound to once it ran -- the
names it defines (``def``, ``class``, assignments...; not its imports) and those it reads
that another exercise cell defines. A name is the kit's when what it holds leads, through
closures, default values, bound methods, ``functools.partial``, containers, instances'
attributes, class bodies and base classes, to a function, class or module of
``lesson_helpers`` (other than what the exercise's skeleton itself imports from it).

The inserted cell runs its code in a namespace of its own (nothing the exercise cell binds
can shadow what it uses), reads objects through the built-in types' own descriptors and
``gc.get_referents`` (no code of the student's runs while it looks), and prints one line:
a random token that says "nothing found", or another one with what it found. Both are new
for every inserted cell, and the cell is not in the notebook file the kernel can read, so
the exercise's code cannot know the first token; the grader reads the inserted cell's own
outputs only, and anything but exactly that one line fails the exercise (:func:`verdict`).
"""

from __future__ import annotations

import ast
import secrets
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

__all__ = ["Probe", "allowed_imports", "cell", "is_probe", "verdict"]

KIT = "lesson_helpers"
MARK = "grading-probe"  # the inserted cell's metadata key

# Runs in the kernel (exec'd with its own globals: ns, names, allowed, clean, flagged).
CODE = """
def _probe(ns, names, allowed_specs, clean, flagged):
    import gc
    import importlib
    import sys
    import types

    write = sys.stdout.write
    flush = sys.stdout.flush
    found = None
    try:
        allowed = set()
        for module, name in allowed_specs:
            try:
                allowed.add(id(getattr(importlib.import_module(module), name)))
            except Exception:
                pass
        function, module_type = types.FunctionType, types.ModuleType
        f_module = function.__dict__["__module__"].__get__
        f_qualname = function.__dict__["__qualname__"].__get__
        f_closure = function.__dict__["__closure__"].__get__
        f_defaults = function.__dict__["__defaults__"].__get__
        f_kwdefaults = function.__dict__["__kwdefaults__"].__get__
        f_dict = function.__dict__["__dict__"].__get__
        t_module = type.__dict__["__module__"].__get__
        t_qualname = type.__dict__["__qualname__"].__get__
        t_dict = type.__dict__["__dict__"].__get__
        t_bases = type.__dict__["__bases__"].__get__
        t_mro = type.__dict__["__mro__"].__get__
        m_dict = module_type.__dict__["__dict__"].__get__
        not_code = {"__annotations__", "__dataclass_fields__", "__annotate__",
                    "__annotate_func__", "__orig_bases__", "__type_params__", "__parameters__"}
        skip = {id(ns)}
        for loaded in list(sys.modules.values()):
            if issubclass(type(loaded), module_type):
                skip.add(id(m_dict(loaded)))

        def kit(where):
            return type(where) is str and (where == KIT or where.startswith(KIT + "."))

        def origin(root):
            seen = set()
            todo = [(root, 0)]
            while todo and len(seen) < 50000:
                obj, depth = todo.pop()
                key = id(obj)
                if key in seen or key in allowed or key in skip or depth > 12:
                    continue
                seen.add(key)
                kind = type(obj)
                if kind is function:
                    if kit(f_module(obj)):
                        return f"{f_module(obj)}.{f_qualname(obj)}"
                    parts = list(f_closure(obj) or ()) + list(f_defaults(obj) or ())
                    parts += list((f_kwdefaults(obj) or {}).values())
                    parts.append(f_dict(obj))
                elif issubclass(kind, type):
                    if kit(t_module(obj)):
                        return f"{t_module(obj)}.{t_qualname(obj)}"
                    if t_module(obj) == "builtins":
                        continue
                    parts = list(t_bases(obj)) + list(t_mro(obj))
                    parts += [
                        value
                        for name, value in t_dict(obj).items()
                        if not (type(name) is str and name in not_code)
                    ]
                elif issubclass(kind, module_type):
                    name = m_dict(obj).get("__name__")
                    if kit(name):
                        return name
                    continue
                elif kit(t_module(kind)):
                    continue  # the kit's data (settings, an event): what it holds is not code
                else:
                    parts = gc.get_referents(obj)
                todo += [(part, depth + 1) for part in parts]
            return None

        for name in names:
            if name in ns:
                where = origin(ns[name])
                if where:
                    found = f"{name}\\t{where}"
                    break
    except BaseException as exc:
        found = f"?\\t{type(exc).__name__}"
    write(clean + "\\n" if found is None else f"{flagged} {found}\\n")
    flush()


_probe(ns, names, allowed, clean, flagged)
""".replace("KIT", repr(KIT))


@dataclass
class Probe:
    """One inserted cell's tokens (new for every cell)."""

    solution_id: str
    clean: str = field(default_factory=lambda: secrets.token_hex(16))
    flagged: str = field(default_factory=lambda: secrets.token_hex(16))


def allowed_imports(skeleton: str) -> list[tuple[str, str]]:
    """(module, name) of every ``from lesson_helpers... import name`` in the skeleton."""
    try:
        tree = ast.parse(skeleton)
    except SyntaxError:
        return []
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
        if node.module.split(".")[0] == KIT
        for alias in node.names
    ]


def cell(probe: Probe, names: list[str], allowed: list[tuple[str, str]]) -> NotebookNode:
    """The cell the grader inserts after the exercise cell ``probe.solution_id``.

    It uses only names an exercise may not rebind (``exec``, ``globals``, ``__builtins__``:
    :func:`grading.static.tampering`).
    """
    scope = {
        "names": names,
        "allowed": allowed,
        "clean": probe.clean,
        "flagged": probe.flagged,
    }
    source = (
        f"exec({CODE!r}, {{'__builtins__': __builtins__, 'ns': globals(), "
        + ", ".join(f"{key!r}: {value!r}" for key, value in scope.items())
        + "})"
    )
    return nbformat.v4.new_code_cell(source, metadata={MARK: probe.solution_id})


def is_probe(cell: NotebookNode) -> bool:
    return MARK in cell.get("metadata", {})


def verdict(probe: Probe, ran: NotebookNode) -> str | None:
    """None when the inserted cell (as it ran) found nothing, else a hint for the exercise."""
    outputs = ran.get("outputs", [])
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    only_stdout = all(
        o.get("output_type") == "stream" and o.get("name") == "stdout" for o in outputs
    )
    if only_stdout and text == probe.clean + "\n":
        return None
    line = text.removesuffix("\n")
    if only_stdout and line.startswith(probe.flagged + " ") and "\n" not in line:
        name, _, where = line.removeprefix(probe.flagged + " ").partition("\t")
        if name != "?":
            return (
                f"练习格 {probe.solution_id} 用了课程包里现成的 {where}（{name}）："
                "这个练习要你自己写出来。"
            )
    return (
        f"评分时没法确认练习格 {probe.solution_id} 定义的是你自己写的代码"
        "（它运行之后，评分的检查步骤被打断或改动了）：只写练习要求的代码。"
    )
