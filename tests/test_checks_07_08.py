"""Lessons 07 and 08: their self-checks accept the reference solutions (kept here, not in the
kit an assignment ships), catch each typical mistake with its hint and recognise the student
stub; the notebooks' own solutions pass; the check modules hold no solution."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import routed_output

from lesson_helpers.checks import lesson07, lesson08
from lesson_helpers.checks.lesson07 import (
    agent_cases,
    check_agent_loop,
    check_registry,
    check_run_tool_call,
    tool_cases,
)
from lesson_helpers.checks.lesson08 import (
    check_assemble_messages,
    check_assemble_responses,
    messages_cases,
    responses_cases,
)

ROOT = Path(__file__).resolve().parent.parent
NB07 = ROOT / "notebooks" / "07_tool_calling.ipynb"
NB08 = ROOT / "notebooks" / "08_other_wire_formats.ipynb"


def run_check(check: Callable[[Any], None], func: Any, capsys) -> tuple[bool, str]:
    assert check(func) is None  # a check cell shows only the printed lines
    out = routed_output(capsys)
    assert "Traceback" not in out
    return out.startswith("✓"), out


def stub(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("还没完成")


# ============================================================================================
# Lesson 07: the reference solutions
# ============================================================================================

JSON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def schema_problems(arguments: dict, schema: dict) -> list[str]:
    """The lesson's given validator (the lesson defines it in a cell before the exercise)."""
    properties = schema.get("properties", {})
    problems = [f"缺少必填参数 {n}" for n in schema.get("required", []) if n not in arguments]
    for name, value in arguments.items():
        rule = properties.get(name)
        if rule is None:
            problems.append(f"没有参数 {name}")
            continue
        expected = JSON_TYPES.get(rule.get("type"))
        is_bool = isinstance(value, bool) and rule.get("type") != "boolean"
        if expected and (not isinstance(value, expected) or is_bool):
            problems.append(f"参数 {name} 应该是 {rule['type']}")
        elif "enum" in rule and value not in rule["enum"]:
            problems.append(f"参数 {name} 只能是 {rule['enum']} 之一")
    return problems


def make_run_tool_call(mistake: str = "") -> Callable[[dict, dict], dict]:
    """The reference ``run_tool_call``, or the same with one typical mistake."""

    def run_tool_call(call: dict, registry: dict) -> dict:
        call_id = "" if mistake == "lose the id" else call["id"]

        def tool_message(content: Any) -> dict:
            if mistake == "dict content":
                text: Any = content
            elif mistake == "str content":
                text = str(content)
            else:
                text = json.dumps(content, ensure_ascii=False)
            return {"role": "tool", "tool_call_id": call_id, "content": text}

        def error(text: str) -> dict:
            return tool_message({"error": "" if mistake == "empty error" else text})

        name = call["function"]["name"]
        if mistake == "hard-coded tool":
            name = "get_weather"
        if mistake != "no registry check" and name not in registry:
            if mistake == "vague error":
                return error("出错了")
            return error(f"没有名为 {name} 的工具")
        function, schema = registry[name]
        text = call["function"]["arguments"]
        if mistake == "eval":
            arguments = eval(text)  # the mistake this test is about
        elif mistake == "literal_eval":
            arguments = ast.literal_eval(text)
        elif mistake == "no json try":
            arguments = json.loads(text)
        else:
            try:
                arguments = json.loads(text)
            except json.JSONDecodeError as exc:
                return error(f"参数不是合法的 JSON：{exc}")
        if mistake != "no dict check" and not isinstance(arguments, dict):
            return error("参数应该是一个 JSON 对象")
        if mistake != "no validation":
            problems = schema_problems(arguments, schema)
            if problems:
                return error("；".join(problems))
        if mistake == "no function try":
            return tool_message(function(**arguments))
        try:
            result = function(**arguments)
        except Exception as exc:
            if mistake == "hide the failure":
                return error("函数运行出错")
            return error(f"{name} 运行出错：{exc}")
        return tool_message(result)

    return run_tool_call


def make_agent_loop(mistake: str = "", run_tool_call: Callable | None = None) -> Callable:
    """The reference ``agent_loop``, or the same with one typical mistake."""
    run = run_tool_call or make_run_tool_call()

    def agent_loop(send, messages, tools, registry, max_rounds=5):
        history = list(messages)
        rounds = range(max_rounds + 1) if mistake == "one round too many" else range(max_rounds)
        if mistake == "no limit":
            rounds = iter(int, 1)  # for ever
        for _ in rounds:
            result = send(history, None if mistake == "no tools" else tools)
            message = result.to_message()
            if mistake == "text only message":
                message = {"role": "assistant", "content": message["content"]}
                calls = result.to_message().get("tool_calls") or []
            else:
                calls = message.get("tool_calls") or []
            if not (calls and mistake == "forget the assistant message"):
                history.append(message)
            if not calls:
                return result.content if mistake == "return the text" else history
            for call in calls:
                answer = run(call, registry)
                if mistake == "wrong id":
                    answer = {**answer, "tool_call_id": "call_0"}
                history.append(answer)
            if mistake == "one round":
                final = send(history, tools)
                history.append(final.to_message())
                return history
        if mistake == "no error at the limit":
            return history
        raise RuntimeError(f"模型连续 {max_rounds} 轮都在调用工具")

    return agent_loop


