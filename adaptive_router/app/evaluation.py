"""Replay recorded outcomes under uniform, random, adaptive and oracle allocation (numpy only).

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
- ``random``: `RandomPredictor`, random concave curves per query (a probe with no signal), averaged over
  several draws of one seeded stream.
- ``adaptive``: the probe's predicted curves (or any `CurvePredictor`). A probe that fell back predicts its
  population curve in every row and so reports exactly uniform's figures.
- ``oracle``: `OraclePredictor`, the true curves (an upper bound no probe can beat on these queries).

Quality is always scored with the TRUE curves (the unbiased expected reward of the chosen option, from the
recorded samples), so it is the expected reward a live run would get. Every budget must pay for the
cheapest option (a `ConfigError` otherwise, before any work), as in the router.

``savings`` at budget ``B`` is ``1 - b / B`` where ``b`` is the smallest per-query budget at which the
method's quality reaches uniform's quality at ``B`` (linear interpolation on a budget sweep); negative when
the method needs more than ``B``, ``None`` when it never gets there. For routing data (several procedures)
the report also gives, per method, the share of queries sent to the most expensive procedure that is needed
to reach ``target`` (95%) of that procedure's own quality.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.allocation import Replay
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

__all__ = [
    "DEFAULT_ROUTING_COST_RATIO",
    "METHODS",
    "budget_to_reach",
    "default_ladder",
    "evaluate_allocation",
    "parse_costs",
]

METHODS = ("uniform", "random", "adaptive", "oracle")
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
    outcomes: OutcomeSet, *, max_k: int | None = None, costs: Mapping[str, float] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The ladder an evaluation uses by default, and notes on how it was chosen.

    One procedure: best-of-k with ``k = 1..max_k`` (default: the fewest samples any query recorded, at
    most 8).
    Several procedures: one route per procedure with ``k = 1`` (or a route x k grid when ``max_k > 1``).
    Costs come from ``costs``, else from the records; routing data without recorded costs gets cost 1 for the
    procedure with the lowest mean reward up to ``DEFAULT_ROUTING_COST_RATIO`` for the highest.
    """
    from adaptive_router.allocation import Ladder

    procs = outcomes.procedures
    min_samples = min(int(outcomes.success_counts(p)[1].min()) for p in procs)
    notes: dict[str, Any] = {"costs_assumed": False}
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
        cost = outcomes.procedure_costs
        if len(procs) > 1 and len(set(cost.values())) == 1:
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
    costs, max_k
        Passed to :func:`default_ladder` when ``ladder`` is not given.
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
    >>> [round(rep["methods"][m]["quality"][0], 4) for m in ("uniform", "oracle")]
    [0.5833, 0.6667]
    >>> rep["methods"]["uniform"]["spend"]     # half the queries get a second sample
    [1.5]
    """
    if len(outcomes) == 0:
        raise ConfigError("no outcomes to evaluate")
    notes: dict[str, Any]
    if ladder is None:
        ladder, notes = default_ladder(outcomes, max_k=max_k, costs=costs)
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
    methods = list(by_method)

    lo, hi = float(opt_costs.min()), float(opt_costs.max())
    grid = np.unique(np.concatenate([np.linspace(lo, hi, sweep_points), [b for b in bud if lo <= b <= hi]]))
    sweep = {m: _curve(replay, v, grid, scores) for m, v in by_method.items()}
    at_b = {m: _curve(replay, v, bud, scores) for m, v in by_method.items()}
    uniform_q = at_b["uniform"][0]

    report: dict[str, Any] = {
        "n_queries": replay.n,
        "kind": notes["kind"],
        "procedures": list(outcomes.procedures),
        "costs": notes["costs"],
        "costs_assumed": notes["costs_assumed"],
        "max_k": notes["max_k"],
        "options": [{"procedure": o.procedure, "k": o.k, "cost": float(o.cost)} for o in ladder.options],
        "budgets": bud,
        "reranker": reranker,
        "methods": {},
        "table": [],
    }
    for m in methods:
        needed = [budget_to_reach(float(t), grid, sweep[m][0]) for t in uniform_q]
        savings = [None if nb is None else 1.0 - nb / b for nb, b in zip(needed, bud, strict=True)]
        report["methods"][m] = {
            "quality": at_b[m][0].tolist(),
            "spend": at_b[m][1].tolist(),
            "budget_to_match_uniform": needed,
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
    return report


def _routing_section(
    replay: Replay,
    ladder: Any,
    by_method: Mapping[str, Sequence[FloatArray]],
    target: float,
    scores: ScoreMany | None = None,
) -> dict[str, Any]:
    """Share of calls to the most expensive procedure needed to reach ``target`` x its quality.

    ``by_method`` maps each method to its value arrays, as :func:`_curve` takes.
    """
    costs = replay.costs
    top = int(np.argmax(costs))
    expensive = ladder.options[top].procedure
    cheap = ladder.options[int(np.argmin(costs))].procedure
    q_exp = float(replay.population_values[top])
    q_cheap = float(replay.population_values[int(np.argmin(costs))])
    goal = target * q_exp
    grid = np.linspace(float(costs.min()), float(costs.max()), 201)
    out: dict[str, Any] = {
        "expensive": expensive,
        "cheap": cheap,
        "target": target,
        "expensive_quality": q_exp,
        "cheap_quality": q_cheap,
        "target_quality": goal,
        "expensive_share": {},
        "cost_savings": {},
    }
    for m, values in by_method.items():
        qs_a, _, option_shares = _curve(replay, values, grid, scores)
        share_a = option_shares[:, top]
        order = np.argsort(share_a, kind="stable")
        share = budget_to_reach(goal, share_a[order], np.maximum.accumulate(qs_a[order]))
        out["expensive_share"][m] = share
        b_needed = budget_to_reach(goal, grid, qs_a)
        out["cost_savings"][m] = None if b_needed is None else 1.0 - b_needed / float(costs.max())
    return out
