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
the method needs more than ``B``, ``None`` when it never gets there. For routing data (several procedures)
the report also gives, per method, the share of queries sent to the best single procedure (the highest
quality; for two routes the expensive one) that is needed to reach ``target`` (95%) of its own quality.

``aiq.<method>`` (:func:`add_aiq`) is RouterBench's AIQ: the mean over ``aiq_cost_range`` (the cheapest to
the dearest option) of the method's non-decreasing cost-quality hull through its sweep points
(`adaptive_router.allocation.aiq`); the hull's own AIQ is that of the single models.

Costs are per call, in the report's ``cost_unit``: recorded costs, ``costs=``, or dollars priced from the
recorded token counts with ``prices=`` (a `~adaptive_router.prices.PriceTable`; a recorded cost wins).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.allocation.aiq import Frontier
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
    "DEFAULT_ROUTING_COST_RATIO",
    "LOG_COST_DECADES",
    "METHODS",
    "add_aiq",
    "budget_to_reach",
    "default_budgets",
    "default_ladder",
    "evaluate_allocation",
    "parse_costs",
    "sweep_budgets",
]

METHODS = ("hull", "best_single", "uniform", "random", "adaptive", "oracle")
LOG_COST_DECADES = 1.5
"""Option costs spanning more decades than this get a log-spaced sweep (and a log axis in plots)."""
DEFAULT_ROUTING_COST_RATIO = 10.0
"""Cost of the best procedure relative to the worst when routing data records no costs."""
_EPS = 1e-9


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
) -> tuple[Any, dict[str, Any]]:
    """The ladder an evaluation uses by default, and notes on how it was chosen.

    One procedure: best-of-k with ``k = 1..max_k`` (default: the fewest samples any query recorded, at
    most 8).
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
        k = max_k if max_k is not None else min(min_samples, 8)
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


ScoreMany = Callable[[Replay, Sequence[tuple[FloatArray, float]]], Sequence[Any]]
"""Scores ``[replay.score(values, budget) for values, budget in pairs]``, possibly elsewhere (``--ray``)."""


def _score_here(replay: Replay, pairs: Sequence[tuple[FloatArray, float]]) -> list[Any]:
    return [replay.score(v, b) for v, b in pairs]


def _curve(
    replay: Replay, values: Sequence[FloatArray], budgets: Iterable[float], scores: ScoreMany | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Quality, spend and option shares at each budget: the mean over allocating on each of ``values``."""
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
    target: float = 0.95,
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
        ladder, notes = default_ladder(outcomes, max_k=max_k, costs=costs, prices=prices)
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
    methods = [*_FIXED, *by_method]

    grid = sweep_budgets(opt_costs, bud, sweep_points)
    sweep = {m: _fixed_curve(replay, m, grid) for m in _FIXED}
    sweep.update({m: _curve(replay, v, grid, scores) for m, v in by_method.items()})
    at_b = {m: _fixed_curve(replay, m, bud) for m in _FIXED}
    at_b.update({m: _curve(replay, v, bud, scores) for m, v in by_method.items()})
    hull_q = at_b["hull"][0]

    on_hull = set(replay.frontier.index_.tolist())
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
        "single_models": [
            {"procedure": o.procedure, "k": o.k, "cost": float(o.cost),
             "quality": float(replay.population_values[j]), "on_hull": j in on_hull}
            for j, o in enumerate(ladder.options)
        ],
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
    report["routing"] = _routing_section(replay, ladder, by_method, target, scores) if (
        notes["kind"] == "routing"
    ) else None
    return add_aiq(report)


_FIXED = ("hull", "best_single")
"""The baselines read off the fixed policies directly (no allocation to replay)."""


def _fixed_curve(
    replay: Replay, name: str, budgets: Iterable[float]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Quality, spend and option shares of ``replay.hull`` or ``replay.best_single`` at each budget."""
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
    """Budgets ``evaluate`` uses when none are given: 1, 2, 4 cost units, or for money (``$``) five budgets
    log-spaced from the cheapest to the dearest option.

    Examples
    --------
    >>> default_budgets([1.0, 8.0])
    [1.0, 2.0, 4.0]
    >>> [round(b, 6) for b in default_budgets([1e-5, 1e-3], money=True)]
    [1e-05, 3.2e-05, 0.0001, 0.000316, 0.001]
    """
    if not money:
        return [1.0, 2.0, 4.0]
    lo, hi = float(min(costs)), float(max(costs))
    return [float(b) for b in np.geomspace(lo, hi, 5)] if hi > lo else [lo]


def add_aiq(report: dict[str, Any]) -> dict[str, Any]:
    """Set ``report["aiq"]``, ``report["aiq_log"]`` (per method) and ``report["aiq_cost_range"]``.

    A method's AIQ is the mean, over the cheapest to the dearest option's cost, of the non-decreasing
    cost-quality hull through its sweep points ``(sweep.spend, sweep.quality)``
    (:func:`adaptive_router.allocation.aiq.aiq`); ``hull``'s is that of the single models, exactly.
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


def _routing_section(
    replay: Replay,
    ladder: Any,
    by_method: Mapping[str, Sequence[FloatArray]],
    target: float,
    scores: ScoreMany | None = None,
) -> dict[str, Any]:
    """Share of calls to the best single option needed to reach ``target`` x its quality.

    The best option is the one of the highest mean quality (the cheapest of equals): the most expensive
    one for two routes where it is better. ``hull`` and ``best_single`` are read off the fixed policies,
    the other methods in ``by_method`` (their value arrays, as :func:`_curve` takes) swept over budgets.
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
    grid = np.linspace(float(costs.min()), float(costs.max()), 201)
    for m, values in by_method.items():
        qs_a, _, option_shares = _curve(replay, values, grid, scores)
        share_a = option_shares[:, top]
        order = np.argsort(share_a, kind="stable")
        share = budget_to_reach(goal, share_a[order], np.maximum.accumulate(qs_a[order]))
        out["expensive_share"][m] = share
        b_needed = budget_to_reach(goal, grid, qs_a)
        out["cost_savings"][m] = None if b_needed is None else 1.0 - b_needed / float(costs[top])
    return out
