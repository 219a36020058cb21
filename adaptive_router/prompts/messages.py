"""LangChain inputs and messages as prompt text, on langchain-core's own converters.

`prompt_text` turns anything a chat model accepts (a string, a ``PromptValue``, messages, message-like
tuples or dicts) into the string `adaptive_router.prompts.render_prompt` gives for the same turns, so a
query routed live renders exactly as its recorded outcome does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages, convert_to_openai_messages
from langchain_core.prompt_values import PromptValue

from adaptive_router.prompts.text import render_prompt

__all__ = ["as_messages", "message_text", "prompt_text"]


def as_messages(value: Any) -> list[BaseMessage]:
    """Any chat-model input as a list of messages (a string is one human message).

    Examples
    --------
    >>> [m.type for m in as_messages([("system", "Be brief."), ("user", "hi")])]
    ['system', 'human']
    """
    if isinstance(value, PromptValue):
        return value.to_messages()
    if isinstance(value, str):
        return convert_to_messages([("user", value)])
    if isinstance(value, BaseMessage):
        return [value]
    if isinstance(value, Sequence):
        return convert_to_messages(value)
    raise TypeError(
        f"cannot read {type(value).__name__} as chat messages; pass a string, a PromptValue or messages"
    )


def message_text(message: BaseMessage) -> str:
    """The plain text of a message (its text blocks joined; tool calls and images carry no text).

    Examples
    --------
    >>> from langchain_core.messages import AIMessage
    >>> message_text(AIMessage(content=[{"type": "text", "text": "4"}]))
    '4'
    """
    return message.text


def prompt_text(value: Any) -> str:
    """Any chat-model input rendered as one string, the way recorded prompts render.

    Examples
    --------
    >>> prompt_text("2 + 2 =")
    '2 + 2 ='
    >>> prompt_text([("system", "Be brief."), ("human", "2 + 2 =")])
    'system: Be brief.\\nuser: 2 + 2 ='
    """
    if isinstance(value, str):
        return value
    dicts = convert_to_openai_messages(as_messages(value), text_format="string")
    return render_prompt([{"role": d.get("role", ""), "content": d.get("content", "")} for d in dicts])
