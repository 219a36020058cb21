"""Fixtures shared by the application tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adaptive_router.prompts import join_draft


@pytest.fixture
def write_drafted() -> Callable[[Path, Sequence[dict[str, Any]], str], None]:
    """``write(path, objs, draft)``: outcome records as JSONL, each prompt carrying ``draft``, so that the
    cheapest probe (the draft's answer signals, no model: ``train --featurizer none --answer-signals``)
    can train on them."""

    def write(path: Path, objs: Sequence[dict[str, Any]], draft: str) -> None:
        lines = (json.dumps({**o, "prompt": join_draft(o["prompt"], draft)}) + "\n" for o in objs)
        path.write_text("".join(lines), encoding="utf-8")

    return write
