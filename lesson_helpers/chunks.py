"""Streamed ``chat.completion.chunk`` objects, put back together by hand.

With ``stream=True`` an OpenAI-compatible server sends one chunk per SSE ``data:`` line
(until ``data: [DONE]``); each chunk holds a *delta* per choice. The merge rules, as real
providers send them:

* choices (``n > 1``) are told apart by ``choices[i].index`` and may come interleaved;
* ``role``: the first non-null one; ``finish_reason``: the last non-null one wins;
* text pieces are concatenated; missing, null and "" all mean "nothing new"
  (SiliconFlow sends ``"reasoning_content": null`` every time, DeepSeek ``"content": null``
  while it reasons, Azure ``"role": null`` and ``"tool_calls": null``);
* ``content`` is a string, or a list of parts (Mistral): ``{"type": "text", "text": ...}``
  goes into the content, ``{"type": "thinking", "thinking": [text parts]}`` into the
  reasoning, other part types are ignored;
* the reasoning comes as ``reasoning_content`` (DeepSeek, SiliconFlow, Qwen) or as
  ``reasoning`` (Groq, OpenRouter, vLLM, Ollama); a delta with both counts it once;
* ``refusal`` pieces (OpenAI) are concatenated like the content;
* tool calls come as fragments: names and arguments are concatenated per call. A fragment
  with an ``index`` belongs to that call. One without (Mistral) starts the next call if it
  has an ``id`` no call has yet, and otherwise continues the newest call. A call keeps the
  first non-empty ``id`` (DashScope sends ``"id": ""`` in later fragments);
* ``usage``: the latest non-null one, from ``usage`` or Groq's ``x_groq.usage``.
  SiliconFlow sends it in every chunk, DeepSeek in the last one, OpenAI's ``include_usage``
  in a last chunk with ``choices: []``;
* ``id``, ``model``, ``created``, ``system_fingerprint``: the first non-empty value;
* ``"error": {...}`` is the provider reporting a failure mid-stream; ``"error": null`` is not;
* every other field (``object``, ``logprobs``, ``obfuscation``, ``matched_stop``, ...) is
  ignored.

Malformed input raises :class:`ChunkError` (a ``ValueError``) with a one-line message,
never anything else, and a chunk that raises changes nothing. ``add`` costs the same for
the millionth chunk as for the first: pieces are kept in lists and joined when read.
It imports nothing from the rest of the kit, so it can be read on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class ChunkError(ValueError):
    """A chunk that cannot be merged: a wrong shape, or an error sent by the provider."""


@dataclass
class ToolCall:
    """One tool call requested by the model."""

    index: int
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""  # argument fragments concatenated (a JSON string when complete)


@dataclass
class ToolCallDelta:
    """What one chunk added to one tool call."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass
class Choice:
    """One complete (or, while streaming, partial) answer."""

    index: int
    role: str | None = None
    content: str = ""
    reasoning_content: str = ""
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)  # ordered by index
    refusal: str = ""

    def to_message(self) -> dict:
        """This answer as a chat message for the history; never with ``reasoning_content``."""
        message: dict = {"role": self.role or "assistant", "content": self.content}
        if self.refusal:
            message["refusal"] = self.refusal
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": c.type, "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


@dataclass
class ChoiceDelta:
    """What one chunk added to one choice (for live display)."""

    index: int
    content: str = ""
    reasoning_content: str = ""
    finish_reason: str | None = None
    refusal: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)


@dataclass
class ChatResult:
    """Everything assembled so far. The properties read the first choice (index 0)."""

    id: str = ""
    model: str = ""
    created: int | None = None
    system_fingerprint: str | None = None
    choices: list[Choice] = field(default_factory=list)  # ordered by index
    usage: dict | None = None  # the latest non-null usage seen

    def _first(self) -> Choice:
        return self.choices[0] if self.choices else Choice(index=0)

    @property
    def content(self) -> str:
        return self._first().content

    @property
    def reasoning_content(self) -> str:
        return self._first().reasoning_content

    @property
    def refusal(self) -> str:
        return self._first().refusal

    @property
    def finish_reason(self) -> str | None:
        return self._first().finish_reason

    @property
    def role(self) -> str | None:
        return self._first().role

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self._first().tool_calls

    def to_message(self) -> dict:
        """The first choice as a chat message (see :meth:`Choice.to_message`)."""
        return self._first().to_message()


