"""Self-checks for lesson 02 (parsing Server-Sent Events by hand).

* :func:`check_split_lines` -- ``split_lines(text) -> (lines, rest)``
* :func:`check_parse_field` -- ``parse_field(line) -> (name, value)``, or ``None`` for a comment
* :func:`check_parser` -- a class (or factory) whose instances have ``feed(bytes) -> list[event]``;
  compared with :class:`lesson_helpers.sse.SSEParser` on the same bytes, whole, byte by byte,
  and under many random chunkings.

Every check prints one ``✓`` line, or a ``✗`` line followed by the input that failed, what was
expected, what came back and a hint. It returns nothing (so a check cell shows only that line) and
never raises because of the student's code.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

from ..sse import SSEParser
from .report import check, same
from .report import crash as _crash
from .report import fail as _fail

__all__ = ["check_parse_field", "check_parser", "check_split_lines"]

Fields = tuple[str, str, str, int | None]  # (event, data, id, retry)


# --------------------------------------------------------------------------------------------
# split_lines
# --------------------------------------------------------------------------------------------

_CR_HINT = (
    "CRLF（\\r\\n）是一个换行，不是两个；单独的 \\r 也是换行。先匹配 \\r\\n，再匹配 \\r 和 \\n。"
)
_SPLITLINES_HINT = (
    "只有 \\r 和 \\n 算换行。str.splitlines() 还会在 \\u2028、\\x85、\\x0b、\\x0c 等字符处断行，"
    "这里不能用它；可以用 re.split(r'\\r\\n|\\r|\\n', text)。"
)

_SPLIT_CASES: list[tuple[str, tuple[list[str], str], str]] = [
    ("data: a\n", (["data: a"], ""), "最基本的情况：一行以 \\n 结尾。"),
    (
        "data: a\ndata: b",
        (["data: a"], "data: b"),
        "最后的 'data: b' 后面还没有换行，它不是完整的一行，要作为 rest 返回，等下一块数据。",
    ),
    ("no line end yet", ([], "no line end yet"), "没有任何换行时，整段文字都是 rest。"),
    ("", ([], ""), "空字符串：没有行，rest 也是空的。"),
    ("\n\n", (["", ""], ""), "空行也是行（它负责分发事件），不要把空字符串丢掉。"),
    ("data: a\r\ndata: b\r\n\r\n", (["data: a", "data: b", ""], ""), _CR_HINT),
    ("data: a\rdata: b\r\r", (["data: a", "data: b", ""], ""), _CR_HINT),
    ("a\r\n\r\nb", (["a", ""], "b"), _CR_HINT),
    (
        "a\n\rb",
        (["a", ""], "b"),
        "\\n 后面跟 \\r 是两个换行（只有 \\r\\n 这个顺序才算一对）。",
    ),
    (
        "data: a\r",
        (["data: a"], ""),
        "结尾的 \\r 本身就是换行。"
        "（下一块如果以 \\n 开头，由解析器负责丢掉它，不归 split_lines 管。）",
    ),
    ("data: a\u2028b\x85c\n", (["data: a\u2028b\x85c"], ""), _SPLITLINES_HINT),
    ("data: x\x0by\x0cz\x1c!\n", (["data: x\x0by\x0cz\x1c!"], ""), _SPLITLINES_HINT),
    ("data: 你好\n\n", (["data: 你好", ""], ""), "中文也是普通字符。"),
]


def _diagnose_split(expected: tuple[list[str], str], got: Any, case_hint: str) -> str:
    lines, rest = got
    if any("\r" in line for line in lines):
        return "有的行末尾还留着 \\r：你可能只按 \\n 切了。" + _CR_HINT
    if expected[1] and not got[1] and expected[1] in lines:
        return "最后那段没有换行结尾的文字被当成了完整的一行；它应该是 rest。"
    if "" in expected[0] and "" not in lines:
        return "空行被丢掉了。空行是分发事件的信号，必须保留为 ''。"
    if not lines and not rest:
        return "返回的是空结果：lines 和 rest 都是空的。" + case_hint
    return case_hint


def _split_lines_ok(split_lines: Callable[[str], Any]) -> bool:
    for text, expected, hint in _SPLIT_CASES:
        what = f"split_lines({text!r})"
        try:
            got = split_lines(text)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, hint)
        only_strings = isinstance(got, list) and all(isinstance(x, str) for x in got)
        if only_strings or not (isinstance(got, tuple | list) and len(got) == 2):
            return _fail(
                what,
                expected,
                got,
                "函数要返回两个值：(完整的行组成的列表, 最后剩下的半行)，例如 return lines, rest。",
            )
        lines, rest = got
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            return _fail(what, expected, got, "第一个返回值应该是字符串列表（list[str]）。")
        if not isinstance(rest, str):
            return _fail(what, expected, got, "第二个返回值 rest 应该是字符串（没有就返回 ''）。")
        if not same((lines, rest), expected):
            return _fail(what, expected, (lines, rest), _diagnose_split(expected, got, hint))
    print(f"✓ split_lines：{len(_SPLIT_CASES)} 个用例全部正确（LF、CRLF、CR、空行、半行）。")
    return True


# --------------------------------------------------------------------------------------------
# parse_field
# --------------------------------------------------------------------------------------------

_FIRST_COLON_HINT = (
    "只在第一个冒号处分开：值里本身可能有冒号（JSON 里到处都是）。"
    "用 line.partition(':') 或 line.split(':', 1)。"
)
_ONE_SPACE_HINT = "冒号后面只去掉一个空格，而且只去掉空格：不要用 strip()/lstrip()。"

_FIELD_CASES: list[tuple[str, tuple[str, str] | None, str]] = [
    ("data: hello", ("data", "hello"), "最基本的 '名字: 值'。"),
    ("data:hello", ("data", "hello"), "冒号后面的空格是可选的。"),
    ("data:  two spaces", ("data", " two spaces"), _ONE_SPACE_HINT),
    ("data: trailing  ", ("data", "trailing  "), "值末尾的空格要保留。" + _ONE_SPACE_HINT),
    ("data:\tx", ("data", "\tx"), "只去掉空格 ' '，制表符 \\t 要保留。"),
    ('data: {"t": "12:30"}', ("data", '{"t": "12:30"}'), _FIRST_COLON_HINT),
    ("data::x", ("data", ":x"), _FIRST_COLON_HINT),
    ("data", ("data", ""), "没有冒号的行：整行是字段名，值是空字符串 ''。"),
    ("id:", ("id", ""), "冒号后面什么都没有：值是 ''。"),
    ("event: done", ("event", "done"), "event 字段和 data 一样解析。"),
    ("Data: x", ("Data", "x"), "字段名区分大小写，不要 lower()：'Data' 不是 'data'。"),
    (": ping", None, "以冒号开头的行是注释（常用来保活），返回 None。"),
    (":", None, "只有一个冒号的行也是注释，返回 None。"),
    (": data: x", None, "以冒号开头就是注释，哪怕后面看起来像 data。"),
]


def _parse_field_ok(parse_field: Callable[[str], Any]) -> bool:
    for line, expected, hint in _FIELD_CASES:
        what = f"parse_field({line!r})"
        try:
            got = parse_field(line)
        except Exception as exc:  # the student's code may raise anything
            if isinstance(exc, ValueError) and ":" not in line:
                hint = "这一行没有冒号，拆成两部分会失败。" + hint
            return _crash(what, exc, hint)
        if type(got) is list:
            got = tuple(got)
        if not same(got, expected):
            if expected is None and isinstance(got, tuple):
                hint = "注释行应该返回 None，而不是 (名字, 值)。先判断 line.startswith(':')。"
            elif got is None:
                hint = "这一行不是注释（不以冒号开头），应该返回 (名字, 值)，只有注释才返回 None。"
            elif isinstance(got, tuple) and len(got) == 2 and isinstance(expected, tuple):
                if got[0] == expected[0] and isinstance(got[1], str):
                    if got[1].strip() == expected[1].strip():
                        hint = _ONE_SPACE_HINT
            return _fail(what, expected, got, hint)
    print(f"✓ parse_field：{len(_FIELD_CASES)} 个用例全部正确（空格、冒号、无冒号、注释）。")
    return True


# --------------------------------------------------------------------------------------------
# The whole parser
# --------------------------------------------------------------------------------------------

_PARSER_CASES: list[tuple[str, bytes, str]] = [
    ("一个事件", b"data: hello\n\n", "data 行之后的空行分发事件。"),
    ("两个事件", b"data: a\n\ndata: b\n\n", "每个空行分发一次，分发后要清空 data 缓冲。"),
    ("多行 data", b"data: a\ndata: b\n\n", "同一事件的多个 data 行用 '\\n' 连起来。"),
    (
        "末尾的空 data 行",
        b"data: a\ndata\n\n",
        "'data' 行（没有冒号）的值是 ''，它也是一行数据：结果是 'a\\n'。",
    ),
    ("注释", b": ping\ndata: x\n\n: ping\n\n", "以冒号开头的行是注释，直接忽略。"),
    (
        "没有 data 的空行",
        b"event: ping\n\ndata: x\n\n",
        "data 缓冲为空时遇到空行，什么都不分发，但要把 event 类型也清空。",
    ),
    ("多余的空行", b"data: a\n\n\n\n", "连续的空行不会产生空事件：data 缓冲是空的。"),
    (
        "event 类型",
        b"event: update\ndata: 1\n\ndata: 2\n\n",
        "event 行设置事件类型；分发后类型要恢复成默认的 'message'。",
    ),
    (
        "id 一直保留",
        b"id: 7\ndata: a\n\ndata: b\n\n",
        "id 设置后会一直保留到下次被改，分发时不清空。",
    ),
    (
        "retry",
        b"retry: 3000\ndata: a\n\nretry: 3s\ndata: b\n\n",
        "retry 的值只有全是 ASCII 数字时才生效（'3s' 不算）；"
        "本课的约定是分发后把 retry 清回 None。",
    ),
    ("未知字段", b"foo: bar\ndata: x\nbaz\n\n", "不认识的字段名直接忽略。"),
    (
        "未结束的事件",
        b"data: a\n\ndata: b\n",
        "流结束时还没等到空行的事件不分发（feed 只返回已经完整的事件）。",
    ),
    ("CRLF 换行", b"data: a\r\ndata: b\r\n\r\n", "CRLF 是一个换行，不是两个。"),
    ("CR 换行", b"data: a\rdata: b\r\r", "单独的 CR 也是换行。"),
    ("混合换行", b"data: a\r\ndata: b\rdata: c\n\r\n", "三种换行可以混在一起用。"),
    ("中文", "data: 你好\n\ndata: 世界！\n\n".encode(), "用 UTF-8 解码。"),
    (
        "非法字节",
        b"data: a\xffb\n\n",
        "非法的 UTF-8 字节要变成 '\\ufffd'，而不是让程序崩溃：增量解码器要用 errors='replace'。",
    ),
]

_HALF_CHAR_HINT = (
    "一块数据可能停在一个汉字的中间（UTF-8 里一个汉字占 3 个字节）：不能对每一块单独 .decode()，"
    "要用增量解码器 codecs.getincrementaldecoder('utf-8')(errors='replace')，"
    "它会把不完整的字节留到下一块。"
)
_HALF_LINE_HINT = (
    "一块数据可能停在一行的中间：split_lines 返回的 rest（没有换行结尾的半行）要存起来，"
    "下一次 feed 时先拼在新文字前面，再切行。"
)
_SPLIT_CRLF_HINT = (
    "一块数据可能正好停在 \\r\\n 的中间：上一块以 \\r 结尾时，那个 \\r 已经算作换行，"
    "下一块开头的 \\n 必须丢掉，否则会多出一个空行，把事件提前分发。"
)
_PIECE_HINTS = (
    "一块数据可能停在任何地方：半个汉字（用增量解码器）、半行（保留 rest）、"
    "或者 \\r\\n 的中间（上一块以 \\r 结尾时，丢掉下一块开头的 \\n）。"
)


def _piece_hint(
    blob: bytes,
    expected: list[Fields] | None = None,
    got: list[Fields] | None = None,
    exc: BaseException | None = None,
) -> str:
    """Which of the three traps of pieces is the likely cause."""
    if isinstance(exc, UnicodeDecodeError):
        return _HALF_CHAR_HINT
    if exc is not None or expected is None or got is None:
        return _PIECE_HINTS
    if any("\ufffd" in f[1] for f in got) and not any("\ufffd" in f[1] for f in expected):
        return _HALF_CHAR_HINT
    if len(got) > len(expected) and b"\r\n" in blob:
        return _SPLIT_CRLF_HINT
    if len(got) < len(expected):
        return _HALF_LINE_HINT
    return _PIECE_HINTS


def _seed_wire() -> bytes:
    return (files("lesson_helpers") / "data" / "siliconflow_seed_stream.txt").read_bytes()


def _fields(event: Any) -> Fields:
    if isinstance(event, dict):
        get = event.get
        return (get("event", "message"), get("data", ""), get("id", ""), get("retry"))
    return (
        getattr(event, "event", "message"),
        getattr(event, "data", ""),
        getattr(event, "id", ""),
        getattr(event, "retry", None),
    )


def _run(factory: Callable[[], Any], pieces: Sequence[bytes]) -> list[list[Fields]]:
    """Feed the pieces to a new parser; the events returned by each call, as field tuples."""
    parser = factory()
    out = []
    for piece in pieces:
        got = parser.feed(piece)
        if got is None:
            raise TypeError("feed() 返回了 None，应该返回事件列表（没有事件时返回 []）")
        out.append([_fields(e) for e in got])
    return out


def _flat(per_feed: list[list[Fields]]) -> list[Fields]:
    return [event for events in per_feed for event in events]


def _show(fields: list[Fields]) -> list[str]:
    """Events in a compact form: only the fields that differ from the defaults."""
    shown = []
    for event, data, id_, retry in fields:
        parts = [f"data={data!r}"]
        if event != "message":
            parts.insert(0, f"event={event!r}")
        if id_:
            parts.append(f"id={id_!r}")
        if retry is not None:
            parts.append(f"retry={retry}")
        shown.append("Event(" + ", ".join(parts) + ")")
    return shown


def _explain(expected: list[Fields], got: list[Fields], default: str) -> str:
    """A hint from the first difference between two event lists."""
    if len(got) > len(expected) and any(f[1] == "" for f in got):
        return "多出了 data 为空的事件：data 缓冲为空时，空行不分发任何事件。"
    for want, have in zip(expected, got, strict=False):
        if want == have:
            continue
        if want[1] != have[1]:
            if "\r" in have[1]:
                return "data 里混进了 \\r：换行没有按 CRLF/CR 正确切开。"
            if "\ufffd" in have[1] and "\ufffd" not in want[1]:
                return "出现了乱码 '\\ufffd'：多字节字符被切成两块时，要用增量解码器拼回来。"
            if have[1].startswith(" ") and not want[1].startswith(" "):
                return "冒号后面的那一个空格没有去掉。"
            return default
        if want[0] != have[0]:
            return (
                "事件类型（event）不对：没有 event 行时是 'message'；"
                "每遇到一个空行（不管分发了没有）都要把类型清空。"
            )
        if want[2] != have[2]:
            return "id 不对：id 设置后一直保留（分发时不清空），直到下一次出现 id 行。"
        if want[3] != have[3]:
            return "retry 不对：只接受全是 ASCII 数字的值；本课的约定是分发后清回 None。"
    if not got:
        return "一个事件都没有返回：feed() 要把这一块完成的事件放进列表里返回。" + default
    if len(got) < len(expected):
        return "少了事件：" + default
    return default


def _parser_ok(factory: Callable[[], Any], *, rounds: int = 300, seed: int = 20251117) -> bool:
    for name, blob, hint in _PARSER_CASES:
        expected = _flat(_run(SSEParser, [blob]))
        for how, pieces in (
            ("整块喂入", [blob]),
            ("逐字节喂入", [blob[i : i + 1] for i in range(len(blob))]),
        ):
            what = f"用例「{name}」{how} {blob!r}"
            try:
                got = _flat(_run(factory, pieces))
            except Exception as exc:  # the student's code may raise anything
                return _crash(what, exc, hint if how == "整块喂入" else _piece_hint(blob, exc=exc))
            if not same(got, expected):
                if how == "整块喂入":
                    return _fail(what, _show(expected), _show(got), _explain(expected, got, hint))
                piece_hint = _piece_hint(blob, expected, got)
                return _fail(what, _show(expected), _show(got), piece_hint)
    blob = _seed_wire() + b"".join(case[1] for case in _PARSER_CASES)
    expected_per_feed = None
    rng = random.Random(seed)
    for round_ in range(1, rounds + 1):
        cuts = sorted(rng.randrange(len(blob) + 1) for _ in range(rng.randrange(1, 80)))
        edges = [0, *cuts, len(blob)]
        pieces = [blob[a:b] for a, b in itertools.pairwise(edges)]
        sizes = ", ".join(str(len(p)) for p in pieces[:12]) + (", …" if len(pieces) > 12 else "")
        what = (
            f"第 {round_} 次随机切块（作业示例流 + 全部用例，切成 {len(pieces)} 块，长度 {sizes}）"
        )
        try:
            got_per_feed = _run(factory, pieces)
        except Exception as exc:  # the student's code may raise anything
            return _crash(what, exc, _piece_hint(blob, exc=exc))
        expected_per_feed = _run(SSEParser, pieces)
        got, expected = _flat(got_per_feed), _flat(expected_per_feed)
        if not same(got, expected):
            index = next(
                (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
                min(len(expected), len(got)),
            )
            return _fail(
                f"{what}：第 {index + 1} 个事件不一致"
                f"（共应有 {len(expected)} 个，得到 {len(got)} 个）",
                _show(expected[index : index + 1]),
                _show(got[index : index + 1]),
                _explain(expected[index:], got[index:], _piece_hint(blob, expected, got)),
            )
        for number, (want, have) in enumerate(zip(expected_per_feed, got_per_feed, strict=False)):
            if not same(have, want):
                return _fail(
                    f"{what}：第 {number + 1} 次 feed 返回的事件不对（事件总数是对的）",
                    _show(want),
                    _show(have),
                    "事件来得太晚或太早：feed() 应该在收到空行的那一刻，就返回这个事件。",
                )
    print(
        f"✓ 你的解析器和 lesson_helpers.sse.SSEParser 完全一致："
        f"{len(_PARSER_CASES)} 个用例（整块和逐字节），以及作业示例流的 {rounds} 种随机切法。"
    )
    return True


# --------------------------------------------------------------------------------------------
# The checks the lesson calls (they print; they return nothing, so a cell shows only the print)
# --------------------------------------------------------------------------------------------


@check
def check_split_lines(split_lines: Callable[[str], Any]) -> None:
    """Check ``split_lines(text) -> (lines, rest)``."""
    _split_lines_ok(split_lines)


@check
def check_parse_field(parse_field: Callable[[str], Any]) -> None:
    """Check ``parse_field(line) -> (name, value)`` or ``None`` for a comment."""
    _parse_field_ok(parse_field)


@check
def check_parser(factory: Callable[[], Any], *, rounds: int = 300, seed: int = 20251117) -> None:
    """Compare ``factory().feed`` with :class:`SSEParser` on the same bytes.

    First the small cases, fed whole and then one byte at a time; then the assignment's sample
    stream followed by all the cases, cut into ``rounds`` random chunkings (some pieces empty).
    """
    _parser_ok(factory, rounds=rounds, seed=seed)
