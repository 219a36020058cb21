"""The cascade of an evaluation of routing data: cheap samples in rounds, escalation on evidence (numpy only).

For routing data whose cheapest procedure records several samples per query, :func:`add_cascade_method`
adds ``sequential`` to an :func:`~adaptive_router.app.evaluation.evaluate_allocation` report: a
:class:`~adaptive_router.allocation.CascadePlanner` at each budget, the cheapest procedure sampled in rounds
and escalated to the best single procedure (the routing section's ``expensive``) where a
:class:`~adaptive_router.allocation.CascadeModel` says the cheap samples so far leave most to gain. It is
replayed by :func:`~adaptive_router.allocation.replay_rounds` (seeded Monte Carlo over the order of each
query's cheap samples; an escalated query scores the strong procedure's mean recorded reward).

The ``CascadeModel`` comes from ``train`` (``cascade.json`` in the probe folder, fitted on the training
outcomes for each reranker they support) or, without one, is fitted on the evaluated outcomes and the
report says so (in-sample).

``routing.cost_savings.sequential`` is ``1 - B / cost(expensive)`` at the smallest budget ``B`` of the sweep
where the cascade reaches the routing target (95% of the expensive procedure's quality), and
``routing.expensive_share.sequential`` the share of queries it escalates there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import CascadeModel, CascadePlanner, ReplayResult, Rounds, replay_rounds
from adaptive_router.app.budget_sweep import (
    REPLAY_FIELDS,
    add_sequential_method,
    budget_to_reach,
    sweep_replays,
)
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet

__all__ = [
    "CASCADE_FILE", "STATE_EVIDENCE", "add_cascade_method", "cascade_procedures", "fit_cascade_model",
    "load_cascade_model", "save_cascade_models",
]  # fmt: skip

CASCADE_FILE = "cascade.json"
"""The fitted `CascadeModel` per reranker (``verifier``, and ``vote`` when the cheap samples record answers)
``train`` writes beside the probe for routing data with several cheap samples."""
STATE_EVIDENCE = {"verifier": "rewards", "vote": "answers"}
"""The rerankers whose evidence a `CascadeModel`'s states read (solved or not; the leading answer's count),
and that evidence."""


def cascade_procedures(outcomes: OutcomeSet, costs: dict[str, float]) -> tuple[str, str] | None:
    """``(cheap, strong)`` of a cascade over routing ``outcomes``, or None when there is none to run: the
    cheapest procedure, if it records at least two samples for some query, and the best single procedure
    by mean reward (the dearest of equals is not needed: the cheapest of them)."""
    procs = list(outcomes.procedures)
    if len(procs) < 2:
        return None
    cheap = min(procs, key=lambda p: (costs[p], procs.index(p)))
    if int((~np.isnan(outcomes.rewards(cheap))).sum(axis=1).max()) < 2:
        return None
    quality = {p: float(np.nanmean(np.nanmean(outcomes.rewards(p), axis=1))) for p in procs if p != cheap}
    strong = max(quality, key=lambda p: (quality[p], -costs[p]))
    return cheap, strong


def _cascade(
    outcomes: OutcomeSet, reranker: str, costs: dict[str, float]
) -> tuple[tuple[str, str] | None, str | None]:
    """``((cheap, strong), None)`` when ``outcomes`` read with ``reranker`` have a cascade to run, else
    ``(None, why not)``."""
    pair = cascade_procedures(outcomes, costs)
    if pair is None:
        return None, "the cascade needs several recorded samples per query of the cheapest procedure"
    if reranker not in STATE_EVIDENCE:
        return None, f"the cascade reads a verifier's or the votes' evidence, not {reranker!r}"
    if reranker == "vote" and outcomes.answers(pair[0]) is None:
        return None, "--reranker vote needs the cheap samples' answers"
    return pair, None


def fit_cascade_model(outcomes: OutcomeSet, reranker: str, costs: dict[str, float]) -> CascadeModel | None:
    """The `CascadeModel` of ``outcomes`` read with ``reranker`` (``verifier`` or ``vote``); None when the
    data has no cascade (see :func:`cascade_procedures`) or the reranker gives no evidence it can read."""
    pair, _ = _cascade(outcomes, reranker, costs)
    if pair is None:
        return None
    cheap, strong = pair
    coded = outcomes.answers(cheap) if reranker == "vote" else None
    return CascadeModel().fit(
        outcomes.rewards(cheap), outcomes.rewards(strong), answers=None if coded is None else coded[0]
    )


def save_cascade_models(folder: str | Path, outcomes: OutcomeSet, costs: dict[str, float]) -> list[str]:
    """Fit the `CascadeModel` of every reranker the training ``outcomes`` support and write them to
    ``folder/cascade.json`` (``train`` does, beside the probe); the rerankers written (none: no file)."""
    models = {r: m for r in STATE_EVIDENCE if (m := fit_cascade_model(outcomes, r, costs)) is not None}
    if models:
        data = {r: m.to_dict() for r, m in models.items()}
        (Path(folder) / CASCADE_FILE).write_text(json.dumps(data), encoding="utf-8")
    return list(models)


def load_cascade_model(folder: str | Path, reranker: str) -> CascadeModel | None:
    """The `CascadeModel` for ``reranker`` in a probe folder's ``cascade.json``, or None without one."""
    path = Path(folder) / CASCADE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); retrain the probe") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a cascade file; retrain the probe")
    return None if reranker not in data else CascadeModel.from_dict(data[reranker])


