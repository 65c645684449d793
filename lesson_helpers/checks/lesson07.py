"""Self-checks for lesson 07 (tool calling).

* :func:`check_run_tool_call` -- ``run_tool_call(call, registry) -> dict``: run one tool call
  safely and return the ``tool`` message for it. ``call`` is a tool call as it goes into the
  history (``{"id", "type", "function": {"name", "arguments"}}``); ``registry`` maps a tool's
  name to ``(python_function, parameters_schema)``. A good call gives
  ``{"role": "tool", "tool_call_id": id, "content": json.dumps(result)}``; a bad one (a tool
  that was not offered, arguments that are not a JSON object, arguments the schema rejects,
  a function that raises) gives the same message with ``{"error": "..."}`` as its content,
  and the function is never run with arguments it should not get.
* :func:`check_agent_loop` -- ``agent_loop(send, messages, tools, registry, max_rounds) ->
  list[dict]``: ask, run the calls (with the lesson's ``run_tool_call``), send the results
  back, until the model answers in text; return the whole conversation. After
  ``max_rounds`` requests that all asked for tools it raises ``RuntimeError``.

The expected answers are written out here as data (the check ships with an assignment, the
reference solution does not). The model in :func:`check_agent_loop` is a scripted stand-in
that rejects a conversation the way a provider does (a ``tool`` message with no matching
call, no ``tools``). Every check prints one ``✓`` line, or ``✗`` lines with the case, what
was expected, what came back and a hint; it returns nothing and never raises because of the
student's code.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..chunks import ChatResult, from_completion
from .report import check, crash, same, short

__all__ = [
    "LOOP_TOOLS",
    "AgentCase",
    "ToolCase",
    "agent_cases",
    "check_agent_loop",
    "check_registry",
    "check_run_tool_call",
    "tool_cases",
]

Message = dict[str, Any]

# --------------------------------------------------------------------------------------------
# The tools the checks offer, and their Python functions (which record every run)
# --------------------------------------------------------------------------------------------

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "城市名，例如 北京"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
CALC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"expression": {"type": "string", "description": "算术表达式，例如 3 * 4"}},
    "required": ["expression"],
}
LOOP_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "查询一个城市现在的天气",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "计算一个算术表达式",
            "parameters": CALC_SCHEMA,
        },
    },
]

_WEATHER = {"北京": ("晴", 23, 73), "上海": ("多云", 26, 79), "广州": ("小雨", 29, 84)}
_SUMS = {"3 * 4": 12, "29 - 23": 6, "(1 + 2) * 3": 9}


def check_registry(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, tuple[Callable, dict]]:
    """The registry the checks pass in: ``get_weather`` and ``calculate``, each appending
    ``(name, arguments)`` to ``runs`` when it is run. Unknown cities and expressions raise
    ``ValueError``, as a real function would."""

    def get_weather(city: str, unit: str = "celsius") -> dict[str, Any]:
        runs.append(("get_weather", {"city": city, "unit": unit}))
        if city not in _WEATHER:
            raise ValueError(f"没有{city}的天气数据")
        condition, celsius, fahrenheit = _WEATHER[city]
        temperature = celsius if unit == "celsius" else fahrenheit
        return {"city": city, "condition": condition, "temperature": temperature, "unit": unit}

    def calculate(expression: str) -> dict[str, Any]:
        runs.append(("calculate", {"expression": expression}))
        if expression not in _SUMS:
            raise ValueError(f"算不了：{expression}")
        return {"expression": expression, "result": _SUMS[expression]}

    return {"get_weather": (get_weather, WEATHER_SCHEMA), "calculate": (calculate, CALC_SCHEMA)}


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --------------------------------------------------------------------------------------------
# run_tool_call
# --------------------------------------------------------------------------------------------

_EVAL_HINT = (
    "这些参数不是 JSON（JSON 的字符串只能用双引号），函数却被运行了：你是不是用了 eval 或 "
    "ast.literal_eval？参数是模型写的文字，只能用 json.loads 解析；解析失败就返回 error。"
)
_VALIDATE_HINT = (
    "参数是合法的 JSON，但不符合工具的 schema：先用 schema_problems(arguments, schema) 检查，"
    "有问题就不运行函数，把问题写进 error 返回给模型。"
)


@dataclass(frozen=True)
class ToolCase:
    what: str
    call: dict[str, Any]
    result: dict[str, Any] | None  # the content of a good call; None: an {"error": ...}
    must_mention: str  # what the error text must say ("" for good calls)
    hint: str


def tool_cases() -> list[ToolCase]:
    """One tool call per rule, with the answer each must give (written out, not computed)."""
    return [
        ToolCase(
            "正常的调用 get_weather(city=北京)",
            _call("call_bj", "get_weather", '{"city": "北京"}'),
            {"city": "北京", "condition": "晴", "temperature": 23, "unit": "celsius"},
            "",
            "json.loads 解析参数，用 registry[名字] 找到函数和 schema，检查没问题就 "
            "function(**arguments)，把返回值 json.dumps 之后放进 content。",
        ),
        ToolCase(
            "两个参数都给了（紧凑 JSON）",
            _call("call_sh_f", "get_weather", '{"city":"上海","unit":"fahrenheit"}'),
            {"city": "上海", "condition": "多云", "temperature": 79, "unit": "fahrenheit"},
            "",
            "所有参数都要传给函数：function(**arguments)。",
        ),
        ToolCase(
            "另一个工具 calculate",
            _call("call_calc", "calculate", '{"expression": "3 * 4"}'),
            {"expression": "3 * 4", "result": 12},
            "",
            "按调用里的 function.name 在 registry 里找函数，不要写死 get_weather。",
        ),
        ToolCase(
            "参数用了单引号（不是 JSON，fault-tool-bad-json）",
            _call("call_quote", "get_weather", "{'city': '北京'}"),
            None,
            "",
            "json.loads 失败（json.JSONDecodeError）时，不要让异常冒出去，"
            '返回 {"error": "参数不是合法的 JSON：……"}。',
        ),
        ToolCase(
            "参数只到一半（流被切断）",
            _call("call_cut", "get_weather", '{"city": "北'),
            None,
            "",
            "json.loads 失败（json.JSONDecodeError）时，不要让异常冒出去，返回 error。",
        ),
        ToolCase(
            "参数是 JSON，但不是对象",
            _call("call_list", "get_weather", '["北京"]'),
            None,
            "",
            '参数必须是一个 JSON 对象（解析出来是 dict），例如 {"city": "北京"}；'
            "不是 dict 就返回 error，别拿它去调用函数。",
        ),
        ToolCase(
            "模型调用了没有提供的工具 search_web（fault-tool-not-offered）",
            _call("call_web", "search_web", '{"query": "北京天气"}'),
            None,
            "search_web",
            "名字不在 registry 里：不能运行（也不要抛 KeyError），返回一个 error，"
            "并在里面说出这个名字，告诉模型没有这个工具。",
        ),
        ToolCase(
            "缺少必填参数 city",
            _call("call_empty", "get_weather", "{}"),
            None,
            "city",
            _VALIDATE_HINT,
        ),
        ToolCase(
            "参数名写错了（city_name，fault-tool-bad-arguments）",
            _call("call_name", "get_weather", '{"city_name": "北京"}'),
            None,
            "city",
            _VALIDATE_HINT,
        ),
        ToolCase(
            "参数类型不对（city 是数字）",
            _call("call_type", "get_weather", '{"city": 110}'),
            None,
            "city",
            _VALIDATE_HINT,
        ),
        ToolCase(
            "unit 不在 enum 里（kelvin）",
            _call("call_enum", "get_weather", '{"city": "北京", "unit": "kelvin"}'),
            None,
            "unit",
            _VALIDATE_HINT,
        ),
        ToolCase(
            "函数自己出错了（没有火星的天气数据）",
            _call("call_mars", "get_weather", '{"city": "火星"}'),
            None,
            "火星",
            "函数运行时可能抛出异常：用 try/except Exception 接住，"
            "把异常的说明（str(error)）放进 error 返回给模型，而不是让整个程序崩掉。",
        ),
    ]


def _runs_allowed(case: ToolCase) -> int:
    """How many runs of a registry function the case may cause."""
    if case.result is not None:
        return 1
    return 1 if case.must_mention == "火星" else 0  # the function itself fails


def _tool_message_problem(case: ToolCase, got: Any) -> tuple[str, str] | None:
    """(what is wrong, hint) with the shape of the returned tool message, or None."""
    call_id = case.call["id"]
    if not isinstance(got, dict):
        return "返回的不是一个 dict（一条消息）", (
            '返回一条消息：{"role": "tool", "tool_call_id": call["id"], "content": ...}。'
        )
    if not same(got.get("role"), "tool"):
        return f"role 是 {short(got.get('role'))}", '工具结果的消息，role 是 "tool"。'
    if not same(got.get("tool_call_id"), call_id):
        return f"tool_call_id 是 {short(got.get('tool_call_id'))}，调用的 id 是 {call_id!r}", (
            '把 call["id"] 原样放进 tool_call_id：模型靠它知道这是哪一次调用的结果'
            "（同时调用两次时尤其重要）。"
        )
    content = got.get("content")
    if not isinstance(content, str):
        return f"content 是 {type(content).__name__}，不是 str", (
            "content 必须是文字：用 json.dumps(结果, ensure_ascii=False) 把 dict 变成 JSON 文本。"
        )
    try:
        json.loads(content)
    except ValueError:
        return f"content 不是 JSON：{short(content, 80)}", (
            "用 json.dumps(结果, ensure_ascii=False) 生成 content（str(结果) 是 Python 的写法，"
            "不是 JSON）。"
        )
    return None


def _one_tool_case(run_tool_call: Callable, case: ToolCase) -> bool:
    runs: list[tuple[str, dict[str, Any]]] = []
    registry = check_registry(runs)
    call = copy.deepcopy(case.call)
    try:
        got = run_tool_call(call, registry)
    except Exception as exc:  # the student's code may raise anything (the stub: 还没完成)
        return crash(case.what, exc, case.hint)
    if case.result is None and len(runs) > _runs_allowed(case):
        print(f"✗ {case.what}：不该运行的函数被运行了，参数是 {short(runs[-1][1])}。")
        print(f"  调用：{short(case.call)}")
        hint = _EVAL_HINT if "单引号" in case.what else case.hint
        print(f"  提示：{hint}")
        return False
    problem = _tool_message_problem(case, got)
    if problem is not None:
        print(f"✗ {case.what}：{problem[0]}。")
        print(f"  调用：{short(case.call)}")
        print(f"  得到：{short(got)}")
        print(f"  提示：{problem[1]}")
        return False
    content = json.loads(got["content"])
    if case.result is not None:
        if not same(content, case.result):
            print(f"✗ {case.what}")
            print(f"  调用：{short(case.call)}")
            print(f"  期望 content：{short(case.result)}")
            print(f"  得到 content：{short(content)}")
            print(f"  提示：{case.hint}")
            return False
        return True
    error = content.get("error") if isinstance(content, dict) else None
    if not isinstance(error, str) or not error.strip():
        print(f"✗ {case.what}：这是一次有问题的调用，content 里应该有一个 error（一句说明）。")
        print(f"  调用：{short(case.call)}")
        print(f"  得到 content：{short(content)}")
        print(f'  提示：{case.hint}（content 的格式：{{"error": "……"}}）')
        return False
    if case.must_mention and case.must_mention not in error:
        print(f"✗ {case.what}：error 里没有说出是哪里错了（{case.must_mention}）。")
        print(f"  得到 error：{short(error)}")
        print(f"  提示：{case.hint}")
        return False
    return True


@check
def check_run_tool_call(run_tool_call: Callable[[dict, dict], dict]) -> None:
    """Run ``run_tool_call`` on every case; print ✓, or ✗ with what went wrong and a hint."""
    cases = tool_cases()
    for case in cases:
        if not _one_tool_case(run_tool_call, case):
            return
    print(
        f"✓ run_tool_call：{len(cases)} 个调用都处理对了（正常调用、没提供的工具、不是 JSON、"
        "不是对象、不符合 schema、函数出错），工具结果都带着正确的 tool_call_id。"
    )


# --------------------------------------------------------------------------------------------
# agent_loop
# --------------------------------------------------------------------------------------------


class _Refused(BaseException):
    """The scripted model refuses the conversation (a BaseException: the student's
    ``except Exception`` around ``send`` must not swallow it)."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