# --- the state inside the assembler -----------------------------------------------------


class _Text(list):
    """Text pieces: ``append`` is O(1); ``str(parts)`` joins them, caching what it joined.

    ``text += piece`` would copy the whole text for every piece, so a long answer would get
    slower and slower to merge. A reader may run in another thread while ``append`` goes on:
    the cache is one tuple, replaced in one step.
    """

    __slots__ = ("_joined",)

    def __init__(self) -> None:
        super().__init__()
        self._joined = ("", 0)  # (text of the first n pieces, n)

    def __str__(self) -> str:
        text, count = self._joined
        if len(self) != count:
            new = self[count:]
            text += "".join(new)
            self._joined = (text, count + len(new))
        return text


class _Call:
    __slots__ = ("arguments", "id", "index", "name", "type")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.type = "function"
        self.name = _Text()
        self.arguments = _Text()

    def snapshot(self) -> ToolCall:
        return ToolCall(self.index, self.id, self.type, str(self.name), str(self.arguments))


class _Choice:
    __slots__ = ("calls", "content", "finish_reason", "reasoning", "refusal", "role")

    def __init__(self) -> None:
        self.role: str | None = None
        self.finish_reason: str | None = None
        self.content = _Text()
        self.reasoning = _Text()
        self.refusal = _Text()
        self.calls: list[_Call] = []  # in the order they started

    def call_for(self, index: int | None, call_id: str | None) -> _Call:
        """The call a fragment belongs to (a new one if need be): see the module rules."""
        calls = self.calls
        if index is None:
            if call_id and all(c.id != call_id for c in calls):
                index = max((c.index for c in calls), default=-1) + 1
            elif call_id:
                return next(c for c in calls if c.id == call_id)
            elif calls:
                return calls[-1]
            else:
                index = 0
        for call in calls:
            if call.index == index:
                return call
        call = _Call(index)
        calls.append(call)
        return call


