"""Prompts as plain data (standard library only): rendering to one string, and a draft joined to a query.

A prompt is a string or a sequence of chat turns, each a ``(role, content)`` pair or a ``{"role", "content"}``
mapping (the outcome format's and OpenAI's shape). Every place that needs a prompt as one string (the
probe's features, outcome texts, reranker and verifier look-ups, completion endpoints) renders it here, so
the same query is the same text everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DRAFT_MARKER", "Prompt", "has_draft", "join_draft", "render_prompt", "split_draft", "turns"]

Prompt = str | Sequence[tuple[str, str]] | Sequence[Mapping[str, Any]]
"""A plain string, or chat turns as ``(role, content)`` pairs or ``{"role", "content"}`` mappings."""

DRAFT_MARKER = "\n\n<<draft answer>>\n"
"""Separates the query from a cheap model's draft in the text a cascade probe reads."""

_USER_ROLES = ("user", "human")


def turns(prompt: Sequence[tuple[str, str]] | Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Chat turns as ``(role, content)`` string pairs.

    Examples
    --------
    >>> turns([{"role": "user", "content": "2 + 2 ="}])
    (('user', '2 + 2 ='),)
    """
    out = []
    for turn in prompt:
        if isinstance(turn, Mapping):
            out.append((str(turn.get("role", "")), _content_text(turn.get("content", ""))))
        else:
            role, content = turn
            out.append((str(role), _content_text(content)))
    return tuple(out)


def _content_text(content: Any) -> str:
    """Text of a message content: a string, or a list of text blocks (other blocks are dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, Mapping) and part.get("type", "text") == "text")
        )
    return "" if content is None else str(content)


def render_prompt(prompt: Prompt) -> str:
    """Render a prompt as one string: a string as is, one user turn as its text, else ``role: content`` lines.

    Examples
    --------
    >>> render_prompt("2 + 2 =")
    '2 + 2 ='
    >>> render_prompt([{"role": "user", "content": "2 + 2 ="}])
    '2 + 2 ='
    >>> render_prompt((("system", "Be brief."), ("user", "2 + 2 =")))
    'system: Be brief.\\nuser: 2 + 2 ='
    """
    if isinstance(prompt, str):
        return prompt
    pairs = turns(prompt)
    if len(pairs) == 1 and pairs[0][0] in _USER_ROLES:
        return pairs[0][1]
    return "\n".join(f"{role}: {content}" for role, content in pairs)


def join_draft(query: str, draft: str) -> str:
    """The text a cascade probe reads: the query, `DRAFT_MARKER`, then the draft answer.

    Examples
    --------
    >>> split_draft(join_draft("What is 3 + 4?", "7"))
    ('What is 3 + 4?', '7')
    """
    return f"{query}{DRAFT_MARKER}{draft}"


def split_draft(text: str) -> tuple[str, str | None]:
    """Undo `join_draft`: ``(query, draft)``, or ``(text, None)`` when the text holds no draft.

    Examples
    --------
    >>> split_draft("no draft here")
    ('no draft here', None)
    """
    query, marker, draft = text.rpartition(DRAFT_MARKER)
    return (query, draft) if marker else (text, None)


def has_draft(text: str) -> bool:
    """Whether ``text`` carries a draft answer (was written by `join_draft`).

    Examples
    --------
    >>> has_draft(join_draft("What is 3 + 4?", "7")), has_draft("What is 3 + 4?")
    (True, False)
    """
    return DRAFT_MARKER in text
