"""The routing section of an evaluation report: the share of queries sent to the best single model that
each method needs to reach a target fraction (95%) of that model's quality (numpy only).

This is RouteLLM's headline metric ("GPT-4 calls needed for 95% of GPT-4's quality"), generalised to any
number of procedures: the reference is the best single option (the highest mean quality, the cheapest of
equals), for two routes the expensive one where it is better. ``hull`` and ``best_single`` are read exactly
off the fixed policies; every other method is swept over budgets by the same replay as the rest of the
report, and its share read where its quality first reaches the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.app.budget_sweep import ScoreMany, budget_to_reach, score_curve
from adaptive_router.predictors import FloatArray

__all__ = ["DEFAULT_TARGET", "ROUTING_SWEEP_POINTS", "routing_section"]

DEFAULT_TARGET = 0.95
"""The fraction of the best single model's quality a router must reach (RouteLLM's)."""
ROUTING_SWEEP_POINTS = 201
"""Budgets each method is replayed at, evenly from the cheapest to the dearest option."""
_EPS = 1e-9


def routing_section(
    replay: Replay,
    ladder: Any,
    by_method: Mapping[str, Sequence[FloatArray]],
    target: float = DEFAULT_TARGET,
    scores: ScoreMany | None = None,
) -> dict[str, Any]:
    """Share of calls to the best single option needed to reach ``target`` x its quality, per method.

    Parameters
    ----------
    replay : Replay
        The evaluation's replay (true values and option costs).
    ladder : Ladder
        Its options, for the procedures' names.
    by_method : mapping
        Each replayed method's predicted option values (one array per prediction, averaged; as
        :func:`~adaptive_router.app.budget_sweep.score_curve` takes them).
    target : float
        The fraction of the best option's quality to reach.
    scores : callable, optional
        Runs the replays (``evaluate --ray``); default here.

    Returns
    -------
    dict
        ``expensive``, ``cheap``, ``target``, ``expensive_quality``, ``cheap_quality``, ``target_quality``,
        ``expensive_share.<m>`` and ``cost_savings.<m>`` (vs sending every query to ``expensive``);
        ``None`` where a method never reaches the target; ``match_cost_share.<m>``: the budget at which a
        method first reaches ``expensive``'s own quality, as a share of ``expensive``'s cost (1 for the
        hull; ``None`` where it never does).

    Examples
    --------
    >>> from adaptive_router.allocation import Ladder
    >>> true = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])  # cheap right on 2, dear on 3
    >>> replay = Replay(true, np.array([1.0, 10.0]))
    >>> out = routing_section(replay, Ladder.routes({"cheap": 1.0, "dear": 10.0}), {"oracle": [true]})
    >>> out["expensive"], round(out["target_quality"], 4), round(out["expensive_share"]["hull"], 4)
    ('dear', 0.7125, 0.85)
    >>> round(out["expensive_share"]["oracle"], 4), round(out["cost_savings"]["oracle"], 4)
    (0.2125, 0.6757)
    """
    costs = replay.costs
    top = int(replay.frontier.index_[-1])
    low = int(np.argmin(costs))
    q_top = float(replay.population_values[top])
    goal = target * q_top
    out: dict[str, Any] = {
        "expensive": ladder.options[top].procedure,
        "cheap": ladder.options[low].procedure,
        "target": target,
        "expensive_quality": q_top,
        "cheap_quality": float(replay.population_values[low]),
        "target_quality": goal,
        "expensive_share": {},
        "cost_savings": {},
        "match_cost_share": {},
    }
    frontier = replay.frontier
    b_hull = budget_to_reach(goal, frontier.costs_, frontier.qualities_)  # None: a goal above the best
    if b_hull is None:
        out["expensive_share"].update(hull=None, best_single=None)
        out["cost_savings"].update(hull=None, best_single=None)
    else:
        picks, weights = frontier.mixture(b_hull)
        out["expensive_share"]["hull"] = dict(zip(picks, weights, strict=True)).get(top, 0.0)
        out["cost_savings"]["hull"] = 1.0 - b_hull / float(costs[top])
        good = np.flatnonzero(replay.population_values >= goal - _EPS)
        single = int(good[np.argmin(costs[good])])
        out["expensive_share"]["best_single"] = float(single == top)
        out["cost_savings"]["best_single"] = 1.0 - float(costs[single]) / float(costs[top])
    b_match = budget_to_reach(q_top - _EPS, frontier.costs_, frontier.qualities_)
    out["match_cost_share"]["hull"] = None if b_match is None else b_match / float(costs[top])
    grid = np.linspace(float(costs.min()), float(costs.max()), ROUTING_SWEEP_POINTS)
    for m, values in by_method.items():
        qs_a, _, option_shares = score_curve(replay, values, grid, scores)
        share_a = option_shares[:, top]
        order = np.argsort(share_a, kind="stable")
        share = budget_to_reach(goal, share_a[order], np.maximum.accumulate(qs_a[order]))
        out["expensive_share"][m] = share
        b_needed = budget_to_reach(goal, grid, qs_a)
        out["cost_savings"][m] = None if b_needed is None else 1.0 - b_needed / float(costs[top])
        b_match = budget_to_reach(q_top - _EPS, grid, qs_a)
        out["match_cost_share"][m] = None if b_match is None else b_match / float(costs[top])
    return out