@dataclass(frozen=True)
class AgentCase:
    what: str
    messages: list[Message]
    replies: list[Message]  # what the scripted model answers, round by round
    max_rounds: int
    # The conversation it must return, spelled as (role, what it holds): the text of a
    # user/system/assistant message, the ids of an assistant's tool calls, or a tool
    # message's (tool_call_id, parsed content or "error").
    expected: list[tuple[str, Any]] | None  # None: it must raise RuntimeError
    hint: str
    sends: int = 0  # requests it must make (0: one per reply)


def _asks(*calls: tuple[str, str, str]) -> Message:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [_call(*c) for c in calls],
    }


def _says(text: str) -> Message:
    return {"role": "assistant", "content": text}


_SYSTEM = {"role": "system", "content": "你是一个会用工具的助手。"}
_USER_WEATHER = {"role": "user", "content": "北京今天天气怎么样？"}
_USER_TWO = {"role": "user", "content": "北京和上海今天天气怎么样？"}
_BJ = {"city": "北京", "condition": "晴", "temperature": 23, "unit": "celsius"}
_SH = {"city": "上海", "condition": "多云", "temperature": 26, "unit": "celsius"}


def agent_cases() -> list[AgentCase]:
    """Scripted conversations, each testing one rule, with the conversation each must give."""
    return [
        AgentCase(
            "不需要工具：模型直接回答",
            [{"role": "user", "content": "你好"}],
            [_says("你好！")],
            5,
            [("user", "你好"), ("assistant", "你好！")],
            "模型的回答里没有 tool_calls 时，把这条回答加进对话，就结束了。",
        ),
        AgentCase(
            "调用一次工具，再回答",
            [_SYSTEM, _USER_WEATHER],
            [
                _asks(("call_bj", "get_weather", '{"city": "北京"}')),
                _says("北京晴，气温 23°C。"),
            ],
            5,
            [
                ("system", _SYSTEM["content"]),
                ("user", _USER_WEATHER["content"]),
                ("assistant", ["call_bj"]),
                ("tool", ("call_bj", _BJ)),
                ("assistant", "北京晴，气温 23°C。"),
            ],
            "一轮：send → 把回答（result.to_message()）加进对话 → 有 tool_calls 就逐个 "
            "run_tool_call，把 tool 消息也加进对话 → 再 send；直到回答里没有 tool_calls。",
        ),
        AgentCase(
            "同时调用两次（北京和上海）",
            [_USER_TWO],
            [
                _asks(
                    ("call_bj", "get_weather", '{"city": "北京"}'),
                    ("call_sh", "get_weather", '{"city": "上海"}'),
                ),
                _says("北京晴 23°C，上海多云 26°C。"),
            ],
            5,
            [
                ("user", _USER_TWO["content"]),
                ("assistant", ["call_bj", "call_sh"]),
                ("tool", ("call_bj", _BJ)),
                ("tool", ("call_sh", _SH)),
                ("assistant", "北京晴 23°C，上海多云 26°C。"),
            ],
            "一条回答里可能有好几个 tool_calls：每一个都要运行，每个结果一条 tool 消息，"
            "都放在那条 assistant 消息后面，然后才 send。",
        ),
        AgentCase(
            "两轮工具调用（先查天气，再计算温差）",
            [_USER_TWO],
            [
                _asks(
                    ("call_bj", "get_weather", '{"city": "北京"}'),
                    ("call_sh", "get_weather", '{"city": "上海"}'),
                ),
                _asks(("call_diff", "calculate", '{"expression": "29 - 23"}')),
                _says("两地温差 6°C。"),
            ],
            5,
            [
                ("user", _USER_TWO["content"]),
                ("assistant", ["call_bj", "call_sh"]),
                ("tool", ("call_bj", _BJ)),
                ("tool", ("call_sh", _SH)),
                ("assistant", ["call_diff"]),
                ("tool", ("call_diff", {"expression": "29 - 23", "result": 6})),
                ("assistant", "两地温差 6°C。"),
            ],
            "拿到工具结果后，模型可能还要再调用工具：用循环，而不是只做一轮。",
        ),
        AgentCase(
            "参数坏了：把 error 发回去，模型再回答",
            [_USER_WEATHER],
            [
                _asks(("call_bad", "get_weather", "{'city': '北京'")),
                _says("抱歉，查询失败了。"),
            ],
            5,
            [
                ("user", _USER_WEATHER["content"]),
                ("assistant", ["call_bad"]),
                ("tool", ("call_bad", "error")),
                ("assistant", "抱歉，查询失败了。"),
            ],
            "有问题的调用也要有一条 tool 消息（run_tool_call 返回的 error），"
            "模型看到它才知道出了什么问题。",
        ),
        AgentCase(
            "模型一直在调用工具（fault-tool-loop），max_rounds=3",
            [_USER_WEATHER],
            [_asks((f"call_loop{i}", "get_weather", '{"city": "北京"}')) for i in range(1, 9)],
            3,
            None,
            "发了 max_rounds 次请求，模型还在要工具：raise RuntimeError(一句说明)，"
            "不要无休止地循环下去（每一轮都花钱）。",
            sends=3,
        ),
    ]


