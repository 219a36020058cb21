"""Tests for adaptive_router.app.verifiers.checks: which verifiers run where, and what they score."""

from __future__ import annotations

import pytest

from adaptive_router.app.verifiers import (
    STRING_COMPARE_DATASETS,
    VERIFIERS,
    Sandbox,
    check_verifiers,
    checks,
    runs_in_sandbox,
    score,
    score_many,
)
from adaptive_router.errors import ConfigError


def test_string_verifiers_run_in_process_and_executing_ones_in_the_sandbox():
    assert sorted(VERIFIERS) == ["contains", "first_line", "math", "python_tests"]
    assert not runs_in_sandbox("first_line") and not runs_in_sandbox("contains")
    assert runs_in_sandbox("math") and runs_in_sandbox("python_tests")
    with pytest.raises(ConfigError, match=r"unknown verifier 'nope'; choose one of"):
        runs_in_sandbox("nope")
    with pytest.raises(ConfigError, match=r"has no verifier \(verifier 'none'\)"):
        score("none", "x", "y")


def test_the_allow_list_holds_only_base_string_compare_scorers_and_everything_else_is_sandboxed():
    pytest.importorskip("reasoning_gym")
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    assert set(DATASETS) >= STRING_COMPARE_DATASETS
    for name, (cls, _) in DATASETS.items():
        base = cls.score_answer is ProceduralDataset.score_answer
        assert runs_in_sandbox(f"reasoning_gym:{name}") == (not (base and name in STRING_COMPARE_DATASETS)), (
            name
        )
    for name in ("spiral_matrix", "n_queens", "bitwise_arithmetic", "codeio", "countdown", "puzzle24"):
        assert runs_in_sandbox(f"reasoning_gym:{name}")


def test_a_listed_dataset_whose_scorer_changed_is_sandboxed(monkeypatch):
    pytest.importorskip("reasoning_gym")
    from reasoning_gym.factory import DATASETS

    cls, _ = DATASETS["basic_arithmetic"]
    checks._string_scorer.cache_clear()
    monkeypatch.setattr(cls, "score_answer", lambda self, answer, entry: float(eval(answer)))
    try:
        assert runs_in_sandbox("reasoning_gym:basic_arithmetic")
    finally:
        checks._string_scorer.cache_clear()


def test_python_tests_builds_humaneval_programs():
    meta = {"entry_point": "inc"}
    prompt = "def inc(x):\n"
    tests = "def check(candidate):\n    assert candidate(1) == 2\n"
    completion = checks._program("    return x + 1\n", tests, meta, prompt)
    assert completion.startswith(prompt) and completion.rstrip().endswith("check(inc)")
    fenced = checks._program(
        "Sure:\n```python\ndef inc(x):\n    return x + 1\n```\nDone.", tests, meta, prompt
    )
    assert fenced.startswith("def inc(x):\n    return x + 1\n") and "Sure" not in fenced
    plain = checks._program("x = 1\n", "assert x == 1", {}, None)
    assert plain == "x = 1\n\n\nassert x == 1\n"
    with pytest.raises(ConfigError, match=r"'entry_point' must be a function name, got 'a; b'"):
        checks._program("", "", {"entry_point": "a; b"}, None)


@pytest.mark.parametrize(
    ("value", "reward"), [(1.0, 1.0), (0.25, 0.25), (7, 0.0), (-1, 0.0), ("1", 0.0), (True, 0.0)]
)
def test_a_sandboxed_value_outside_zero_one_is_no_reward(value, reward):
    assert checks._reward(value) == reward


def test_score_many_scores_each_reply_in_order():
    code = ["def f():\n    return 1\n", "def f():\n    return 2\n", "raise SystemExit(0)\n", "def f(:\n"]
    assert score_many("python_tests", code, "assert f() == 1") == [1.0, 0.0, 0.0, 0.0]
    assert score_many("first_line", [" 1,000\nx", "999"], "1000") == [1.0, 0.0]
    assert score_many("contains", [], "x") == []


def test_check_verifiers_names_the_fix_before_anything_runs(monkeypatch):
    pytest.importorskip("reasoning_gym")
    with pytest.raises(
        ConfigError, match=r"unknown reasoning-gym dataset 'nope' in verifier 'reasoning_gym:nope'"
    ):
        check_verifiers(["reasoning_gym:nope"])
    real = checks.importlib.util.find_spec
    monkeypatch.setattr(
        checks.importlib.util, "find_spec", lambda name, *a: None if name == "math_verify" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs math-verify: pip install 'adaptive-router\[tasks\]'"):
        check_verifiers(["math"], sandbox=Sandbox())
