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
budgets where its mean validation quality is higher by more than ``MARGIN``. ``train`` writes the choice
for each reranker the data supports to ``rounds.json`` beside the probe (:func:`save_round_choices`), with
the model refitted on all training outcomes; ``evaluate`` replays ``sequential`` with it, and ``run``
samples live with it (:func:`load_round_choice`, `RoundChoice.at`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import CascadeModel, Rounds, replay_rounds
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet, stable_unit_hash

__all__ = ["ROUNDS_FILE", "RoundChoice", "choose_rounds", "load_round_choice", "save_round_choices"]

ROUNDS_FILE = "rounds.json"
"""The round settings ``train`` chose per reranker and budget (best-of-k data), beside the probe."""
CANDIDATES = ("posterior", "learned")
MARGIN = 0.003
"""How much higher ``learned``'s validation quality must be to replace the default ``posterior`` at a budget.
On arith40's train half (159 queries) ``learned`` won by 0.16-0.25 points at three budgets and lost on the
test half at all three; on 1,000 bimodal vote queries it won by 0.7-1.6 points at 2-3 samples per query and
kept that on the test half (docs/rounds.md)."""
_KIND = {"verifier": "rewards", "vote": "answers"}


@dataclass(frozen=True)
class RoundChoice:
    """The round settings chosen at each validated budget: ``choice[i]`` at ``budgets[i]`` (one of
    ``CANDIDATES``), the learned ``model``, and the mean validation quality of each candidate."""

    reranker: str
    budgets: tuple[float, ...]
    choice: tuple[str, ...]
    model: CascadeModel
    validation: dict[str, list[float]] = field(default_factory=dict)

    def name_at(self, budget: float) -> str:
        """The candidate chosen at the validated budget nearest ``budget`` (on a log scale)."""
        if budget <= 0:
            return CANDIDATES[0]
        i = int(np.argmin([abs(math.log(budget / b)) for b in self.budgets]))
        return self.choice[i]

    def at(self, budget: float) -> Rounds:
        """The `Rounds` to sample with at ``budget`` per query."""
        return Rounds(model=self.model) if self.name_at(budget) == "learned" else Rounds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reranker": self.reranker, "budgets": list(self.budgets), "choice": list(self.choice),
            "validation": self.validation, "model": self.model.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundChoice:
        """A choice written by :meth:`to_dict`; a malformed one raises ``ConfigError``."""
        try:
            choice = cls(
                reranker=str(data["reranker"]),
                budgets=tuple(float(b) for b in data["budgets"]),
                choice=tuple(str(c) for c in data["choice"]),
                model=CascadeModel.from_dict(data["model"]),
                validation={str(k): [float(x) for x in v] for k, v in data.get("validation", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a round choice ({exc!r}); retrain the probe") from exc
        if (
            not choice.budgets
            or len(choice.budgets) != len(choice.choice)
            or any(b <= 0 for b in choice.budgets)
            or any(c not in CANDIDATES for c in choice.choice)
        ):
            raise ConfigError("not a round choice (budgets and choices); retrain the probe")
        return choice


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
    if reranker not in _KIND or len(outcomes.procedures) != 1:
        return None
    proc = outcomes.procedures[0]
    if reranker == "vote" and outcomes.answers(proc) is None:
        return None
    # halves by a hash of their own, independent of the train/test split the outcomes came from
    first = [i for i, rid in enumerate(outcomes.ids) if stable_unit_hash("rounds:" + rid) < 0.5]
    rest = sorted(set(range(len(outcomes))) - set(first))
    if min(len(first), len(rest)) < 2 or max_k < 2:
        return None
    halves = (outcomes.subset(first), outcomes.subset(rest))
    kind = _KIND[reranker]
    totals = {c: np.zeros(len(budgets)) for c in CANDIDATES}
    for fit_on, score_on in (halves, halves[::-1]):
        model = _fit(fit_on, proc, reranker)
        rewards = score_on.rewards(proc)
        coded = score_on.answers(proc)
        codes = None if coded is None or reranker != "vote" else coded[0]
        for i, b in enumerate(budgets):
            if b < unit_cost * (2.0 if reranker == "vote" else 1.0):  # one answer each: nothing to choose
                continue
            for name, rounds in (("posterior", Rounds()), ("learned", Rounds(model=model))):
                planner = rounds.planner(
                    kind, budget_per_query=b, max_k=max_k, prior=False, unit_cost=unit_cost
                )
                res = replay_rounds(planner, rewards, answers=codes, seeds=seeds)
                totals[name][i] += res.quality * len(score_on)
    mean = {c: (t / len(outcomes)).tolist() for c, t in totals.items()}
    choice = tuple(
        "learned" if mean["learned"][i] > mean["posterior"][i] + MARGIN else "posterior"
        for i in range(len(budgets))
    )
    return RoundChoice(
        reranker=reranker,
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
    """:func:`choose_rounds` for every reranker the training ``outcomes`` support, written to
    ``folder/rounds.json`` (``train`` does, beside the probe); the choices written (none: no file)."""
    rerankers = ["verifier"] + (["vote"] if all(outcomes.can_vote(p) for p in outcomes.procedures) else [])
    choices = [
        c
        for r in rerankers
        if (c := choose_rounds(outcomes, r, budgets=budgets, max_k=max_k, unit_cost=unit_cost)) is not None
    ]
    if choices:
        data = {c.reranker: c.to_dict() for c in choices}
        (Path(folder) / ROUNDS_FILE).write_text(json.dumps(data), encoding="utf-8")
    return choices


def load_round_choice(folder: str | Path, reranker: str) -> RoundChoice | None:
    """The `RoundChoice` for ``reranker`` in a probe folder's ``rounds.json``, or None without one."""
    path = Path(folder) / ROUNDS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); retrain the probe") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a round-choice file; retrain the probe")
    return None if reranker not in data else RoundChoice.from_dict(data[reranker])
