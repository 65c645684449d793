"""The self-check functions of lessons 00 and 01 accept right answers and catch typical wrong ones
with a specific hint; the two notebooks follow the exercise pattern."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import routed_output

from lesson_helpers.checks.lesson00 import check_is_env_ignored, check_my_mask
from lesson_helpers.checks.lesson01 import check_explain_error, check_make_request

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("00_setup.ipynb", "01_raw_http.ipynb")


def run_check(check, func, capsys) -> str:
    """Run a check; like every lesson's check it returns None, so return what it printed."""
    assert check(func) is None
    return routed_output(capsys)


def passed(out: str) -> bool:
    """One ✓ line and no ✗ anywhere."""
    return out.startswith("✓") and "✗" not in out and out.count("\n") == 1


def failed(out: str) -> bool:
    """A ✗ report (with its hint) and no ✓ anywhere."""
    return out.startswith("✗") and "✓" not in out and "提示：" in out


# -- lesson 00: is_env_ignored ---------------------------------------------------------------
def good_is_env_ignored(gitignore_text: str) -> bool:
    ignored = False
    for raw in gitignore_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        if pattern.endswith("/"):
            continue
        if fnmatch.fnmatchcase(".env", pattern.removeprefix("/")):
            ignored = not negate
    return ignored


def test_is_env_ignored_reference_passes(capsys):
    out = run_check(check_is_env_ignored, good_is_env_ignored, capsys)
    assert passed(out)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda text: ".env" in text, "注释"),  # substring test: '# .env' counts
        (lambda text: ".env" in text.split("\n"), "strip"),  # exact lines, no strip
        (
            lambda text: any(line.strip() == ".env" for line in text.splitlines()),
            "/ 表示",  # no leading-slash or glob support
        ),
        (
            lambda text: any(
                fnmatch.fnmatchcase(".env", line.strip().lstrip("/"))
                for line in text.splitlines()
                if line.strip() and not line.startswith("#")
            ),
            "!",  # ignores negation
        ),
        (lambda text: "yes", "True 或 False"),
        (lambda text: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_is_env_ignored_catches_wrong_answers(wrong, hint, capsys):
    out = run_check(check_is_env_ignored, wrong, capsys)
    assert failed(out)
    assert out.startswith("✗")
    assert "提示：" in out
    assert hint in out


def test_is_env_ignored_negation_order_hint(capsys):
    def first_bang_wins(text: str) -> bool:
        if "!.env\n" in text:
            return False
        return good_is_env_ignored(text)

    out = run_check(check_is_env_ignored, first_bang_wins, capsys)
    assert failed(out)
    assert "顺序很重要" in out


def test_is_env_ignored_folder_hint(capsys):
    def folders_too(text: str) -> bool:
        return good_is_env_ignored(text.replace(".env/", ".env"))

    out = run_check(check_is_env_ignored, folders_too, capsys)
    assert failed(out)
    assert "文件夹" in out


# -- lesson 00: my_mask ----------------------------------------------------------------------
def good_my_mask(key: str) -> str:
    if len(key) < 12:
        return "***"
    return f"{key[:3]}…{key[-4:]}"


def test_my_mask_reference_passes(capsys):
    out = run_check(check_my_mask, good_my_mask, capsys)
    assert passed(out)


def test_my_mask_accepts_three_dots(capsys):
    out = run_check(
        check_my_mask, lambda k: "***" if len(k) < 12 else k[:3] + "..." + k[-4:], capsys
    )
    assert passed(out)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda key: key, "完整的密钥"),
        (lambda key: key[:8] + "…" + key[-4:] if len(key) >= 12 else "***", "泄露的字符太多"),
        (lambda key: f"{key[:3]}…{key[-4:]}", "短于 12 个字符"),  # short keys leak
        (lambda key: key[:3] + "…" + key[-3:] if len(key) >= 12 else "***", "最后 4 个字符"),
        (lambda key: "…" + key[-4:] if len(key) >= 12 else "***", "前 3 个字符"),
        (lambda key: key[:3] + "***" + key[-4:] if len(key) >= 12 else "***", "省略号"),
        (lambda key: good_my_mask(key) if key[0] else "", "IndexError"),  # crashes on ""
        (lambda key: None, "str"),
    ],
)
def test_my_mask_catches_wrong_answers(wrong, hint, capsys):
    out = run_check(check_my_mask, wrong, capsys)
    assert failed(out)
    assert out.startswith("✗")
    assert hint in out


# -- lesson 01: make_request -----------------------------------------------------------------
def good_make_request(settings, question):
    url = settings.base_url + "/chat/completions"
    headers = {
        "Authorization": f"Bearer {settings.api_key.reveal()}",
        "Content-Type": "application/json",
    }
    body = {"model": settings.model, "messages": [{"role": "user", "content": question}]}
    return url, headers, body


