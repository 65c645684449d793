"""What the local practice server says: deterministic, scripted replies cut into tokens.

No model runs here. A reply is chosen by simple rules from the conversation, so every run of
a lesson gets exactly the same text -- which is what makes the stored notebook outputs
checkable.
"""

from __future__ import annotations

import re

from ..seed import PIECES as SEED_PIECES  # the seed's reply to "你好", token for token
from ..seed import PROMPT as SEED_PROMPT

_TOKEN = re.compile(r"[\u3400-\u9fff]{1,2}|[A-Za-z0-9_'.-]+ ?|\s+|.", re.S)

_TOPICS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("流式", "stream", "sse", "逐字"),
        "流式输出（streaming）就是服务器一边生成一边发送：每生成几个字，就用 Server-Sent Events "
        "发来一个 data: 事件，里面是一个 chat.completion.chunk，它的 delta 只包含新增的文字。"
        "客户端把这些 delta 按顺序拼起来，就得到了完整的回答，最后收到 data: [DONE] 表示结束。",
    ),
    (
        ("token", "令牌", "词元"),
        "token（词元）是模型读写文字的基本单位：一个常见的英文单词大约是一个 token，"
        "一个汉字通常是一到两个 token。计费和长度限制（max_tokens、上下文长度）都按 token 计算，"
        "返回结果里的 usage 字段会告诉你这次用了多少。",
    ),
    (
        ("密钥", "api key", "apikey", ".env"),
        "API Key 就像密码：把它写在 .env 文件里，用 python-dotenv 读取，"
        "并确认 .gitignore 里有 .env，这样它就不会被提交到 Git。万一提交了，"
        "先在服务商后台作废这个密钥，再用 git rm --cached .env 把文件移出版本库。",
    ),
    (
        ("http", "请求", "request"),
        "一次对话请求就是一个 HTTP POST：网址是 base_url 加上 /chat/completions，"
        "请求头里用 Authorization: Bearer 带上密钥，请求体是 JSON，里面有 model 和 messages。"
        "服务器返回状态码 200 和一个 JSON；出错时返回 4xx 或 5xx 和一个 error 对象。",
    ),
)

_PREVIOUS = ("刚才", "上一个问题", "之前问", "previous question")


def tokenize(text: str) -> list[str]:
    """Cut text into token-sized pieces: one or two CJK characters, an English word, a symbol."""
    return _TOKEN.findall(text)


def _user_texts(messages: list[dict]) -> list[str]:
    return [_as_text(m.get("content")) for m in messages if m.get("role") == "user"]


def _as_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(messages: list[dict]) -> int:
    """A stable stand-in for the provider's prompt token count (30 for the seed's "你好")."""
    return 25 + sum(4 + len(tokenize(_as_text(m.get("content")))) for m in messages)


def reply_pieces(messages: list[dict]) -> list[str]:
    """The answer to the last user message, already cut into the pieces to stream."""
    users = _user_texts(messages)
    question = users[-1].strip() if users else ""
    lowered = question.lower()
    if question.rstrip("!！。.~ ") in (SEED_PROMPT, "hello", "hi", "Hello", "Hi"):
        return list(SEED_PIECES)
    if any(word in lowered for word in _PREVIOUS):
        if len(users) >= 2:
            return tokenize(f"你刚才问的是：「{users[-2].strip()}」。")
        return tokenize("这是我们对话的第一句，你之前还没有问过问题。")
    for words, answer in _TOPICS:
        if any(word in lowered for word in words):
            return tokenize(answer)
    shown = question if len(question) <= 40 else question[:40] + "…"
    return tokenize(
        f"你问的是：「{shown}」。我是课程自带的本地练习服务器，不是真正的大模型："
        "我按固定规则作答，所以每次运行结果都一样，方便核对。"
        f"这是本次对话的第 {len(users)} 轮。在 .env 里配置 LLM_API_KEY 之后，"
        "同样的代码就会得到真实模型的回答。"
    )


def reasoning_pieces(messages: list[dict]) -> list[str]:
    """The 'thinking' a reasoning model streams before its answer."""
    users = _user_texts(messages)
    question = users[-1].strip() if users else ""
    shown = question if len(question) <= 20 else question[:20] + "…"
    return tokenize(
        f"嗯，用户问的是「{shown}」。我先想想该怎么回答：要简短、准确，最好再给一个例子。"
    )
