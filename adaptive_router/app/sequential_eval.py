"""Sequential methods of an evaluation: the round planner and the round baselines on recorded outcomes.

(Routing data goes to :func:`~adaptive_router.app.cascade_eval.add_cascade_method`: a cascade in rounds.)

:func:`add_round_methods` adds up to four methods to an
:func:`~adaptive_router.app.evaluation.evaluate_allocation` report of best-of-k data (one procedure), replayed
by :func:`~adaptive_router.allocation.replay_rounds` (seeded Monte Carlo over the order in which each
query's recorded samples are drawn):

- ``sequential``: a round planner at each budget (``max_k`` and the unit cost from the report's ladder),
  with the round settings ``train`` chose on validation for that budget (the probe's ``rounds.json``,
  :mod:`~adaptive_router.app.round_choice`: the posterior ``Rounds()`` or the learned ``Rounds(model=...)``),
  else the router's default ``Rounds()``, the ones live routing uses. Its evidence follows the reranker:
  `VerifierEvidence` (``verifier``), `VoteEvidence` (``vote``), `ScoreEvidence` fitted on the evaluated
  outcomes (``score``: in-sample, noted in the report). The probe's predicted curves are the prior when
  there is a probe; without one the evidence model's population prior (as in live routing).
- ``round_robin`` (``--reranker verifier`` only): `RoundRobinUnsolved`, one sample each, then the rest of
  the budget one sample per round to every query not solved yet, at each budget (``max_k`` as above). The
  simple policy a verifier suggests, with as many rounds as the budget pays for.
- ``esc``: `EarlyStoppingSC` with its published window 5 and ``max_k`` = min(`VOTE_MAX_K` (40), samples
  recorded), and ``adaptive_consistency``: `AdaptiveConsistency` with its published threshold 0.95 and the
  same ``max_k``; only when the samples record answers. Neither has a budget: the same point at every
  budget, its actual spend reported; both return the plurality answer, so compare them with ``--reranker
  vote``.

``savings`` are at equal quality against the hull's quality at each budget (``methods.hull.quality``), as
for the one-shot methods: ``sequential`` and ``round_robin`` are replayed over the report's budget sweep
(with fewer seeds) and :func:`~adaptive_router.app.budget_sweep.budget_to_reach` reads the budget they need
(``budget_to_match_hull``); ``esc`` and ``adaptive_consistency`` save ``1 - spend / B`` where their
quality reaches the hull's at ``B`` (``None`` where it does not), and need their spend.

numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from adaptive_router.allocation import (
    AdaptiveConsistency,
    CascadeModel,
    EarlyStoppingSC,
    ReplayResult,
    RoundChoice,
    RoundRobinUnsolved,
    Rounds,
    ScoreEvidence,
    replay_rounds,
)
from adaptive_router.app.budget_sweep import add_sequential_method, budget_to_reach, sweep_replays
from adaptive_router.app.cascade_eval import STATE_EVIDENCE, add_cascade_method
from adaptive_router.app.evaluation import VOTE_MAX_K
from adaptive_router.curves import expected_majority_vote
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.predictors import FloatArray

__all__ = [
    "AC_THRESHOLD",
    "ESC_WINDOW",
    "RERANKERS",
    "RerankedOutcomes",
    "add_round_methods",
    "check_reranker",
    "resolve_reranker",
]

RERANKERS = ("verifier", "vote", "score")
"""How the best of k is chosen: best reward (a verifier), majority vote over answers, best recorded score."""
ESC_WINDOW = 5
"""Early-Stopping SC's published window (Li et al., ICLR 2024)."""
AC_THRESHOLD = 0.95
"""Adaptive-Consistency's published stopping threshold (Aggarwal et al., EMNLP 2023)."""
_KIND = {**STATE_EVIDENCE, "score": "scores"}
"""The evidence each reranker gives a round planner per sample."""
_EPS = 1e-9


