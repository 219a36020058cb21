from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from adaptive_router.allocation import Ladder
from adaptive_router.errors import ConfigError
from adaptive_router.probe.metrics import (
    allocation_quality,
    brier_score,
    calibration_bins,
    log_loss,
    replay,
    spearman,
)


def test_scores_match_definitions() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 50)
    n = np.full(50, 4)
    c = rng.binomial(4, p)
    y = np.concatenate([np.r_[np.ones(ci), np.zeros(4 - ci)] for ci in c])
    pp = np.repeat(p, 4)
    assert brier_score(p, c, n) == pytest.approx(np.mean((pp - y) ** 2))
    assert log_loss(p, c, n) == pytest.approx(-np.mean(y * np.log(pp) + (1 - y) * np.log(1 - pp)))
    a, b = rng.normal(size=30), rng.normal(size=30)
    b[:5] = b[0]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert np.isnan(spearman(a, np.ones(30)))
    with pytest.raises(ConfigError, match="successes <= samples"):
        brier_score([0.5], [3], [2])


def test_calibration_bins_count_everything() -> None:
    bins = calibration_bins([0.05, 0.15, 0.95, 0.99], [0, 1, 2, 2], [1, 1, 2, 2], n_bins=10)
    assert sum(bins["count"]) == 4
    assert bins["observed"][9] == 1.0 and bins["mean_predicted"][9] == pytest.approx(0.97)


def test_replay_orders_oracle_adaptive_uniform() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(0.7, 0.7, 400)
    true = 1 - (1 - p[:, None]) ** np.arange(1, 5)
    costs = np.arange(1.0, 5.0)
    noisy = 1 - (1 - np.clip(p + rng.normal(0, 0.15, 400), 0, 1)[:, None]) ** np.arange(1, 5)
    r = replay(noisy, true, costs, 2.0)
    assert r.uniform <= r.adaptive <= r.oracle
    assert 0 < r.recovered <= 1
    assert r.spend <= 2.0 + 1e-9
    assert replay(noisy, true, costs, 0.5) is None  # infeasible


def test_allocation_quality_with_ladder() -> None:
    true = {"default": np.array([[0.9, 0.95], [0.1, 0.19]])}
    rows = allocation_quality(true, true, Ladder.best_of_k(2), [1.5])
    assert rows[0]["oracle"] == pytest.approx(rows[0]["adaptive"])
    assert rows[0]["adaptive"] > rows[0]["uniform"]
