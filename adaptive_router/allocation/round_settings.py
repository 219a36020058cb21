"""`Rounds`: how a router spends a window's budget in rounds, as one frozen settings object (numpy only).

A router that reads evidence while it samples (`adaptive_router.runnables.AdaptiveRouter` with a verifier or
a majority vote) builds one :class:`~adaptive_router.allocation.RoundPlanner` per window from these
settings: the window's budget, ``max_k`` and the unit cost come from the router's plan, the rest from here.
`Rounds` holds no state; the planner it builds does.

Examples
--------
>>> from adaptive_router.allocation import VerifierEvidence
>>> rounds = Rounds(max_rounds=3)
>>> rounds.max_rounds, rounds.first_round
(3, 'auto')
>>> planner = rounds.planner("rewards", budget_per_query=2.0, max_k=4, prior=False)
>>> planner.start(n=3).tolist(), type(planner.evidence).__name__
([1, 1, 1], 'VerifierEvidence')
>>> Rounds(max_rounds=3) == rounds
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adaptive_router.allocation._params import DEFAULT_MAX_ROUNDS, int_param, pos_param
from adaptive_router.allocation.cascade import CascadePlanner
from adaptive_router.allocation.cascade_model import CascadeModel
from adaptive_router.allocation.evidence import EvidenceModel, ScoreEvidence, VerifierEvidence, VoteEvidence
from adaptive_router.allocation.rounds import ROUND_BUDGETS, RoundPlanner
from adaptive_router.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_ROUNDS", "DEFAULT_ROUND_BUDGET", "DEFAULT_VERIFIER_PRIOR", "EVIDENCE_KINDS", "ROUND_CHOICES",
    "RoundChoice", "Rounds",
]  # fmt: skip

DEFAULT_ROUND_BUDGET = "pace"
"""How much of the remaining budget a round spends by default: the same whole number of samples for every
query that still gains (see `RoundPlanner`). On arith40's train half it matched the 4 even rounds' quality
with fewer rounds at 2-4 samples per query and gained 0.2 points at 8 (more rounds); votes gained 0.3 points
at 2 samples per query (every query gets its second answer in one round)."""

DEFAULT_VERIFIER_PRIOR = (1.0, 1.0)
"""The Beta prior of every query's success rate without a probe (uniform). On arith40 a fitted population
prior, Beta(0.5, 0.5) and Beta(1, 1) replayed to the same quality: with one prior for every query only the
evidence orders them."""

EVIDENCE_KINDS = ("rewards", "answers", "scores")
"""What a reranker can give per sample: a verifier's reward, an extracted answer, a reward model's score."""

_DEFAULT_EVIDENCE: dict[str, EvidenceModel] = {
    "rewards": VerifierEvidence(prior=DEFAULT_VERIFIER_PRIOR),
    "answers": VoteEvidence(),
}
"""One instance per kind, so that settings built from the same reranker kind compare equal."""


@dataclass(frozen=True, kw_only=True)
class Rounds:
    """Spend each window's budget in rounds, reading the evidence of every round before the next.

    Parameters
    ----------
    evidence : EvidenceModel, optional
        How a query's samples so far value more samples. ``None``: from the reranker's kind of evidence,
        ``VerifierEvidence(prior=DEFAULT_VERIFIER_PRIOR)`` for pass/fail and ``VoteEvidence()`` for answers;
        scores need a fitted ``ScoreEvidence().fit(training_scores, training_rewards)`` given here.
        The probe's curves, when there is a probe, are the evidence model's prior.
    max_rounds : int
        Most rounds per window, the first included.
    first_round : {"auto", "one", "plan"} or int
        ``"auto"``: one sample each, except for votes: the one-shot plan scaled by ``plan_fraction`` with a
        probe, two samples each without one when the budget pays for at least three per query (one answer
        says nothing about agreement). Measured on recorded Gemma-3-270M samples (docs/rounds.md).
        Otherwise as `RoundPlanner`; an int larger than the budget pays for is lowered to what it pays for.
    round_budget : {"pace", "even", "all"}
        The share of the remaining budget one round may spend (see `RoundPlanner`); default
        ``DEFAULT_ROUND_BUDGET``.
    round_size : int, optional
        Most samples one query gets in one round after the first.
    plan_fraction : float
        In ``(0, 1]``, for ``first_round="plan"``.
    model : CascadeModel, optional
        A fitted `CascadeModel` of the same evidence, without a strong procedure
        (``CascadeModel().fit(training_rewards, answers=training_answers)``): each window is then planned on
        its learned state values (the expected reward of each (samples, leader) state and where the next
        sample moves it, by backward induction at the window's shadow price; a `CascadePlanner` that never
        escalates) instead of the evidence model's posterior gains. The probe's curves are not read, and
        ``round_budget``, ``round_size`` and ``plan_fraction`` do not apply. ``train`` fits one and keeps it
        where it wins on validation (``rounds.json`` beside the probe).
    prior_weight : float, optional
        In ``[0, 1]``: the weight of the probe's own prediction in the prior the evidence model reads, the
        probe's curves predicted as ``prior_weight * predicted + (1 - prior_weight) * population`` (its
        fallback ignored; `adaptive_router.probe.Probe.predict_curves` with ``shrinkage=``). A probe's
        shrinkage is validated for one-shot allocation, where knowing which queries are hard before any
        sample pays little; after a failure or a split vote it can pay more. ``None`` (default): the
        probe's curves as they are. ``train`` chooses it on validation (``rounds.json``); without a
        probe, or with ``model``, it does not apply.

    Raises
    ------
    ConfigError
        A bad value, named with what to pass instead.
    """

    evidence: EvidenceModel | None = None
    max_rounds: int = DEFAULT_MAX_ROUNDS
    first_round: str | int = "auto"
    round_budget: str = DEFAULT_ROUND_BUDGET
    round_size: int | None = None
    plan_fraction: float = 0.5
    model: CascadeModel | None = None
    prior_weight: float | None = None

    def __post_init__(self) -> None:
        if self.evidence is not None and not isinstance(self.evidence, EvidenceModel):
            raise ConfigError(
                f"evidence={self.evidence!r} must be an EvidenceModel (VerifierEvidence(), VoteEvidence(), "
                "a fitted ScoreEvidence()) or None to follow the reranker"
            )
        int_param("max_rounds", self.max_rounds, 1)
        fr = self.first_round
        if fr not in ("auto", "one", "plan") and (isinstance(fr, bool) or not isinstance(fr, int) or fr < 1):
            raise ConfigError(f"first_round={fr!r}; choose 'auto', 'one', 'plan' or a number of samples >= 1")
        if self.round_budget not in ROUND_BUDGETS:
            raise ConfigError(f"round_budget={self.round_budget!r}; choose one of {list(ROUND_BUDGETS)}")
        if self.round_size is not None:
            int_param("round_size", self.round_size, 1)
        if pos_param("plan_fraction", self.plan_fraction) > 1:
            raise ConfigError(f"plan_fraction={self.plan_fraction!r} must be in (0, 1]")
        _check_prior_weight(self.prior_weight)
        fitted = isinstance(self.model, CascadeModel) and hasattr(self.model, "kind_")
        if self.model is not None and not fitted:
            raise ConfigError(f"model={self.model!r} must be a fitted CascadeModel (or None)")

    def evidence_for(self, kind: str | None) -> EvidenceModel:
        """The evidence model for a reranker that gives `kind` per sample (see `EVIDENCE_KINDS`).

        Raises
        ------
        ConfigError
            The reranker gives no evidence, the given model reads another kind, or scores without a fitted
            `ScoreEvidence`.
        """
        if kind not in EVIDENCE_KINDS:
            raise ConfigError(
                "rounds need a reranker that gives evidence per sample (VerifierReranker, "
                "MajorityVoteReranker, RewardModelReranker or LLMJudgeReranker); pass rounds=None for "
                "one-shot"
            )
        if self.evidence is not None:
            if self.evidence.needs != kind:
                raise ConfigError(
                    f"{self.evidence!r} reads {self.evidence.needs!r} but the reranker gives {kind!r}; "
                    f"pass the evidence model for {kind!r} or evidence=None"
                )
            if isinstance(self.evidence, ScoreEvidence) and not hasattr(self.evidence, "residuals_"):
                raise ConfigError(
                    "the ScoreEvidence is not fitted; call fit(training_scores, training_rewards)"
                )
            return self.evidence
        if kind not in _DEFAULT_EVIDENCE:
            raise ConfigError(
                "scores have no default evidence model: pass Rounds(evidence=ScoreEvidence().fit("
                "training_scores, training_rewards)), or rounds=None for one-shot"
            )
        return _DEFAULT_EVIDENCE[kind]

    def gives_evidence(self, kind: str | None) -> bool:
        """Whether `evidence_for(kind)` has a model (``rounds="auto"`` runs rounds only then)."""
        try:
            self.evidence_for(kind)
        except ConfigError:
            return False
        return True

    def first(self, kind: str, *, budget_per_query: float, unit_cost: float, prior: bool) -> str | int:
        """The planner's ``first_round`` for this window (``"auto"`` resolved as documented above)."""
        if self.first_round != "auto":
            return self.first_round
        if kind != "answers":
            return "one"
        if prior:
            return "plan"
        return 2 if budget_per_query >= 3 * unit_cost * (1 - 1e-12) else "one"

    def planner(
        self,
        kind: str,
        *,
        budget_per_query: float,
        max_k: int,
        prior: bool,
        unit_cost: float = 1.0,
        price: float = 0.0,
    ) -> RoundPlanner | CascadePlanner:
        """A `RoundPlanner` for one window (not started; a never-escalating `CascadePlanner` with
        ``model``); an int ``first_round`` is lowered to what ``budget_per_query`` pays for.

        Parameters
        ----------
        kind : str
            The evidence the reranker gives (see `evidence_for`).
        budget_per_query, max_k, unit_cost, price
            As for `RoundPlanner` (the window's budget is ``budget_per_query * n``).
        prior : bool
            Whether the probe's curves will be passed to ``start`` (``"plan"`` needs them).
        """
        reads_prior = prior and self.model is None  # the learned rule plans on its states, not on curves
        first: Any = self.first(
            kind, budget_per_query=budget_per_query, unit_cost=unit_cost, prior=reads_prior
        )
        if first == "plan" and not reads_prior:
            first = "one"
        if isinstance(first, int):
            first = max(1, min(first, int(max_k), math.floor(budget_per_query / unit_cost * (1 + 1e-12))))
        if self.model is not None:
            return CascadePlanner(
                evidence=self.evidence_for(kind),
                model=self.model,
                budget_per_query=budget_per_query,
                max_k=max_k,
                unit_cost=unit_cost,
                escalate_cost=None,
                max_rounds=self.max_rounds,
                first_round=first if isinstance(first, int) else 1,
                price=price,
            )
        return RoundPlanner(
            evidence=self.evidence_for(kind),
            budget_per_query=budget_per_query,
            max_k=max_k,
            unit_cost=unit_cost,
            max_rounds=self.max_rounds,
            round_size=self.round_size,
            round_budget=self.round_budget,
            first_round="one" if first == 1 else first,
            plan_fraction=self.plan_fraction,
            price=price,
        )


