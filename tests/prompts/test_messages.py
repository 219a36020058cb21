"""Tests for adaptive_router.prompts.messages: live inputs render as recorded prompts do."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate

from adaptive_router.outcomes import OutcomeRecord
from adaptive_router.prompts.messages import as_messages, message_text, prompt_text


def test_live_messages_render_as_the_recorded_prompt():
    record = OutcomeRecord.from_json(
        {
            "id": "q",
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2 ="}],
            "outcomes": {"m": [{"reward": 1.0}]},
        }
    )
    live = [SystemMessage("Be brief."), HumanMessage("2 + 2 =")]
    assert prompt_text(live) == record.text


def test_prompt_values_and_tuples():
    value = ChatPromptTemplate.from_messages([("system", "S"), ("human", "{q}")]).invoke({"q": "Q"})
    assert prompt_text(value) == prompt_text([("system", "S"), ("user", "Q")]) == "system: S\nuser: Q"


def test_assistant_turns_render_as_assistant():
    assert prompt_text([HumanMessage("a"), AIMessage("b"), HumanMessage("c")]) == (
        "user: a\nassistant: b\nuser: c"
    )


def test_message_text_joins_text_blocks():
    blocks = [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]
    assert message_text(AIMessage(content=blocks)) == "xy"


def test_as_messages_rejects_other_types():
    with pytest.raises(TypeError, match="cannot read int as chat messages"):
        as_messages(3)
