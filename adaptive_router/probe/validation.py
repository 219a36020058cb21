"""Held-out validation of a `CurveProbe`: the neighbour blend, the shrinkage weight and the uniform fallback.

All three are decided on the out-of-fold predictions of the training queries, by one
`adaptive_router.allocation.Replay` of their true curves at the target budgets: the replay
``adaptive-router evaluate`` reports, so the validation report's ``uniform`` is the figure ``evaluate``
prints for the same queries, budgets and costs. The options are ``Ladder.grid(costs, k)`` for the largest k
every query recorded (numpy only; the heads' torch code stays in `adaptive_router.probe.estimator`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptive_router.allocation import Ladder, Replay
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.probe import metrics as M
from adaptive_router.probe.labels import validated_k
from adaptive_router.probe.shrinkage import select_shrinkage

__all__ = [
    "NEIGHBOR_WEIGHTS",
    "Validation",
    "check_budgets",
    "choose_neighbor_weight",
    "option_arrays",
    "validate",
]

NEIGHBOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Blend weights of the neighbour curves with the heads that validation chooses among."""

_log = logging.getLogger("adaptive_router.probe")


def option_arrays(
    curves: np.ndarray, procedures: Sequence[str], costs: Mapping[str, float], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, P, K)`` curves -> ``(n, m)`` option values and ``(m,)`` costs of ``Ladder.grid(costs, k)``."""
    ladder = Ladder.grid(costs, k)
    values = ladder.values({p: curves[:, j, :] for j, p in enumerate(procedures)})
    return values, ladder.costs


def check_budgets(budgets: Sequence[float], costs: Mapping[str, float]) -> None:
    """Refuse budgets below the cheapest option (one call of the cheapest procedure) before any fitting."""
    cheapest = min(float(c) for c in costs.values())
    low = [float(b) for b in budgets if float(b) < cheapest * (1.0 - 1e-12)]
    if low:
        name = min(costs, key=lambda p: float(costs[p]))
        raise InfeasibleBudgetError(
            f"budgets {low} are below the cheapest option ({name!r} once, cost {cheapest:g}): every query "
            f"gets at least one call, so no allocation spends less; use budgets >= {cheapest:g}"
        )


def choose_neighbor_weight(
    heads: np.ndarray,
    neighbors: np.ndarray,
    true: np.ndarray,
    *,
    procedures: Sequence[str],
    costs: Mapping[str, float],
    budgets: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The blend weight of the neighbour curves with the best mean held-out allocation quality.

    Ties keep the smaller weight. Returns the weight and every weight's mean quality over ``budgets``.
    """
    k = max(1, validated_k(true, true.shape[2]))
    tv, option_costs = option_arrays(true, procedures, costs, k)
    runner = Replay(tv, option_costs)
    scores: dict[float, float] = {}
    for w in NEIGHBOR_WEIGHTS:
        pv, _ = option_arrays(w * neighbors + (1.0 - w) * heads, procedures, costs, k)
        scores[w] = float(np.mean([runner.score(pv, float(b)).quality for b in budgets]))
    return max(NEIGHBOR_WEIGHTS, key=lambda w: (scores[w], -w)), scores


@dataclass(frozen=True)
class Validation:
    """What validation decided: the shrinkage weight, the fallback and the report behind them."""

    shrinkage: float
    fallback: bool
    reason: str
    report: dict[str, Any]


def validate(
    oof: np.ndarray,
    true: np.ndarray,
    labels: Mapping[str, np.ndarray],
    *,
    kind: str,
    procedures: Sequence[str],
    costs: Mapping[str, float],
    budgets: Sequence[float],
    population_curve: np.ndarray,
    fallback: str = "auto",
    alpha: float = 0.05,
    margin: float = 0.0,
    n_bootstrap: int = 2000,
    seed: int = 0,
    header: Mapping[str, Any] | None = None,
) -> Validation:
    """Choose the shrinkage, decide the fallback and build the validation report.

    Parameters
    ----------
    oof, true : (n, P, K) arrays
        Out-of-fold predicted curves and the true curves of the training queries.
    labels : mapping
        The parsed labels (`adaptive_router.probe.labels.parse_labels`), for calibration metrics.
    population_curve : (P, K) array
        The shrinkage target, the curve a fallen-back probe predicts for every query.
    fallback : {"auto", "never", "always"}
        ``"auto"`` follows `select_shrinkage`; ``"never"`` only reports; ``"always"`` forces uniform.
    header : mapping, optional
        More entries for the report, placed after the data description (e.g. the heads' best epochs).
    """
    k_eval = validated_k(true, true.shape[2])
    if k_eval < 1:
        raise ConfigError("labels have no finite k=1 value for some query; cannot validate")
    pv, option_costs = option_arrays(oof, procedures, costs, k_eval)
    tv, _ = option_arrays(true, procedures, costs, k_eval)
    popv, _ = option_arrays(np.broadcast_to(population_curve, oof.shape), procedures, costs, k_eval)
    result = select_shrinkage(
        pv, popv[0], tv, option_costs, budgets, alpha=alpha, margin=margin, n_bootstrap=n_bootstrap, seed=seed
    )
    runner = Replay(tv, option_costs)
    report: dict[str, Any] = {
        "n_train": int(oof.shape[0]),
        "label_kind": kind,
        "procedures": list(procedures),
        "max_k": int(true.shape[2]),
        "costs": dict(costs),
        "budgets": [float(b) for b in budgets],
        **(header or {}),
        "validation": "out-of-fold predictions of the cross-fitted heads",
        "validated_max_k": k_eval,
        "allocation": result.per_budget,
        "allocation_unshrunk": [M.compare(runner, pv, float(b)).as_dict() for b in budgets],
        "shrinkage": result.as_dict(),
        "gain_spearman": M.gain_spearman(pv, tv),
    }
    if kind == "binary":
        p1 = oof[:, :, 0]
        c, s = labels["successes"], labels["samples"]
        report["brier"] = M.brier_score(p1, c, s)
        report["brier_population"] = M.brier_score(np.broadcast_to(population_curve[:, 0], p1.shape), c, s)
        report["log_loss"] = M.log_loss(p1, c, s)
        report["calibration"] = {
            p: M.calibration_bins(p1[:, j], c[:, j], s[:, j]) for j, p in enumerate(procedures)
        }
    if fallback == "always":
        falls, reason = True, "fallback forced (fallback='always')"
    elif fallback == "never":
        falls, reason = False, f"fallback disabled (fallback='never'); validation says: {result.reason}"
    else:
        falls, reason = bool(result.fallback), result.reason
    report["fallback"] = falls
    report["fallback_reason"] = reason
    if falls:
        what = "uniform allocation" if len(procedures) == 1 else "the best fixed mix of procedures"
        _log.warning("difficulty probe falls back to %s: %s", what, reason)
    return Validation(shrinkage=float(result.weight), fallback=falls, reason=reason, report=report)
