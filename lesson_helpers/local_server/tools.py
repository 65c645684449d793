"""Tool calling on the local server: which tool the scripted model calls, and with what.

No model runs here either. The rules, in order:

* ``tool_choice`` ``none`` -> never call a tool; ``required`` -> always call one; a named
  function -> always call that one; ``auto`` (the default when tools are offered) -> call the
  tools the question asks for, or answer in text when none fits.
* Right after the ``tool`` results (the last messages of the conversation), ``auto`` and
  ``none`` answer in text that quotes the results (``北京晴，气温 23°C``).
* A tool "offers" weather, time, calculation or search when its name, parameter names or
  description say so (``get_weather``, ``city``, "查询天气" ...). A question asks for it
  with words such as 天气 / weather, 几点 / time, 计算 / calculate / ``3 * 4``, 搜索 / search;
  naming a tool (``get_stock_price``) asks for that tool.
* The arguments come from the question: the cities named in it (two cities -> two parallel
  calls), the arithmetic expression, the unit, a time zone, the question itself for a query.
  A weather question without a city gets a question back, not a call with a made-up city.
* Everything is deterministic: the call ids are digests of the request, so the same
  conversation always gets the same ids (stored notebook outputs depend on it).

The chat completions models stream the calls here (:func:`chat_tool_calls`); the Responses
and Messages APIs plan a :class:`Reply` with :func:`plan_reply` and write it in their own
wire format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .exchange import ChunkBuilder, Exchange, dumps
from .replies import prompt_tokens, reasoning_pieces, reply_pieces, tokenize

__all__ = [
    "REASONING_MODELS",
    "PlannedCall",
    "Reply",
    "Tool",
    "ToolChoice",
    "ToolError",
    "answer_from_results",
    "call_key",
    "chat_call_completion",
    "chat_call_events",
    "chat_tool_calls",
    "cut_arguments",
    "decide",
    "digest",
    "last_question",
    "make_choice",
    "make_tool",
    "parse_chat_tools",
    "plan_reply",
    "send_events",
    "tool_answer",
    "tool_list",
    "unique_tools",
]


class ToolError(ValueError):
    """A request whose tools or tool_choice cannot be used (answered with HTTP 400)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Tool:
    """One function the caller offers, whatever the wire format it came in."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # a JSON schema (an object)


@dataclass(frozen=True)
class ToolChoice:
    """``mode`` is "none", "auto" or "required"; ``name``: the one function required."""

    mode: str = "auto"
    name: str | None = None
    parallel: bool = True


@dataclass(frozen=True)
class PlannedCall:
    """A call the model will make: ``key`` is a digest each API turns into its own ids."""

    key: str
    name: str
    arguments: str  # JSON text, exactly as it will be streamed


@dataclass(frozen=True)
class Decision:
    """Tool calls to make, or text to say instead (None: the ordinary scripted reply)."""

    calls: list[PlannedCall] = field(default_factory=list)
    text: str | None = None


def digest(*parts: Any) -> str:
    """A stable hex digest of JSON-able parts (the source of every id made here): the same
    request gives the same ids whatever the order of its keys."""
    text = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def call_key(prefix: str, key: str, length: int = 24) -> str:
    """An id such as ``call_<24 hex>`` from a planned call's key."""
    return prefix + key[:length]


# -- reading the tools (each API module reads its own wire format with these) -------------
def make_tool(name: Any, description: Any, parameters: Any, where: str) -> Tool:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name):
        raise ToolError(
            f"Invalid '{where}.name': a function name of letters, digits, '_', '.' or '-'.",
            f"{where}.name",
        )
    if description is not None and not isinstance(description, str):
        raise ToolError(f"Invalid '{where}.description': expected a string.", where)
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ToolError(f"Invalid '{where}.parameters': expected a JSON schema object.", where)
    if not isinstance(parameters.get("properties", {}), dict):
        raise ToolError(f"Invalid '{where}.parameters.properties': expected an object.", where)
    return Tool(name, description or "", parameters)