def variant(**changes):
    """good_make_request with one part replaced by a function of (settings, question)."""

    def make(settings, question):
        url, headers, body = good_make_request(settings, question)
        parts = {"url": url, "headers": headers, "body": body}
        for name, change in changes.items():
            parts[name] = change(settings, question, parts[name])
        return parts["url"], parts["headers"], parts["body"]

    return make


def test_make_request_reference_passes(capsys):
    out = run_check(check_make_request, good_make_request, capsys)
    assert passed(out)


def test_make_request_accepts_stream_false_and_lowercase_header_names(capsys):
    def make(settings, question):
        url, headers, body = good_make_request(settings, question)
        headers = {k.lower(): v for k, v in headers.items()}
        return url, headers, {**body, "stream": False}

    out = run_check(check_make_request, make, capsys)
    assert passed(out)


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (variant(url=lambda s, q, u: s.base_url), "路径 /chat/completions"),
        (variant(url=lambda s, q, u: s.base_url + "//chat/completions"), "两个斜杠"),
        (variant(url=lambda s, q, u: s.base_url + "/v1/chat/completions"), "/v1 重复"),
        (variant(url=lambda s, q, u: s.base_url + "/chat/completion"), "复数"),
        (variant(url=lambda s, q, u: "https://api.example.com/v1/chat/completions"), "写死"),
        (
            variant(headers=lambda s, q, h: {"Content-Type": "application/json"}),
            "没有 Authorization",
        ),
        (
            variant(headers=lambda s, q, h: {**h, "Authorization": s.api_key.reveal()}),
            "少了前缀",
        ),
        (
            variant(headers=lambda s, q, h: {**h, "Authorization": "Bearer" + s.api_key.reveal()}),
            "空格",
        ),
        (
            variant(headers=lambda s, q, h: {**h, "Authorization": f"Bearer {s.api_key}"}),
            "reveal()",
        ),
        (
            variant(headers=lambda s, q, h: {**h, "Authorization": "Bearer fake-key-for-tests"}),
            "写死",
        ),
        (
            variant(headers=lambda s, q, h: {"Authorization": h["Authorization"]}),
            "Content-Type",
        ),
        (variant(body=lambda s, q, b: json.dumps(b)), "json=body"),
        (variant(body=lambda s, q, b: {**b, "model": "example/model-a"}), "settings.model"),
        (variant(body=lambda s, q, b: {"messages": b["messages"]}), "缺少 'model'"),
        (variant(body=lambda s, q, b: {**b, "messages": {"role": "user", "content": q}}), "列表"),
        (
            variant(body=lambda s, q, b: {**b, "messages": [{"role": "human", "content": q}]}),
            "'user'",
        ),
        (
            variant(body=lambda s, q, b: {**b, "messages": [{"role": "user", "content": "你好"}]}),
            "question 本身",
        ),
        (variant(body=lambda s, q, b: {**b, "stream": "false"}), "布尔值"),
        (
            variant(body=lambda s, q, b: {**b, "api_key": s.api_key.reveal()}),
            "绝不放进 body",
        ),
        (lambda settings, question: settings.base_url, "三样东西"),
        (lambda settings, question: settings.key, "AttributeError"),
    ],
)
def test_make_request_catches_wrong_answers(wrong, hint, capsys):
    out = run_check(check_make_request, wrong, capsys)
    assert failed(out)
    assert out.startswith("✗")
    assert hint in out


def test_make_request_failures_never_print_the_key(capsys):
    wrongs = [
        variant(headers=lambda s, q, h: {**h, "Authorization": "Bearer  " + s.api_key.reveal()}),
        variant(body=lambda s, q, b: {**b, "api_key": s.api_key.reveal()}),
        variant(headers=lambda s, q, h: {**h, "Authorization": s.api_key.reveal()}),
    ]
    for wrong in wrongs:
        check_make_request(wrong)
        out = routed_output(capsys)
        assert "✗" in out
        assert "fake-key-for-tests" not in out


# -- lesson 01: explain_error ----------------------------------------------------------------
def good_explain_error(status: int, body: str) -> str:
    text = body.strip()
    if not text:
        return f"HTTP {status}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(data.get("message"), str):
            return data["message"]
    return text


def test_explain_error_reference_passes(capsys):
    out = run_check(check_explain_error, good_explain_error, capsys)
    assert passed(out)