class ChunkAssembler:
    """Merge chunks one at a time; read the answer so far whenever you like.

    ``add`` is cheap; the live readers (``content()``, ``reasoning()``, ...) cost about as
    much as copying the text; ``result()`` builds a full snapshot.
    """

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._created: int | None = None
        self._fingerprint: str | None = None
        self._usage: dict | None = None  # the provider's own dict: copied when read
        self._choices: dict[int, _Choice] = {}
        self._count = 0

    @property
    def chunk_count(self) -> int:
        """How many chunks were merged (a rejected chunk does not count)."""
        return self._count

    def add(self, chunk: dict) -> list[ChoiceDelta]:
        """Merge one chunk; return what it added per choice, skipping choices it added
        nothing to. A chunk that raises changes nothing."""
        usage, news = _read_chunk(chunk)  # everything is checked before anything changes
        self._count += 1
        if usage is not None:
            self._usage = usage
        if not self._id:
            self._id = chunk.get("id") or ""
        if not self._model:
            self._model = chunk.get("model") or ""
        if not self._created and chunk.get("created") is not None:
            self._created = chunk["created"]  # Azure's first chunk says "created": 0
        if not self._fingerprint:
            self._fingerprint = chunk.get("system_fingerprint") or None
        shown = []
        for index, role, content, reasoning, refusal, finish_reason, fragments in news:
            choice = self._choices.get(index)
            if choice is None:
                choice = self._choices[index] = _Choice()
            if role and not choice.role:
                choice.role = role
            if finish_reason:
                choice.finish_reason = finish_reason
            if content:
                choice.content.append(content)
            if reasoning:
                choice.reasoning.append(reasoning)
            if refusal:
                choice.refusal.append(refusal)
            calls = [_merge_fragment(choice, *fragment) for fragment in fragments]
            if content or reasoning or refusal or finish_reason or calls:
                shown.append(ChoiceDelta(index, content, reasoning, finish_reason, refusal, calls))
        return shown

    # --- cheap live readers (no deep copy) ----------------------------------------------

    def content(self, index: int = 0) -> str:
        choice = self._choices.get(index)
        return str(choice.content) if choice else ""

    def reasoning(self, index: int = 0) -> str:
        choice = self._choices.get(index)
        return str(choice.reasoning) if choice else ""

    def refusal(self, index: int = 0) -> str:
        choice = self._choices.get(index)
        return str(choice.refusal) if choice else ""

    def tool_calls(self, index: int = 0) -> list[ToolCall]:
        choice = self._choices.get(index)
        return _sorted_calls(choice) if choice else []

    def finish_reason(self, index: int = 0) -> str | None:
        choice = self._choices.get(index)
        return choice.finish_reason if choice else None

    @property
    def usage(self) -> dict | None:
        """A copy of the latest usage (changing it does not affect the assembler)."""
        return _copy_json(self._usage)

    def result(self) -> ChatResult:
        """A copy of everything assembled so far; changing it does not affect the assembler."""
        choices = [
            Choice(
                index=i,
                role=c.role,
                content=str(c.content),
                reasoning_content=str(c.reasoning),
                finish_reason=c.finish_reason,
                tool_calls=_sorted_calls(c),
                refusal=str(c.refusal),
            )
            for i, c in sorted(self._choices.items())
        ]
        return ChatResult(
            self._id, self._model, self._created, self._fingerprint, choices, self.usage
        )


def _merge_fragment(
    choice: _Choice,
    index: int | None,
    call_id: str | None,
    kind: str | None,
    name: str | None,
    arguments: str | None,
) -> ToolCallDelta:
    call = choice.call_for(index, call_id)
    if call_id and not call.id:
        call.id = call_id
    if kind:
        call.type = kind
    if name:
        call.name.append(name)
    if arguments:
        call.arguments.append(arguments)
    return ToolCallDelta(call.index, call_id or None, name or "", arguments or "")


def _sorted_calls(choice: _Choice) -> list[ToolCall]:
    return sorted((c.snapshot() for c in choice.calls), key=lambda c: c.index)