def tool_list(raw: Any, param: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ToolError(f"Invalid '{param}': expected an array of tools.", param)
    return raw


def unique_tools(tools: list[Tool], param: str) -> list[Tool]:
    names = [t.name for t in tools]
    for name in names:
        if names.count(name) > 1:
            raise ToolError(f"Duplicate tool name '{name}' in '{param}'.", param)
    return tools


def make_choice(
    raw: Any, tools: list[Tool], named: str | None, mode: str | None, parallel: Any
) -> ToolChoice:
    if parallel is not None and not isinstance(parallel, bool):
        raise ToolError(
            "Invalid 'parallel_tool_calls': expected true or false.", "parallel_tool_calls"
        )
    keep_parallel = parallel is not False
    if raw is not None and not tools and mode != "none":
        raise ToolError(
            "Invalid 'tool_choice': it is only allowed when 'tools' are specified.", "tool_choice"
        )
    if named is not None:
        if named not in {t.name for t in tools}:
            raise ToolError(
                f"Invalid 'tool_choice': no tool named '{named}' in 'tools'.", "tool_choice"
            )
        return ToolChoice("required", named, keep_parallel)
    if mode is None:
        mode = "auto" if tools else "none"
    return ToolChoice(mode, None, keep_parallel)


def parse_chat_tools(body: dict[str, Any]) -> tuple[list[Tool], ToolChoice]:
    """``tools`` and ``tool_choice`` of a chat completions request (OpenAI's shapes)."""
    tools = []
    for i, item in enumerate(tool_list(body.get("tools"), "tools")):
        where = f"tools[{i}]"
        if not isinstance(item, dict):
            raise ToolError(f"Invalid '{where}': expected a function tool object.", where)
        if item.get("type", "function") != "function":
            raise ToolError(f"Invalid '{where}.type': only 'function' tools.", where + ".type")
        function = item.get("function")
        if not isinstance(function, dict):
            raise ToolError(f"Missing '{where}.function' (name, description, parameters).", where)
        tools.append(
            make_tool(
                function.get("name"),
                function.get("description"),
                function.get("parameters"),
                where + ".function",
            )
        )
    tools = unique_tools(tools, "tools")
    return tools, openai_tool_choice(body, tools, nested=True)


def openai_tool_choice(body: dict[str, Any], tools: list[Tool], *, nested: bool) -> ToolChoice:
    """OpenAI's ``tool_choice``: ``none`` / ``auto`` / ``required``, or one named function --
    ``{"type": "function", "function": {"name": ...}}`` in chat completions (``nested``),
    ``{"type": "function", "name": ...}`` in the Responses API."""
    shape = (
        "{'type': 'function', 'function': {'name': ...}}"
        if nested
        else "{'type': 'function', 'name': ...}"
    )
    raw = body.get("tool_choice")
    named = mode = None
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise ToolError(
                f"Invalid 'tool_choice': use 'none', 'auto', 'required' or {shape}.", "tool_choice"
            )
        mode = raw
    elif isinstance(raw, dict):
        holder = raw.get("function") if nested else raw
        named = holder.get("name") if isinstance(holder, dict) else None
        if raw.get("type") != "function" or not isinstance(named, str):
            raise ToolError(f"Invalid 'tool_choice': expected {shape}.", "tool_choice")
    elif raw is not None:
        raise ToolError("Invalid 'tool_choice': expected a string or an object.", "tool_choice")
    return make_choice(raw, tools, named, mode, body.get("parallel_tool_calls"))


# -- what the question asks for -----------------------------------------------------------
@dataclass(frozen=True)
class _Family:
    name: str
    tool_words: tuple[str, ...]  # in a tool's name, parameter names or description
    asks: re.Pattern[str]  # in the user's question


_FAMILIES = (
    _Family(
        "weather",
        ("weather", "天气", "气温", "forecast", "temperature"),
        re.compile(r"天气|气温|温度|下雨|下雪|冷不冷|热不热|weather|temperature|forecast", re.I),
    ),
    _Family(
        "time",
        ("time", "时间", "clock", "几点", "时区"),
        re.compile(r"几点|时间|几号|日期|星期几|\btime\b|\bdate\b|\bclock\b", re.I),
    ),
    _Family(
        "calculate",
        ("calculat", "计算", "math", "arithmetic", "expression", "evaluate", "compute", "calc"),
        re.compile(
            r"计算|算一下|算算|等于多少|等于几|calculat|compute|evaluate|"
            r"\d\s*[+*/×÷^]\s*[\d(]|\d\s*(?:加|减|乘以?|除以)\s*\d",
            re.I,
        ),
    ),
    _Family(
        "search",
        ("search", "搜索", "查找", "lookup", "look_up", "检索"),
        re.compile(r"搜索|搜一下|查找|检索|search|look up", re.I),
    ),
)

# The cities a question may name, by IANA time zone: "中文/English/other spellings", ...
_CITIES_BY_ZONE = {
    "Asia/Shanghai": "北京/Beijing, 上海/Shanghai, 广州/Guangzhou, 深圳/Shenzhen, 杭州/Hangzhou, "
    "南京/Nanjing, 成都/Chengdu, 重庆/Chongqing, 武汉/Wuhan, 西安/Xi'an/Xian, 天津/Tianjin, "
    "苏州/Suzhou, 长沙/Changsha, 郑州/Zhengzhou, 青岛/Qingdao, 厦门/Xiamen, 昆明/Kunming, "
    "哈尔滨/Harbin, 拉萨/Lhasa",
    "Asia/Urumqi": "乌鲁木齐/Urumqi",
    "Asia/Hong_Kong": "香港/Hong Kong",
    "Asia/Macau": "澳门/Macau/Macao",
    "Asia/Taipei": "台北/Taipei",
    "Asia/Tokyo": "东京/Tokyo, 大阪/Osaka",
    "Asia/Seoul": "首尔/Seoul",
    "Asia/Singapore": "新加坡/Singapore",
    "Australia/Sydney": "悉尼/Sydney",
    "Europe/Moscow": "莫斯科/Moscow",
    "Europe/London": "伦敦/London",
    "Europe/Paris": "巴黎/Paris",
    "Europe/Berlin": "柏林/Berlin",
    "America/New_York": "纽约/New York, 波士顿/Boston",
    "America/Los_Angeles": "旧金山/San Francisco, 洛杉矶/Los Angeles",
}
_CITIES = [
    (tuple(city.split("/")), zone)
    for zone, cities in _CITIES_BY_ZONE.items()
    for city in cities.split(", ")
]
_TIME_ZONES = {name.lower(): zone for names, zone in _CITIES for name in names}
_DEFAULT_CITY = "北京"
_DEFAULT_ZONE = "Asia/Shanghai"
# "绍兴的天气", "weather in Springfield": cities that are not in the table above.
_CJK_PLACE = re.compile(
    r"(?<![\u4e00-\u9fff])([\u4e00-\u9fff]{2,3}?)市?的?(?:天气|气温|温度|现在几点)"
)
_EN_PLACE = re.compile(r"\b(?:in|for|at)\s+([A-Z][a-z]+(?:\s[A-Z][a-z]+)?)")
_NOT_PLACES = set("今天 明天 后天 昨天 现在 这里 那里 当地 本地 最近 周末 今晚".split())


def _city_pattern() -> re.Pattern[str]:
    names = sorted((n for names, _ in _CITIES for n in names), key=len, reverse=True)
    return re.compile(
        "|".join(rf"\b{re.escape(n)}\b" if n.isascii() else re.escape(n) for n in names),
        re.I,
    )


_CITY = _city_pattern()


def _cities(question: str) -> list[str]:
    """The cities named in the question, in order of appearance."""
    found = [(m.start(), m.end(), m.group()) for m in _CITY.finditer(question)]
    for pattern in (_CJK_PLACE, _EN_PLACE):
        for match in pattern.finditer(question):
            if match.group(1) not in _NOT_PLACES:
                found.append((match.start(1), match.end(1), match.group(1)))
    found.sort()
    cities: list[str] = []
    end = -1
    for start, stop, name in found:
        if start >= end and name not in cities:
            cities.append(name)
            end = stop
    return cities


_OP_WORDS = re.compile(r"(?<=[\d\s)）])(乘以|除以|加上|减去|乘|加|减)(?=[\s\d(（])")
_OP_SYMBOLS = str.maketrans({"×": "*", "÷": "/", "（": "(", "）": ")", "＋": "+", "－": "-"})
_EXPRESSION = re.compile(r"[\d.(][\d.\s()+\-*/^%]*[\d)]")
_OPERATOR = re.compile(r"[\d)]\s*[-+*/^%]\s*[\d(]")
_OP_NAMES = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


def _expressions(question: str) -> list[str]:
    """Arithmetic expressions in the question ("3 加 5" counts), as Python-like text."""
    words = {"乘以": "*", "除以": "/", "加上": "+", "减去": "-", "乘": "*", "加": "+", "减": "-"}
    text = _OP_WORDS.sub(lambda m: words[m.group(1)], question.translate(_OP_SYMBOLS))
    return [m.group().strip() for m in _EXPRESSION.finditer(text) if _OPERATOR.search(m.group())]


def _tool_text(tool: Tool) -> tuple[str, str, str]:
    properties = tool.parameters.get("properties") or {}
    return tool.name.lower(), " ".join(properties).lower(), tool.description.lower()


def _families_of(tool: Tool) -> list[_Family]:
    """What the tool offers, judged by its name first, then parameters, then description."""
    found: list[_Family] = []
    for text in _tool_text(tool):
        for family in _FAMILIES:
            if family not in found and any(word in text for word in family.tool_words):
                found.append(family)
    return found


def _family_of(tool: Tool, question: str = "") -> _Family | None:
    """The first thing the tool offers that the question asks for (or just the first)."""
    families = _families_of(tool)
    asked = [f for f in families if f.asks.search(question)]
    return (asked or families or [None])[0]


def last_question(messages: Sequence[dict[str, Any]]) -> str:
    """The text of the last user message ("" if there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if isinstance(content, str) and content.strip():
                return content.strip()
    return ""


# -- filling in the arguments -------------------------------------------------------------
_MISSING = object()
_PLACE_PARAMS = ("city", "location", "place", "town", "地点", "城市")
_ZONE_PARAMS = ("timezone", "time_zone", "tz", "zone", "时区")
_EXPR_PARAMS = ("expression", "expr", "formula", "equation", "math", "表达式")
_QUERY_PARAMS = ("query", "q", "keyword", "keywords", "search", "term", "text", "question", "input")
_OP_PARAMS = ("op", "operator", "operation")


def _is(name: str, words: Iterable[str]) -> bool:
    """Whether a parameter name is one of ``words``: ``city``, ``city_name``, ``cityName``,
    ``target_city`` ..."""
    name = name.lower()
    return any(
        name == w
        or name.endswith("_" + w)
        or name.startswith(w + "_")
        or (len(w) >= 4 and name.startswith(w))
        for w in words
    )


def _unit(schema: dict[str, Any], question: str) -> Any:
    enum = schema.get("enum") or []
    lowered = question.lower()
    if "华氏" in question or "fahrenheit" in lowered or "°f" in lowered:
        wanted = "fahrenheit"
    elif "摄氏" in question or "celsius" in lowered or "°c" in lowered:
        wanted = "celsius"
    else:
        return _MISSING
    for value in enum:
        if isinstance(value, str) and value.lower() in (wanted, wanted[0]):
            return value
    return wanted if not enum else _MISSING


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _value(name: str, schema: Any, family: str | None, target: str | None, question: str) -> Any:
    """The argument for one parameter, or _MISSING when the question does not give it."""
    schema = schema if isinstance(schema, dict) else {}
    kind = schema.get("type")
    enum = schema.get("enum") or []
    if _is(name, _PLACE_PARAMS):
        return target if family in ("weather", "time") and target else _MISSING
    if _is(name, _ZONE_PARAMS):
        if family == "time" and target:
            return _TIME_ZONES.get(target.lower(), _MISSING)
        return _MISSING
    if "unit" in name.lower() or any(str(v).lower() in ("celsius", "fahrenheit") for v in enum):
        return _unit(schema, question)
    if family == "calculate" and target:
        operator = re.search(r"(?<=[\d)\s])[-+*/]", target)
        if _is(name, _OP_PARAMS):
            if not operator:
                return _MISSING
            symbol = operator.group()
            for value in enum:
                if str(value).lower() in (symbol, _OP_NAMES[symbol], _OP_NAMES[symbol][:3]):
                    return value
            return _MISSING if enum else symbol
        numbers = re.findall(r"\d+(?:\.\d+)?", target)
        if kind in ("number", "integer") and numbers:
            return numbers  # one each, in order: _arguments picks
        if _is(name, _EXPR_PARAMS) or (kind in (None, "string") and not enum):
            return target
    if family == "search" and (_is(name, _QUERY_PARAMS) or kind == "string"):
        return target or question
    if _is(name, _QUERY_PARAMS) and kind in (None, "string"):
        return question
    return _MISSING


def _default(name: str, schema: Any, question: str) -> Any:
    """A value for a required parameter the question does not give (when one must be sent)."""
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    numbers = re.findall(r"\d+", question)
    if kind in ("number", "integer"):
        return int(numbers[0]) if numbers else 0
    if kind in ("array", "object", "boolean"):
        return {"array": [], "object": {}, "boolean": False}[kind]
    if numbers and re.search(r"id|number|no$|code", name, re.I):
        return numbers[0]  # order_id, phone_number ...
    return question


def _arguments(
    tool: Tool, family: str | None, target: str | None, question: str, *, fill: bool, forced: bool
) -> dict[str, Any] | None:
    """The arguments of one call, in the schema's order. A required argument the question
    does not give is made up when ``fill`` (a city only when ``forced``); otherwise the
    call is not made (None)."""
    properties = tool.parameters.get("properties") or {}
    args: dict[str, Any] = {}
    numbers_used = 0
    for name, schema in properties.items():
        value = _value(name, schema, family, target, question)
        if isinstance(value, list):  # the numbers of an expression: a, b, ... in order
            if numbers_used >= len(value):
                continue
            value = _number(value[numbers_used])
            numbers_used += 1
        if value is not _MISSING:
            args[name] = value
    for name in tool.parameters.get("required") or []:
        if not isinstance(name, str) or name in args:
            continue
        if _is(name, _PLACE_PARAMS) and family != "time":
            if not forced:
                return None  # a weather question without a city: ask for it instead
            args[name] = _DEFAULT_CITY
        elif _is(name, _ZONE_PARAMS) or (_is(name, _PLACE_PARAMS) and family == "time"):
            args[name] = _DEFAULT_ZONE if _is(name, _ZONE_PARAMS) else _DEFAULT_CITY
        elif fill or family in ("time", "search"):
            args[name] = _default(name, properties.get(name), question)
        else:
            return None
    order = [*properties, *(name for name in args if name not in properties)]
    return {name: args[name] for name in order if name in args}


def _targets(family: str | None, question: str) -> list[str | None]:
    if family in ("weather", "time"):
        return list(_cities(question)) or [None]
    if family == "calculate":
        return list(_expressions(question))
    if family == "search":
        return [question]
    return [None]


# -- deciding -------------------------------------------------------------------------------
def _trailing_results(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(message)
    return results[::-1]


def decide(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[Tool],
    choice: ToolChoice,
    json_style: str = "spaced",
) -> Decision:
    """What the scripted model does with these tools (see the module docstring).

    ``json_style``: "spaced" (``{"city": "北京"}``, Qwen and Anthropic) or "compact"
    (``{"city":"北京"}``, OpenAI).
    """
    results = _trailing_results(messages)
    if choice.mode == "none" or not tools or (results and choice.mode == "auto"):
        return Decision(text=answer_from_results(messages) if results else None)
    question = last_question(messages)
    forced = choice.mode == "required"
    offered = [t for t in tools if choice.name in (None, t.name)]
    planned: list[tuple[Tool, dict[str, Any]]] = []
    ask_city = False
    for tool in offered:
        family = _family_of(tool, question)
        kind = family.name if family else None
        asked = family is not None and bool(family.asks.search(question))
        named = tool.name.lower() in question.lower()
        if not (asked or named or choice.name):
            continue
        for target in _targets(kind, question) if asked else [None]:
            fill = forced or named
            args = _arguments(tool, kind, target, question, fill=fill, forced=forced)
            if args is None:
                ask_city = ask_city or kind == "weather"
                continue
            planned.append((tool, args))
    if not planned and forced:
        tool = offered[0]
        kind = family.name if (family := _family_of(tool)) else None
        planned.append((tool, _arguments(tool, kind, None, question, fill=True, forced=True) or {}))
    if not planned:
        text = "你想查询哪个城市的天气？告诉我城市名，我再帮你查。" if ask_city else None
        return Decision(text=text)
    if not choice.parallel:
        planned = planned[:1]
    separators = (",", ":") if json_style == "compact" else (", ", ": ")
    seed = digest(list(messages), [t.name for t in tools])
    calls = [
        PlannedCall(
            digest(seed, i, tool.name, args),
            tool.name,
            json.dumps(args, ensure_ascii=False, separators=separators),
        )
        for i, (tool, args) in enumerate(planned)
    ]
    return Decision(calls=calls)


# -- answering with the results --------------------------------------------------------------
_TEMPERATURE_KEYS = ("temperature", "temp", "temperature_c", "temp_c", "气温", "温度")
_CONDITION_KEYS = ("condition", "conditions", "weather", "description", "summary", "天气")
_PLACE_KEYS = ("city", "location", "place", "城市")
_TIME_KEYS = ("time", "datetime", "current_time", "local_time", "now", "时间")
_RESULT_KEYS = ("result", "value", "answer", "结果")


def _first(data: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if data.get(key) not in (None, ""):
            return data[key]
    return None


def _unit_symbol(unit: Any) -> str:
    text = str(unit or "").lower()
    if text in ("fahrenheit", "f", "°f", "华氏"):
        return "°F"
    if text in ("kelvin", "k"):
        return " K"
    return "°C"


def _describe(name: str, args: dict[str, Any], content: str) -> str:
    """One clause saying what a tool returned."""
    try:
        data = json.loads(content)
    except ValueError:
        data = content
    shown = " ".join(str(content).split())[:200]
    if isinstance(data, dict) and data.get("error"):
        return f"{name} 调用失败：{data['error']}（我没能拿到结果，请检查参数后再试）"
    if isinstance(data, str) and re.match(r"\s*(error|错误)", data, re.I):
        return f"{name} 调用失败：{shown}（我没能拿到结果，请检查参数后再试）"
    family = _family_of(Tool(name))
    kind = family.name if family else None
    if isinstance(data, dict):
        place = _first(data, _PLACE_KEYS) or _first(args, _PLACE_KEYS) or ""
        temperature = _first(data, _TEMPERATURE_KEYS)
        if kind == "weather" or temperature is not None:
            condition = _first(data, _CONDITION_KEYS)
            parts = [str(condition)] if condition else []
            if temperature is not None:
                symbol = (
                    ""
                    if isinstance(temperature, str)
                    else _unit_symbol(data.get("unit") or args.get("unit"))
                )
                parts.append(f"气温 {temperature}{symbol}")
            if parts:
                return f"{place}{'，'.join(parts)}"
        when = _first(data, _TIME_KEYS)
        if kind == "time" and when:
            zone = str(place or data.get("timezone") or args.get("timezone") or "")
            return f"{zone}{' ' if zone.isascii() else ''}现在是 {when}".strip()
        result = _first(data, _RESULT_KEYS)
        if kind == "calculate" and result is not None:
            expression = data.get("expression") or _first(args, _EXPR_PARAMS) or ""
            return f"{expression} = {result}".strip(" =") if expression else f"结果是 {result}"
        return f"{name} 返回了 {dumps(data)[:200]}"
    if kind == "calculate" and isinstance(data, int | float):
        expression = _first(args, _EXPR_PARAMS)
        return f"{expression} = {data}" if expression else f"结果是 {data}"
    return f"{name} 返回了：{shown}"


def answer_from_results(messages: Sequence[dict[str, Any]]) -> str | None:
    """The text answer after the trailing ``tool`` messages (None if there are none)."""
    results = _trailing_results(messages)
    if not results:
        return None
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call.get("function") or {}
            try:
                args = json.loads(function.get("arguments") or "{}")
            except (TypeError, ValueError):
                args = {}
            calls[str(call.get("id"))] = (
                str(function.get("name") or "工具"),
                args if isinstance(args, dict) else {},
            )
    clauses = []
    for result in results:
        name, args = calls.get(str(result.get("tool_call_id")), ("工具", {}))
        content = result.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        clauses.append(_describe(name, args, str(content or "")))
    if len(clauses) == 1:
        return f"根据工具返回的结果：{clauses[0]}。"
    return "根据工具返回的结果：" + "；".join(clauses) + "。"


# -- argument fragments ----------------------------------------------------------------------
_FRAGMENT = re.compile(r'\{"|"?\}|"?,\s?"|":\s?"?|[\u3400-\u9fff]{1,2}|[A-Za-z0-9_]+|\s+|.', re.S)


def cut_arguments(text: str) -> list[str]:
    """Cut arguments JSON into the fragments a provider streams: ``{"``, ``city``,
    ``": "``, ``北京``, ``"}`` ... Joined back they give ``text`` exactly."""
    return _FRAGMENT.findall(text) or [text]


# -- a planned reply, for the Responses and Messages APIs ---------------------------------------
# The models that think before they answer (reasoning summaries, thinking blocks).
REASONING_MODELS = frozenset({"deepseek-ai/DeepSeek-R1", "deepseek-reasoner"})


@dataclass
class Reply:
    """What the model says: reasoning pieces, then text pieces or tool calls.

    ``finish``: "stop" (done), "length" (hit the token limit), "tool_calls" or
    "stop_sequence" (``stop_sequence`` says which). Each piece and fragment is one token;
    ``fragments[i]`` is what is sent of ``calls[i].arguments`` (less when cut by the limit).
    """

    reasoning: list[str]
    text: list[str]
    calls: list[PlannedCall]
    finish: str
    prompt_tokens: int
    stop_sequence: str | None = None
    fragments: list[list[str]] = field(default_factory=list)  # per call, possibly cut short

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.text) + sum(len(f) for f in self.fragments)


def _cut_at_stop(pieces: list[str], stops: Sequence[str]) -> tuple[list[str], str | None]:
    """The pieces before the first stop sequence (not included), and which one matched."""
    text = "".join(pieces)
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if not hits:
        return pieces, None
    at, stop = min(hits)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > at:
            if at > used:
                kept.append(piece[: at - used])
            break
        kept.append(piece)
        used += len(piece)
    return kept, stop


def plan_reply(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[Tool],
    choice: ToolChoice,
    *,
    reasoning: bool,
    limit: int | None = None,
    stop_sequences: Sequence[str] = (),
    json_style: str = "spaced",
) -> Reply:
    """The whole reply to a conversation (chat-style ``messages``), cut to ``limit`` tokens."""
    messages = list(messages)
    decision = decide(messages, tools, choice, json_style)
    think = reasoning_pieces(messages) if reasoning else []
    calls = decision.calls
    say: list[str] = []
    if not calls:
        say = tokenize(decision.text) if decision.text is not None else reply_pieces(messages)
    reply = Reply(think, say, calls, "tool_calls" if calls else "stop", prompt_tokens(messages))
    reply.fragments = [cut_arguments(c.arguments) for c in calls]
    reply.text, reply.stop_sequence = _cut_at_stop(reply.text, stop_sequences)
    if reply.stop_sequence is not None:
        reply.finish = "stop_sequence"
    if limit is not None and reply.output_tokens > limit:
        reply.reasoning = reply.reasoning[:limit]
        room = max(0, limit - len(reply.reasoning))
        reply.text = reply.text[:room]
        room -= len(reply.text)
        cut: list[list[str]] = []
        for fragments in reply.fragments:
            if room <= 0:
                break
            cut.append(fragments[:room])
            room -= len(cut[-1])
        reply.fragments = cut
        reply.calls = reply.calls[: len(cut)]
        reply.finish, reply.stop_sequence = "length", None
    return reply


def send_events(ex: Exchange, events: Iterable[tuple[bytes, bool]]) -> bool:
    """Write SSE events; wait for the next token's slot before each one that carries a token
    (the flag). False if the server is stopping (the body was cut)."""
    first = True
    for data, token in events:
        if token and not first and not ex.sleep():
            ex.cut()
            return False
        first = False
        ex.write(data)
    return True


# -- tool calls in chat completions ----------------------------------------------------------
def _chat_decision(ex: Exchange, style: str) -> Decision | None:
    """The decision for a chat request (None when it offers no tools and sends no results)."""
    if not ex.body.get("tools") and not _trailing_results(ex.messages):
        return None  # the common case, kept cheap
    tools, choice = parse_chat_tools(ex.body)
    return decide(ex.messages, tools, choice, "compact" if style == "openai" else "spaced")


def tool_answer(ex: Exchange) -> list[str] | None:
    """The text pieces to say instead of the scripted reply: the answer that uses the tool
    results, or a question back (which city?). None: say the scripted reply."""
    try:
        decision = _chat_decision(ex, "siliconflow")
    except ToolError:
        return None
    if decision is None or decision.calls or decision.text is None:
        return None
    return tokenize(decision.text)


def _call_deltas(
    calls: Sequence[PlannedCall], style: str, limit: int | None
) -> tuple[list[tuple[dict[str, Any], int]], str]:
    """The tool call deltas of one choice (delta, tokens) and its finish reason."""
    extra = {"content": None, "reasoning_content": None} if style == "siliconflow" else {}
    out: list[tuple[dict[str, Any], int]] = []
    used = 0
    for index, call in enumerate(calls):
        start = {
            "index": index,
            "id": call_key("call_", call.key),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append(({**extra, "tool_calls": [start]}, 0))
        for fragment in cut_arguments(call.arguments):
            if limit is not None and used >= limit:
                return out, "length"
            piece = {"index": index, "function": {"arguments": fragment}}
            out.append(({**extra, "tool_calls": [piece]}, 1))
            used += 1
    return out, "tool_calls"


def _chat_plan(
    ex: Exchange, calls: Sequence[PlannedCall], style: str, reasoning: bool
) -> tuple[list[str], list[tuple[dict[str, Any], int]], str]:
    """(reasoning pieces, tool call deltas, finish reason), within ``max_tokens``."""
    limit = ex.body.get("max_tokens") or ex.body.get("max_completion_tokens")
    think = reasoning_pieces(ex.messages) if reasoning and style == "siliconflow" else []
    if limit is not None:
        think = think[:limit]
        limit = max(0, limit - len(think))
    deltas, finish = _call_deltas(calls, style, limit)
    return think, deltas, finish


def chat_call_events(
    ex: Exchange, calls: Sequence[PlannedCall], style: str = "siliconflow", reasoning: bool = False
) -> list[tuple[bytes, bool]]:
    """The whole SSE stream of a chat completion that calls ``calls`` (up to ``[DONE]``),
    as (event bytes, carries a token) -- what :func:`send_events` writes."""
    include_usage = bool((ex.body.get("stream_options") or {}).get("include_usage"))
    usage_mode = "every" if style == "siliconflow" else ("null" if include_usage else "absent")
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages), usage_mode)
    think, deltas, finish = _chat_plan(ex, calls, style, reasoning)
    if style == "siliconflow":
        head = [({"content": "", "reasoning_content": None, "role": "assistant"}, 0)]
        head += [({"content": None, "reasoning_content": p}, 1) for p in think]
        tail: dict[str, Any] = {"content": None, "reasoning_content": None}
    else:  # OpenAI: the role, the first call and "refusal" come in the first chunk
        head, tail = [], {}
        deltas[0] = ({"role": "assistant", "content": None, **deltas[0][0], "refusal": None}, 0)
    n = int(ex.body.get("n") or 1)
    steps = [*head, *deltas, (tail, 0)]
    out: list[tuple[bytes, bool]] = []
    for step, (delta, tokens) in enumerate(steps):
        builder.completion_tokens += tokens * n
        reason = finish if step == len(steps) - 1 else None
        for index in range(n):  # n > 1: the same calls in every choice, taking turns
            chunk = builder.chunk(delta, reason, index)
            out.append((b"data: " + dumps(chunk).encode() + b"\n\n", bool(tokens) and not index))
    if include_usage:
        out.append((b"data: " + dumps(builder.usage_chunk()).encode() + b"\n\n", False))
    out.append((b"data: [DONE]\n\n", False))
    return out