def test_explain_error_agrees_with_the_kits_reader():
    """Where the kit's own reader has an answer, the exercise's expected answers agree with it."""
    from lesson_helpers.checks import lesson01
    from lesson_helpers.errors import provider_message

    for _status, body, expected, _hint in lesson01._ERROR_CASES:
        if body.strip():
            assert provider_message(body) == expected


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda status, body: body, "原样返回了整个 body"),
        (lambda status, body: json.loads(body)["error"]["message"], "KeyError"),
        (lambda status, body: json.loads(body)["error"], "dict"),
        (
            lambda status, body: (
                good_explain_error(status, body)
                if "20012" not in body
                else json.loads(body).get("error", {}).get("message", "")
            ),
            "顶层",
        ),
        (
            lambda status, body: (
                good_explain_error(status, body) if '"error":"' not in body else ""
            ),
            "字符串",
        ),
        (lambda status, body: good_explain_error(status, body) + " ", "strip"),
        (
            lambda status, body: good_explain_error(status, body) if body else "",
            "f'HTTP {status}'",
        ),
    ],
)
def test_explain_error_catches_wrong_answers(wrong, hint, capsys):
    out = run_check(check_explain_error, wrong, capsys)
    assert failed(out)
    assert out.startswith("✗")
    assert hint in out


# -- the stub of the student edition -------------------------------------------------------
def stub_named(name: str):
    """What an exercise is in the student edition until it is written."""

    def stub(*args, **kwargs):
        raise NotImplementedError("还没完成")

    stub.__name__ = stub.__qualname__ = name
    return stub


@pytest.mark.parametrize(
    ("check", "name"),
    [
        (check_is_env_ignored, "is_env_ignored"),
        (check_my_mask, "my_mask"),
        (check_make_request, "make_request"),
        (check_explain_error, "explain_error"),
    ],
)
def test_the_unwritten_stub_is_reported_as_not_done(check, name, capsys):
    out = run_check(check, stub_named(name), capsys)
    assert out.startswith(f"✗ 还没完成：{name} ")
    assert out.count("\n") == 1, out  # one line, no traceback, no hint about an error
    assert "Traceback" not in out and "NotImplementedError(" not in out


# -- the notebooks ---------------------------------------------------------------------------
EXERCISES = {
    "00_setup.ipynb": {"l00-is-env-ignored": 2, "l00-my-mask": 1},
    "01_raw_http.ipynb": {"l01-make-request": 2, "l01-explain-error": 2},
}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_exercises_follow_the_pattern(name):
    """Each exercise: the task in prose, ONE nbgrader solution cell whose solution sits inside a
    function body, then its graded check cell; no hidden reference cell of the old format."""
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cells = nb.cells
    assert cells[0].cell_type == "markdown"
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "from lesson_helpers import connect" in first_code.source
    assert "from lesson_helpers.checks import uses_exercise" in first_code.source
    assert "settings = connect()" in first_code.source
    assert not [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert not [c for c in cells if c.metadata.get("jupyter", {}).get("source_hidden")]
    found = {}
    for i, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader")
        if not meta or not meta["solution"]:
            continue
        grade_id = meta["grade_id"]
        assert meta == {
            "grade": False,
            "grade_id": grade_id,
            "locked": False,
            "schema_version": 3,
            "solution": True,
        }
        assert cells[i - 1].cell_type == "markdown"  # the task comes first
        lines = cell.source.splitlines()
        begin = lines.index("    ### BEGIN SOLUTION")  # inside a function body
        assert lines[0].startswith("def ") and lines[1].lstrip().startswith('"""')
        assert lines[begin + 1 :].count("    ### END SOLUTION") == 1
        check = cells[i + 1]
        assert check.metadata["nbgrader"] == {
            "grade": True,
            "grade_id": f"{grade_id}-check",
            "locked": True,
            "points": check.metadata["nbgrader"]["points"],
            "schema_version": 3,
            "solution": False,
        }
        assert re.search(r"^check_\w+\(\w+\)$", check.source.splitlines()[-1])
        found[grade_id] = check.metadata["nbgrader"]["points"]
    assert found == EXERCISES[name]


def test_the_how_to_paragraph_is_there_and_the_old_scheme_is_gone():
    for name in NOTEBOOKS:
        text = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / name, 4).cells)
        assert "**练习怎么做**" in text, name
        for old in ("折叠", "取消注释", "删掉下面各行开头的", "参考答案（先别展开"):
            assert old not in text, (name, old)
        assert "种子" not in text, name


KEYLIKE = re.compile(r"sk-[A-Za-z0-9]{20}|Bearer [A-Za-z0-9._\-]{24}")
ABSOLUTE = re.compile(r"(/root|/home|/tmp|/work|/Users|[A-Z]:\\\\)")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_stores_no_paths_keys_or_errors(name):
    text = (ROOT / "notebooks" / name).read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert not KEYLIKE.search(text)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            assert output.output_type != "error", cell.source[:80]
            assert output.get("name") != "stderr", cell.source[:80]
            shown = json.dumps(output, ensure_ascii=False)
            assert not ABSOLUTE.search(shown), shown[:200]
            assert "local-practice-key" not in shown
