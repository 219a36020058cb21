"""Tests for adaptive_router.app.tasks: dataset generation and verifiers."""

from __future__ import annotations

import json

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.app.tasks import arithmetic_tasks, first_line, load_dataset, read_tasks, score


def test_arithmetic_tasks_are_graded_seeded_and_correct():
    tasks = arithmetic_tasks(50, seed=3)
    assert tasks == arithmetic_tasks(50, seed=3)
    assert tasks != arithmetic_tasks(50, seed=4)
    assert len({t.id for t in tasks}) == 50
    tiers = {t.metadata["tier"] for t in tasks}
    assert tiers == {"1x1", "1x2", "2x2", "2x3", "3x3"}
    for t in tasks:
        last = t.prompt.splitlines()[-1]
        a, op, b, eq = last.split()
        assert eq == "="
        assert int(t.answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert t.score(f" {t.answer}\n9 + 9 = 18") == 1.0
        assert t.score(f" {int(t.answer) + 1}") == 0.0
    assert tasks[0].prompt.startswith("3 + 4 = 7\n")


def test_verifiers():
    assert first_line("\n\n  12 \nmore") == "12"
    assert score("first_line", "1,000", "1000") == 1.0
    assert score("first_line", "abc", "abc") == 1.0
    assert score("contains", "the answer is 42.", "42") == 1.0
    assert score("math", "$\\frac{1}{2}$", "0.5") == 1.0
    with pytest.raises(ConfigError, match="unknown verifier 'nope'"):
        score("nope", "1", "1")


def test_reasoning_gym_scorer():
    pytest.importorskip("reasoning_gym")
    (task,) = load_dataset("rg:basic_arithmetic:1:1")
    assert task.verifier == "reasoning_gym:basic_arithmetic"
    assert task.score(task.answer) == 1.0
    assert task.score("zzz") == 0.0


def test_read_tasks_and_specs(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "1 + 1 =", "answer": "2"}) + "\n\n")
    (t,) = read_tasks(path)
    assert t.verifier == "first_line" and t.score(" 2") == 1.0
    assert len(load_dataset("arith:7")) == 7
    path.write_text(json.dumps({"id": "a", "prompt": "p"}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: expected"):
        read_tasks(path)
    path.write_text(json.dumps({"id": "a", "prompt": "p", "answer": "1", "verifier": "zzz"}) + "\n")
    with pytest.raises(ConfigError, match="unknown verifier 'zzz'"):
        read_tasks(path)
    with pytest.raises(ConfigError, match="bad dataset spec 'arith:x'"):
        load_dataset("arith:x")
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.jsonl"))
