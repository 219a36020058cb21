"""Replay recorded outcomes under the baselines, adaptive and oracle allocation, with AIQ (numpy only).

Every method is a predictor (`adaptive_router.predictors`) and every one is scored by the same
`adaptive_router.allocation.Replay`, the one the probe's validation uses: allocate the same per-query budget
``B`` over the same queries with the same ladder of options (best-of-k sample counts, or routes) on the
method's *predicted* values, then score each query by the *true* value of what it got. Only the predictor
differs:

- ``uniform``: `PopulationPredictor` fitted on these outcomes, the mean curve in every row. Identical rows
  are exchangeable, so the replay scores them as the mixture the allocator buys, and that mixture is
  uniform allocation as defined in `adaptive_router.allocation.replay`: every query gets the same option
  (a fixed policy), and a budget between two options mixes the two vertices of the fixed policies' upper
  concave (cost, quality) hull whose costs bracket it, in the proportion that spends ``B`` (rounded down to
  whole queries). For best-of-k that is the mean curve itself; for two routes, the line from the cheap
  route to the expensive one; for more options, only the hull's vertices are ever mixed.
- ``hull``: the same baseline read exactly (`Replay.hull`): the fixed policies' non-decreasing upper
  concave (cost, quality) hull at ``B``, with fractional shares. It never falls as ``B`` rises, and it is
  the reference of ``savings`` and of the routing shares. ``uniform`` is within one query's step below it.
- ``best_single``: the best single option (fixed policy) that costs at most ``B``, no mixing
  (`Replay.best_single`); the report's ``single_models`` lists every option alone (cost, quality, on hull).
- ``random``: `RandomPredictor`, random concave curves per query (a probe with no signal), averaged over
  several draws of one seeded stream.
- ``adaptive``: the probe's predicted curves (or any `CurvePredictor`). A probe that fell back predicts its
  population curve in every row and so reports exactly uniform's figures.
- ``oracle``: `OraclePredictor`, the true curves (an upper bound no probe can beat on these queries).

Quality is always scored with the TRUE curves (the unbiased expected reward of the chosen option, from the
recorded samples), so it is the expected reward a live run would get. Every budget must pay for the
cheapest option (a `ConfigError` otherwise, before any work), as in the router.

``savings`` at budget ``B`` is ``1 - b / B`` where ``b`` is the smallest per-query budget at which the
method's quality reaches the hull's quality at ``B`` (linear interpolation on a budget sweep); negative when
the method needs more than ``B``, ``None`` when it never gets there (the sweep and the reading:
`adaptive_router.app.budget_sweep`). For routing data (several procedures) the report also gives, per
method, the share of queries sent to the best single procedure (the highest quality; for two routes the
expensive one) that is needed to reach ``target`` (95%) of its own quality
(`adaptive_router.app.routing_report`).

``single_models`` and ``aiq.<method>``, RouterBench's AIQ (the mean over ``aiq_cost_range`` of the method's
non-decreasing cost-quality hull; the hull's own AIQ is that of the single models), come from
`adaptive_router.app.aiq_report`.

Costs are per call, in the report's ``cost_unit``: recorded costs, ``costs=``, or dollars priced from the
recorded token counts with ``prices=`` (a `~adaptive_router.prices.PriceTable`; a recorded cost wins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.app.aiq_report import add_aiq, single_models
from adaptive_router.app.budget_sweep import (
    FIXED,
    ScoreMany,
    budget_to_reach,
    fixed_curve,
    score_curve,
    sweep_budgets,
)
from adaptive_router.app.routing_report import DEFAULT_TARGET, routing_section
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.predictors import (
    CurvePredictor,
    Curves,
    FloatArray,
    OraclePredictor,
    PopulationPredictor,
    RandomPredictor,
)
from adaptive_router.prices import PriceTable

__all__ = [
    "DEFAULT_MAX_K",
    "DEFAULT_ROUTING_COST_RATIO",
    "METHODS",
    "VOTE_MAX_K",
    "default_ladder",
    "default_max_k",
    "evaluate_allocation",
    "parse_costs",
]

METHODS = ("hull", "best_single", "uniform", "random", "adaptive", "oracle")
DEFAULT_ROUTING_COST_RATIO = 10.0
"""Cost of the best procedure relative to the worst when routing data records no costs."""
DEFAULT_MAX_K = 8
"""Largest k of best-of-k by default (at most the fewest samples any query recorded)."""
VOTE_MAX_K = 40
"""Largest k of best-of-k by default with ``reranker="vote"``: a majority vote keeps gaining long past 8
samples (self-consistency is read at 20 and 40), and a vote sampled in rounds needs the room to give a split
vote many samples (ESC and Adaptive-Consistency are capped at 40 too)."""


def default_max_k(outcomes: OutcomeSet, reranker: str | None = None) -> int:
    """The largest k an evaluation, ``train`` and the round choice use by default: 1 for routing data
    (several procedures), else the fewest samples any query recorded, at most `DEFAULT_MAX_K`
    (`VOTE_MAX_K` for ``reranker="vote"``)."""
    procs = outcomes.procedures
    if len(procs) > 1:
        return 1
    cap = VOTE_MAX_K if reranker == "vote" else DEFAULT_MAX_K
    return min(cap, int(outcomes.success_counts(procs[0])[1].min()))


def parse_costs(text: str) -> dict[str, float]:
    """Parse ``"cheap=1,expensive=10"`` into ``{"cheap": 1.0, "expensive": 10.0}``.

    Examples
    --------
    >>> parse_costs("cheap=1, expensive=10")
    {'cheap': 1.0, 'expensive': 10.0}
    """
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"cannot parse cost {part!r}; write costs as name=number,name=number") from None
    if not out:
        raise ConfigError(f"no costs in {text!r}; write costs as name=number,name=number")
    return out


def default_ladder(
    outcomes: OutcomeSet,
    *,
    max_k: int | None = None,
    costs: Mapping[str, float] | None = None,
    prices: PriceTable | None = None,
    reranker: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The ladder an evaluation uses by default, and notes on how it was chosen.

    One procedure: best-of-k with ``k = 1..max_k`` (default: `default_max_k` for ``reranker``).
    Several procedures: one route per procedure with ``k = 1`` (or a route x k grid when ``max_k > 1``).
    Costs come from ``costs``, else from the records (`OutcomeSet.mean_costs`: a recorded cost, else with
    ``prices`` the recorded token counts priced); routing data with neither gets cost 1 for the procedure
    with the lowest mean reward up to ``DEFAULT_ROUTING_COST_RATIO`` for the highest.
    """
    from adaptive_router.allocation import Ladder

    procs = outcomes.procedures
    min_samples = min(int(outcomes.success_counts(p)[1].min()) for p in procs)
    notes: dict[str, Any] = {"costs_assumed": False}
    if costs is not None and prices is not None:
        raise ConfigError("give per-call costs or a price table, not both (--costs or --prices)")
    if costs is not None:
        unknown = sorted(set(costs) - set(procs))
        missing = sorted(set(procs) - set(costs))
        if unknown or missing:
            raise ConfigError(
                f"costs name {sorted(costs)} but the outcomes record procedures {list(procs)}; "
                "give one cost per procedure"
            )
        cost = {p: float(costs[p]) for p in procs}
    else:
        cost = outcomes.mean_costs(prices)
        if prices is None and len(procs) > 1 and len(set(cost.values())) == 1:
            means = {p: float(outcomes.mean_rewards(p).mean()) for p in procs}
            order = sorted(procs, key=lambda p: means[p])
            steps = np.linspace(1.0, DEFAULT_ROUTING_COST_RATIO, len(procs))
            cost = {p: float(c) for p, c in zip(order, steps, strict=True)}
            notes["costs_assumed"] = True
    if any(c <= 0 for c in cost.values()):
        raise ConfigError(f"procedure costs must be > 0, got {cost}")
    if len(procs) == 1:
        k = max_k if max_k is not None else default_max_k(outcomes, reranker)
        if k > min_samples:
            raise ConfigError(
                f"max_k={k} but some queries recorded only {min_samples} sample(s); best-of-k needs at least "
                f"k samples per query to score it. Use --max-k {min_samples} or record more samples."
            )
        ladder = Ladder.best_of_k(k, cost=cost[procs[0]], procedure=procs[0])
        notes["kind"] = "best_of_k"
    else:
        k = max_k if max_k is not None else 1
        if k > min_samples:
            raise ConfigError(
                f"max_k={k} but some queries recorded only {min_samples} sample(s) per procedure"
            )
        ladder = Ladder.routes(cost) if k == 1 else Ladder.grid(cost, max_k=k)
        notes["kind"] = "routing"
    notes["costs"] = cost
    notes["max_k"] = k
    return ladder, notes


