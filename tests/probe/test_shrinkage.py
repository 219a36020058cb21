from __future__ import annotations

import numpy as np

from adaptive_router.probe.shrinkage import select_shrinkage


def _setup(seed: int = 0, n: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.8, 0.8, n)
    k = np.arange(1, 5)
    true = 1 - (1 - p[:, None]) ** k
    pop = true.mean(axis=0)
    return true, pop, np.arange(1.0, 5.0), rng.permutation(n)


def test_good_predictions_keep_weight_and_no_fallback() -> None:
    true, pop, costs, _ = _setup()
    res = select_shrinkage(true, pop, true, costs, (2.0, 3.0), n_bootstrap=300)
    assert not res.fallback and res.weight > 0
    assert res.gain_lower > 0
    assert all(r["adaptive"] >= r["uniform"] for r in res.per_budget)


def test_shuffled_predictions_fall_back() -> None:
    true, pop, costs, perm = _setup()
    res = select_shrinkage(true[perm], pop, true, costs, (2.0, 3.0), n_bootstrap=300)
    assert res.fallback
    assert "uniform" in res.reason or "significant" in res.reason


def test_no_room_budgets_fall_back() -> None:
    true, pop, costs, _ = _setup()
    res = select_shrinkage(true, pop, true, costs, (4.0,), n_bootstrap=10)  # everyone gets k=4 anyway
    assert res.fallback and "no target budget leaves a choice" in res.reason
