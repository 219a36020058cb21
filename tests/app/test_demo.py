"""Tests for adaptive_router.app.demo.config: label helpers (offline) and a short real run (realmodel)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from adaptive_router.app.demo.config import CHEAP, EXPENSIVE, DemoConfig, draw_outcomes, routing_outcomes
from adaptive_router.app.tasks import arithmetic_tasks
from adaptive_router.errors import ConfigError


def test_draw_outcomes_follow_probabilities_and_routing_pairs_share_draws():
    tasks = arithmetic_tasks(200, seed=0)
    p = np.linspace(0.0, 1.0, 200)
    outcomes, draws = draw_outcomes(tasks, p, 16, seed=1)
    assert outcomes.procedures == ("gemma",) and draws.shape == (200, 16)
    c, n = outcomes.success_counts("gemma")
    assert n.tolist() == [16] * 200 and c[0] == 0 and c[-1] == 16
    assert abs(c.sum() / n.sum() - p.mean()) < 0.03
    assert outcomes[5].meta["p_correct"] == pytest.approx(p[5])
    routed = routing_outcomes(outcomes, draws)
    assert routed.procedures == (CHEAP, EXPENSIVE)
    assert routed.procedure_costs == {CHEAP: 1.0, EXPENSIVE: 4.0}
    rc, rn = routed.success_counts(EXPENSIVE)
    assert rn.tolist() == [4] * 200
    expected = draws.reshape(200, 4, 4).any(axis=2).sum(axis=1)
    assert rc.tolist() == expected.tolist()
    # best-of-4 never does worse than one sample, in expectation
    curves = routed.true_curves(1)
    assert (curves[EXPENSIVE][:, 0] >= curves[CHEAP][:, 0] - 0.26).all()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_train": 5}, r"n_train must be an integer >= 20: the probe cross-fits"),
        ({"n_test": 0}, r"n_test must be an integer >= 10"),
        ({"samples": 4, "max_k": 8}, r"samples \(4\) must be >= max_k \(8\)"),
        ({"samples": 3, "max_k": 2}, r"routing compares best-of-4 with one sample: samples must be >= 4"),
        ({"verify_n": 1}, r"verify_n must be an integer >= 2"),
        ({"verify_n": 400}, r"verify_n \(400\) must be <= n_train \(300\)"),
        ({"budgets": ()}, r"budgets must be finite numbers >= 1"),
        ({"budgets": (1.0, float("nan"))}, r"budgets must be finite numbers >= 1"),
        ({"budgets": (0.5,)}, r"budgets must be finite numbers >= 1"),
        ({"temperature": 0.0}, r"temperature must be a finite number > 0"),
        ({"threads": 0}, r"threads must be an integer >= 1"),
        ({"out_dir": " "}, r"out_dir must be a non-empty string"),
        ({"samples": 8.5}, r"samples must be an integer"),
    ],
)
def test_demo_config_rejects_bad_settings_when_built(settings, message):
    with pytest.raises(ConfigError, match=message):
        DemoConfig(**settings)


def test_demo_config_accepts_the_short_forms():
    assert DemoConfig(verify_n=0, live=False).verify_n == 0
    assert DemoConfig(samples=2, max_k=2, routing=False).samples == 2
    assert DemoConfig(budgets=[1, 2]).budgets == (1.0, 2.0)


@pytest.mark.realmodel
def test_short_demo_run_writes_a_run_folder(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("llama_cpp")
    from rich.console import Console

    from adaptive_router.app.demo import run_demo

    if os.environ.get("AR_FULL_TESTS") == "1":
        cfg = DemoConfig(out_dir=str(tmp_path))
    else:
        cfg = DemoConfig(
            n_train=60,
            n_test=16,
            samples=8,
            max_k=4,
            budgets=(1.0, 2.0),
            verify_n=4,
            verify_samples=4,
            out_dir=str(tmp_path),
        )
    with open(os.devnull, "w") as sink:
        folder = run_demo(cfg, console=Console(file=sink), argv=["adaptive-router", "demo"])
    for name in ("report.md", "report.json", "best_of_k.png", "routing.png", "command.txt", "outcomes.jsonl"):
        assert (folder / name).is_file(), name
    rep = json.loads((folder / "report.json").read_text())
    assert rep["command"] == "adaptive-router demo"
    assert rep["verification"]["queries"] == cfg.verify_n
    live = rep["live_best_of_k"]["by_budget"]
    assert set(live) == {str(b) for b in cfg.budgets}
    for b, row in live.items():
        assert set(row) == {"uniform", "adaptive", "rounds", "vote", "rounds_vote"}
        for res in row.values():
            assert 0.0 <= res["quality"] <= 1.0
            assert res["calls_per_query"] <= float(b) + 1e-9
        for m in ("rounds", "vote", "rounds_vote"):  # they stop on, or pick by, what they drew: live only
            assert row[m]["expected_quality"] is None
    one = live[str(cfg.budgets[0])]
    assert one["uniform"]["calls_per_query"] == pytest.approx(1.0)
    assert rep["live_best_of_k"]["real_requests"] <= rep["data"]["test"] * cfg.max_k
    assert "| budget (calls/query) |" in (folder / "report.md").read_text()


def test_final_table_shows_rounds_beside_one_shot():
    from adaptive_router.app.demo.summary import final_table

    rep = {
        "budgets": [2.0],
        "methods": {"uniform": {"quality": [0.2]}, "adaptive": {"quality": [0.25], "savings": [0.3]}},
    }

    def row(q, calls, expected):
        return {"quality": q, "calls_per_query": calls, "expected_quality": expected}

    by_method = {
        "uniform": row(0.2, 2.0, 0.21),
        "adaptive": row(0.25, 2.0, 0.26),
        "rounds": row(0.3, 1.9, None),
    }
    live = {"2.0": by_method}
    table = final_table(rep, live).splitlines()
    assert "rounds acc (live)" in table[0] and "vote" not in table[0]  # only the methods that ran
    assert table[2] == "| 2 | 20.0% | 25.0% | 30.0% | 2.00 / 2.00 / 1.90 | 21.0% / 26.0% | +30.0% |"
    by_method |= {"vote": row(0.15, 2.0, None), "rounds_vote": row(0.18, 1.5, None)}
    table = final_table(rep, live).splitlines()
    assert "| vote acc (live) | rounds_vote acc (live) |" in table[0]
    assert table[1].count("---:") == 9
    assert table[2] == (
        "| 2 | 20.0% | 25.0% | 30.0% | 15.0% | 18.0% | 2.00 / 2.00 / 1.90 / 2.00 / 1.50 "
        "| 21.0% / 26.0% | +30.0% |"
    )