def _check_budgets(budgets: Sequence[float], ladder: Any) -> list[float]:
    """Budgets as floats: positive, finite and at least the cheapest option, as the router requires."""
    bud = [float(b) for b in budgets]
    if not bud or any(not np.isfinite(b) or b <= 0 for b in bud):
        raise ConfigError(f"budgets must be positive numbers, got {list(budgets)}")
    cheapest = min(ladder.options, key=lambda o: o.cost)
    low = [b for b in bud if b < cheapest.cost * (1.0 - 1e-12)]
    if low:
        raise InfeasibleBudgetError(
            f"budgets {low} are below the cheapest option ({cheapest.procedure!r} x{cheapest.k}, cost "
            f"{cheapest.cost:g}): every query gets at least one option, so no method can spend less; "
            f"use budgets >= {cheapest.cost:g}"
        )
    return bud


def _predicted_values(
    name: str, source: Curves | CurvePredictor, texts: list[str], ladder: Any, procedures: Sequence[str],
    shape: tuple[int, int],
) -> FloatArray:
    """A method's ``(n, m)`` option values from its curves or its predictor, checked against the ladder."""
    predict = getattr(source, "predict_curves", None)
    curves = predict(texts) if callable(predict) else source
    if not isinstance(curves, Mapping):
        raise ConfigError(
            f"{name}: give curves {{procedure: (n, K)}} or a CurvePredictor, got {type(source).__name__}"
        )
    missing = sorted(set(procedures) - set(curves))
    if missing:
        raise ConfigError(f"{name}: predicted curves lack procedures {missing} that the outcomes record")
    kmax = ladder.max_k
    short = [p for p in procedures if np.asarray(curves[p]).shape[1] < kmax]
    if short:
        raise ConfigError(f"{name}: predicted curves of {short} stop before k={kmax}; lower --max-k")
    vals = np.asarray(ladder.values({p: np.asarray(curves[p])[:, :kmax] for p in curves}), dtype=float)
    if vals.shape != shape:
        raise ConfigError(f"{name}: predicted curves have {vals.shape[0]} rows for {shape[0]} queries")
    return vals


