"""Budgets below the cheapest option are refused, with the fix, before anything is computed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router.errors import InfeasibleBudgetError


def _outcomes(path, n=30):
    rows = [
        {"id": str(i), "prompt": f"question {i}",
         "outcomes": {"mixtral": [{"reward": float(i % 2)}], "gpt-4": [{"reward": 1.0}]},
         "cost": {"mixtral": 1.0, "gpt-4": 10.0}}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_refuses_a_budget_below_the_cheapest_option(tmp_path) -> None:
    """Regression: ``evaluate --budgets 0.5`` used to report the cheapest option's spend, 1.00, for B=0.5."""
    from adaptive_router.app.cli import app

    res = CliRunner().invoke(app, ["evaluate", str(_outcomes(tmp_path / "o.jsonl")), "--budgets", "0.5,2"])
    assert res.exit_code != 0
    assert "budgets [0.5] are below the cheapest option ('mixtral' x1, cost 1)" in res.output
    assert "use budgets >= 1" in res.output and "| 0.5 |" not in res.output


def test_probe_training_refuses_a_budget_below_the_cheapest_option_before_fitting(monkeypatch) -> None:
    """Regression: the probe used to skip such budgets silently and validate on the others."""
    pytest.importorskip("torch")
    from adaptive_router.probe import heads
    from adaptive_router.probe.estimator import CurveProbe

    calls = []
    monkeypatch.setattr(heads, "train_head", lambda *a, **k: calls.append(1))
    rng = np.random.default_rng(0)
    y = {"cheap": (rng.binomial(1, 0.5, 60), np.ones(60)), "strong": (np.ones(60), np.ones(60))}
    probe = CurveProbe(max_k=1, budgets=(0.5, 4.0), costs={"cheap": 1.0, "strong": 10.0})
    with pytest.raises(InfeasibleBudgetError, match=r"budgets \[0\.5\] are below the cheapest option"):
        probe.fit(rng.normal(size=(60, 3)), y)
    assert calls == []
