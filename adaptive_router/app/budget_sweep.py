"""The budgets of an evaluation: its budget sweep, each method's curve over it, and the budget that reaches
a quality on it (numpy only).

An evaluation scores every method at the asked budgets and over a sweep (:func:`sweep_budgets`) from the
cheapest to the dearest option. :func:`score_curve` replays a method's predicted values at each budget
(averaged over several predictions, e.g. ``random``'s draws); :func:`fixed_curve` reads ``hull`` and
``best_single`` off the fixed policies. :func:`budget_to_reach` reads the smallest budget at which a curve
reaches a quality, which ``savings`` and the routing shares are made of. :func:`sweep_replays` does the same
for a method replayed sequentially (seeded Monte Carlo, ``replay_rounds``), and
:func:`add_sequential_method` puts its entry into a report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.predictors import FloatArray

__all__ = [
    "FIXED",
    "LOG_COST_DECADES",
    "REPLAY_FIELDS",
    "ScoreMany",
    "add_sequential_method",
    "budget_to_reach",
    "default_budgets",
    "fixed_curve",
    "score_curve",
    "sweep_budgets",
    "sweep_replays",
]

LOG_COST_DECADES = 1.5
"""Option costs spanning more decades than this get a log-spaced sweep (and a log axis in plots)."""
FIXED = ("hull", "best_single")
"""The baselines read off the fixed policies directly (no allocation to replay)."""
_EPS = 1e-9

ScoreMany = Callable[[Replay, Sequence[tuple[FloatArray, float]]], Sequence[Any]]
"""Scores ``[replay.score(values, budget) for values, budget in pairs]``, possibly elsewhere (``--ray``)."""

Curve = tuple[FloatArray, FloatArray, FloatArray]
"""Quality, spend and option shares (one row per budget)."""


def budget_to_reach(target: float, budgets: FloatArray, quality: FloatArray) -> float | None:
    """Smallest budget at which ``quality`` (sampled at increasing ``budgets``) reaches ``target``.

    Linear interpolation between the sweep point before and the first point at or above the target.

    Examples
    --------
    >>> budget_to_reach(0.5, np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.4, 0.8]))
    2.25
    >>> budget_to_reach(0.9, np.array([1.0, 2.0]), np.array([0.2, 0.4])) is None
    True
    """
    hit = np.flatnonzero(quality >= target - _EPS)
    if hit.size == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(budgets[0])
    b0, b1, q0, q1 = budgets[i - 1], budgets[i], quality[i - 1], quality[i]
    if q1 - q0 <= _EPS:
        return float(b1)
    return float(b0 + (b1 - b0) * (target - q0) / (q1 - q0))


def _score_here(replay: Replay, pairs: Sequence[tuple[FloatArray, float]]) -> list[Any]:
    return [replay.score(v, b) for v, b in pairs]


def score_curve(
    replay: Replay, values: Sequence[FloatArray], budgets: Iterable[float], scores: ScoreMany | None = None
) -> Curve:
    """Quality, spend and option shares at each budget: the mean over allocating on each of ``values``.

    ``scores`` runs the replays (default: here, one after the other).

    Examples
    --------
    >>> replay = Replay(np.array([[0.2, 0.6], [0.8, 0.9]]), np.array([1.0, 2.0]))
    >>> quality, spend, shares = score_curve(replay, [replay.true_values], [1.0, 1.5])
    >>> quality.tolist(), spend.tolist(), shares.tolist()
    ([0.5, 0.7], [1.0, 1.5], [[1.0, 0.0], [0.5, 0.5]])
    """
    bud = [float(b) for b in budgets]
    pairs = [(v, b) for b in bud for v in values]
    scored = list((scores or _score_here)(replay, pairs))
    qs, ss, sh = [], [], []
    for i in range(len(bud)):
        runs = scored[i * len(values) : (i + 1) * len(values)]
        qs.append(float(np.mean([r.quality for r in runs])))
        ss.append(float(np.mean([r.spend for r in runs])))
        sh.append(np.mean([r.shares for r in runs], axis=0))
    return np.array(qs), np.array(ss), np.array(sh)


def fixed_curve(replay: Replay, name: str, budgets: Iterable[float]) -> Curve:
    """Quality, spend and option shares of ``replay.hull`` or ``replay.best_single`` (see ``FIXED``) at each
    budget."""
    runs = [getattr(replay, name)(float(b)) for b in budgets]
    return (
        np.array([r.quality for r in runs]),
        np.array([r.spend for r in runs]),
        np.array([r.shares for r in runs]),
    )


def sweep_budgets(costs: FloatArray, budgets: Sequence[float], points: int = 41) -> FloatArray:
    """The budget sweep: ``points`` from the cheapest to the dearest option, every option's cost and the
    ``budgets`` in that range; log-spaced as well when the costs span more than ``LOG_COST_DECADES``.

    Examples
    --------
    >>> sweep_budgets(np.array([1.0, 2.5, 4.0]), [3.2], points=4).tolist()
    [1.0, 2.0, 2.5, 3.0, 3.2, 4.0]
    """
    lo, hi = float(np.min(costs)), float(np.max(costs))
    parts = [np.linspace(lo, hi, points), costs, [b for b in budgets if lo <= b <= hi]]
    if lo > 0 and np.log10(hi / lo) > LOG_COST_DECADES:
        parts.append(np.geomspace(lo, hi, points))
    return np.unique(np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts]))


def default_budgets(costs: Sequence[float], *, money: bool = False) -> list[float]:
    """Budgets ``train`` and ``evaluate`` use when none are given: 1, 2, 4 cost units where the options'
    costs reach them (the cheapest costs at most 1, the dearest at least 2: best-of-k at one unit a sample,
    routes priced 1 to 10), else, and always for money (``$``), five budgets log-spaced from the cheapest to
    the dearest option: recorded dollar costs of $1e-4 a call would put 1, 2 and 4 above every option.

    Examples
    --------
    >>> default_budgets([1.0, 8.0])
    [1.0, 2.0, 4.0]
    >>> [round(b, 6) for b in default_budgets([1e-5, 1e-3], money=True)]
    [1e-05, 3.2e-05, 0.0001, 0.000316, 0.001]
    >>> [round(b, 6) for b in default_budgets([1e-4, 1.6e-3])]     # dollars recorded, no price table
    [0.0001, 0.0002, 0.0004, 0.0008, 0.0016]
    """
    lo, hi = float(min(costs)), float(max(costs))
    if not money and lo <= 1.0 and hi >= 2.0:
        return [1.0, 2.0, 4.0]
    return [float(b) for b in np.geomspace(lo, hi, 5)] if hi > lo else [lo]


REPLAY_FIELDS = ("quality", "quality_se", "spend", "spend_se", "max_spend", "rounds")
"""The `ReplayResult` figures a sequentially replayed method reports at each budget."""


def sweep_replays(
    replay: Callable[[float, int], Any],
    budgets: Sequence[float],
    grid: Sequence[float],
    hull_quality: Sequence[float],
    *,
    seeds: int,
    sweep_seeds: int,
    fields: Sequence[str] = REPLAY_FIELDS,
) -> tuple[dict[str, Any], list[Any]]:
    """A sequentially replayed method at ``budgets`` and over the sweep ``grid``.

    ``replay(b, n_seeds)`` gives a `ReplayResult`, or None where budget ``b`` cannot run the method. The
    sweep reuses the budgets' replays (``seeds`` orderings) where it passes through a budget and replays its
    other points with ``sweep_seeds``; ``budget_to_match_hull`` is read on it (the budget at which the method
    reaches ``hull_quality`` at each budget), ``savings`` is ``1 - that / B``.

    Returns
    -------
    (dict, list)
        The report entry (each of ``fields`` per budget, None where it did not run, ``budget_to_match_hull``,
        ``savings``) and the sweep's results, one per grid point.
    """
    at_b = [replay(float(b), seeds) for b in budgets]
    done = dict(zip(budgets, at_b, strict=True))
    sweep = [done[b] if b in done else replay(float(b), sweep_seeds) for b in grid]
    ran = [i for i, r in enumerate(sweep) if r is not None]
    ran_b = np.array([grid[i] for i in ran], dtype=np.float64)
    ran_q = np.array([sweep[i].quality for i in ran], dtype=np.float64)
    needed = [budget_to_reach(float(t), ran_b, ran_q) if ran else None for t in hull_quality]
    entry: dict[str, Any] = {f: [None if r is None else getattr(r, f) for r in at_b] for f in fields}
    entry["budget_to_match_hull"] = needed
    entry["savings"] = [None if nb is None else 1.0 - nb / b for nb, b in zip(needed, budgets, strict=True)]
    return entry, sweep


def add_sequential_method(
    report: dict[str, Any], name: str, entry: dict[str, Any], sweep: Sequence[Any] | None = None
) -> None:
    """Put a sequential method's ``entry`` into ``report``, in place: ``methods.<name>``, its ``table`` rows
    (with ``quality_se``) and, given the ``sweep`` results of :func:`sweep_replays`, its sweep curves."""
    report["methods"][name] = entry
    for i, b in enumerate(report["budgets"]):
        report["table"].append(
            {"method": name, "budget": b, "quality": entry["quality"][i], "spend": entry["spend"][i],
             "savings": entry["savings"][i], "quality_se": entry["quality_se"][i]}
        )  # fmt: skip
    if sweep is not None:
        report["sweep"]["quality"][name] = [None if r is None else r.quality for r in sweep]
        report["sweep"]["spend"][name] = [None if r is None else r.spend for r in sweep]
