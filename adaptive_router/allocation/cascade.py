"""Cascades in rounds: cheap samples first, then a stronger procedure where the evidence says so.

A cascade answers each query with samples of a cheap procedure, read in rounds like a best-of-k window
(:class:`~adaptive_router.allocation.RoundPlanner`), and may *escalate* a query to one call of a stronger,
dearer procedure whose answer then replaces the cheap one. Whether one more cheap sample or an escalation is
worth its cost depends on what the cheap samples said so far: agreeing answers make the cheap plurality
likely right, scattered or failing ones make escalation worth its price.

- :class:`CascadeModel` (in :mod:`adaptive_router.allocation.cascade_model`) learns that from training
  outcomes: for every evidence state (samples seen, leading answer's count; or solved / not yet with a
  verifier) the expected reward of the cheap answer, where the next cheap sample moves the state, and the
  expected reward of escalating. Tables, smoothed toward coarser states where training saw few queries.
- :class:`CascadePlanner` is a round policy (the :class:`~adaptive_router.allocation.RoundPolicy` interface,
  plus ``escalated_``). Each round it prices the window's **remaining** budget: the one price per cost unit
  at which every open query, following the model's optimal policy from its state (stop, sample once more,
  escalate; :meth:`CascadeModel.policy`), is expected to spend what is left; each query takes its policy's
  next action, and the price is found again on what comes back. The budget is a hard invariant:
  ``unit_cost * units + escalate_cost * escalations`` never exceeds ``budget_per_query * n``.

numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import DEFAULT_MAX_ROUNDS, EPS, int_param, pos_param
from adaptive_router.allocation.cascade_model import CascadeModel
from adaptive_router.allocation.evidence import EvidenceModel
from adaptive_router.allocation.rounds import _ReadsEvidence
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["CascadeModel", "CascadePlanner"]  # CascadeModel's home is cascade_model.py

_SEARCH_POINTS, _SEARCH_LEVELS = 33, 2
"""The price search: a grid of 33 prices, narrowed to the bracket where the expected spend meets the budget,
twice (a relative width of ``32**-2``, about 1e-3, of the first bracket; one vectorised policy solve per
level); the queries whose action changes inside it are filled in one by one while the budget lasts."""


class CascadePlanner(_ReadsEvidence):
    """A window of cascades in rounds: cheap samples, then escalations the evidence pays for, in one budget.

    ``start`` issues round 1 (``first_round`` cheap samples per query). After the caller ``observe``s them,
    ``next_round`` finds the one price per cost unit (the shadow price of the window's **remaining** budget,
    the threshold form of :func:`~adaptive_router.allocation.allocate`) at which every open query, acting on
    ``model.policy`` from its state, is expected to spend what is left. Each query then takes its policy's
    action: one more cheap sample, escalation (``new_escalations_``; after ``min_samples`` cheap samples,
    else a sample first), or nothing this round. Re-solved every round on the new states: a query whose
    samples agree stops, one whose samples scatter or fail escalates, as far as the budget goes. Where
    states tie at the price, as many as the budget pays for take the dearer action. An escalated query is
    done: its strong answer is returned.

    ``next_round`` returns the cheap units (all zeros once done, ``stop_reason_``: ``"budget"``,
    ``"max_rounds"``, ``"max_units"`` or ``"no_gain"``); after **every** call, the last included, the caller
    sends ``new_escalations_`` to the strong procedure. After the last round's samples a final call still
    escalates. No I/O: the caller samples and calls the strong procedure.

    Invariants: ``unit_cost * units_.sum() + escalate_cost * escalated_.sum() <= budget_per_query * n``;
    every query gets at least one cheap sample; ``units_ <= max_units_``; at most ``max_rounds`` rounds of
    cheap samples (``rounds_`` counts one more when escalations follow the last of them).

    Parameters
    ----------
    evidence : EvidenceModel
        Tracks the cheap samples (``VoteEvidence()`` for answers, ``VerifierEvidence(...)`` for pass/fail);
        only its state summary (:meth:`~adaptive_router.allocation.EvidenceModel.leader`) is read.
    model : CascadeModel
        Fitted on training outcomes, reading the same kind of evidence.
    budget_per_query : float
        Average budget per query; the window's budget is ``budget_per_query * n``.
    max_k : int
        Most cheap samples per query.
    unit_cost : float
        Cost of one cheap sample.
    escalate_cost : float or None
        Cost of one escalation (the strong call). ``None``: no strong procedure, never escalate; the planner
        is then a learned stopping rule for the cheap samples (what `Rounds(model=...)` builds).
    max_rounds : int
        Most rounds of cheap samples, the first included.
    first_round : int or "auto"
        Cheap samples per query in round 1; ``"auto"``: 2 for votes when the budget pays for three per query
        (one answer says nothing about agreement; as `Rounds`' ``first_round="auto"``), else 1.
    min_samples : int or "auto"
        Cheap samples a query has before it may escalate (except after the last round); ``"auto"``: the
        first round's.
    price : float
        The least gain in reward per cost unit an action must bring (the threshold form of the same rule:
        a lone query's calibrated shadow price). 0 (the default) spends the window's budget wherever a gain
        is positive.

    Examples
    --------
    >>> import numpy as np
    >>> from adaptive_router.allocation import VerifierEvidence
    >>> cheap = np.array([[1.0, 1.0], [0.0, 0.0]] * 20)
    >>> model = CascadeModel().fit(cheap, np.ones(40))
    >>> planner = CascadePlanner(evidence=VerifierEvidence(prior=(1, 1)), model=model, budget_per_query=6.0,
    ...                          max_k=2, escalate_cost=10.0)
    >>> planner.start(n=2).tolist()
    [1, 1]
    >>> _ = planner.observe([0, 1], [1.0, 0.0])          # query 1 failed: escalating it is worth 10
    >>> planner.next_round().tolist(), planner.new_escalations_.tolist(), planner.spent_
    ([0, 0], [1], 12.0)
    """

    _params = (
        "evidence", "model", "budget_per_query", "max_k", "unit_cost", "escalate_cost", "max_rounds",
        "first_round", "min_samples", "price",
    )  # fmt: skip

    def __init__(
        self,
        *,
        evidence: EvidenceModel,
        model: CascadeModel,
        budget_per_query: float,
        max_k: int,
        escalate_cost: float | None,
        unit_cost: float = 1.0,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        first_round: int | str = "auto",
        min_samples: int | str = "auto",
        price: float = 0.0,
    ) -> None:
        self.evidence = evidence
        self.model = model
        self.budget_per_query = budget_per_query
        self.max_k = max_k
        self.unit_cost = unit_cost
        self.escalate_cost = escalate_cost
        self.max_rounds = max_rounds
        self.first_round = first_round
        self.min_samples = min_samples
        self.price = price

    @property
    def spent_(self) -> float:
        """Cost of every cheap sample and escalation issued so far in this window."""
        return float(self.unit_cost) * float(self.units_.sum()) + self._escalate_cost * float(
            self.escalated_.sum()
        )

    @property
    def _escalate_cost(self) -> float:
        return 0.0 if self.escalate_cost is None else float(self.escalate_cost)

    def _validate(self) -> None:
        if not isinstance(self.evidence, EvidenceModel):
            raise ConfigError(f"evidence={self.evidence!r} must be an EvidenceModel (VoteEvidence(), ...)")
        if not isinstance(self.model, CascadeModel):
            raise ConfigError(f"model={self.model!r} must be a fitted CascadeModel")
        if self.model.needs != self.evidence.needs:
            raise ConfigError(
                f"the CascadeModel was fitted on {self.model.needs!r} but {self.evidence!r} reads "
                f"{self.evidence.needs!r}; fit it with the matching evidence"
            )
        pos_param("budget_per_query", self.budget_per_query, zero_ok=True)
        int_param("max_k", self.max_k, 1)
        pos_param("unit_cost", self.unit_cost)
        if self.escalate_cost is not None:
            pos_param("escalate_cost", self.escalate_cost)
        int_param("max_rounds", self.max_rounds, 1)
        pos_param("price", self.price, zero_ok=True)
        for name in ("first_round", "min_samples"):
            v = getattr(self, name)
            if v != "auto":
                int_param(name, v, 1)

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        """Begin a window and return round 1's cheap samples per query (``prior_curves``: as
        :meth:`RoundPlanner.start`, passed to the evidence model)."""
        self._validate()
        curve = self._begin(prior_curves, n, max_units, int(self.max_k))
        self.escalated_ = np.zeros(self.n_, dtype=bool)
        self.new_escalations_ = np.zeros(0, dtype=np.int64)
        self.price_ = float(self.price)
        c = float(self.unit_cost)
        self.budget_ = float(self.budget_per_query) * self.n_
        first = self.first_round
        if first == "auto":
            first = 2 if self.needs == "answers" and self.budget_per_query >= 3 * c * (1 - 1e-12) else 1
        self.first_k_ = int(first)
        self.min_samples_ = self.first_k_ if self.min_samples == "auto" else int(self.min_samples)
        units = np.minimum(self.first_k_, self.max_units_)
        if float(units.sum()) * c > self.budget_ * (1 + 1e-12):
            raise InfeasibleBudgetError(
                f"budget_per_query={self.budget_per_query:g} cannot give every query its first "
                f"{self.first_k_} cheap sample(s) of cost {c:g}; raise it or lower first_round"
            )
        self.state_ = self.evidence.begin(curve, self.max_units_)
        if self.n_ == 0:
            return self._stop("budget")
        return self._issue(units)

    def next_round(self) -> IntArray:
        """Cheap samples per query for the next round; the round's escalations are in ``new_escalations_``."""
        self._check_started()
        self.new_escalations_ = np.zeros(0, dtype=np.int64)
        zeros = np.zeros(self.n_, dtype=np.int64)
        if self.done_:
            return zeros
        last = self.rounds_ >= int(self.max_rounds)
        room = self.budget_ - self.spent_
        rows = np.flatnonzero(~self.escalated_)
        m = self.observed_[rows]
        lead = np.minimum(self.evidence.leader(self.state_)[rows], m)
        # samples each may still take (none after the last round: stop or escalate; none once closed)
        caps = m if last else m + (self.max_units_ - self.units_)[rows]
        action, sure, expected = self._act(m, lead, caps, room)
        esc = action == 2
        early = esc & (m < self.min_samples_) & (caps > m)  # too few samples to escalate yet: one first
        units = zeros.copy()
        units[rows[(action == 1) | early]] = 1
        # the samples the policy takes whatever they show go out in this round together: the same policy in
        # fewer rounds (never more than the budget left; `sure` counts only samples every path takes)
        batch = sure
        if self.escalate_cost is None:  # a stopping rule: its expected samples spread over the rounds left
            left = max(1, int(self.max_rounds) - self.rounds_)  # none after the last round: caps = m
            batch = np.maximum(sure, np.ceil(expected / float(self.unit_cost) / left - 1e-9).astype(np.int64))
        batched = np.where(action == 1, np.maximum(1, np.minimum(batch, caps - m)), units[rows])
        if float(batched.sum()) * float(self.unit_cost) <= room * (1 + 1e-9) - self._escalate_cost * float(
            (esc & ~early).sum()
        ):
            units[rows] = batched
        self.new_escalations_ = rows[esc & ~early]
        self.escalated_[self.new_escalations_] = True
        issued = float(units.sum()) * float(self.unit_cost) + float(self.new_escalations_.size) * (
            self._escalate_cost
        )
        assert issued <= room * (1 + 1e-9) + 1e-9, (issued, room)  # the price keeps the expected cost in room
        if units.any():
            return self._issue(units)
        if self.new_escalations_.size:
            self.rounds_ += 1  # a round of escalations only; nothing left to sample
        if last:
            return self._stop("max_rounds")
        if bool((self.max_units_[rows] <= m).all()):
            return self._stop("max_units")
        return self._stop("budget" if room < float(self.unit_cost) * (1 - 1e-12) else "no_gain")

    def _act(
        self, m: IntArray, lead: IntArray, caps: IntArray, room: float
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Each open query's action at the smallest price (at least ``price``) whose
        expected spend fits ``room``; where states tie at it, the dearer action for as many as fit (in query
        order). Queries in the same state act alike, so the search runs on the distinct states. Also
        returns how many samples in a row the policy at that price takes from each query's state whatever
        they show (`CascadeModel.sure_samples`), and each query's expected cost from its state on."""
        c, big = float(self.unit_cost), self._escalate_cost
        width = int(caps.max(initial=0)) + 1
        states, where, count = np.unique(
            (caps * width + m) * width + lead, return_inverse=True, return_counts=True
        )
        s_cap, s_m, s_lead = states // width // width, states // width % width, states % width
        escalate = self.escalate_cost is not None and big <= room * (1 + 1e-12)

        def at(prices: FloatArray) -> tuple[IntArray, FloatArray, list[tuple[IntArray, IntArray]]]:
            """Each state's action and expected cost at each price, and the policy tables by cap group."""
            action = np.zeros((prices.size, states.size), dtype=np.int64)
            cost = np.zeros((prices.size, states.size))
            if (s_cap == s_m).all():  # no sample left to take: escalate or stop, state by state
                cheap, strong = self.model.values(s_m, s_lead)
                up = strong[None, :] - prices[:, None] * big > cheap[None, :] + EPS
                up &= escalate
                return np.where(up, 2, 0), np.where(up, big, 0.0), []
            groups = []
            for cap in np.unique(s_cap):
                sel = np.flatnonzero(s_cap == cap)
                table, _, spend = self.model.policies(
                    prices, unit_cost=c, escalate_cost=big, cap=int(cap), escalate=escalate
                )
                action[:, sel] = table[:, s_m[sel], s_lead[sel]]
                cost[:, sel] = spend[:, s_m[sel], s_lead[sel]]
                groups.append((sel, table))
            return action, cost, groups

        def sure_at(groups: list[tuple[IntArray, IntArray]], i: int) -> IntArray:
            """Each query's sure samples under the policy at the ``i``-th price of ``at``'s tables."""
            sure = np.zeros(states.size, dtype=np.int64)
            for sel, table in groups:
                sure[sel] = self.model.sure_samples(table[i])[s_m[sel], s_lead[sel]]
            return sure[where]

        fits = max(room, 0.0) * (1 + 1e-12) + 1e-12  # float rounding of an exactly spent budget
        tables = (self.model.cheap_, self.model.strong_) if escalate else (self.model.cheap_,)
        span = max(float(t.max()) for t in tables) - min(float(t.min()) for t in tables)
        lo = float(self.price)
        hi = lo + (span + 1e-9) / (min(c, big) if escalate else c)  # no action with a cost is worth hi
        for _ in range(_SEARCH_LEVELS):  # the expected spend falls as the price rises: narrow the bracket
            grid = np.linspace(lo, hi, _SEARCH_POINTS)
            acts, costs, groups = at(grid)
            ok = int(np.argmax(costs @ count <= fits))  # the grid's last point always fits
            if ok == 0:  # the least price fits (only possible at the first level: later brackets start above)
                self.price_ = lo
                return acts[0][where], sure_at(groups, 0), costs[0][where]
            lo, hi = float(grid[ok - 1]), float(grid[ok])
        self.price_ = hi
        a_lo, a_hi = acts[ok - 1][where], acts[ok][where]
        c_lo, c_hi = costs[ok - 1][where], costs[ok][where]
        # the queries whose action changes between the two prices: the dearer one while it fits
        extra = np.cumsum(np.where(a_lo != a_hi, c_lo - c_hi, 0.0))
        take = (a_lo != a_hi) & (float(c_hi.sum()) + extra <= fits)
        return np.where(take, a_lo, a_hi), sure_at(groups, ok), np.where(take, c_lo, c_hi)