def add_cascade_method(
    report: dict[str, Any],
    outcomes: OutcomeSet,
    *,
    reranker: str,
    model: CascadeModel | None = None,
    seeds: int = 16,
    sweep_seeds: int = 4,
    replay_fn: Callable[..., ReplayResult] = replay_rounds,
) -> dict[str, Any]:
    """Add the cascade as ``sequential`` to a routing report, in place (see the module docstring).

    Returns ``report``; without a cascade to run only ``sequential_notes.skipped`` says why.
    """
    costs = {p: float(c) for p, c in report["costs"].items()}
    pair, why = _cascade(outcomes, reranker, costs)
    if pair is None:
        report["sequential_notes"] = {"skipped": why}
        return report
    cheap, strong = pair
    kind = STATE_EVIDENCE[reranker]
    source = "train (the probe's cascade.json)"
    if model is None:
        model = fit_cascade_model(outcomes, reranker, costs)
        source = "fitted on the evaluated outcomes (in-sample: no probe with a cascade.json was given)"
    assert model is not None
    if model.needs != kind:
        raise ConfigError(
            f"the given CascadeModel reads {model.needs!r} but --reranker {reranker} gives {kind!r}"
        )
    rewards = outcomes.rewards(cheap)
    coded = outcomes.answers(cheap)
    codes = None if coded is None else coded[0]
    escalate = outcomes.rewards(strong)
    unit, big = costs[cheap], costs[strong]
    settings = Rounds()  # the router's defaults: the rounds a live cascade runs
    evidence = settings.evidence_for(kind)
    max_k = rewards.shape[1]

    def replay(b: float, n_seeds: int) -> ReplayResult | None:
        if b < unit * (1 - 1e-12):
            return None  # not even one cheap sample each
        planner = CascadePlanner(
            evidence=evidence, model=model, budget_per_query=b, max_k=max_k, unit_cost=unit,
            escalate_cost=big, max_rounds=settings.max_rounds,
        )  # fmt: skip
        return replay_fn(planner, rewards, answers=codes, seeds=n_seeds, escalation_rewards=escalate)

    bud = [float(b) for b in report["budgets"]]
    grid = [float(b) for b in report["sweep"]["budgets"]]
    hull_q = list(report["methods"]["hull"]["quality"])
    entry, sweep = sweep_replays(
        replay, bud, grid, hull_q, seeds=seeds, sweep_seeds=sweep_seeds, fields=(*REPLAY_FIELDS, "escalated")
    )
    add_sequential_method(report, "sequential", entry, sweep)
    ran = [(b, r) for b, r in zip(grid, sweep, strict=True) if r is not None]
    routing = report.get("routing")
    if routing is not None and ran:
        ran_b = np.array([b for b, _ in ran])
        ran_q = np.array([r.quality for _, r in ran])
        b_goal = budget_to_reach(float(routing["target_quality"]), ran_b, ran_q)
        routing["cost_savings"]["sequential"] = None if b_goal is None else 1.0 - b_goal / big
        routing["expensive_share"]["sequential"] = (
            None if b_goal is None else float(np.interp(b_goal, ran_b, [r.escalated for _, r in ran]))
        )
    report["sequential_notes"] = {
        "reranker": reranker,
        "cascade": {"cheap": cheap, "strong": strong, "cheap_cost": unit, "escalate_cost": big},
        "settings": (
            f"CascadePlanner(max_rounds={settings.max_rounds}, first_round='auto', evidence={evidence!r})"
        ),
        "cascade_model": source,
        "seeds": seeds,
        "sweep_seeds": sweep_seeds,
        "monte_carlo": (
            f"sequential is seeded Monte Carlo over the order of each query's recorded {cheap!r} samples: "
            f"{seeds} orderings at each budget ({sweep_seeds} at the sweep's other points); an escalated "
            f"query scores {strong!r}'s mean recorded reward; quality_se is the standard error over orderings"
        ),
    }
    return report
