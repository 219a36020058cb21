"""Shrinkage toward the population curve, chosen for allocation quality, and the uniform fallback test.

Given held-out (out-of-fold) predicted curves, the population curve and true curves, `select_shrinkage`
tries ``curve_w = w · predicted + (1 − w) · population`` for w on a grid and keeps the w whose allocation
(replayed with the true curves at the target budgets by `adaptive_router.allocation.Replay`, the replay
``evaluate`` reports) earns the most reward per query — not the w with the lowest loss. A convex mix of
monotone curves stays monotone (the population curve of vote labels is not concave; the allocator plans on
each curve's upper concave hull). At w = 0 every row is the population curve, which the replay scores
exactly as uniform, so a weight is kept only when it beats uniform.

It then decides whether adaptive allocation is trustworthy: with the chosen w, the per-query gain over
uniform (paired: same queries, adaptive choice minus the fixed mix's expected reward) is averaged over the
budgets that leave a choice, and a seeded paired bootstrap gives its lower ``alpha`` quantile. Adaptive is
kept only when w > 0, that lower bound is above ``margin`` and no single budget loses to uniform on average;
otherwise the probe falls back to the population curve (uniform allocation / the best fixed mix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.probe.metrics import ReplayResult, compare

__all__ = ["DEFAULT_WEIGHT_GRID", "ShrinkageResult", "select_shrinkage"]

DEFAULT_WEIGHT_GRID: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


@dataclass
class ShrinkageResult:
    """Outcome of `select_shrinkage` (all figures are mean true reward per query on held-out data)."""

    weight: float
    fallback: bool
    reason: str
    mean_gain: float
    gain_lower: float
    per_budget: list[dict[str, float]] = field(default_factory=list)
    weight_scores: dict[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "fallback": self.fallback,
            "reason": self.reason,
            "mean_gain_vs_uniform": self.mean_gain,
            "gain_lower_bound": self.gain_lower,
            "per_budget": self.per_budget,
            "weight_scores": {str(k): v for k, v in self.weight_scores.items()},
        }


def _replays(
    runner: Replay, pred: np.ndarray, pop: np.ndarray, budgets: Sequence[float], w: float
) -> list[ReplayResult]:
    values = w * pred + (1.0 - w) * pop[None, :]
    return [compare(runner, values, float(b)) for b in budgets]


def select_shrinkage(
    predicted_values: np.ndarray,
    population_values: np.ndarray,
    true_values: np.ndarray,
    costs: np.ndarray,
    budgets: Sequence[float],
    *,
    grid: Sequence[float] = DEFAULT_WEIGHT_GRID,
    alpha: float = 0.05,
    margin: float = 0.0,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> ShrinkageResult:
    """Choose the shrinkage weight by held-out allocation quality and test adaptive against uniform.

    Parameters
    ----------
    predicted_values, true_values : (n, m) arrays
        Option values (see `adaptive_router.allocation.Ladder.values`) from held-out predictions and truth.
    population_values : (m,) array
        Option values of the population curve (identical for every query).
    costs : (m,) array
        Option costs.
    budgets : sequence of float
        Target budgets per query, in cost units, none below the cheapest option (`InfeasibleBudgetError`).
    alpha : float
        One-sided level of the paired bootstrap: adaptive is kept only if the lower ``alpha`` quantile of
        the mean gain over uniform exceeds ``margin``.
    """
    pred = np.asarray(predicted_values, dtype=float)
    pop = np.asarray(population_values, dtype=float)
    true = np.asarray(true_values, dtype=float)
    runner = Replay(true, costs)
    for b in budgets:
        runner.check_budget(b)
    scores: dict[float, float] = {}
    best_w, best_score = 0.0, -np.inf
    for w in sorted(float(x) for x in grid):
        reps = [r for r in _replays(runner, pred, pop, budgets, w) if r.room > 1e-12]
        score = float(np.mean([r.adaptive - r.uniform for r in reps])) if reps else 0.0
        scores[w] = score
        if score > best_score + 1e-12:  # ties keep the smaller (safer) weight
            best_w, best_score = w, score
    reps_all = _replays(runner, pred, pop, budgets, best_w)
    per_budget = [r.as_dict() for r in reps_all]
    reps = [r for r in reps_all if r.room > 1e-12]
    if not reps:
        return ShrinkageResult(0.0, True, "no target budget leaves a choice between options", 0.0, 0.0,
                               per_budget, scores)
    gains = np.mean([r.per_query_gain for r in reps], axis=0)  # per query, averaged over budgets
    mean_gain = float(gains.mean())
    rng = np.random.default_rng(seed)
    n = len(gains)
    boot = np.array([gains[rng.integers(0, n, n)].mean() for _ in range(int(n_bootstrap))])
    lower = float(np.quantile(boot, alpha))
    worst = min(reps, key=lambda r: r.adaptive - r.uniform)
    if best_w == 0.0:
        return ShrinkageResult(0.0, True, "no shrinkage weight > 0 beat uniform allocation on validation",
                               mean_gain, lower, per_budget, scores)
    if worst.adaptive - worst.uniform < 0.0:
        reason = (f"adaptive lost to uniform at budget {worst.budget:g} on validation "
                  f"({worst.adaptive:.4f} < {worst.uniform:.4f})")
        return ShrinkageResult(best_w, True, reason, mean_gain, lower, per_budget, scores)
    if lower <= margin:
        reason = (f"gain over uniform not significant: mean {mean_gain:+.4f}, paired-bootstrap "
                  f"{alpha:.0%} lower bound {lower:+.4f} <= margin {margin:g}")
        return ShrinkageResult(best_w, True, reason, mean_gain, lower, per_budget, scores)
    reason = (f"adaptive beats uniform on validation: mean gain {mean_gain:+.4f} per query, paired-bootstrap "
              f"{alpha:.0%} lower bound {lower:+.4f}")
    return ShrinkageResult(best_w, False, reason, mean_gain, lower, per_budget, scores)
