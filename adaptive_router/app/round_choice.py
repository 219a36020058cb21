"""How best-of-k data is sampled in rounds, chosen by ``train`` on validation (numpy only).

Two round settings compete at every budget ``train`` validates at:

- ``posterior``: the router's defaults, ``Rounds()``: each window re-allocated after every round on the
  evidence model's posterior gains (`VerifierEvidence` / `VoteEvidence`);
- ``learned``: ``Rounds(model=CascadeModel().fit(...))``: each window planned on state values learned from
  the training outcomes (the expected reward of every (samples, leader) state and where the next sample
  moves it; a `CascadePlanner` that never escalates).

:func:`choose_rounds` replays both on the training outcomes by two-fold cross-fitting (halves by a hash of
the id, salted apart from any train/test split: the model is fitted on one half and both settings are
replayed on the other, then the halves swap) under the population prior, and keeps ``learned`` at the
budgets where it is ahead on both halves and its mean validation quality is higher by more than
``MARGIN``. ``train`` writes the choice for each reranker the data supports to ``rounds.json`` beside the
probe (:func:`save_round_choices`), with the model refitted on all training outcomes. A loaded `Probe`
carries it (``round_choices``): ``evaluate`` replays ``sequential`` with it, and a router with that probe
samples with it under ``rounds="auto"`` (``run``, ``serve`` and library use alike; `RoundChoice.at`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptive_router.allocation import CascadeModel, RoundChoice, Rounds, replay_rounds
from adaptive_router.app.cascade_eval import STATE_EVIDENCE
from adaptive_router.outcomes import OutcomeSet, stable_unit_hash

__all__ = ["MARGIN", "choose_rounds", "save_round_choices"]

MARGIN = 0.003
"""How much higher ``learned``'s mean validation quality must be (besides being ahead on both halves) to
replace the default ``posterior`` at a budget. On arith40's train half (159 queries) ``learned`` won by
0.16-0.25 points at three budgets and lost on the test half at all three; on 155 queries of another split it
won by 0.73 points at B = 4 with a verifier, on one half only, and lost 0.4 on the test half; on 1,000
bimodal vote queries it won by 0.7-1.6 points at 2-3 samples per query and kept that on the test half
(docs/rounds.md)."""


def _fit(outcomes: OutcomeSet, proc: str, reranker: str) -> CascadeModel:
    coded = outcomes.answers(proc) if reranker == "vote" else None
    return CascadeModel().fit(outcomes.rewards(proc), answers=None if coded is None else coded[0])


def choose_rounds(
    outcomes: OutcomeSet,
    reranker: str,
    *,
    budgets: list[float],
    max_k: int,
    unit_cost: float,
    seeds: int = 8,
) -> RoundChoice | None:
    """Choose between the ``posterior`` and ``learned`` round settings at each budget on validation (see
    the module docstring); None when the outcomes cannot be read this way (several procedures, a reranker
    other than ``verifier`` / ``vote``, no answers for votes, or too few queries for two halves)."""
    if reranker not in STATE_EVIDENCE or len(outcomes.procedures) != 1:
        return None
    proc = outcomes.procedures[0]
    if reranker == "vote" and outcomes.answers(proc) is None:
        return None
    # halves by a hash of their own, independent of the train/test split the outcomes came from
    in_first = [stable_unit_hash("rounds:" + rid) < 0.5 for rid in outcomes.ids]
    first = [i for i, yes in enumerate(in_first) if yes]
    rest = [i for i, yes in enumerate(in_first) if not yes]
    if min(len(first), len(rest)) < 2 or max_k < 2:
        return None
    halves = (outcomes.subset(first), outcomes.subset(rest))
    kind = STATE_EVIDENCE[reranker]
    totals = {c: np.zeros(len(budgets)) for c in ("posterior", "learned")}
    wins = np.ones(len(budgets), dtype=bool)  # learned ahead on each half
    for fit_on, score_on in (halves, halves[::-1]):
        model = _fit(fit_on, proc, reranker)
        rewards = score_on.rewards(proc)
        coded = score_on.answers(proc)
        codes = None if coded is None or reranker != "vote" else coded[0]
        for i, b in enumerate(budgets):
            if b < unit_cost * (2.0 if reranker == "vote" else 1.0):  # one answer each: nothing to choose
                continue
            quality = {}
            for name, rounds in (("posterior", Rounds()), ("learned", Rounds(model=model))):
                planner = rounds.planner(
                    kind, budget_per_query=b, max_k=max_k, prior=False, unit_cost=unit_cost
                )
                quality[name] = replay_rounds(planner, rewards, answers=codes, seeds=seeds).quality
                totals[name][i] += quality[name] * len(score_on)
            wins[i] &= quality["learned"] > quality["posterior"]
    mean = {c: (t / len(outcomes)).tolist() for c, t in totals.items()}
    choice = tuple(
        "learned" if wins[i] and mean["learned"][i] > mean["posterior"][i] + MARGIN else "posterior"
        for i in range(len(budgets))
    )
    return RoundChoice(
        evidence=kind,
        budgets=tuple(float(b) for b in budgets),
        choice=choice,
        model=_fit(outcomes, proc, reranker),
        validation=mean,
    )


def save_round_choices(
    folder: str | Path,
    outcomes: OutcomeSet,
    *,
    budgets: list[float],
    max_k: int,
    unit_cost: float,
) -> list[RoundChoice]:
    """:func:`choose_rounds` for every reranker the training ``outcomes`` support, written to the probe
    folder's ``rounds.json`` (``train`` does, after saving the probe); the choices written (none: no file)."""
    from adaptive_router.probe.persistence import write_round_choices

    rerankers = ["verifier"] + (["vote"] if all(outcomes.can_vote(p) for p in outcomes.procedures) else [])
    choices = [
        c
        for r in rerankers
        if (c := choose_rounds(outcomes, r, budgets=budgets, max_k=max_k, unit_cost=unit_cost)) is not None
    ]
    if choices:
        write_round_choices(folder, choices)
    return choices