def evaluate_allocation(
    outcomes: OutcomeSet,
    *,
    budgets: Sequence[float],
    predicted: Curves | CurvePredictor | None = None,
    ladder: Any = None,
    costs: Mapping[str, float] | None = None,
    max_k: int | None = None,
    extra_methods: Mapping[str, Curves | CurvePredictor] | None = None,
    random_seeds: int = 5,
    sweep_points: int = 41,
    target: float = DEFAULT_TARGET,
    seed: int = 0,
    reranker: str | None = None,
    scores: ScoreMany | None = None,
    prices: PriceTable | None = None,
    cost_unit: str | None = None,
) -> dict[str, Any]:
    """Replay ``outcomes`` under each allocation method at each per-query budget.

    Parameters
    ----------
    outcomes : OutcomeSet
        The recorded outcomes of the queries to evaluate on (held out from the probe's training data).
    budgets : sequence of float
        Per-query budgets ``B`` in cost units (for best-of-k at cost 1: samples per query), none below the
        cheapest option.
    predicted : curves or CurvePredictor, optional
        ``{procedure: (n, K)}`` predicted by a probe for these queries, or the probe itself (it is asked
        for ``outcomes.texts()`` after the budgets are checked); without it ``adaptive`` is skipped.
    ladder : Ladder, optional
        The options; default :func:`default_ladder`.
    costs, max_k, prices
        Passed to :func:`default_ladder` when ``ladder`` is not given: per-call costs, the largest ``k``,
        a `PriceTable` to price the recorded token counts with (a recorded cost wins).
    cost_unit : str, optional
        What a cost unit is, for the report and its readers: ``"$"`` (the default with ``prices``) prints
        money per 1,000 queries; default ``"units"``.
    extra_methods : mapping, optional
        More named curves or predictors to evaluate beside ``adaptive`` (e.g. an unshrunk probe).
    random_seeds, sweep_points, target, seed
        Random predictors averaged for ``random`` (drawn one after the other from ``seed``); points of the
        budget sweep; the routing quality target fraction.
    reranker : {"verifier", "vote", "score"}, optional
        How the best of ``k`` is chosen in the true curves (see `OutcomeSet.true_curves`); ``None``: the
        recorded scores when there are any, else the best reward.
    scores : callable, optional
        ``scores(replay, pairs)`` returns ``[replay.score(values, budget) for values, budget in pairs]``;
        ``evaluate --ray`` passes one that runs them on a Ray cluster (same results). Default: here.

    Returns
    -------
    dict
        JSON-ready report; keys are documented in ``docs/cli.md`` ("The evaluation report").

    Raises
    ------
    ConfigError
        No outcomes, a budget that is not positive or is below the cheapest option
        (`InfeasibleBudgetError`), or predictions that do not fit the outcomes.

    Examples
    --------
    >>> from adaptive_router.outcomes import OutcomeSet
    >>> data = OutcomeSet.from_dicts([{"id": str(i), "prompt": str(i),
    ...     "outcomes": {"m": {"successes": i % 3, "samples": 2}}} for i in range(30)])
    >>> rep = evaluate_allocation(data, budgets=[1.5], max_k=2)
    >>> [round(rep["methods"][m]["quality"][0], 4) for m in ("hull", "uniform", "oracle")]
    [0.5833, 0.5833, 0.6667]
    >>> rep["methods"]["uniform"]["spend"]     # half the queries get a second sample
    [1.5]
    >>> {m: round(rep["aiq"][m], 4) for m in ("hull", "oracle")}, rep["aiq_cost_range"]
    ({'hull': 0.5833, 'oracle': 0.6389}, [1.0, 2.0])
    """
    if len(outcomes) == 0:
        raise ConfigError("no outcomes to evaluate")
    notes: dict[str, Any]
    if ladder is None:
        ladder, notes = default_ladder(
            outcomes, max_k=max_k, costs=costs, prices=prices, reranker=reranker
        )
    else:
        kind = "routing" if len({o.procedure for o in ladder.options}) > 1 else "best_of_k"
        notes = {"kind": kind, "costs_assumed": False, "max_k": max(o.k for o in ladder.options)}
        notes["costs"] = {o.procedure: o.cost / o.k for o in ladder.options}
    bud = _check_budgets(budgets, ladder)
    kmax = ladder.max_k
    opt_costs = np.asarray(ladder.costs, dtype=np.float64)
    true_curves = dict(outcomes.true_curves(kmax, reranker=reranker))
    true_values = np.asarray(ladder.values(true_curves), dtype=np.float64)
    if np.isnan(true_values).any():
        raise ConfigError("some options have no true value (too few recorded samples); lower max_k")
    replay = Replay(true_values, opt_costs)
    texts = outcomes.texts()

    per_call = {o.procedure: o.cost / o.k for o in ladder.options}
    cheapest_first = sorted(per_call, key=lambda p: per_call[p])
    draws = np.random.default_rng(seed)  # one stream: the seeds' curves follow each other
    predictors: dict[str, list[Curves | CurvePredictor]] = {
        "uniform": [PopulationPredictor().fit(true_curves)],
        "random": [
            RandomPredictor(procedures=cheapest_first, max_k=kmax, seed=draws)
            for _ in range(max(1, random_seeds))
        ],
    }
    named = dict(extra_methods or {})
    if predicted is not None:
        named = {"adaptive": predicted, **named}
    predictors.update({name: [source] for name, source in named.items()})
    predictors["oracle"] = [OraclePredictor().fit(texts, true_curves)]
    shape = (replay.n, replay.m)
    by_method = {
        m: [_predicted_values(m, src, texts, ladder, outcomes.procedures, shape) for src in sources]
        for m, sources in predictors.items()
    }
    methods = [*FIXED, *by_method]

    grid = sweep_budgets(opt_costs, bud, sweep_points)
    sweep = {m: fixed_curve(replay, m, grid) for m in FIXED}
    sweep.update({m: score_curve(replay, v, grid, scores) for m, v in by_method.items()})
    at_b = {m: fixed_curve(replay, m, bud) for m in FIXED}
    at_b.update({m: score_curve(replay, v, bud, scores) for m, v in by_method.items()})
    hull_q = at_b["hull"][0]

    report: dict[str, Any] = {
        "n_queries": replay.n,
        "kind": notes["kind"],
        "procedures": list(outcomes.procedures),
        "costs": notes["costs"],
        "costs_assumed": notes["costs_assumed"],
        "cost_unit": cost_unit or ("$" if prices is not None else "units"),
        "costs_priced": prices is not None,
        "max_k": notes["max_k"],
        "options": [{"procedure": o.procedure, "k": o.k, "cost": float(o.cost)} for o in ladder.options],
        "single_models": single_models(replay, ladder),
        "budgets": bud,
        "reranker": reranker,
        "methods": {},
        "table": [],
    }
    for m in methods:
        needed = [budget_to_reach(float(t), grid, sweep[m][0]) for t in hull_q]
        savings = [None if nb is None else 1.0 - nb / b for nb, b in zip(needed, bud, strict=True)]
        report["methods"][m] = {
            "quality": at_b[m][0].tolist(),
            "spend": at_b[m][1].tolist(),
            "budget_to_match_hull": needed,
            "savings": savings,
            "option_shares": at_b[m][2].tolist(),
        }
        for i, b in enumerate(bud):
            report["table"].append(
                {
                    "method": m,
                    "budget": b,
                    "quality": float(at_b[m][0][i]),
                    "spend": float(at_b[m][1][i]),
                    "savings": savings[i],
                }
            )
    report["sweep"] = {
        "budgets": grid.tolist(),
        "quality": {m: sweep[m][0].tolist() for m in methods},
        "spend": {m: sweep[m][1].tolist() for m in methods},
    }
    report["routing"] = routing_section(replay, ladder, by_method, target, scores) if (
        notes["kind"] == "routing"
    ) else None
    return add_aiq(report)
