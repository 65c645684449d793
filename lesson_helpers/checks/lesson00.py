"""Self-checks for lesson 00 (setup and keeping the key safe).

* :func:`check_is_env_ignored` -- ``is_env_ignored(gitignore_text) -> bool``: would this
  `.gitignore` keep the file `.env` (in the project root) out of Git?
* :func:`check_my_mask` -- ``my_mask(key) -> str``: the key with all but its first 3 and last 4
  characters hidden (``"fak…ests"``); keys shorter than 12 characters become ``"***"``.

Every check prints one ``✓`` line, or a ``✗`` line followed by the input that failed, what was
expected, what came back and a hint. It returns nothing (so a check cell shows only that line) and
never raises because of the student's code.
"""

from __future__ import annotations

from collections.abc import Callable

from .report import check, same
from .report import crash as _crash
from .report import fail as _fail

__all__ = ["check_is_env_ignored", "check_my_mask"]


# --------------------------------------------------------------------------------------------
# is_env_ignored
# --------------------------------------------------------------------------------------------

# The kit's own .gitignore (a copy, so the check does not depend on the working tree).
_KIT_GITIGNORE = (
    ".env\n.env.*\n!.env.example\n.venv/\n__pycache__/\n*.pyc\n.pytest_cache/\n"
    ".ipynb_checkpoints/\n*.egg-info/\n"
)

# (gitignore text, expected answer, hint when the answer is wrong)
_IGNORE_CASES: list[tuple[str, bool, str]] = [
    (".env\n", True, "最简单的情况：有一行正好是 .env，就表示忽略它。"),
    ("", False, "空的 .gitignore 什么也不忽略。"),
    ("*.pyc\n__pycache__/\n", False, "这些模式都匹配不到 .env 这个名字，应当返回 False。"),
    ("# .env\n", False, "以 # 开头的行是注释，不是规则：先跳过空行和注释行。"),
    (
        ".env.example\n",
        False,
        ".env.example 是另一个文件，不会忽略 .env。"
        "不要用 '.env' in text 这样的子串判断，要一行一行地比较整个模式。",
    ),
    (
        "node_modules/\n.env   \n",
        True,
        "行尾多出来的空格不算模式的一部分：比较之前先 strip()。",
    ),
    (
        ".env\r\n*.pyc\r\n",
        True,
        "这是 Windows 的换行（\\r\\n）。"
        "用 text.splitlines() 分行、再 strip() 每一行，就不会留下 \\r。",
    ),
    (
        "/.env\n",
        True,
        "开头的 / 表示“只匹配仓库根目录里的”，.env 正好在根目录：去掉开头的 / 再比较。",
    ),
    (
        ".env*\n",
        True,
        "通配符 * 可以匹配任意多个字符（也可以是零个），所以 .env* 也匹配 .env 本身。"
        "用 fnmatch.fnmatchcase('.env', 模式) 来比较。",
    ),
    ("*.env\n", True, "* 也可以匹配零个字符：*.env 匹配 .env。用 fnmatch.fnmatchcase 比较。"),
    (".envrc\n", False, ".envrc 是另一个文件名，不匹配 .env。"),
    (
        ".env/\n",
        False,
        "以 / 结尾的模式只匹配文件夹，而 .env 是一个文件：这样的行要跳过。",
    ),
    (
        ".env\n!.env\n",
        False,
        "以 ! 开头的行表示“取消忽略”。规则从上往下看，后面的覆盖前面的：最后 .env 没有被忽略。",
    ),
    (
        "!.env\n.env\n",
        True,
        "顺序很重要：后面的 .env 又把它忽略了。不要一看到 ! 就返回 False，要看最后一条匹配的规则。",
    ),
    (
        _KIT_GITIGNORE,
        True,
        "这是课程自己的 .gitignore。'!.env.example' 只取消忽略 .env.example，与 .env 无关。",
    ),
]


def _is_env_ignored_ok(func: Callable[[str], bool]) -> bool:
    for text, expected, hint in _IGNORE_CASES:
        what = f"is_env_ignored({text!r})"
        try:
            got = func(text)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, hint)
        if not isinstance(got, bool):
            return _fail(
                f"{what} 返回的不是 True/False", expected, got, "函数要返回布尔值 True 或 False。"
            )
        if not same(got, expected):
            return _fail(what, expected, got, hint)
    print(f"✓ is_env_ignored：{len(_IGNORE_CASES)} 个 .gitignore 例子全部判断正确。")
    return True


@check
def check_is_env_ignored(func: Callable[[str], bool]) -> None:
    """Run ``func`` on gitignore texts that students often get wrong."""
    _is_env_ignored_ok(func)


# --------------------------------------------------------------------------------------------
# my_mask
# --------------------------------------------------------------------------------------------

# key -> the right answer, written out (the kit holds no ready-made my_mask). "demo12345678" is
# exactly 12 characters long, "short-key1" 10.
_MASKED = {
    "fake-key-for-tests": "fak…ests",
    "not-a-real-key-0042": "not…0042",
    "demo12345678": "dem…5678",
    "short-key1": "***",
    "abc": "***",
    "": "***",
}


def _leaked_piece(key: str, result: str, size: int = 8) -> str | None:
    """A run of ``size`` consecutive key characters that appears in the result, if any."""
    for start in range(len(key) - size + 1):
        piece = key[start : start + size]
        if piece in result:
            return piece
    return None


def _check_one_mask(func: Callable[[str], str], key: str) -> bool:
    what = f"my_mask({key!r})"
    expected = _MASKED[key]
    try:
        got = func(key)
    except Exception as exc:  # the student's code may raise anything
        hint = "空字符串和很短的密钥也不能报错：先判断 len(key) < 12，直接返回 '***'。"
        return _crash(what, exc, hint)
    if type(got) is not str:
        return _fail(f"{what} 返回的不是字符串", expected, got, "函数要返回一个 str。")
    if key and key in got:
        return _fail(what, expected, got, "结果里包含了完整的密钥！打码的意义就是不让它出现。")
    if len(key) < 12:
        if got != "***":
            return _fail(
                what,
                expected,
                got,
                "短于 12 个字符的密钥，留下哪怕 4 个字符也等于泄露了一大半：整个换成 '***'。",
            )
        return True
    leaked = _leaked_piece(key, got)
    if leaked is not None:
        return _fail(
            what,
            expected,
            got,
            f"泄露的字符太多：{leaked!r} 是密钥里连续的 8 个字符。只保留开头 3 个和结尾 4 个。",
        )
    if not got.endswith(key[-4:]):
        return _fail(
            what,
            expected,
            got,
            f"结果应当以密钥的最后 4 个字符 {key[-4:]!r} 结尾（key[-4:]），"
            "这样你能认出是哪一把密钥。",
        )
    if not got.startswith(key[:3]):
        return _fail(
            what, expected, got, f"结果应当以密钥的前 3 个字符 {key[:3]!r} 开头（key[:3]）。"
        )
    if got.replace("...", "…") != expected:
        return _fail(
            what,
            expected,
            got,
            "开头 3 个字符、一个省略号 '…'、结尾 4 个字符，中间不要有别的东西。",
        )
    return True


@check
def check_my_mask(func: Callable[[str], str]) -> None:
    """Check ``func`` on long keys, short keys and the empty string."""
    for key in _MASKED:
        if not _check_one_mask(func, key):
            return
    count = len(_MASKED)
    print(f"✓ my_mask：{count} 个密钥都打码正确，没有泄露多余的字符。")
