"""Tests for adaptive_router.prompts.text: one rendering for every prompt shape."""

from __future__ import annotations

import pytest

from adaptive_router.prompts.text import DRAFT_MARKER, join_draft, render_prompt, split_draft, turns


def test_pairs_and_dicts_render_the_same():
    pairs = (("system", "Be brief."), ("user", "2 + 2 ="))
    dicts = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2 + 2 ="}]
    assert render_prompt(pairs) == render_prompt(dicts) == "system: Be brief.\nuser: 2 + 2 ="


@pytest.mark.parametrize("role", ["user", "human"])
def test_one_user_turn_is_its_text(role):
    assert render_prompt([{"role": role, "content": "hi"}]) == "hi"


def test_one_system_turn_keeps_its_role():
    assert render_prompt([("system", "hi")]) == "system: hi"


def test_content_blocks_keep_text_only():
    content = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, "b"]
    assert turns([{"role": "user", "content": content}]) == (("user", "ab"),)


def test_draft_round_trip_uses_the_last_marker():
    text = join_draft(f"q{DRAFT_MARKER}inner", "d")
    assert split_draft(text) == (f"q{DRAFT_MARKER}inner", "d")