def _check_prior_weight(w: Any) -> None:
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 1):
        raise ConfigError(f"prior_weight={w!r} must be a number in [0, 1] or None")


ROUND_CHOICES = ("posterior", "learned")
"""The round settings `RoundChoice` picks between: ``Rounds()`` and ``Rounds(model=...)``."""


@dataclass(frozen=True)
class RoundChoice:
    """The round settings chosen at each validated budget, for one kind of evidence.

    ``choice[i]`` (one of ``ROUND_CHOICES``) holds at ``budgets[i]``: ``"posterior"`` is ``Rounds()``,
    ``"learned"`` is ``Rounds(model=model)``. ``train`` chooses them on validation and saves them beside
    the probe (``rounds.json``); a loaded `Probe` carries them as ``round_choices`` and a router's
    ``rounds="auto"`` samples with the choice for its budget. ``prior_weight`` is the `Rounds.prior_weight`
    of the ``"posterior"`` setting at every budget (None: the probe's curves as they are). ``validation``
    keeps each candidate's mean validation quality per budget.

    Examples
    --------
    >>> import numpy as np
    >>> model = CascadeModel(orderings=1).fit(np.array([[1.0, 0.0], [0.0, 0.0]]))
    >>> choice = RoundChoice("rewards", (2.0, 8.0), ("learned", "posterior"), model)
    >>> choice.at(2.5).model is model, choice.at(6.0) == Rounds()   # the nearest budget, on a log scale
    (True, True)
    """

    evidence: str
    budgets: tuple[float, ...]
    choice: tuple[str, ...]
    model: CascadeModel
    validation: Mapping[str, list[float]] = field(default_factory=dict)
    prior_weight: float | None = None

    def __post_init__(self) -> None:
        _check_prior_weight(self.prior_weight)
        if self.evidence not in EVIDENCE_KINDS:
            raise ConfigError(f"evidence={self.evidence!r}; choose one of {list(EVIDENCE_KINDS)}")
        if not self.budgets or len(self.budgets) != len(self.choice) or min(self.budgets) <= 0:
            raise ConfigError("a RoundChoice needs one choice per budget, every budget > 0")
        if any(c not in ROUND_CHOICES for c in self.choice):
            raise ConfigError(f"choices {list(self.choice)}: each must be one of {list(ROUND_CHOICES)}")
        if not hasattr(self.model, "kind_") or self.model.needs != self.evidence:
            raise ConfigError(f"the model must be a CascadeModel fitted on {self.evidence!r}")

    def name_at(self, budget: float) -> str:
        """The choice at the validated budget nearest ``budget`` on a log scale (``"posterior"`` at 0)."""
        if budget <= 0:
            return ROUND_CHOICES[0]
        nearest = min(range(len(self.budgets)), key=lambda i: abs(math.log(budget / self.budgets[i])))
        return self.choice[nearest]

    def at(self, budget: float) -> Rounds:
        """The `Rounds` to sample with at ``budget`` per query."""
        if self.name_at(budget) == "learned":
            return Rounds(model=self.model)
        return Rounds(prior_weight=self.prior_weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able data (:meth:`from_dict` reads it back)."""
        return {
            "evidence": self.evidence, "budgets": list(self.budgets), "choice": list(self.choice),
            "validation": {k: list(v) for k, v in self.validation.items()}, "model": self.model.to_dict(),
            "prior_weight": self.prior_weight,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundChoice:
        """A choice written by :meth:`to_dict`; malformed data raises ``ConfigError``."""
        try:
            return cls(
                evidence=str(data["evidence"]),
                budgets=tuple(float(b) for b in data["budgets"]),
                choice=tuple(str(c) for c in data["choice"]),
                model=CascadeModel.from_dict(data["model"]),
                validation={str(k): [float(x) for x in v] for k, v in data.get("validation", {}).items()},
                prior_weight=None if data.get("prior_weight") is None else float(data["prior_weight"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"not a round choice ({exc!r})") from exc
