"""Checking a chat completions request the way OpenAI does, before any model sees it.

:func:`check_chat_request` returns the first :class:`Problem` with the body -- a clear English
message and the parameter it is about (``param``, e.g. ``"messages[1].tool_call_id"``) -- or
``None``. The server answers a problem with HTTP 400 in OpenAI's error shape. Whatever JSON
value a field holds, checking it never raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_DEPTH", "ROLES", "Problem", "check_chat_request", "check_text", "describe"]

ROLES = ("system", "user", "assistant", "tool", "developer")
MAX_DEPTH = 64  # deepest nesting of lists and objects a request may have
MAX_STOP = 4
MAX_N = 8  # the local server's own limit (OpenAI allows 128)
MAX_TOKENS = 1_000_000
_PART_TYPES = {"text", "image_url", "input_audio", "file", "refusal"}
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Problem:
    message: str
    param: str | None
    code: str = "invalid_request"


def describe(value: Any) -> str:
    """The JSON type of a value, as OpenAI's messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: Any) -> Problem:
    return Problem(
        f"Invalid type for '{param}': expected {expected}, but got {describe(value)} instead.",
        param,
    )


# -- the whole body: nesting and text -----------------------------------------------------------
def _walk(body: dict[str, Any]) -> Iterator[tuple[Any, str, int]]:
    """Every value in the body with its path and depth, without recursion."""
    stack: list[tuple[Any, str, int]] = [(v, k, 1) for k, v in reversed(list(body.items()))]
    while stack:
        value, path, depth = stack.pop()
        yield value, path, depth
        if isinstance(value, dict):
            items = [(v, f"{path}.{k}", depth + 1) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]))


