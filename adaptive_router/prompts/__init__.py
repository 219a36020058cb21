"""One home for prompts: rendering to text, joining a draft to a query, LangChain messages as text.

``adaptive_router.prompts.text`` is the standard library only (the outcome format and the probe use it);
``adaptive_router.prompts.messages`` reads LangChain inputs with langchain-core's converters and loads lazily.
"""

from __future__ import annotations

from adaptive_router._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DRAFT_MARKER": "adaptive_router.prompts.text",
    "Prompt": "adaptive_router.prompts.text",
    "has_draft": "adaptive_router.prompts.text",
    "join_draft": "adaptive_router.prompts.text",
    "render_prompt": "adaptive_router.prompts.text",
    "split_draft": "adaptive_router.prompts.text",
    "turns": "adaptive_router.prompts.text",
    "as_messages": "adaptive_router.prompts.messages",
    "message_text": "adaptive_router.prompts.messages",
    "prompt_text": "adaptive_router.prompts.messages",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
