"""How best-of-k data is sampled in rounds, chosen by ``train`` on validation (numpy only).

Two round settings compete at every budget ``train`` validates at:

- ``posterior``: the router's defaults, ``Rounds()``: each window re-allocated after every round on the
  evidence model's posterior gains (`VerifierEvidence` / `VoteEvidence`);
- ``learned``: ``Rounds(model=CascadeModel().fit(...))``: each window planned on state values learned from
  the training outcomes (the expected reward of every (samples, leader) state and where the next sample
  moves it; a `CascadePlanner` that never escalates).

:func:`choose_rounds` replays them on the training outcomes by two-fold cross-fitting (halves by a hash
of the id, salted apart from any train/test split: the model is fitted on one half and the settings are
replayed on the other, then the halves swap).

- The posterior settings read the probe's held-out curves of the training queries as their prior
  (`ProbePrior`), at the probe's own weight, as a router does. Another weight of the probe's prediction
  (`PRIOR_WEIGHTS`: the population's alone, half, the prediction unshrunk) replaces it when it is ahead on
  both halves, summed over the budgets, and by more than ``MARGIN`` on average over the budgets where it
  changes the quality at all: a probe's shrinkage is validated for one-shot allocation, where telling
  hard queries from easy ones before any sample is worth little, and the posterior after a failure or a
  split vote may be worth more (`RoundChoice.prior_weight`). Without the probe's curves they read the
  population prior.
- ``learned`` replaces ``posterior`` at the budgets where it is ahead on both halves and its mean
  validation quality is higher by more than ``MARGIN``.

``train`` writes the choice for each reranker the data supports to ``rounds.json`` beside the probe
(:func:`save_round_choices`), with the model refitted on all training outcomes. A loaded `Probe` carries it
(``round_choices``): ``evaluate`` replays ``sequential`` with it, and a router with that probe samples with
it under ``rounds="auto"`` (``run``, ``serve`` and library use alike; `RoundChoice.at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import CascadeModel, RoundChoice, Rounds, replay_rounds
from adaptive_router.app.cascade_eval import STATE_EVIDENCE
from adaptive_router.outcomes import OutcomeSet, stable_unit_hash

__all__ = [
    "CHOICE_GRID", "MARGIN", "PRIOR_WEIGHTS", "ProbePrior", "choice_budgets", "choose_rounds",
    "describe_choice", "save_round_choices",
]  # fmt: skip

MARGIN = 0.003
"""How much higher ``learned``'s mean validation quality must be (besides being ahead on both halves) to
replace the default ``posterior`` at a budget. On arith40's train half (159 queries) ``learned`` won by
0.16-0.25 points at three budgets and lost on the test half at all three; on 155 queries of another split it
won by 0.73 points at B = 4 with a verifier, on one half only, and lost 0.4 on the test half; on 1,000
bimodal vote queries it won by 0.7-1.6 points at 2-3 samples per query and kept that on the test half,
before rounds paced each query's plan (since, the posterior is level with it there; docs/rounds.md)."""


CHOICE_GRID = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
"""Budgets per query, in samples, at which `save_round_choices` chooses besides the probe's own validation
budgets (up to ``max_k``): a router follows the choice at the validated budget nearest its own on a log
scale, and between ``train``'s default 1, 2 and 4 that put B = 3 on B = 4's choice (on the "easy" vote set
of ``benchmarks/rounds.py``, before rounds paced each query's plan, the posterior's 0.957 at B = 3 where the
learned rule had 0.977)."""

PRIOR_WEIGHTS = (0.0, 0.5, 1.0)
"""The weights of the probe's own prediction in the rounds' prior that compete with the probe's shrinkage
(`adaptive_router.allocation.Rounds.prior_weight`)."""