def check_text(text: str, param: str) -> Problem | None:
    """A lone surrogate (``\\ud800`` sent as a JSON escape) is not text: UTF-8 cannot hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"\\u{ord(text[exc.start]):04x}"
        return Problem(
            f"Invalid Unicode in '{param}': {bad} is a lone surrogate, not a character. "
            "Send valid UTF-8 text (a character outside the BMP is a surrogate pair).",
            param,
        )
    return None


def _check_structure(body: dict[str, Any]) -> Problem | None:
    for key in body:
        problem = check_text(key, "(a key)")
        if problem:
            return problem
    for value, path, depth in _walk(body):
        if depth > MAX_DEPTH:
            top = re.split(r"[.\[]", path, maxsplit=1)[0]
            return Problem(
                f"Invalid '{top}': nested more than {MAX_DEPTH} levels deep.", top, "invalid_value"
            )
        if isinstance(value, str):
            problem = check_text(value, path)
        elif isinstance(value, dict):
            problem = next(
                (p for k in value if (p := check_text(k, f"{path} (a key)")) is not None), None
            )
        else:
            continue
        if problem:
            return problem
    return None


# -- numbers --------------------------------------------------------------------------------------
def _number(body: dict[str, Any], name: str, low: float, high: float) -> Problem | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _wrong_type(name, "a number", value)
    if not low <= value <= high:
        return Problem(
            f"Invalid value for '{name}': expected a number from {low:g} to {high:g}, "
            f"but got {value!r}.",
            name,
        )
    return None


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> Problem | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return _wrong_type(name, "an integer", value)
    if not low <= value <= high:
        return Problem(
            f"Invalid value for '{name}': expected an integer from {low} to {high}, "
            f"but got {value}.",
            name,
        )
    return None


def _boolean(body: dict[str, Any], name: str, param: str | None = None) -> Problem | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return None
    return _wrong_type(param or name, "a boolean (true or false)", value)


# -- messages -------------------------------------------------------------------------------------
def _check_parts(parts: list[Any], param: str, role: str) -> Problem | None:
    for j, part in enumerate(parts):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            return _wrong_type(where, "an object such as {'type': 'text', 'text': '...'}", part)
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in _PART_TYPES:
            return Problem(
                f"Invalid value for '{where}.type': expected one of {sorted(_PART_TYPES)}, "
                f"but got {kind!r}.",
                f"{where}.type",
            )
        if kind in ("text", "refusal"):
            if not isinstance(part.get(kind), str):
                return _wrong_type(f"{where}.{kind}", "a string", part.get(kind))
            continue
        if role != "user":
            return Problem(
                f"Invalid '{where}.type': {kind!r} parts are only allowed in user messages.",
                f"{where}.type",
            )
        if not isinstance(part.get(kind), dict):
            return _wrong_type(f"{where}.{kind}", "an object", part.get(kind))
    return None


def _check_content(message: dict[str, Any], i: int, role: str) -> Problem | None:
    param = f"messages[{i}].content"
    content = message.get("content")
    if content is None:
        if role == "assistant":  # may carry only tool calls
            return None
        if "content" not in message:
            return Problem(f"Missing required parameter: '{param}'.", param)
        return _wrong_type(param, "a string or an array of content parts", content)
    if isinstance(content, str):
        return None
    if isinstance(content, list):
        return _check_parts(content, param, role)
    return _wrong_type(param, "a string or an array of content parts", content)


def _check_tool_calls(message: dict[str, Any], i: int) -> tuple[Problem | None, list[str]]:
    calls = message.get("tool_calls")
    if calls is None:
        return None, []
    param = f"messages[{i}].tool_calls"
    if not isinstance(calls, list):
        return _wrong_type(param, "an array", calls), []
    ids = []
    for j, call in enumerate(calls):
        where = f"{param}[{j}]"
        if not isinstance(call, dict):
            return _wrong_type(where, "an object", call), []
        if not isinstance(call.get("id"), str):
            return _wrong_type(f"{where}.id", "a string", call.get("id")), []
        function = call.get("function")
        if not isinstance(function, dict):
            return _wrong_type(f"{where}.function", "an object", function), []
        for key in ("name", "arguments"):
            if not isinstance(function.get(key), str):
                return _wrong_type(f"{where}.function.{key}", "a string", function.get(key)), []
        ids.append(call["id"])
    return None, ids


def _check_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list) or not messages:
        return Problem(
            "Field 'messages' must be a non-empty list of {'role': ..., 'content': ...}.",
            "messages",
        )
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return _wrong_type(f"messages[{i}]", "an object with 'role' and 'content'", message)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            shown = "missing" if "role" not in message else repr(role)
            return Problem(
                f"Invalid value for 'messages[{i}].role': expected one of "
                f"{', '.join(ROLES)}, but got {shown}.",
                f"messages[{i}].role",
            )
        problem = _check_content(message, i, role)
        if problem:
            return problem
        if "name" in message and not isinstance(message["name"], str):
            return _wrong_type(f"messages[{i}].name", "a string", message["name"])
        if role == "assistant":
            problem, ids = _check_tool_calls(message, i)
            if problem:
                return problem
            call_ids.update(ids)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            param = f"messages[{i}].tool_call_id"
            if not isinstance(call_id, str):
                return _wrong_type(param, "a string (the id of the call it answers)", call_id)
            if call_id not in call_ids:
                return Problem(
                    f"Invalid '{param}': {call_id!r} does not match any tool call in an earlier "
                    "assistant message. A message with role 'tool' must answer a preceding "
                    "message with 'tool_calls'.",
                    param,
                )
    return None


# -- the rest -------------------------------------------------------------------------------------
def _check_stop(stop: Any) -> Problem | None:
    if stop is None or isinstance(stop, str):
        return None
    if not isinstance(stop, list):
        return _wrong_type("stop", "a string or an array of up to 4 strings", stop)
    if len(stop) > MAX_STOP:
        return Problem(
            f"Invalid 'stop': at most {MAX_STOP} stop sequences, but got {len(stop)}.", "stop"
        )
    for i, item in enumerate(stop):
        if not isinstance(item, str):
            return _wrong_type(f"stop[{i}]", "a string", item)
    return None


def _check_stream_options(body: dict[str, Any]) -> Problem | None:
    options = body.get("stream_options")
    if options is None:
        return None
    if not isinstance(options, dict):
        return _wrong_type("stream_options", "an object such as {'include_usage': true}", options)
    return _boolean(options, "include_usage", "stream_options.include_usage")


def _check_tools(body: dict[str, Any]) -> Problem | None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            return _wrong_type("tools", "an array of function tools", tools)
        for i, tool in enumerate(tools):
            where = f"tools[{i}]"
            if not isinstance(tool, dict):
                return _wrong_type(where, "an object", tool)
            if tool.get("type") != "function":
                return Problem(
                    f"Invalid value for '{where}.type': expected 'function', "
                    f"but got {tool.get('type')!r}.",
                    f"{where}.type",
                )
            function = tool.get("function")
            if not isinstance(function, dict):
                return _wrong_type(f"{where}.function", "an object", function)
            name = function.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                return Problem(
                    f"Invalid '{where}.function.name': expected 1 to 64 letters, digits, "
                    f"'_' or '-', but got {name!r}.",
                    f"{where}.function.name",
                )
            for key, kind in (("description", str), ("parameters", dict)):
                if key in function and not isinstance(function[key], kind):
                    expected = "a string" if kind is str else "an object (a JSON Schema)"
                    return _wrong_type(f"{where}.function.{key}", expected, function[key])
            names.append(name)
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if isinstance(name, str) and name in names:
            return None
        return Problem(
            f"Invalid 'tool_choice': the function {name!r} is not among the request's tools.",
            "tool_choice",
        )
    return Problem(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        "tool_choice",
    )


def check_chat_request(body: Any) -> Problem | None:
    """The first problem with a chat completions request body, or None when it is valid."""
    if not isinstance(body, dict):
        return Problem("Request body must be a JSON object.", None)
    problem = _check_structure(body)
    if problem:
        return problem
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return Problem(
            "Missing required field 'model' (a string, e.g. 'Qwen/Qwen2.5-7B-Instruct').", "model"
        )
    checks = (
        lambda: _check_messages(body.get("messages")),
        lambda: _boolean(body, "stream"),
        lambda: _check_stream_options(body),
        lambda: _integer(body, "max_tokens", 1, MAX_TOKENS),
        lambda: _integer(body, "max_completion_tokens", 1, MAX_TOKENS),
        lambda: _integer(body, "n", 1, MAX_N),
        lambda: _number(body, "temperature", 0, 2),
        lambda: _number(body, "top_p", 0, 1),
        lambda: _number(body, "presence_penalty", -2, 2),
        lambda: _number(body, "frequency_penalty", -2, 2),
        lambda: _check_stop(body.get("stop")),
        lambda: _check_tools(body),
        lambda: _boolean(body, "parallel_tool_calls"),
        lambda: _boolean(body, "logprobs"),
        lambda: _integer(body, "top_logprobs", 0, 20),
        lambda: _integer(body, "seed", -(2**63), 2**63 - 1),
    )
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None