def test_run_tool_call_reference_passes(capsys):
    ok, out = run_check(check_run_tool_call, make_run_tool_call(), capsys)
    assert ok, out
    assert f"{len(tool_cases())} 个调用" in out


def test_the_written_out_tool_answers_are_the_references():
    runs: list = []
    registry = check_registry(runs)
    reference = make_run_tool_call()
    for case in tool_cases():
        content = json.loads(reference(case.call, registry)["content"])
        if case.result is None:
            assert isinstance(content.get("error"), str) and content["error"], case.what
            assert case.must_mention in content["error"], case.what
        else:
            assert content == case.result, case.what
    assert sum(case.result is None for case in tool_cases()) >= 8  # most cases are bad calls


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ("eval", "eval"),
        ("literal_eval", "ast.literal_eval"),
        ("no json try", "json.JSONDecodeError"),
        ("no dict check", "JSON 对象"),
        ("no registry check", "registry"),
        ("vague error", "search_web"),
        ("hard-coded tool", "registry"),
        ("no validation", "schema_problems"),
        ("no function try", "try/except"),
        ("hide the failure", "火星"),
        ("lose the id", "tool_call_id"),
        ("dict content", "json.dumps"),
        ("str content", "json.dumps"),
        ("empty error", "error"),
    ],
)
def test_run_tool_call_mistakes_are_caught(mistake, hint, capsys):
    ok, out = run_check(check_run_tool_call, make_run_tool_call(mistake), capsys)
    assert not ok, mistake
    assert hint in out, out


def test_run_tool_call_never_runs_what_it_must_not(capsys):
    """eval runs the function on arguments that are not JSON: the check says so."""
    ok, out = run_check(check_run_tool_call, make_run_tool_call("eval"), capsys)
    assert not ok and "不该运行的函数被运行了" in out and "单引号" in out


def test_agent_loop_reference_passes(capsys):
    ok, out = run_check(check_agent_loop, make_agent_loop(), capsys)
    assert ok, out
    assert f"{len(agent_cases())} 段对话" in out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ("forget the assistant message", "带 tool_calls 的 assistant 消息"),
        ("text only message", "result.to_message()"),
        ("wrong id", "tool_call_id"),
        ("no tools", "tools"),
        ("one round", "循环"),
        ("no limit", "max_rounds"),
        ("one round too many", "RuntimeError"),
        ("no error at the limit", "没有抛出 RuntimeError"),
        ("return the text", "不是对话"),
    ],
)
def test_agent_loop_mistakes_are_caught(mistake, hint, capsys):
    ok, out = run_check(check_agent_loop, make_agent_loop(mistake), capsys)
    assert not ok, mistake
    assert hint in out, out


def test_an_infinite_loop_is_stopped_by_the_check(capsys):
    ok, out = run_check(check_agent_loop, make_agent_loop("no limit"), capsys)
    assert not ok and "还没停下" in out


def test_agent_loop_with_an_unfinished_run_tool_call_says_which_exercise(capsys):
    def run_tool_call(call: dict, registry: dict) -> dict:
        raise NotImplementedError("还没完成")  # the student edition's stub of exercise 1

    ok, out = run_check(check_agent_loop, make_agent_loop(run_tool_call=run_tool_call), capsys)
    assert not ok
    assert out.startswith("✗ 还没完成：") and "练习 1 的 run_tool_call" in out


@pytest.mark.parametrize(
    "check",
    [check_run_tool_call, check_agent_loop, check_assemble_responses, check_assemble_messages],
)
def test_stubs_are_reported_as_not_done(check, capsys):
    ok, out = run_check(check, stub, capsys)
    assert not ok and out.startswith("✗ 还没完成：")


# ============================================================================================
# Lesson 08: the reference solutions
# ============================================================================================