def resolve_reranker(outcomes: OutcomeSet, reranker: str | None) -> str:
    """The reranker an evaluation uses: ``reranker``, or by default ``score`` when scores are recorded,
    else ``verifier`` (today's curves either way)."""
    if reranker is None:
        procs = outcomes.procedures
        return "score" if procs and all(outcomes.scores(p) is not None for p in procs) else "verifier"
    return reranker


def check_reranker(outcomes: OutcomeSet, reranker: str | None) -> str:
    """Check that the outcomes record what ``reranker`` needs, before any work; return it resolved.

    Raises
    ------
    ConfigError
        An unknown reranker, ``vote`` without recorded answers, or ``score`` without recorded scores.
    """
    if reranker is not None and reranker not in RERANKERS:
        raise ConfigError(f"--reranker {reranker!r}; choose one of {', '.join(RERANKERS)}")
    name = resolve_reranker(outcomes, reranker)
    for p in outcomes.procedures:
        if name == "vote" and not outcomes.can_vote(p):
            raise ConfigError(
                f"--reranker vote needs each sample's 'answer', but procedure {p!r} records none; label with "
                "a verifier that extracts answers (or --final-answer), or use --reranker verifier"
            )
        if name == "score" and outcomes.scores(p) is None:
            raise ConfigError(
                f"--reranker score needs each sample's 'score', but procedure {p!r} records none; label with "
                "--reward-model, or use --reranker verifier"
            )
    return name


class RerankedOutcomes(OutcomeSet):
    """The records of an `OutcomeSet` whose ``true_curves`` choose the best of k by ``reranker`` (for
    ``train --reranker``: the probe learns the curves of the reranker it will route with)."""

    def __init__(self, outcomes: OutcomeSet, reranker: str) -> None:
        super().__init__(list(outcomes))
        self.reranker = reranker

    def true_curves(self, max_k: int, *, reranker: str | None = None) -> dict[str, FloatArray]:
        return super().true_curves(max_k, reranker=reranker or self.reranker)


SC_K = 20
"""The self-consistency reference of vote data: the plurality of ``SC_K`` samples for every query."""


def _self_consistency(
    report: Mapping[str, Any], codes: np.ndarray, rewards: FloatArray, unit: float
) -> dict[str, Any]:
    """Uniform self-consistency at `SC_K` (exact, from the recorded samples; every query recorded at least
    `SC_K`) and the samples per query each sequential method needs to reach it: ``sequential`` read off the
    report's sweep (interpolated; its quality there is replayed with the sweep's fewer orderings), ``esc``
    / ``adaptive_consistency`` their spend where their quality reaches it (else None)."""
    goal = float(expected_majority_vote(codes, rewards, SC_K)[:, -1].mean())
    grid = np.asarray(report["sweep"]["budgets"], dtype=float)
    curve = report["sweep"]["quality"]["sequential"]
    ok = np.array([q is not None for q in curve])
    b = budget_to_reach(goal, grid[ok], np.array([q for q in curve if q is not None], dtype=float))
    need: dict[str, float | None] = {"sequential": None if b is None else b / unit}
    for m in ("esc", "adaptive_consistency"):
        entry = report["methods"].get(m)
        if entry is not None:
            need[m] = entry["spend"][0] / unit if entry["quality"][0] >= goal - 1e-12 else None
    return {"k": SC_K, "quality": goal, "samples_per_query": need}


def _savings_at(point: tuple[float, float], bud: list[float], hull_q: list[float]) -> list[float | None]:
    """A (spend, quality) point's savings at each budget: ``1 - spend / B`` where it reaches the hull's
    quality at ``B``."""
    spend, q = point
    return [1.0 - spend / b if q >= hq - _EPS else None for b, hq in zip(bud, hull_q, strict=True)]


