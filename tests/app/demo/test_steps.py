"""Tests for adaptive_router.app.demo.steps: the live step with a fake backend (no model, no server)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from rich.console import Console

from adaptive_router.app.demo.config import DemoConfig
from adaptive_router.app.demo.steps import DemoRun
from adaptive_router.app.labeling import Sample
from adaptive_router.app.tasks import arithmetic_tasks


def _backend(tasks):
    """Each prompt's stream: ' x', ' x', then its right answer, repeating: the verifier finds the third
    sample, a vote of three picks the wrong ' x'."""
    answers = {t.prompt: t.answer for t in tasks}
    seen: dict[str, int] = {}

    def reply(prompt):
        seen[prompt] = seen.get(prompt, 0) + 1
        return Sample(text=f" {answers[prompt]}" if seen[prompt] % 3 == 0 else " x")

    return reply


def test_live_step_runs_rounds_with_the_verifier_and_with_votes(tmp_path, table_probe):
    tasks = arithmetic_tasks(12, seed=3)
    cfg = DemoConfig(
        n_train=20, n_test=12, samples=4, max_k=4, budgets=(1.0, 3.0), verify_n=2, out_dir=str(tmp_path)
    )
    with open(os.devnull, "w") as sink:
        run = DemoRun(cfg, console=Console(file=sink))
        probe = table_probe(by_length=lambda n: 0.3, procedures=("gemma",), max_k=4)
        rows = run.live_best_of_k(_backend(tasks), tasks, np.full(len(tasks), 0.3), probe)
    assert set(rows) == {"1.0", "3.0"}
    for b, row in rows.items():
        assert list(row) == ["uniform", "adaptive", "rounds", "vote", "rounds_vote"]
        for res in row.values():
            assert res["calls_per_query"] <= float(b) + 1e-9
        assert row["vote"]["expected_quality"] is None and row["rounds_vote"]["expected_quality"] is None
        assert row["uniform"]["expected_quality"] == pytest.approx(1 - 0.7 ** float(b))
    one, three = rows["1.0"], rows["3.0"]
    assert {m: r["quality"] for m, r in one.items()} == dict.fromkeys(one, 0.0)  # one ' x' each
    # three samples: the verifier finds the right one, the vote of ' x', ' x', right picks ' x'
    assert three["uniform"]["quality"] == 1.0 and three["vote"]["quality"] == 0.0
    assert three["rounds"]["quality"] == 1.0 and three["rounds_vote"]["quality"] == 0.0
    # the methods share the sample streams: no prompt was sampled past max_k
    assert run.report["live_best_of_k"]["real_requests"] <= len(tasks) * cfg.max_k