def _copy_json(value: Any) -> Any:
    """A deep copy of dicts and lists, without recursion (so any depth is fine)."""
    if not isinstance(value, dict | list):
        return value
    top = type(value)()
    stack = [(value, top)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                item_copy = type(item)()
                stack.append((item, item_copy))
                item = item_copy
            if isinstance(target, dict):
                target[key] = item
            else:
                target.append(item)
    return top


def assemble(chunks: Iterable[dict]) -> ChatResult:
    """Merge a whole stream of chunks (without the ``[DONE]`` marker) into one result."""
    assembler = ChunkAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.result()


def completion_to_chunk(body: dict) -> dict:
    """A non-streaming ``chat.completion`` body as ONE ``chat.completion.chunk``.

    Each choice's ``message`` becomes its ``delta`` with every field kept (content,
    reasoning, refusal, tool calls, ...); a complete tool call has no ``index``, a streamed
    fragment does, so each gets its list position. The body itself is not changed.
    """
    if not isinstance(body, dict):
        raise _wrong("completion", "an object (dict)", body)
    if not isinstance(body.get("choices"), list | None):
        raise _wrong("completion.choices", "list", body.get("choices"))
    choices = []
    for i, choice in enumerate(body.get("choices") or []):
        if not isinstance(choice, dict):
            raise _wrong(f"choices[{i}]", "an object (dict)", choice)
        if not isinstance(choice.get("message"), dict | None):
            raise _wrong(f"choices[{i}].message", "dict", choice.get("message"))
        message = dict(choice.get("message") or {})
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [
                {**call, "index": j} if isinstance(call, dict) else call
                for j, call in enumerate(message["tool_calls"])
            ]
        entry = {key: value for key, value in choice.items() if key != "message"}
        index = choice.get("index")
        choices.append({**entry, "index": i if index is None else index, "delta": message})
    return {**body, "object": "chat.completion.chunk", "choices": choices}


def from_completion(body: dict) -> ChatResult:
    """A non-streaming ``chat.completion`` body as the same :class:`ChatResult` a stream gives."""
    return assemble([completion_to_chunk(body)])


# --- checking the shape of a chunk ----------------------------------------------------
# Everything is read and checked first, into plain tuples, so that a chunk that raises
# changes nothing. Null is always allowed; a bool is never a number. The place named in an
# error message is spelled out only when there is an error.

# Types a field may have; the fast checks below look the value's exact type up in a set
# (a bool is not an int there), and only when that fails does the slow check run, which
# accepts subclasses (a StrEnum role, say) and names the place in its error message.
_STR = frozenset({str, type(None)})
_INT = frozenset({int, type(None)})

# (index, role, content, reasoning, refusal, finish_reason, fragments)
_News = tuple[int, Any, str, str, str, Any, list[tuple[Any, ...]]]


def _read_chunk(chunk: Any) -> tuple[dict | None, list[_News]]:
    """The usage and what each choice of ``chunk`` brings, or ChunkError."""
    if not isinstance(chunk, dict):
        raise _wrong("chunk", "an object (dict)", chunk)
    get = chunk.get
    if get("error") is not None:  # e.g. {"error": {"message": "rate limit reached"}}
        raise _provider_error(get("error"))
    if not (
        type(get("id")) in _STR
        and type(get("model")) in _STR
        and type(get("created")) in _INT
        and type(get("system_fingerprint")) in _STR
    ):
        _check_fields(chunk, "chunk", ("id", "model", "system_fingerprint"), ("created",))
    usage = get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _wrong("chunk.usage", "dict", usage)
    if usage is None and isinstance(get("x_groq"), dict):
        usage = get("x_groq").get("usage")  # Groq's usage, in the last chunk
        if usage is not None and not isinstance(usage, dict):
            raise _wrong("chunk.x_groq.usage", "dict", usage)
    choices = get("choices")
    if not choices:
        if choices is not None and not isinstance(choices, list):
            raise _wrong("chunk.choices", "list", choices)
        return usage, []  # e.g. the usage-only last chunk
    if not isinstance(choices, list):
        raise _wrong("chunk.choices", "list", choices)
    return usage, [_read_choice(raw, i) for i, raw in enumerate(choices)]


def _read_choice(raw: Any, i: int) -> _News:
    if not isinstance(raw, dict):
        raise _wrong(f"choices[{i}]", "an object (dict)", raw)
    index = raw.get("index")
    if type(index) is not int or index < 0:
        _check_index(index, f"choices[{i}]")
    finish_reason = raw.get("finish_reason")
    if type(finish_reason) not in _STR:
        _check_fields(raw, f"choices[{i}]", ("finish_reason",))
    delta = raw.get("delta")
    if not isinstance(delta, dict):
        if delta is not None:
            raise _wrong(f"choices[{i}].delta", "dict", delta)
        return index, None, "", "", "", finish_reason, []
    get = delta.get
    role, content, reasoning = get("role"), get("content"), get("reasoning_content")
    refusal, fragments = get("refusal"), get("tool_calls")
    if not (type(role) in _STR and type(reasoning) in _STR and type(refusal) in _STR):
        _check_fields(delta, f"choices[{i}].delta", ("role", "reasoning_content", "refusal"))
    if not reasoning:
        reasoning = get("reasoning")  # Groq, OpenRouter, vLLM, Ollama
        if type(reasoning) not in _STR:
            _check_fields(delta, f"choices[{i}].delta", ("reasoning",))
    if type(content) is not str:
        content, thinking = _content_parts(content, i)
        reasoning = (reasoning or "") + thinking
    if fragments:
        if not isinstance(fragments, list):
            raise _wrong(f"choices[{i}].delta.tool_calls", "list", fragments)
        fragments = [_read_fragment(f, i, j) for j, f in enumerate(fragments)]
    elif fragments is not None and not isinstance(fragments, list):
        raise _wrong(f"choices[{i}].delta.tool_calls", "list", fragments)
    else:
        fragments = []
    return index, role, content or "", reasoning or "", refusal or "", finish_reason, fragments


def _content_parts(content: Any, i: int) -> tuple[str, str]:
    """(answer text, thinking text) of a ``content`` that is not exactly a str."""
    if content is None or isinstance(content, str):
        return content or "", ""
    where = f"choices[{i}].delta.content"
    if not isinstance(content, list):
        raise _wrong(where, "str or a list of parts", content)
    text, thinking = [], []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _wrong(f"{where}[{j}]", "an object (dict)", part)
        if part.get("type") == "text":
            text.append(_text_of(part, f"{where}[{j}]"))
        elif part.get("type") == "thinking":  # Mistral: a list of text parts, or a string
            inner = part.get("thinking")
            if isinstance(inner, list):
                for k, inner_part in enumerate(inner):
                    if not isinstance(inner_part, dict):
                        raise _wrong(f"{where}[{j}].thinking[{k}]", "an object (dict)", inner_part)
                    if inner_part.get("type") == "text":
                        thinking.append(_text_of(inner_part, f"{where}[{j}].thinking[{k}]"))
            elif inner is not None and not isinstance(inner, str):
                raise _wrong(f"{where}[{j}].thinking", "str or a list of parts", inner)
            else:
                thinking.append(inner or "")
        # any other part type is ignored
    return "".join(text), "".join(thinking)


def _text_of(part: dict, where: str) -> str:
    text = part.get("text")
    if text is not None and not isinstance(text, str):
        raise _wrong(where + ".text", "str", text)
    return text or ""


def _read_fragment(fragment: Any, i: int, j: int) -> tuple[Any, ...]:
    if not isinstance(fragment, dict):
        raise _wrong(_at(i, j), "an object (dict)", fragment)
    index, call_id, kind = fragment.get("index"), fragment.get("id"), fragment.get("type")
    function = fragment.get("function")
    if index is not None and (type(index) is not int or index < 0):
        _check_index(index, _at(i, j))
    if function is None:
        function = {}
    elif not isinstance(function, dict):
        raise _wrong(_at(i, j) + ".function", "dict", function)
    name, arguments = function.get("name"), function.get("arguments")
    if not (type(call_id) in _STR and type(kind) in _STR):
        _check_fields(fragment, _at(i, j), ("id", "type"))
    if not (type(name) in _STR and type(arguments) in _STR):
        _check_fields(function, _at(i, j) + ".function", ("name", "arguments"))
    return index, call_id, kind, name, arguments


def _at(i: int, j: int) -> str:
    return f"choices[{i}].delta.tool_calls[{j}]"


def _wrong(where: str, expected: str, value: Any) -> ChunkError:
    return ChunkError(f"{where} must be {expected}, got {_type_name(value)}")


def _check_fields(
    obj: dict, where: str, strings: tuple[str, ...], integers: tuple[str, ...] = ()
) -> None:
    """Raise ChunkError naming the first of these fields that is not null or of its type."""
    for names, kind in ((strings, str), (integers, int)):
        for name in names:
            value = obj.get(name)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise _wrong(f"{where}.{name}", kind.__name__, value)


def _check_index(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ChunkError(f"{where}.index must be a non-negative integer")


def _provider_error(error: Any) -> ChunkError:
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        message = f"{_type_name(error)} without a message"
    return ChunkError("the provider sent an error: " + " ".join(message.split())[:300])


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__