def chat_call_completion(
    ex: Exchange, calls: Sequence[PlannedCall], style: str = "siliconflow", reasoning: bool = False
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` whose message calls ``calls``."""
    builder = ChunkBuilder(ex.model, prompt_tokens(ex.messages))
    think, deltas, finish = _chat_plan(ex, calls, style, reasoning)
    tool_calls: list[dict[str, Any]] = []
    for delta, _ in deltas:
        for part in delta["tool_calls"]:
            if "id" in part:
                function = dict(part["function"])
                tool_calls.append({"id": part["id"], "type": "function", "function": function})
            else:
                tool_calls[-1]["function"]["arguments"] += part["function"]["arguments"]
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if style == "siliconflow":
        message["reasoning_content"] = "".join(think) if think else None
    else:
        message["refusal"] = None
    message["tool_calls"] = tool_calls
    n = int(ex.body.get("n") or 1)
    builder.completion_tokens = (len(think) + sum(t for _, t in deltas)) * n
    return {
        "id": builder.id,
        "object": "chat.completion",
        "created": builder.created,
        "model": builder.model,
        "choices": [{"index": i, "message": message, "finish_reason": finish} for i in range(n)],
        "system_fingerprint": "",
        "usage": builder.usage(),
    }


def chat_tool_calls(ex: Exchange, style: str = "siliconflow", reasoning: bool = False) -> bool:
    """Answer a chat completions request with tool calls when the tools say so.

    Returns True when the response was written here (the calls, or a 400 for unusable
    ``tools`` / ``tool_choice``); False: the scripted model answers in text as usual.
    """
    try:
        decision = _chat_decision(ex, style)
    except ToolError as error:
        ex.send_error(400, str(error), "invalid_request_error", param=error.param)
        return True
    if decision is None or not decision.calls:
        return False
    if not ex.stream:
        ex.send_json(200, chat_call_completion(ex, decision.calls, style, reasoning))
        return True
    ex.start_stream()
    if send_events(ex, chat_call_events(ex, decision.calls, style, reasoning)):
        ex.end_stream()
    return True