def add_round_methods(
    report: dict[str, Any],
    outcomes: OutcomeSet,
    *,
    reranker: str | None = None,
    prior_curves: Mapping[str, Any] | None = None,
    seeds: int = 16,
    sweep_seeds: int = 4,
    esc: bool = True,
    replay_fn: Callable[..., ReplayResult] = replay_rounds,
    cascade_model: CascadeModel | None = None,
    round_choice: RoundChoice | None = None,
) -> dict[str, Any]:
    """Add ``sequential`` (``round_robin`` with a verifier; ``esc`` and ``adaptive_consistency`` for data
    with answers) to an evaluation report, in place.

    Parameters
    ----------
    report : dict
        From :func:`~adaptive_router.app.evaluation.evaluate_allocation` on the same ``outcomes``.
    outcomes : OutcomeSet
        The evaluated outcomes.
    reranker : {"verifier", "vote", "score"}, optional
        As given to ``evaluate_allocation`` (``None``: :func:`resolve_reranker`).
    prior_curves : mapping, optional
        The probe's predicted curves ``{procedure: (n, K)}`` for these queries (the planner's prior; with a
        ``round_choice`` that has a ``prior_weight``, predicted at that weight, as a router does).
    seeds, sweep_seeds
        Sample orderings replayed at the report's budgets, and at the other points of its budget sweep
        (the same orderings at every budget).
    esc : bool
        Add ``esc`` and ``adaptive_consistency`` when the samples record answers.
    replay_fn : callable
        Runs a sequential replay, :func:`~adaptive_router.allocation.replay_rounds` by default;
        ``evaluate --ray`` passes one that shards the seeds over a Ray cluster (same results).
    cascade_model : CascadeModel, optional
        For routing data: the cascade's model from ``train`` (see
        :func:`~adaptive_router.app.cascade_eval.add_cascade_method`, which routing data goes to).
    round_choice : RoundChoice, optional
        For best-of-k data: the round settings ``train`` chose per budget (the probe's ``round_choices``
        for this reranker's evidence); one for other evidence, or none, runs ``Rounds()``.

    Returns
    -------
    dict
        ``report``, with ``methods.sequential`` / ``round_robin`` / ``esc`` / ``adaptive_consistency``
        (``quality``, ``quality_se``, ``spend``, ``spend_se``, ``max_spend``, ``budget_to_match_hull``,
        ``savings`` at the hull's quality), their table rows and sweep, and ``sequential_notes``. Routing
        data (several procedures) gets the cascade as ``sequential`` where it has one to run, else a note.
    """
    name = check_reranker(outcomes, reranker)
    if report.get("kind") != "best_of_k" or len(outcomes.procedures) != 1:  # routing: the cascade
        return add_cascade_method(
            report, outcomes, reranker=name, model=cascade_model, seeds=seeds, sweep_seeds=sweep_seeds,
            replay_fn=replay_fn,
        )  # fmt: skip
    proc = outcomes.procedures[0]
    kmax = int(report["max_k"])
    unit = float(report["costs"][proc])
    bud = [float(b) for b in report["budgets"]]
    grid = [float(b) for b in report["sweep"]["budgets"]]
    hull_q = list(report["methods"]["hull"]["quality"])
    rewards = outcomes.rewards(proc)
    coded = outcomes.answers(proc)
    codes = None if coded is None else coded[0]
    scores = outcomes.scores(proc)
    prior: FloatArray | None = None
    if prior_curves is not None:
        if proc not in prior_curves:
            raise ConfigError(f"the probe's curves lack procedure {proc!r}")
        prior = np.asarray(prior_curves[proc], dtype=np.float64)[:, :kmax]
        if prior.shape[0] != rewards.shape[0]:
            raise ConfigError(f"the probe predicted {prior.shape[0]} rows for {rewards.shape[0]} queries")
    settings = Rounds()
    score_note = None
    if name == "score" and scores is not None:
        settings = Rounds(evidence=ScoreEvidence().fit(scores, rewards))
        score_note = "ScoreEvidence fitted on the evaluated outcomes (in-sample)"
    choice = round_choice if round_choice is not None and round_choice.evidence == _KIND[name] else None

    def planner(b: float) -> Any:
        return (settings if choice is None else choice.at(b)).planner(
            _KIND[name], budget_per_query=b, max_k=kmax, prior=prior is not None, unit_cost=unit
        )

    def round_robin(b: float) -> Any:
        return RoundRobinUnsolved(budget_per_query=b, max_k=kmax, unit_cost=unit)

    def budgeted(policy_at: Callable[[float], Any]) -> tuple[dict[str, Any], list[Any]]:
        def replay(b: float, n_seeds: int) -> Any:
            return replay_fn(
                policy_at(b), rewards, answers=codes, scores=scores, prior_curves=prior, seeds=n_seeds
            )

        return sweep_replays(replay, bud, grid, hull_q, seeds=seeds, sweep_seeds=sweep_seeds)

    def unbudgeted(policy: Any) -> dict[str, Any]:
        res = replay_fn(policy, rewards, answers=codes, seeds=seeds)
        savings = _savings_at((res.spend, res.quality), bud, hull_q)
        return {
            "quality": [res.quality] * len(bud),
            "quality_se": [res.quality_se] * len(bud),
            "spend": [res.spend] * len(bud),
            "spend_se": [res.spend_se] * len(bud),
            "max_spend": [res.max_spend] * len(bud),
            "rounds": [res.rounds] * len(bud),
            "budget_to_match_hull": [None if s is None else res.spend for s in savings],
            "savings": savings,
        }

    swept = {"sequential": budgeted(planner)}
    if name == "verifier":
        swept["round_robin"] = budgeted(round_robin)
    for m, (entry, sweep) in swept.items():
        add_sequential_method(report, m, entry, sweep)
    new = list(swept)
    esc_cap = None
    if esc and codes is not None:
        esc_cap = int(min(VOTE_MAX_K, rewards.shape[1]))
        fixed = {
            "esc": EarlyStoppingSC(window=ESC_WINDOW, max_k=esc_cap, unit_cost=unit),
            "adaptive_consistency": AdaptiveConsistency(
                threshold=AC_THRESHOLD, max_k=esc_cap, unit_cost=unit
            ),
        }
        for m, policy in fixed.items():
            add_sequential_method(report, m, unbudgeted(policy))
            new.append(m)
    if name == "vote" and codes is not None and int(outcomes.success_counts(proc)[1].min()) >= SC_K:
        report["self_consistency"] = _self_consistency(report, codes, rewards, unit)
    report["sequential_notes"] = {
        "reranker": name,
        "settings": repr(settings) if choice is None else (
            "chosen by train on validation (rounds.json; see round_choice): posterior is Rounds(), learned "
            "Rounds(model=CascadeModel fitted on the training outcomes); each budget uses the choice at the "
            "nearest validated budget"
        ),
        "round_choice": None if choice is None else {
            "budgets": list(choice.budgets), "choice": list(choice.choice), "validation": choice.validation,
            "prior_weight": choice.prior_weight,
        },
        "prior": (
            "population (the evidence's default, as live routing)" if prior is None
            else "probe" if choice is None or choice.prior_weight is None
            else f"probe (its prediction at weight {choice.prior_weight:g}, chosen by train for rounds)"
        ),
        "seeds": seeds,
        "sweep_seeds": sweep_seeds,
        "monte_carlo": (
            f"the sequential methods ({', '.join(new)}) are seeded Monte Carlo over the order of each "
            "query's recorded samples: "
            f"{seeds} orderings at each budget ({sweep_seeds} at the sweep's other points); quality_se is "
            "the standard error over orderings"
        ),
        "esc": None if esc_cap is None else (
            f"EarlyStoppingSC(window={ESC_WINDOW}, max_k={esc_cap}): no budget, the same point at every "
            "budget; it returns the plurality answer"
        ),
        "adaptive_consistency": None if esc_cap is None else (
            f"AdaptiveConsistency(threshold={AC_THRESHOLD}, max_k={esc_cap}): no budget, one sample per "
            "round until P(leader is the mode) >= 0.95; it returns the plurality answer"
        ),
        "round_robin": None if name != "verifier" else (
            "RoundRobinUnsolved: one sample each, then one per round to every unsolved query until the "
            "budget is spent"
        ),
        "score_evidence": score_note,
    }
    return report
