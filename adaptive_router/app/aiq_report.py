"""The single models of an evaluation report and each method's AIQ (numpy only).

Every option alone is a fixed policy, a "single model" (RouterBench's term): ``single_models`` lists its
cost, its quality and whether it is on the non-decreasing cost-quality hull that mixing two of them traces.
``aiq.<method>`` is RouterBench's AIQ: the mean over ``aiq_cost_range`` (the cheapest to the dearest
option) of the method's non-decreasing cost-quality hull through its sweep points
(`adaptive_router.allocation.Frontier`, `adaptive_router.allocation.aiq`); the hull's own AIQ is that of
the single models, the baseline a router adds value above.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptive_router.allocation import Frontier, Replay

__all__ = ["add_aiq", "single_models"]


def single_models(replay: Replay, ladder: Any) -> list[dict[str, Any]]:
    """Every option alone: ``procedure``, ``k``, ``cost``, ``quality`` (its mean true value) and ``on_hull``.

    Examples
    --------
    >>> from adaptive_router.allocation import Ladder
    >>> replay = Replay(np.array([[0.25, 0.3, 0.9], [0.35, 0.3, 0.9]]), np.array([1.0, 2.0, 3.0]))
    >>> [(s["procedure"], s["quality"], s["on_hull"]) for s in single_models(replay,
    ...     Ladder.routes({"a": 1.0, "b": 2.0, "c": 3.0}))]
    [('a', 0.3, True), ('b', 0.3, False), ('c', 0.9, True)]
    """
    on_hull = set(replay.frontier.index_.tolist())
    return [
        {"procedure": o.procedure, "k": o.k, "cost": float(o.cost),
         "quality": float(replay.population_values[j]), "on_hull": j in on_hull}
        for j, o in enumerate(ladder.options)
    ]


def add_aiq(report: dict[str, Any]) -> dict[str, Any]:
    """Set ``report["aiq"]``, ``report["aiq_log"]`` (per method) and ``report["aiq_cost_range"]``.

    A method's AIQ is the mean, over the cheapest to the dearest option's cost, of the non-decreasing
    cost-quality hull through its sweep points ``(sweep.spend, sweep.quality)``
    (:func:`adaptive_router.allocation.aiq`); ``hull``'s is that of the single models, exactly.
    ``aiq_log`` is the same mean over log cost (each decade weighs the same; ``None`` for a cost of 0).
    Methods without a sweep (``esc``: one point) get none. Returns ``report``; call it again after adding
    methods to the sweep.

    Examples
    --------
    >>> rep = {"single_models": [{"cost": 1.0, "quality": 0.2}, {"cost": 3.0, "quality": 0.6}],
    ...        "sweep": {"spend": {"m": [1.0, 3.0]}, "quality": {"m": [0.2, 0.8]}}}
    >>> add_aiq(rep)["aiq"], rep["aiq_cost_range"]        # means over [1, 3]: (0.2+0.6)/2, (0.2+0.8)/2
    ({'hull': 0.4, 'm': 0.5}, [1.0, 3.0])
    >>> {m: round(v, 4) for m, v in rep["aiq_log"].items()}   # the cheap end weighs more
    {'hull': 0.3641, 'm': 0.4461}
    """
    single = report["single_models"]
    costs = [float(s["cost"]) for s in single]
    lo, hi = min(costs), max(costs)
    frontiers = {"hull": Frontier(costs, [float(s["quality"]) for s in single])}
    sweep = report["sweep"]
    frontiers.update(
        {m: Frontier(sweep["spend"][m], q) for m, q in sweep["quality"].items() if m != "hull"}
    )
    if hi > lo:
        report["aiq"] = {m: f.area(lo, hi) / (hi - lo) for m, f in frontiers.items()}
        report["aiq_log"] = (
            {m: f.area(lo, hi, log=True) / float(np.log(hi / lo)) for m, f in frontiers.items()}
            if lo > 0 else None
        )
    else:  # one cost: the quality there
        report["aiq"] = {m: f(lo) for m, f in frontiers.items()}
        report["aiq_log"] = dict(report["aiq"])
    report["aiq_cost_range"] = [lo, hi]
    return report