@dataclass(frozen=True)
class ProbePrior:
    """The probe's held-out curves of the training queries, as the round choice reads them.

    ``raw``: ``(n, K)`` cross-fitted, unshrunk curves (`CurveProbe.oof_curves_`), aligned with the
    outcomes; ``population``: the ``(K,)`` population curve; ``weight``: the probe's own weight of ``raw``
    (its shrinkage, 0 when it falls back), what a router reads without a chosen ``prior_weight``.
    """

    raw: np.ndarray
    population: np.ndarray
    weight: float

    @classmethod
    def of(cls, estimator: Any) -> ProbePrior | None:
        """From a fitted single-procedure `CurveProbe` (None for several procedures or no held-out curves)."""
        oof = getattr(estimator, "oof_curves_", None)
        if oof is None or oof.shape[1] != 1:
            return None
        weight = 0.0 if estimator.fallback_ else float(estimator.shrinkage_)
        return cls(raw=oof[:, 0, :], population=estimator.population_curve_[0], weight=weight)

    def at(self, weight: float | None) -> np.ndarray:
        """The ``(n, K)`` prior at ``weight`` of ``raw`` (None: the probe's own)."""
        w = self.weight if weight is None else weight
        return w * self.raw + (1.0 - w) * self.population[None, :]


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
    prior: ProbePrior | None = None,
) -> RoundChoice | None:
    """Choose the round settings at each budget on validation (see the module docstring); None when the
    outcomes cannot be read this way (several procedures, a reranker other than ``verifier`` / ``vote``, no
    answers for votes, or too few queries for two halves).

    With ``prior`` (the probe's held-out curves of these queries) the posterior settings read it, at the
    probe's own weight unless another of `PRIOR_WEIGHTS` wins on both halves and by more than ``MARGIN``
    where it changes anything (`RoundChoice.prior_weight`); without one they read the population prior.
    """
    if reranker not in STATE_EVIDENCE or len(outcomes.procedures) != 1:
        return None
    proc = outcomes.procedures[0]
    if reranker == "vote" and outcomes.answers(proc) is None:
        return None
    # halves by a hash of their own, independent of the train/test split the outcomes came from
    in_first = np.array([stable_unit_hash("rounds:" + rid) < 0.5 for rid in outcomes.ids])
    first, rest = np.flatnonzero(in_first), np.flatnonzero(~in_first)
    if min(len(first), len(rest)) < 2 or max_k < 2:
        return None
    kind = STATE_EVIDENCE[reranker]
    if prior is not None and prior.raw.shape[1] < max_k:  # a router never runs past the probe's curves
        prior = None
    weights: list[float | None] = [None]  # None: the prior as the probe predicts it (or the population's)
    if prior is not None:
        weights += [w for w in PRIOR_WEIGHTS if w != prior.weight]
    runs = [b > unit_cost * (1 + 1e-9) for b in budgets]  # one sample each spends it all: nothing to choose
    # validation quality [half, budget]: one posterior per prior weight, and the learned rule
    posterior = {w: np.zeros((2, len(budgets))) for w in weights}
    learned = np.zeros((2, len(budgets)))
    for h, (fit_on, score_on) in enumerate(((first, rest), (rest, first))):
        model = _fit(outcomes.subset(list(fit_on)), proc, reranker)
        half = outcomes.subset(list(score_on))
        rewards = half.rewards(proc)
        coded = half.answers(proc)
        codes = None if coded is None or reranker != "vote" else coded[0]
        priors = {w: None if prior is None else prior.at(w)[score_on, :max_k] for w in weights}
        for i, b in enumerate(budgets):
            if not runs[i]:
                continue
            for rounds, curves, cell in [
                (Rounds(model=model), None, learned),
                *((Rounds(), priors[w], posterior[w]) for w in weights),
            ]:
                planner = rounds.planner(
                    kind, budget_per_query=b, max_k=max_k, prior=curves is not None, unit_cost=unit_cost
                )
                cell[h, i] = replay_rounds(
                    planner, rewards, answers=codes, prior_curves=curves, seeds=seeds
                ).quality
    sizes = np.array([len(rest), len(first)], dtype=float)  # the half each row scored
    mean = {w: sizes @ q / sizes.sum() for w, q in posterior.items()}  # validation quality per budget
    mean_learned = sizes @ learned / sizes.sum()
    weight = _prior_weight(posterior, mean, np.array(runs))
    base = posterior[weight]
    choice = tuple(
        "learned" if runs[i] and (learned[:, i] > base[:, i]).all()
        and mean_learned[i] > mean[weight][i] + MARGIN else "posterior"
        for i in range(len(budgets))
    )  # fmt: skip
    validation = {
        "posterior" if w is None else f"posterior, prior weight {w:g}": m.tolist() for w, m in mean.items()
    }
    return RoundChoice(
        evidence=kind,
        budgets=tuple(float(b) for b in budgets),
        choice=choice,
        model=_fit(outcomes, proc, reranker),
        validation={**validation, "learned": mean_learned.tolist()},
        prior_weight=weight,
    )


