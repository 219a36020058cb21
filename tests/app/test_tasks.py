"""Tests for adaptive_router.app.tasks: dataset generation and verifiers."""

from __future__ import annotations

import json

import pytest

from adaptive_router.app.tasks import Task, arithmetic_tasks, first_line, load_dataset, read_tasks, score
from adaptive_router.errors import ConfigError


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


def test_task_metadata_must_be_a_json_object():
    with pytest.raises(ConfigError, match=r"task 'a': metadata must be a JSON object, got a list"):
        Task(id="a", prompt="p", answer="1", metadata=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"task 'a': prompt, answer and metadata must be JSON"):
        Task(id="a", prompt="p", answer="1", metadata={"when": object()})


def test_read_tasks_rejects_bad_lines_with_their_number(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"id": "a", "prompt": "1 + 1 =", "answer": "2"})
    cases = {
        json.dumps({"id": "b", "prompt": "p", "answer": "1", "metadata": [1]}): r"line 2: 'metadata' must be",
        json.dumps({"id": "b", "prompt": "p", "answer": "1", "metadata": {"rg_metadata": 3}}): r"rg_metadata",
        json.dumps({"id": "b", "prompt": 5, "answer": "1"}): r"line 2: 'prompt' must be a string or a list",
        json.dumps({"id": "a", "prompt": "p", "answer": "1"}): r"task id 'a' appears more than once",
        json.dumps(
            {"id": "b", "prompt": "p", "answer": "1", "verifier": "reasoning_gym:"}
        ): r"unknown verifier",
    }
    for line, message in cases.items():
        path.write_text(good + "\n" + line + "\n")
        with pytest.raises(ConfigError, match=message):
            read_tasks(path)
    path.write_bytes(good.encode() + b"\n" + b'{"id": "b", "prompt": "\xff", "answer": "1"}\n')
    with pytest.raises(
        ConfigError, match=r"line 2: not UTF-8 \(byte 0xff at column 24\); save the file as UTF-8"
    ):
        read_tasks(path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("arith:0", r"N \(the number of tasks\) must be >= 1, got 0"),
        ("arith:-2:1", r"N \(the number of tasks\) must be >= 1, got -2"),
        ("arith:4:x", r"SEED must be an integer, got 'x'"),
        ("rg:basic_arithmetic:0", r"N \(the number of tasks\) must be >= 1, got 0"),
        ("rg::3", r"use arith:N\[:SEED\] or rg:NAME:N\[:SEED\]"),
        ("arith:1:2:3", r"use arith:N\[:SEED\] or rg:NAME:N\[:SEED\]"),
    ],
)
def test_dataset_spec_errors_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset(spec)


def test_unknown_reasoning_gym_dataset_is_named():
    pytest.importorskip("reasoning_gym")
    with pytest.raises(ConfigError, match=r"unknown reasoning-gym dataset 'nope'"):
        load_dataset("rg:nope:3")


def test_multi_line_reasoning_gym_answers_are_scored_whole():
    pytest.importorskip("reasoning_gym")
    (task,) = load_dataset("rg:n_queens:1:0")
    assert "\n" in task.answer
    assert task.score_many([task.answer, task.answer.splitlines()[0]]) == [1.0, 0.0]