def make_assemble_responses(mistake: str = "") -> Callable[[list], dict]:
    """The reference ``assemble_responses``, or the same with one typical mistake."""

    def assemble_responses(events: list) -> dict:
        text, reasoning = [], []
        calls: dict[int, dict] = {}
        usage, status = None, None
        for event in events:
            data = json.loads(event.data)
            kind = event.event
            if kind in ("error", "response.failed") and mistake != "no errors":
                message = data.get("message") or (data["response"].get("error") or {}).get(
                    "message"
                )
                raise ValueError("出错了" if mistake == "vague error" else f"出错了：{message}")
            if kind.startswith("response.") and "response" in data:
                status = (
                    "completed" if mistake == "always completed" else data["response"]["status"]
                )
                if kind in ("response.completed", "response.incomplete"):
                    usage = data["response"].get("usage")
            elif kind == "response.output_item.added" and data["item"]["type"] == "function_call":
                if mistake != "no calls":
                    item = data["item"]
                    calls[data["output_index"]] = {
                        "call_id": item["call_id"],
                        "name": item["name"],
                        "arguments": "",
                    }
            elif kind == "response.output_text.delta":
                text.append(data["delta"])
            elif kind == "response.output_text.done" and mistake == "done twice":
                text.append(data["text"])
            elif kind == "response.reasoning_summary_text.delta":
                (text if mistake == "reasoning as text" else reasoning).append(data["delta"])
            elif kind == "response.function_call_arguments.delta":
                if mistake != "no calls":
                    calls[data["output_index"]]["arguments"] += data["delta"]
            elif mistake == "strict" and not kind.endswith((".done", ".added")):
                raise KeyError(kind)
        return {
            "text": "".join(text),
            "reasoning": "".join(reasoning),
            "calls": [calls[i] for i in sorted(calls)],
            "usage": usage,
            "status": status,
        }

    return assemble_responses


def make_assemble_messages(mistake: str = "") -> Callable[[list], dict]:
    """The reference ``assemble_messages``, or the same with one typical mistake."""

    def assemble_messages(events: list) -> dict:
        text, thinking = [], []
        tools: dict[int, dict] = {}
        usage: dict = {}
        stop_reason = "end_turn" if mistake == "default stop reason" else None
        for event in events:
            data = json.loads(event.data)
            kind = event.event
            if kind == "error" and mistake != "no errors":
                raise ValueError(f"出错了：{data['error']['message']}")
            if kind == "message_start":
                usage = dict(data["message"].get("usage") or {})
            elif kind == "content_block_start" and data["content_block"]["type"] == "tool_use":
                block = data["content_block"]
                tools[data["index"]] = {"id": block["id"], "name": block["name"], "parts": []}
                tools[data["index"]]["input"] = None
            elif kind == "content_block_delta":
                delta = data["delta"]
                if delta["type"] == "text_delta":
                    text.append(delta["text"])
                elif delta["type"] == "thinking_delta":
                    thinking.append(delta["thinking"])
                elif delta["type"] == "signature_delta" and mistake == "signature as thinking":
                    thinking.append(delta["signature"])
                elif delta["type"] == "input_json_delta":
                    tools[data["index"]]["parts"].append(delta["partial_json"])
                elif mistake == "strict" and delta["type"] != "signature_delta":
                    raise KeyError(delta["type"])
            elif kind == "content_block_stop" and data["index"] in tools:
                tool = tools[data["index"]]
                joined = "".join(tool["parts"])
                empty = "" if mistake == "loads empty" else "{}"
                tool["input"] = json.loads(joined or empty)
            elif kind == "message_delta":
                stop_reason = data["delta"].get("stop_reason") or stop_reason
                news = data.get("usage") or {}
                if mistake == "plain update":
                    usage.update(news)
                else:
                    usage.update({k: v for k, v in news.items() if v is not None})
        if mistake == "parse at the end":
            for tool in tools.values():
                tool["input"] = json.loads("".join(tool["parts"]) or "{}")
        return {
            "text": "".join(text),
            "thinking": "".join(thinking),
            "tool_uses": [
                {"id": t["id"], "name": t["name"], "input": t["input"]}
                for _, t in sorted(tools.items())
            ],
            "usage": usage,
            "stop_reason": stop_reason,
        }

    return assemble_messages


def test_assemble_responses_reference_passes(capsys):
    ok, out = run_check(check_assemble_responses, make_assemble_responses(), capsys)
    assert ok, out
    assert f"{len(responses_cases())} 段 Responses 流" in out


def test_assemble_messages_reference_passes(capsys):
    ok, out = run_check(check_assemble_messages, make_assemble_messages(), capsys)
    assert ok, out
    assert f"{len(messages_cases())} 段 Messages 流" in out


