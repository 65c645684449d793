"""Checks that run the student's app.py against the grader's local servers.

Every run asks a random question of a model with a random name, whose answer holds a secret
(see :mod:`grading.quiz`): only a program that really sends the request and reads the stream
can print it. The expected text is what the kit's own reader gets from the same model.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lesson_helpers.local_server import LocalServer, RequestRecord

from .checks import check, fail
from .harness import AppRunner, Run, common_problem, crash_hint, crash_line, shown
from .quiz import (
    GraderModel,
    Reply,
    is_grader_model,
    random_key,
    random_question,
    reference_reply,
)
from .static import app_problem

__all__ = ["APP_CHECKS", "AppContext"]

LIVE = 0.5  # seconds between the first text on screen and the program's end: it streamed
_SHADOWS = ("requests", "dotenv", "urllib3", "json", "sys", "os", "re")


@dataclass
class AppContext:
    runner: AppRunner
    source: str  # app.py's text, read before anything ran
    name: str  # app.py as the report shows it (student/app.py, app.py)
    server: LocalServer  # pace 0
    slow_server: LocalServer  # one token every 25 ms


@dataclass
class Asked:
    """One run of app.py and what the server saw."""

    run: Run
    records: list[RequestRecord]
    others: list[RequestRecord]  # requests for some other model


def _ask(
    ctx: AppContext,
    server: LocalServer,
    model: GraderModel,
    args: list[str],
    stdin: str = "",
    key: str | None = None,
    extra: dict[str, str] | None = None,
) -> Asked:
    started = time.time()  # the server's records carry time.time(); not the reference's
    run = ctx.runner.run(
        args,
        base_url=server.base_url,
        api_key=(server.api_key or "") if key is None else key,
        model=model.id,
        stdin=stdin,
        extra=extra,
    )
    log = [r for r in server.requests if r.time >= started]
    return Asked(
        run,
        [r for r in log if r.model == model.id],
        [r for r in log if not is_grader_model(r.model)],
    )


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _no_request(asked: Asked) -> str | None:
    if asked.records:
        return None
    if asked.others:
        return '请求里的模型名不是 LLM_MODEL 给的：模型要用 os.getenv("LLM_MODEL")（不要写死）。'
    return (
        "本地练习服务器没有收到任何请求：网址要用 LLM_BASE_URL、密钥用 LLM_API_KEY、"
        "模型用 LLM_MODEL（不要写死；也不要用 load_dotenv(override=True)）。"
    )


def _not_streamed(asked: Asked) -> str | None:
    body = asked.records[0].body if asked.records else None
    if isinstance(body, dict) and body.get("stream") is not True:
        return '请求体里没有 "stream": true：服务器只好等回答全部生成完，再一次性发回来。'
    return None


def _problem(asked: Asked, what: str) -> str | None:
    return common_problem(asked.run, what) or _no_request(asked) or _not_streamed(asked)


def _require_text(run: Run, expected: Reply, advice: str) -> None:
    if expected.text in run.stdout:
        return
    if not run.stdout.strip():
        fail(f"没有显示任何回答（stderr：{shown(run.stderr) or '空'}）：{advice}")
    fail(
        f"回答不对：应当输出「{shown(expected.text, 40)}」，实际输出「{shown(run.stdout, 60)}」。"
        + advice
    )


def _exit_zero(run: Run, what: str) -> None:
    if run.returncode != 0:
        fail(
            f"{what}正确，但程序的退出码是 {run.returncode}（应为 0）：stderr：{shown(run.stderr)}"
        )


def _short_error(run: Run) -> None:
    if len(run.error_lines) > 2:
        fail(f"错误信息有 {len(run.error_lines)} 行：一两行说清楚就好（不要打印 Traceback）。")


_IN_ORDER = '每个 chunk 的 choices[0].delta.content 都要按顺序打印（用 end=""，不换行）。'


@check(15, "单轮对话：python app.py 问题，逐字显示服务器发来的回答")
def check_single_turn(ctx: AppContext) -> None:
    question = random_question()
    with GraderModel("normal").on(ctx.server) as model:
        expected = reference_reply(ctx.server, model.id, _user(question))
        asked = _ask(ctx, ctx.server, model, [question])
    problem = _problem(asked, "回答一个问题")
    if problem:
        fail(problem)
    _require_text(asked.run, expected, _IN_ORDER)
    _exit_zero(asked.run, "回答")


@check(10, "流式输出：回答边收边显示，而不是最后一次性出现", alone=True)
def check_streams_live(ctx: AppContext) -> None:
    question = random_question()
    with GraderModel("normal").on(ctx.server, ctx.slow_server) as model:
        expected = reference_reply(ctx.server, model.id, _user(question))
        # Twice at once: as it is, and unbuffered -- if only the second one streams, the
        # program streams but print's buffer holds the text back.
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = [
                pool.submit(_ask, ctx, ctx.slow_server, model, [question], extra=extra)
                for extra in (None, {"PYTHONUNBUFFERED": "1"})
            ]
            asked, again = (run.result() for run in runs)
    problem = _problem(asked, "流式回答")
    if problem:
        fail(problem)
    start = expected.text[:12]
    first = asked.run.first_seen(start)
    if first is None:
        _require_text(asked.run, expected, _IN_ORDER)
        fail(f"没有看到回答的开头（输出：「{shown(asked.run.stdout)}」）。")
    # The server needs about 1.5 seconds for this answer. Text that appears only when the
    # program ends was held back somewhere: by the program's reading, or by print's buffer.
    if asked.run.duration - first >= LIVE:
        _require_text(asked.run, expected, _IN_ORDER)
        return
    first_unbuffered = again.run.first_seen(start)
    if first_unbuffered is not None and again.run.duration - first_unbuffered >= LIVE:
        fail(
            "回答是在程序结束时一次性出现的：print 的输出被缓冲了。"
            '打印每一块文字时写 print(text, end="", flush=True)。'
        )
    fail(
        "回答是在程序结束时一次性出现的：读取方式不是流式的。requests.post 要加 stream=True，"
        "并用 response.raw.read1(...) 边收边读，不要用 response.text、response.json() 或 "
        "response.content。"
    )


@check(15, "多轮对话：不带参数运行，第二个问题带上第一轮的问题和回答")
def check_multi_turn(ctx: AppContext) -> None:
    first, second = random_question(), random_question()
    with GraderModel("normal").on(ctx.server) as model:
        answer = reference_reply(ctx.server, model.id, _user(first))
        history = [*_user(first), {"role": "assistant", "content": answer.text}, *_user(second)]
        answer2 = reference_reply(ctx.server, model.id, history)
        asked = _ask(ctx, ctx.server, model, [], stdin=f"{first}\n{second}\n/quit\n")
    problem = _problem(asked, "多轮对话")
    if problem:
        fail(problem)
    if len(asked.records) < 2:
        fail(
            "多轮对话只发出了 1 次请求：不带参数运行时，要循环用 input() 读取下一个问题，"
            "直到输入 /quit 或输入结束（EOFError）。"
        )
    body = asked.records[1].body
    messages = body.get("messages") if isinstance(body, dict) else None
    messages = [m for m in messages or [] if isinstance(m, dict)]
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    answers = [m.get("content") for m in messages if m.get("role") == "assistant"]
    if first not in users:
        fail(
            "第二次请求的 messages 里只有新问题：要把整个对话历史（之前的问题和回答）一起发过去，"
            "模型才“记得”上一轮。"
        )
    if not answers:
        fail(
            "第二次请求的 messages 里没有上一轮的回答：回答结束后，把完整的回答作为 "
            '{"role": "assistant", "content": 回答} 加进 messages。'
        )
    if answer.text not in answers:
        fail(
            f"历史里上一轮的回答不对：应当是「{shown(answer.text, 40)}」，"
            f"实际是「{shown(str(answers[0]), 40)}」。"
            "把所有 delta.content 拼起来，得到完整回答后再加进 messages。"
        )
    if not users or users[-1] != second:
        fail("第二次请求的最后一条 user 消息应当是第二个问题。")
    for reply in (answer, answer2):
        if reply.text not in asked.run.stdout:
            fail(f"有一轮的回答没有完整显示出来（输出：「{shown(asked.run.stdout[-120:])}」）。")
    if len(asked.records) > 2:
        fail("输入 /quit 之后程序还在发请求：/quit 应当结束对话。")
    _exit_zero(asked.run, "对话")


@check(10, "错误的密钥：一两行说明（含 HTTP 401），非 0 退出码，不打印密钥")
def check_wrong_key(ctx: AppContext) -> None:
    key = random_key()
    with GraderModel("normal").on(ctx.server) as model:
        asked = _ask(ctx, ctx.server, model, [random_question()], key=key)
    run = asked.run
    unfinished = common_problem(run, "用错误的密钥请求")
    crash = crash_line(run)
    if unfinished and not crash:
        fail(unfinished)
    if crash:
        fail(
            f"密钥错误时程序崩溃了（{shown(crash, 100)}）：检查 response.status_code，"
            f"不是 200 时 raise http_error(response, config)。（{crash_hint(crash)}）"
        )
    if key in run.stdout + run.stderr:
        fail("输出里出现了密钥本身：错误信息里永远不要打印密钥。")
    if not asked.records:
        fail(_no_request(asked) or "")
    if run.returncode == 0:
        fail(
            "密钥错误（HTTP 401）时程序却正常结束了（退出码 0）：状态码不是 200 时要报错，"
            "以非 0 的退出码结束（raise http_error(response, config)）。"
        )
    if "401" not in run.stderr:
        where = "打印到了标准输出" if "401" in run.stdout else "没有说明"
        fail(
            f"错误信息{where}：应当用 print(..., file=sys.stderr) 在标准错误里说明 HTTP 401 "
            f"和服务器给的原因（stderr：「{shown(run.stderr) or '空'}」）。"
        )
    _short_error(run)


@check(10, "断掉的流：保留已收到的文字，一两行说明，非 0 退出码")
def check_broken_stream(ctx: AppContext) -> None:
    question = random_question()
    with GraderModel("cut").on(ctx.server) as model:
        partial = reference_reply(ctx.server, model.id, _user(question))
        asked = _ask(ctx, ctx.server, model, [question])
    run = asked.run
    crash = crash_line(run)
    if crash and "NotImplementedError" not in crash:
        fail(
            f"连接中途断开时程序崩溃了（{shown(crash, 100)}）：用 try/except 接住读取时的异常"
            f"（response.raw.read1 抛出的），改为 raise ChatError(...)。（{crash_hint(crash)}）"
        )
    problem = _problem(asked, "连接中途断开")
    if problem:
        fail(problem)
    if partial.text not in run.stdout:
        fail(
            f"断开之前收到的文字「{shown(partial.text, 40)}」没有显示出来"
            f"（输出：「{shown(run.stdout) or '空'}」）：每收到一块就立刻打印。"
        )
    if run.returncode == 0:
        fail(
            "连接在回答中途断开（没有收到 data: [DONE]），程序却当作正常结束（退出码 0）："
            "没收到 [DONE] 就结束时要报错，并以非 0 的退出码结束。"
        )
    if not run.error_lines:
        fail("连接中途断开了，但标准错误里没有任何说明：告诉用户回答不完整。")
    _short_error(run)


def _fault_check(ctx: AppContext, wire: str, what: str, advice: str) -> Asked:
    question = random_question()
    with GraderModel(wire).on(ctx.server) as model:
        expected = reference_reply(ctx.server, model.id, _user(question))
        asked = _ask(ctx, ctx.server, model, [question])
    problem = _problem(asked, what)
    if problem:
        fail(problem)
    _require_text(asked.run, expected, advice)
    _exit_zero(asked.run, "回答")
    return asked


@check(8, "汉字的字节被切在两块之间：文字一字不差（fault-split-utf8）")
def check_split_utf8(ctx: AppContext) -> None:
    _fault_check(
        ctx,
        "split-utf8",
        "读取被切碎的字节流",
        '这个服务器把每个汉字的 UTF-8 字节切在两块之间发送：要先把字节接起来、按 b"\\n" '
        "切出完整的一行，再 decode 整行（不要一块一块地 decode）。",
    )


@check(7, "用 CRLF（\\r\\n）换行的流：文字一字不差（fault-crlf）")
def check_crlf(ctx: AppContext) -> None:
    _fault_check(
        ctx,
        "crlf",
        "读取 CRLF 换行的流",
        '这个服务器用 b"\\r\\n" 换行：按 b"\\n" 切行后去掉行尾的 b"\\r"'
        '（line.removesuffix(b"\\r")），去掉后的空行才表示一个事件结束。',
    )


@check(7, "靠关闭连接结束的流（没有分块编码）：文字一字不差（fault-close-delimited）")
def check_close_delimited(ctx: AppContext) -> None:
    _fault_check(
        ctx,
        "close-delimited",
        "读取靠关闭连接结束的流",
        '这个服务器不用分块编码，发完就关闭连接：读到 b"" 表示结束；'
        "用 response.raw.read1(...) 边收边读。",
    )


@check(8, "app.py 自己用 requests 发请求（不借助 lesson_helpers、openai 等）")
def check_uses_requests(ctx: AppContext) -> None:
    problem = app_problem(ctx.source, ctx.name)
    if problem:
        fail(problem)
    folder = ctx.runner.app.parent
    for name in _SHADOWS:
        for shadow in (folder / f"{name}.py", folder / name / "__init__.py"):
            if shadow.exists():
                where = shadow.relative_to(folder).as_posix()
                fail(
                    f"app.py 旁边的 {where} 会挡住真正的 {name} 库（import {name} 导入的是它）："
                    "给它改个名字。"
                )
    with GraderModel("normal").on(ctx.server) as model:
        asked = _ask(ctx, ctx.server, model, [random_question()])
    problem = common_problem(asked.run, "回答一个问题") or _no_request(asked)
    if problem:
        fail(problem)
    agents = {_header(r, "user-agent") for r in asked.records}
    if not any(agent.startswith("python-requests/") for agent in agents):
        fail(
            f"服务器收到的请求不是 requests 发的（User-Agent：{shown(', '.join(agents), 60)}）："
            "用 requests.post(...) 发请求。"
        )


def _header(record: RequestRecord, name: str) -> str:
    for key, value in record.headers.items():
        if key.lower() == name:
            return value
    return ""


APP_CHECKS = [
    check_single_turn,
    check_streams_live,
    check_multi_turn,
    check_wrong_key,
    check_broken_stream,
    check_split_utf8,
    check_crlf,
    check_close_delimited,
    check_uses_requests,
]
