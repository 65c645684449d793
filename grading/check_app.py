"""Checks that run the student's app.py against the local practice server.

Each check's docstring is its title in the score report; a failing check calls ``fail`` with a
hint in Chinese that says what went wrong and where to look.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lesson_helpers.local_server import MODELS, LocalServer

from .harness import (
    BASE_MODEL,
    CUT_MODEL,
    FOLLOW_UP,
    FOLLOW_UP_ANSWER,
    SEED_ANSWER,
    SEED_QUESTION,
    WRONG_KEY,
    Recorder,
    app_env,
    common_problem,
    crash_hint,
    crash_line,
    run_app,
    shown,
    text_before_cut,
)

LIVE = 0.5  # seconds between the first text on screen and the program's end: it streamed
STREAM_QUESTION = "token 是什么？"  # a long answer: about 1.5 seconds from the slow server


def fail(hint: str) -> None:
    pytest.fail(hint, pytrace=False)


def no_request_hint(recorder: Recorder) -> str | None:
    if recorder.bodies:
        return None
    return (
        "本地练习服务器没有收到任何请求：网址要用 LLM_BASE_URL、密钥用 LLM_API_KEY、"
        "模型用 LLM_MODEL（不要写死；也不要用 load_dotenv(override=True)）。"
    )


@pytest.mark.points(25)
def check_seed_reply(app: Path, server: LocalServer) -> None:
    """单轮对话：python app.py 你好，回答与种子一致"""
    recorder = Recorder(BASE_MODEL)
    run = run_app(app, [SEED_QUESTION], app_env(server.base_url, server.api_key, recorder.model))
    problem = common_problem(run, "回答“你好”") or no_request_hint(recorder)
    if problem:
        fail(problem)
    if SEED_ANSWER not in run.stdout:
        if not run.stdout.strip():
            fail(f"没有任何输出（stderr：{shown(run.stderr) or '空'}）：收到的文字要 print 出来。")
        fail(
            f"回答不对：应当输出「{SEED_ANSWER}」，实际输出「{shown(run.stdout)}」。"
            '每个 chunk 的 choices[0].delta.content 都要按顺序打印（用 end=""，不换行）。'
        )
    if run.returncode != 0:
        fail(f"回答正确，但程序的退出码是 {run.returncode}（应为 0）：stderr：{shown(run.stderr)}")


@pytest.mark.points(15)
def check_streams_live(app: Path, slow_server: LocalServer) -> None:
    """流式输出：回答边收边显示，而不是最后一次性出现"""
    recorder = Recorder(BASE_MODEL)
    env = app_env(slow_server.base_url, slow_server.api_key, recorder.model)
    run = run_app(app, [STREAM_QUESTION], env)
    problem = common_problem(run, "流式回答") or no_request_hint(recorder)
    if problem:
        fail(problem)
    if recorder.bodies[0].get("stream") is not True:
        fail('请求体里没有 "stream": true：服务器只好等回答全部生成完，再一次性发回来。')
    first = run.first_seen("token")
    if first is None:
        fail(f"没有看到回答（输出：「{shown(run.stdout)}」）：回答要打印到标准输出。")
    # The server needs about 1.5 seconds for this answer. Text that appears only when the
    # program ends was held back somewhere: by the program's reading, or by print's buffer.
    if run.duration - first >= LIVE:
        return
    unbuffered = run_app(app, [STREAM_QUESTION], {**env, "PYTHONUNBUFFERED": "1"})
    first_unbuffered = unbuffered.first_seen("token")
    if first_unbuffered is not None and unbuffered.duration - first_unbuffered >= LIVE:
        fail(
            "回答是在程序结束时一次性出现的：print 的输出被缓冲了。"
            '打印每一块文字时写 print(text, end="", flush=True)。'
        )
    fail(
        "回答是在程序结束时一次性出现的：读取方式不是流式的。requests.post 要加 stream=True，"
        "并用 response.raw.read1(...) 边收边读，不要用 response.text、response.json() 或 "
        "response.content。"
    )


@pytest.mark.points(20)
def check_multi_turn(app: Path, server: LocalServer) -> None:
    """多轮对话：不带参数运行，第二个问题能用上第一轮的历史"""
    recorder = Recorder(BASE_MODEL)
    env = app_env(server.base_url, server.api_key, recorder.model)
    run = run_app(app, [], env, stdin=f"{SEED_QUESTION}\n{FOLLOW_UP}\n/quit\n")
    problem = common_problem(run, "多轮对话") or no_request_hint(recorder)
    if problem:
        fail(problem)
    if len(recorder.bodies) < 2:
        fail(
            "多轮对话只发出了 1 次请求：不带参数运行时，要循环用 input() 读取下一个问题，"
            "直到输入 /quit 或输入结束（EOFError）。"
        )
    second = recorder.bodies[1].get("messages") or []
    roles = [m.get("role") for m in second]
    answers = [m.get("content") for m in second if m.get("role") == "assistant"]
    if roles.count("user") < 2:
        fail(
            "第二次请求的 messages 里只有新问题：要把整个对话历史（之前的问题和回答）一起发过去，"
            "模型才“记得”上一轮。"
        )
    if not answers:
        fail(
            "第二次请求的 messages 里没有上一轮的回答：回答结束后，把完整的回答作为 "
            '{"role": "assistant", "content": 回答} 加进 messages。'
        )
    if SEED_ANSWER not in answers:
        fail(
            f"历史里上一轮的回答不对：应当是「{SEED_ANSWER}」，实际是「{shown(str(answers[0]))}」。"
            "把所有 delta.content 拼起来，得到完整回答后再加进 messages。"
        )
    if FOLLOW_UP_ANSWER not in run.stdout:
        fail(f"第二轮的回答没有显示出来（输出：「{shown(run.stdout[-120:])}」）。")
    if len(recorder.bodies) > 2:
        fail("输入 /quit 之后程序还在发请求：/quit 应当结束对话。")
    if run.returncode != 0:
        fail(f"对话正确，但程序的退出码是 {run.returncode}（应为 0）：stderr：{shown(run.stderr)}")


@pytest.mark.points(15)
def check_wrong_key(app: Path, server: LocalServer) -> None:
    """错误的密钥：一两行说明（含 HTTP 401），非 0 退出码，不打印密钥"""
    run = run_app(app, [SEED_QUESTION], app_env(server.base_url, WRONG_KEY, BASE_MODEL))
    unfinished = common_problem(run, "用错误的密钥请求")
    crash = crash_line(run)
    if unfinished and not crash:
        fail(unfinished)
    if crash:
        fail(
            f"密钥错误时程序崩溃了（{shown(crash, 100)}）：检查 response.status_code，"
            f"不是 200 时 raise http_error(response, config)。（{crash_hint(crash)}）"
        )
    if WRONG_KEY in run.stdout + run.stderr:
        fail("输出里出现了密钥本身：错误信息里永远不要打印密钥。")
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
    if len(run.error_lines) > 2:
        fail(f"错误信息有 {len(run.error_lines)} 行：一两行说清楚就好（不要打印 Traceback）。")


@pytest.mark.points(15)
def check_broken_stream(app: Path, server: LocalServer) -> None:
    """断掉的流：保留已收到的文字，一两行说明，非 0 退出码"""
    if CUT_MODEL not in MODELS:
        pytest.skip(f"本地服务器没有 {CUT_MODEL} 模型")
    recorder = Recorder(CUT_MODEL)
    partial = text_before_cut(server, CUT_MODEL, SEED_QUESTION)
    run = run_app(app, [SEED_QUESTION], app_env(server.base_url, server.api_key, recorder.model))
    crash = crash_line(run)
    if crash and "NotImplementedError" not in crash:
        fail(
            f"连接中途断开时程序崩溃了（{shown(crash, 100)}）：用 try/except 接住读取时的异常"
            f"（response.raw.read1 抛出的），改为 raise ChatError(...)。（{crash_hint(crash)}）"
        )
    problem = common_problem(run, "连接中途断开") or no_request_hint(recorder)
    if problem:
        fail(problem)
    if partial and partial not in run.stdout:
        fail(
            f"断开之前收到的文字「{partial}」没有显示出来"
            f"（输出：「{shown(run.stdout) or '空'}」）：每收到一块就立刻打印。"
        )
    if run.returncode == 0:
        fail(
            "连接在回答中途断开（没有收到 data: [DONE]），程序却当作正常结束（退出码 0）："
            "没收到 [DONE] 就结束时要报错，并以非 0 的退出码结束。"
        )
    if not run.error_lines:
        fail("连接中途断开了，但标准错误里没有任何说明：告诉用户回答不完整。")
    if len(run.error_lines) > 2:
        fail(f"错误信息有 {len(run.error_lines)} 行：一两行说清楚就好（不要打印 Traceback）。")