def test_the_cases_cover_what_lesson_08_promises():
    """The kit agrees with the reference on every case, and the cases include each rule."""
    for case in responses_cases():
        try:
            want = lesson08.expected_responses(case.events)
        except ValueError:
            assert case.error, case.what
            continue
        assert make_assemble_responses()(case.events) == want, case.what
    for case in messages_cases():
        try:
            want = lesson08.expected_messages(case.events)
        except ValueError:
            assert case.error, case.what
            continue
        assert make_assemble_messages()(case.events) == want, case.what
    kinds = {e.event for case in responses_cases() for e in case.events}
    assert {"error", "response.failed", "response.incomplete"} <= kinds
    assert "response.reasoning_summary_text.delta" in kinds
    kinds = {e.event for case in messages_cases() for e in case.events}
    assert {"error", "ping", "message_delta"} <= kinds


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ("done twice", "不要再加一遍"),
        ("reasoning as text", "单独拼进 reasoning"),
        ("no calls", "function_call"),
        ("always completed", "status"),
        ("no errors", "正常返回"),
        ("vague error", "原话"),
        ("strict", "跳过"),
    ],
)
def test_assemble_responses_mistakes_are_caught(mistake, hint, capsys):
    ok, out = run_check(check_assemble_responses, make_assemble_responses(mistake), capsys)
    assert not ok, mistake
    assert hint in out, out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ("signature as thinking", "signature_delta"),
        ("plain update", "None"),
        ("loads empty", "json.loads('')"),
        ("parse at the end", "半截"),
        ("default stop reason", "stop_reason"),
        ("no errors", "正常返回"),
        ("strict", "跳过"),
    ],
)
def test_assemble_messages_mistakes_are_caught(mistake, hint, capsys):
    ok, out = run_check(check_assemble_messages, make_assemble_messages(mistake), capsys)
    assert not ok, mistake
    assert hint in out, out


def test_a_wrong_shape_is_reported_not_raised(capsys):
    ok, out = run_check(check_assemble_responses, lambda events: "你好", capsys)
    assert not ok and "dict" in out

    def text_only(events: list) -> dict:
        return {"text": make_assemble_messages()(events)["text"]}

    ok, out = run_check(check_assemble_messages, text_only, capsys)
    assert not ok and "没有 'thinking'" in out


# ============================================================================================
# The notebooks
# ============================================================================================


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }


def points(nb: nbformat.NotebookNode) -> dict[str, int]:
    return {
        cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }


def test_the_exercises_and_their_points():
    assert points(read(NB07)) == {"l07-run-tool-call-check": 2, "l07-agent-loop-check": 3}
    assert points(read(NB08)) == {
        "l08-assemble-responses-check": 3,
        "l08-assemble-messages-check": 3,
    }


def test_lesson_07_solutions_pass_their_checks(capsys):
    nb = read(NB07)
    given = next(cell.source for cell in nb.cells if "def schema_problems" in cell.source)
    namespace: dict[str, Any] = {}
    exec("import json\n" + given, namespace)
    for source in exercise_cells(nb).values():
        exec(source, namespace)
    assert run_check(check_run_tool_call, namespace["run_tool_call"], capsys)[0]
    assert run_check(check_agent_loop, namespace["agent_loop"], capsys)[0]


def test_lesson_07_given_validator_is_the_one_tested_here():
    nb = read(NB07)
    given = next(cell.source for cell in nb.cells if "def schema_problems" in cell.source)
    namespace: dict[str, Any] = {}
    exec("import json\n" + given, namespace)
    schema = lesson07.WEATHER_SCHEMA
    for arguments in ({"city": "北京"}, {}, {"city_name": "x"}, {"city": 1}, {"city": True}):
        lesson = namespace["schema_problems"](arguments, schema)
        assert bool(lesson) == bool(schema_problems(arguments, schema)), arguments


def test_lesson_08_solutions_pass_their_checks(capsys):
    namespace: dict[str, Any] = {}
    exec("import json\n", namespace)
    for source in exercise_cells(read(NB08)).values():
        exec(source, namespace)
    assert run_check(check_assemble_responses, namespace["assemble_responses"], capsys)[0]
    assert run_check(check_assemble_messages, namespace["assemble_messages"], capsys)[0]


@pytest.mark.parametrize("module", [lesson07, lesson08])
def test_the_check_modules_hold_no_solution(module):
    source = Path(module.__file__).read_text(encoding="utf-8")
    for name in ("run_tool_call", "agent_loop", "assemble_responses", "assemble_messages"):
        assert f"def {name}(" not in source


@pytest.mark.parametrize("path", [NB07, NB08])
def test_stored_outputs_hold_no_key_and_no_local_path(path):
    text = "".join(
        output.get("text", "") + json.dumps(output.get("data", {}), ensure_ascii=False)
        for cell in read(path).cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert text, "the lesson has stored outputs"
    assert "local-practice-key" not in text and "Bearer " not in text
    assert str(ROOT) not in text and "/tmp/" not in text
    assert "Traceback" not in text