def _prior_weight(
    posterior: dict[float | None, np.ndarray], mean: dict[float | None, np.ndarray], runs: np.ndarray
) -> float | None:
    """The prior weight the posterior settings read: the probe's own (None) unless another is ahead on
    both halves (summed over the budgets) and by more than ``MARGIN`` on average over the budgets where it
    changes the quality at all (a verifier's first round is the same under any prior, and a large budget
    solves what it can under any); the best such. ``posterior``: quality ``[half, budget]`` per weight;
    ``mean``: its mean over both halves."""
    base = posterior[None][:, runs].sum(axis=1)
    best, best_gain = None, MARGIN
    for w, q in posterior.items():
        diff = (mean[w] - mean[None])[runs]
        moved = np.abs(diff) > 1e-9
        if w is None or not moved.any() or not (q[:, runs].sum(axis=1) > base).all():
            continue
        gain = float(diff[moved].mean())
        if gain > best_gain:
            best, best_gain = w, gain
    return best


def save_round_choices(
    folder: str | Path,
    outcomes: OutcomeSet,
    *,
    budgets: list[float],
    unit_cost: float,
    max_k: int | None = None,
    prior: ProbePrior | None = None,
) -> list[RoundChoice]:
    """:func:`choose_rounds` for every reranker the training ``outcomes`` support, written to the probe
    folder's ``rounds.json`` (``train`` does, after saving the probe, with the probe's held-out curves as
    ``prior``); the choices written (none: no file). The choice is made at ``budgets`` and at the
    `CHOICE_GRID` budgets up to ``max_k`` samples (`choice_budgets`; default: evaluate's, `default_max_k`
    for each reranker)."""
    from adaptive_router.app.evaluation import default_max_k
    from adaptive_router.probe.persistence import write_round_choices

    rerankers = ["verifier"] + (["vote"] if all(outcomes.can_vote(p) for p in outcomes.procedures) else [])
    choices = []
    for r in rerankers:
        k = default_max_k(outcomes, r) if max_k is None else max_k
        grid = choice_budgets(budgets, max_k=k, unit_cost=unit_cost)
        c = choose_rounds(outcomes, r, budgets=grid, max_k=k, unit_cost=unit_cost, prior=prior)
        if c is not None:
            choices.append(c)
    if choices:
        write_round_choices(folder, choices)
    return choices


def choice_budgets(budgets: list[float], *, max_k: int, unit_cost: float) -> list[float]:
    """``budgets`` and the `CHOICE_GRID` budgets (times ``unit_cost``) up to ``max_k`` samples, sorted."""
    grid = [g * unit_cost for g in CHOICE_GRID if g <= max_k]
    return sorted({float(b) for b in budgets} | set(grid))


def describe_choice(choice: RoundChoice) -> str:
    """``B=1-1.5 posterior, B=2-3 learned, B=4-12 posterior`` (runs of budgets with the same choice)."""
    runs: list[tuple[float, float, str]] = []
    for b, name in zip(choice.budgets, choice.choice, strict=True):
        if runs and runs[-1][2] == name:
            runs[-1] = (runs[-1][0], b, name)
        else:
            runs.append((b, b, name))
    return ", ".join(f"B={lo:g}" + ("" if hi == lo else f"-{hi:g}") + f" {name}" for lo, hi, name in runs)
