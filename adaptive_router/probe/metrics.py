"""Probe quality metrics (numpy only): calibration of p, ranking of gains, and allocation replay.

The number that matters is `allocation_quality`: allocate on the *predicted* curves over a held-out set at
each budget, score the choices with the *true* curves, and compare with uniform allocation (the fixed
policies' hull mix) and with the oracle (allocation on the true curves). All three come from one
`adaptive_router.allocation.Replay`, the same one ``adaptive-router evaluate`` reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.errors import ConfigError, InfeasibleBudgetError

__all__ = [
    "ReplayResult",
    "allocation_quality",
    "brier_score",
    "calibration_bins",
    "compare",
    "gain_spearman",
    "log_loss",
    "replay",
    "spearman",
]


def _rates(successes: Any, samples: Any) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(successes, dtype=float)
    n = np.asarray(samples, dtype=float)
    if c.shape != n.shape or (c < 0).any() or (c > n).any():
        raise ConfigError("successes and samples must have the same shape with 0 <= successes <= samples")
    return c, n


def brier_score(p: Any, successes: Any, samples: Any) -> float:
    """Mean squared error of probability ``p`` over every recorded 0/1 sample.

    Examples
    --------
    >>> brier_score([0.5, 1.0], [1, 2], [2, 2])
    0.125
    """
    pr = np.asarray(p, dtype=float)
    c, n = _rates(successes, samples)
    total = c * (1.0 - pr) ** 2 + (n - c) * pr**2
    return float(total.sum() / max(n.sum(), 1.0))


def log_loss(p: Any, successes: Any, samples: Any, *, eps: float = 1e-6) -> float:
    """Mean negative log-likelihood of every recorded 0/1 sample under probability ``p`` (clipped)."""
    pr = np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps)
    c, n = _rates(successes, samples)
    total = -(c * np.log(pr) + (n - c) * np.log1p(-pr))
    return float(total.sum() / max(n.sum(), 1.0))


def _rank(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=float)
    ranks[order] = np.arange(len(a), dtype=float)
    # average ranks over ties
    sorted_a = a[order]
    start = 0
    for end in range(1, len(a) + 1):
        if end == len(a) or sorted_a[end] != sorted_a[start]:
            if end - start > 1:
                ranks[order[start:end]] = (start + end - 1) / 2.0
            start = end
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant.

    Examples
    --------
    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 6)
    0.8
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"spearman needs two 1-D arrays of equal length, got {x.shape} and {y.shape}")
    rx, ry = _rank(x), _rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def gain_spearman(predicted_values: np.ndarray, true_values: np.ndarray) -> float:
    """Spearman of predicted vs true gain, gain = value of the costliest option minus the cheapest one."""
    pv = np.asarray(predicted_values, dtype=float)
    tv = np.asarray(true_values, dtype=float)
    return spearman(pv[:, -1] - pv[:, 0], tv[:, -1] - tv[:, 0])


def calibration_bins(p: Any, successes: Any, samples: Any, *, n_bins: int = 10) -> dict[str, list[float]]:
    """Reliability-diagram data: per equal-width bin of ``p``, mean prediction, observed rate and count."""
    pr = np.asarray(p, dtype=float)
    c, n = _rates(successes, samples)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(pr, edges[1:-1]), 0, n_bins - 1)
    keys = ("bin_lower", "bin_upper", "mean_predicted", "observed", "count")
    out: dict[str, list[float]] = {k: [] for k in keys}
    for b in range(n_bins):
        m = idx == b
        out["bin_lower"].append(float(edges[b]))
        out["bin_upper"].append(float(edges[b + 1]))
        out["count"].append(float(m.sum()))
        out["mean_predicted"].append(float(pr[m].mean()) if m.any() else float("nan"))
        out["observed"].append(float(c[m].sum() / n[m].sum()) if m.any() and n[m].sum() > 0 else float("nan"))
    return out


@dataclass(frozen=True)
class ReplayResult:
    """One budget's replay: mean true reward per query under adaptive / uniform / oracle allocation.

    ``per_query_gain`` is adaptive minus uniform per query (each an expectation over exchangeable queries,
    see `adaptive_router.allocation.Replay`), for paired bootstrap tests. ``room`` is oracle − uniform: zero
    when the budget leaves no choice.
    """

    budget: float
    adaptive: float
    uniform: float
    oracle: float
    spend: float
    per_query_gain: np.ndarray

    @property
    def room(self) -> float:
        return self.oracle - self.uniform

    @property
    def recovered(self) -> float:
        """Share of the oracle's improvement over uniform that adaptive allocation recovers."""
        return (self.adaptive - self.uniform) / self.room if self.room > 1e-12 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {
            "budget": float(self.budget),
            "adaptive": float(self.adaptive),
            "uniform": float(self.uniform),
            "oracle": float(self.oracle),
            "recovered": float(self.recovered),
            "spend_per_query": float(self.spend),
        }


def compare(runner: Replay, predicted_values: np.ndarray, budget: float) -> ReplayResult:
    """Adaptive (allocation on ``predicted_values``) against uniform and oracle on one `Replay`."""
    adaptive = runner.score(predicted_values, budget)
    uniform = runner.uniform(budget)
    oracle = runner.oracle(budget)
    return ReplayResult(
        budget=float(budget),
        adaptive=adaptive.quality,
        uniform=uniform.quality,
        oracle=oracle.quality,
        spend=adaptive.spend,
        per_query_gain=adaptive.per_query - uniform.per_query,
    )


def replay(
    predicted_values: np.ndarray, true_values: np.ndarray, costs: np.ndarray, budget: float
) -> ReplayResult | None:
    """Allocate ``budget`` per query on predicted option values and score with true values (`Replay`).

    Returns None when the budget is below the cheapest option (infeasible).
    """
    runner = Replay(true_values, costs)
    try:
        runner.check_budget(budget)
    except InfeasibleBudgetError:
        return None
    return compare(runner, predicted_values, budget)


def allocation_quality(
    predicted: Mapping[str, np.ndarray],
    true: Mapping[str, np.ndarray],
    ladder: Any,
    budgets: Sequence[float],
) -> list[dict[str, float]]:
    """Held-out allocation quality at each budget: adaptive vs uniform vs oracle (see `replay`).

    ``ladder`` is an `adaptive_router.allocation.Ladder`; budgets are in cost units per query. Infeasible
    budgets are left out.
    """
    pv = np.asarray(ladder.values(predicted), dtype=float)
    tv = np.asarray(ladder.values(true), dtype=float)
    costs = np.asarray(ladder.costs, dtype=float)
    out = []
    for b in budgets:
        r = replay(pv, tv, costs, float(b))
        if r is not None:
            out.append(r.as_dict())
    return out