def _spell(message: Any) -> tuple[str, Any]:
    """A message as (role, what it holds), as :class:`AgentCase` spells them."""
    if not isinstance(message, dict):
        return ("?", short(message, 60))
    role = message.get("role")
    if role == "tool":
        content = message.get("content")
        try:
            parsed = json.loads(content) if isinstance(content, str) else content
        except ValueError:
            parsed = content
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            parsed = "error"
        return ("tool", (message.get("tool_call_id"), parsed))
    if role == "assistant" and message.get("tool_calls"):
        calls = message["tool_calls"]
        return ("assistant", [c.get("id") if isinstance(c, dict) else c for c in calls])
    return (str(role), message.get("content"))


def _conversation_problem(messages: list[Message]) -> tuple[str, str] | None:
    """What a provider would refuse in this conversation (with a hint), or None."""
    waiting: list[str] = []  # ids of the calls still waiting for their tool message
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return (
                f"第 {i + 1} 条消息不是 dict：{short(message, 60)}",
                "对话里的每条消息都是 dict。",
            )
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in waiting:
                before = next((m for m in reversed(messages[:i]) if m.get("role") != "tool"), {})
                if before.get("role") == "assistant" and not before.get("tool_calls"):
                    return (
                        "tool 消息前面的 assistant 消息里没有 tool_calls",
                        "放回对话的 assistant 消息要带着 tool_calls：用 result.to_message()，"
                        "不要只放 content。",
                    )
                if before.get("role") != "assistant":
                    return (
                        "tool 消息前面没有那条带 tool_calls 的 assistant 消息",
                        "模型的回答（带 tool_calls 的 assistant 消息，result.to_message()）"
                        "要先加进对话，tool 消息跟在它后面；"
                        "服务商看到没有来由的 tool 消息会回 400。",
                    )
                return (
                    f"tool 消息的 tool_call_id 是 {short(call_id)}，前面没有这个 id 的调用",
                    "tool_call_id 要和对应调用的 id 一模一样（run_tool_call 里用 call['id']），"
                    "每个调用只回一条 tool 消息。",
                )
            waiting.remove(call_id)
            continue
        if waiting:
            return (
                f"调用 {', '.join(waiting)} 还没有 tool 消息，对话就继续了",
                "assistant 消息里的每个调用，后面都要跟一条 tool 消息（它的结果），然后才能 send。",
            )
        if role == "assistant":
            waiting = [c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if waiting:
        return (
            f"调用 {', '.join(str(w) for w in waiting)} 的结果没有发回去就又请求了",
            "先把每个调用的 tool 消息加进对话，再 send。",
        )
    return None


class _ScriptedModel:
    """``send(messages, tools)`` for a case: checks each request, answers from the script."""

    def __init__(self, case: AgentCase) -> None:
        self.case = case
        self.sent: list[list[Message]] = []

    def __call__(self, messages: Any, tools: Any = None) -> ChatResult:
        limit = len(self.case.replies)
        if len(self.sent) >= limit:
            raise _Refused(
                f"发了 {len(self.sent) + 1} 次请求还没停下（max_rounds={self.case.max_rounds}）",
                "循环最多发 max_rounds 次请求：用 for _ in range(max_rounds)，"
                "循环结束还没有回答就 raise RuntimeError。",
            )
        if not isinstance(messages, list):
            raise _Refused(
                f"send 收到的 messages 是 {type(messages).__name__}",
                "send(对话, tools)：第一个参数是消息的列表。",
            )
        snapshot = copy.deepcopy(messages)
        self.sent.append(snapshot)
        if not same(tools, LOOP_TOOLS):
            raise _Refused(
                f"第 {len(self.sent)} 次请求没有带上 tools（收到 {short(tools, 60)}）",
                "每一轮都要把 tools 发过去：send(对话, tools)。",
            )
        if not same(snapshot[: len(self.case.messages)], self.case.messages):
            raise _Refused(
                f"第 {len(self.sent)} 次请求的对话开头不是传进来的 messages",
                "从传进来的 messages 开始（history = list(messages)），只在后面追加。",
            )
        if len(self.sent) > 1 and len(snapshot) <= len(self.sent[-2]):
            raise _Refused(
                f"第 {len(self.sent)} 次请求的对话和上一次一样长：上一轮的回答和工具结果没有加进去",
                "每一轮都把模型的回答和工具结果追加到对话里，再 send。",
            )
        problem = _conversation_problem(snapshot)
        if problem is not None:
            raise _Refused(f"第 {len(self.sent)} 次请求：{problem[0]}", problem[1])
        reply = copy.deepcopy(self.case.replies[len(self.sent) - 1])
        finish = "tool_calls" if reply.get("tool_calls") else "stop"
        body = {"choices": [{"index": 0, "message": reply, "finish_reason": finish}]}
        return from_completion(body)


def _not_done_in(exc: BaseException) -> str:
    """The name of the function whose stub raised (the innermost frame)."""
    tb: types.TracebackType | None = exc.__traceback__
    name = ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return name


def _one_agent_case(agent_loop: Callable, case: AgentCase) -> bool:
    model = _ScriptedModel(case)
    given = copy.deepcopy(case.messages)
    sends = case.sends or len(case.replies)
    try:
        got = agent_loop(model, given, LOOP_TOOLS, check_registry([]), case.max_rounds)
    except _Refused as refused:
        print(f"✗ {case.what}：{refused.what}。")
        print(f"  提示：{refused.hint}")
        return False
    except NotImplementedError as exc:  # before RuntimeError: it is one
        if _not_done_in(exc) == "run_tool_call":
            print(
                "✗ 还没完成：agent_loop 要用到练习 1 的 run_tool_call，它还是 raise "
                "NotImplementedError。先完成练习 1，再运行这一格。"
            )
            return False
        return crash(case.what, exc, case.hint)
    except RuntimeError as exc:
        if case.expected is None and len(model.sent) == sends:
            return True
        print(
            f"✗ {case.what}：发了 {len(model.sent)} 次请求后抛出了 RuntimeError：{short(str(exc))}"
        )
        print(f"  提示：{case.hint}")
        return False
    except Exception as exc:  # the student's code may raise anything
        return crash(case.what, exc, case.hint)
    if case.expected is None:
        print(f"✗ {case.what}：发了 {len(model.sent)} 次请求后返回了，没有抛出 RuntimeError。")
        print(f"  提示：{case.hint}")
        return False
    if not isinstance(got, list):
        print(f"✗ {case.what}：返回的是 {type(got).__name__}，不是对话（消息的列表）。")
        print("  提示：最后 return 整个对话：传进来的 messages，加上每一轮的回答和工具结果。")
        return False
    spelled = [_spell(m) for m in got]
    if not same(spelled, case.expected):
        at = next(
            i
            for i in range(max(len(spelled), len(case.expected)))
            if i >= len(spelled) or i >= len(case.expected) or spelled[i] != case.expected[i]
        )
        missing = "（没有这一条）"
        print(f"✗ {case.what}：返回的对话从第 {at + 1} 条消息起不对", end="")
        print(f"（应该有 {len(case.expected)} 条，得到 {len(spelled)} 条）。")
        print(f"  期望：{short(case.expected[at]) if at < len(case.expected) else missing}")
        print(f"  得到：{short(spelled[at]) if at < len(spelled) else missing}")
        print(f"  提示：{case.hint}")
        return False
    if len(model.sent) != sends:
        print(f"✗ {case.what}：发了 {len(model.sent)} 次请求，应该是 {sends} 次。")
        print(f"  提示：{case.hint}")
        return False
    return True


@check
def check_agent_loop(agent_loop: Callable[..., list[Message]]) -> None:
    """Run ``agent_loop`` against the scripted model on every case; print ✓, or ✗ with what
    went wrong and a hint."""
    cases = agent_cases()
    for case in cases:
        if not _one_agent_case(agent_loop, case):
            return
    print(
        f"✓ agent_loop：{len(cases)} 段对话都对（直接回答、一次调用、同时两次调用、两轮调用、"
        "坏参数、到 max_rounds 就停下），每个工具结果都紧跟着它的调用。"
    )
