"""Round-based planning: spend a window's budget in rounds, reading each query's evidence in between.

A one-shot allocation fixes every query's ``k`` from the probe's prediction alone. A round planner gives every
query a first answer, looks at what came back (a verifier's pass/fail, the answers' agreement, reward-model
scores), turns that evidence into each query's expected value of ``j`` more samples, and buys the best of
those with :func:`~adaptive_router.allocation.allocate`, the same exact allocator, over what is left of the
window's budget. A solved query stops; a query whose answers agree stops; the budget goes where the evidence
says more samples still pay.

- Evidence models (:class:`VerifierEvidence`, :class:`VoteEvidence`, :class:`ScoreEvidence`): a prior per
  query plus the evidence so far -> an ``(n, j_max + 1)`` curve of the expected gain of ``j`` more units.
- :class:`RoundPlanner`: a pure state machine, ``start`` -> ``observe`` -> ``next_round`` ... until it
  returns all zeros. Never spends more than ``budget_per_query * n``; every query gets at least one unit
  and never more than its maximum.
- Baselines with the same interface (in :mod:`adaptive_router.allocation.round_baselines`):
  :class:`UniformRounds` (self-consistency / best-of-k at a fixed k) and :class:`EarlyStoppingSC` (ESC:
  windows of ``w`` samples, stop when a window agrees).
- :func:`~adaptive_router.allocation.sequential.replay_rounds` replays any of them on recorded outcomes.

numpy only.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._params import int_param, params_repr, pos_param
from adaptive_router.allocation.engine import allocate
from adaptive_router.allocation.evidence import EvidenceModel
from adaptive_router.allocation.ladders import Ladder
from adaptive_router.errors import ConfigError, InfeasibleBudgetError, NotFittedError
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["ROUND_BUDGETS", "RoundPlanner", "RoundPolicy"]

ROUND_BUDGETS = ("even", "pace", "all")
"""How much of the window's remaining budget one round may spend (see `RoundPlanner`)."""

# --------------------------------------------------------------------------------------------------------
# policies: the planner and two baselines, one interface


class RoundPolicy(Protocol):
    """What :func:`replay_rounds` drives: ``start`` -> (``observe`` -> ``next_round``)* until all zeros."""

    @property
    def needs(self) -> str: ...  # what observe() takes per sample: "rewards", "answers" or "scores"
    @property
    def quality(self) -> str: ...  # how the returned answer is chosen: "best", "vote" or "score"
    @property
    def unit_cost(self) -> float: ...
    @property
    def units_(self) -> IntArray: ...
    @property
    def rounds_(self) -> int: ...

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray: ...

    def observe(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> Any: ...

    def next_round(self) -> IntArray: ...


_R = TypeVar("_R", bound="_Rounds")


class _Rounds:
    """Bookkeeping shared by the policies: units issued and observed per query, rounds, stop reason."""

    n_: int
    units_: IntArray
    observed_: IntArray
    max_units_: IntArray
    rounds_: int
    done_: bool
    stop_reason_: str | None
    unit_cost: float = 1.0
    _params: ClassVar[tuple[str, ...]] = ()
    """The constructor arguments, in order, that ``repr`` shows."""

    def __repr__(self) -> str:
        return params_repr(self, self._params)

    def _begin(
        self, prior: npt.ArrayLike | None, n: int | None, max_units: npt.ArrayLike | None, max_k: int
    ) -> FloatArray | None:
        curve = None
        if prior is not None:
            curve = np.asarray(prior, dtype=np.float64)
            if curve.ndim != 2 or curve.shape[1] == 0 or not np.isfinite(curve).all():
                raise ConfigError(f"prior_curves must be a finite (n, K) array, got shape {curve.shape}")
            if n is not None and n != curve.shape[0]:
                raise ConfigError(f"n={n} but prior_curves has {curve.shape[0]} rows")
            n = curve.shape[0]
        if n is None:
            if max_units is None:
                raise ConfigError("pass prior_curves, n= or max_units= so the window size is known")
            n = int(np.asarray(max_units).shape[0])
        n = int_param("n", n, 0)
        cap = np.full(n, max_k, dtype=np.int64)
        if max_units is not None:
            mu = np.asarray(max_units)
            if mu.shape != (n,) or not np.issubdtype(mu.dtype, np.integer) or (mu < 1).any():
                raise ConfigError(f"max_units must be ({n},) integers >= 1 (units each query may get)")
            cap = np.minimum(cap, mu.astype(np.int64))
        self.n_, self.max_units_ = n, cap
        self.units_ = np.zeros(n, dtype=np.int64)
        self.observed_ = np.zeros(n, dtype=np.int64)
        self.rounds_, self.done_, self.stop_reason_ = 0, False, None
        return curve

    def _check_started(self) -> None:
        if not hasattr(self, "units_"):
            raise NotFittedError(f"{type(self).__name__}.start(...) must be called first")

    def _record(self, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> tuple[IntArray, npt.NDArray[Any]]:
        self._check_started()
        q = np.asarray(queries)
        ev = np.asarray(evidence)
        if q.ndim != 1 or ev.shape != q.shape:
            raise ConfigError(f"queries {q.shape} and evidence {ev.shape} must be 1-D and aligned")
        if q.size and (not np.issubdtype(q.dtype, np.integer) or q.min() < 0 or q.max() >= self.n_):
            raise ConfigError(f"queries must be integer indices in [0, {self.n_})")
        q = q.astype(np.int64)
        seen = self.observed_ + np.bincount(q, minlength=self.n_)
        if (seen > self.units_).any():
            i = int(np.flatnonzero(seen > self.units_)[0])
            raise ConfigError(
                f"query {i} was observed {int(seen[i])} times but only {int(self.units_[i])} units "
                "were issued"
            )
        self.observed_ = seen
        return q, ev

    def close(self: _R, queries: npt.ArrayLike) -> _R:
        """Issue no more units to ``queries`` (e.g. every sample of their last round failed).

        Their units so far stay spent; the budget they would have used goes to the other queries.
        """
        self._check_started()
        q = np.asarray(queries, dtype=np.int64).reshape(-1)
        if q.size and (q.min() < 0 or q.max() >= self.n_):
            raise ConfigError(f"queries must be integer indices in [0, {self.n_})")
        self.max_units_ = self.max_units_.copy()
        self.max_units_[q] = self.units_[q]
        return self

    def _issue(self, units: IntArray) -> IntArray:
        units = units.astype(np.int64)
        if units.any():
            self.units_ = self.units_ + units
            self.rounds_ += 1
        return units

    def _stop(self, reason: str) -> IntArray:
        self.done_, self.stop_reason_ = True, reason
        return np.zeros(self.n_, dtype=np.int64)


class _ReadsEvidence(_Rounds):
    """A policy whose ``evidence`` model reads every sample into its window state ``state_``."""

    evidence: EvidenceModel
    state_: Any

    @property
    def needs(self) -> str:
        return self.evidence.needs

    @property
    def quality(self) -> str:
        return self.evidence.quality

    def observe(self: _R, queries: npt.ArrayLike, evidence: npt.ArrayLike) -> _R:
        """Record one sample per entry: ``queries[t]`` got ``evidence[t]`` (reward, answer code or score)."""
        q, ev = self._record(queries, evidence)
        self.evidence.update(self.state_, q, ev)  # type: ignore[attr-defined]
        return self


class RoundPlanner(_ReadsEvidence):
    """Spend a window's budget in rounds: one answer each, then the best gains the evidence still shows.

    ``start`` issues round 1; after the caller ``observe``s the samples, ``next_round`` turns the evidence
    into each query's gain of ``j`` more units (the ``evidence`` model) and buys them with
    :func:`~adaptive_router.allocation.allocate` under the round's share of the remaining budget. It returns
    all zeros, and sets ``done_`` / ``stop_reason_``, when the budget is spent (``"budget"``), ``max_rounds``
    rounds were issued (``"max_rounds"``), no query may take another unit (``"max_units"``) or no unit has
    positive gain (``"no_gain"``). No I/O: the caller samples.

    Invariants: ``unit_cost * units_.sum() <= budget_per_query * n``; every query gets at least one unit;
    ``units_ <= max_units_``; at most ``max_rounds`` rounds.

    Parameters
    ----------
    evidence : EvidenceModel
        :class:`VerifierEvidence`, :class:`VoteEvidence` or :class:`ScoreEvidence`.
    budget_per_query : float
        Average budget per query in cost units; the window's budget is ``budget_per_query * n``.
    max_k : int
        Most units (samples) one query may receive.
    unit_cost : float
        Cost of one unit.
    max_rounds : int
        Most rounds, the first included.
    round_size : int, optional
        Most units one query may receive in one round after the first (None: no cap). It limits what a
        round issues, not how far the gains look ahead.
    round_budget : {"even", "pace", "all"}
        How much of the remaining budget a round may spend: ``"even"`` its share over the rounds left
        (``remaining / rounds_left``); ``"pace"`` each query's part of the allocation of the whole
        remaining budget (its plan): ``min(plan, max(ceil(plan / rounds_left), share))`` units, where
        ``share = ceil(remaining / (rounds_left * open))`` over the queries whose next unit still has
        positive gain: one each while the rounds left can pay for the rest that way, as a round-robin over
        the unsolved does, more only when the rounds run short, and none for a query the plan leaves out
        (with votes every query has a positive gain, and a plan gives most of what is left to the split
        votes); ``"all"`` everything (then ``round_size`` paces the spending).
    first_round : {"one", "plan"} or int
        ``"one"``: one unit per query. An int ``k``: ``k`` units per query (a first vote worth reading:
        one answer says nothing about agreement). ``"plan"``: the one-shot allocation of the prior curves
        over the whole budget, scaled by ``plan_fraction`` (rounded up, at least one unit).
    plan_fraction : float
        In ``(0, 1]``; used with ``first_round="plan"``.
    price : float
        The threshold form of the same rule: a unit is bought only when its expected gain exceeds
        ``price * unit_cost`` (the shadow price λ of a lone query's calibrated threshold; ``inf`` buys nothing
        after the first round). 0 (the default) spends the window's budget wherever a gain is positive.

    Examples
    --------
    >>> import numpy as np
    >>> from adaptive_router.allocation import VerifierEvidence
    >>> planner = RoundPlanner(evidence=VerifierEvidence(prior=(1.0, 1.0)), budget_per_query=2.0, max_k=4,
    ...                        max_rounds=3)
    >>> planner.start(n=3).tolist()
    [1, 1, 1]
    >>> _ = planner.observe([0, 1, 2], [1.0, 0.0, 0.0])   # query 0 solved
    >>> planner.next_round().tolist()                  # half of the 3 units left; the solved query gets none
    [0, 1, 0]
    >>> _ = planner.observe([1], [0.0])
    >>> planner.next_round().tolist(), planner.spent_   # the last round spends what is left
    ([0, 1, 1], 6.0)
    >>> planner.next_round().tolist(), planner.stop_reason_
    ([0, 0, 0], 'budget')
    """

    _params = (
        "evidence", "budget_per_query", "max_k", "unit_cost", "max_rounds", "round_size", "round_budget",
        "first_round", "plan_fraction", "price",
    )  # fmt: skip

    def __init__(
        self,
        *,
        evidence: EvidenceModel,
        budget_per_query: float,
        max_k: int,
        unit_cost: float = 1.0,
        max_rounds: int = 4,
        round_size: int | None = None,
        round_budget: str = "even",
        first_round: str | int = "one",
        plan_fraction: float = 0.5,
        price: float = 0.0,
    ) -> None:
        self.evidence = evidence
        self.budget_per_query = budget_per_query
        self.max_k = max_k
        self.unit_cost = unit_cost
        self.max_rounds = max_rounds
        self.round_size = round_size
        self.round_budget = round_budget
        self.first_round = first_round
        self.plan_fraction = plan_fraction
        self.price = price

    @classmethod
    def from_ladder(cls, ladder: Ladder, **params: Any) -> RoundPlanner:
        """A planner for a best-of-k ladder (one procedure, ``k = 1..K`` at ``k * c``): ``max_k=K``,
        ``unit_cost=c``."""
        ks, costs = ladder.ks, ladder.costs
        if len(set(ladder.procedures)) != 1 or not np.array_equal(ks, np.arange(1, ks.size + 1)):
            raise ConfigError(
                "from_ladder needs a best-of-k ladder: one procedure with k = 1..K (Ladder.best_of_k)"
            )
        if not np.allclose(costs, costs[0] * ks):
            raise ConfigError(f"from_ladder needs equal cost per sample, got costs {costs.tolist()}")
        return cls(max_k=int(ks[-1]), unit_cost=float(costs[0]), **params)

    @property
    def spent_(self) -> float:
        """Cost of every unit issued so far in this window."""
        return float(self.unit_cost) * float(self.units_.sum())

    def _validate(self) -> None:
        if not isinstance(self.evidence, EvidenceModel):
            raise ConfigError(
                f"evidence={self.evidence!r} must be an EvidenceModel: VerifierEvidence(), VoteEvidence() or "
                "ScoreEvidence()"
            )
        pos_param("budget_per_query", self.budget_per_query, zero_ok=True)
        int_param("max_k", self.max_k, 1)
        pos_param("unit_cost", self.unit_cost)
        int_param("max_rounds", self.max_rounds, 1)
        if self.round_size is not None:
            int_param("round_size", self.round_size, 1)
        if self.round_budget not in ROUND_BUDGETS:
            raise ConfigError(f"round_budget={self.round_budget!r}; choose one of {list(ROUND_BUDGETS)}")
        fr = self.first_round
        if fr not in ("one", "plan") and (
            isinstance(fr, bool) or not isinstance(fr, int | np.integer) or fr < 1
        ):
            raise ConfigError(f"first_round={fr!r}; choose 'one', 'plan' or a number of units >= 1")
        f = pos_param("plan_fraction", self.plan_fraction)
        if f > 1:
            raise ConfigError(f"plan_fraction={self.plan_fraction!r} must be in (0, 1]")
        if not (isinstance(self.price, int | float | np.floating) and self.price >= 0):  # inf allowed
            raise ConfigError(f"price={self.price!r} must be a number >= 0 (inf: no unit after round 1)")

    def start(
        self,
        prior_curves: npt.ArrayLike | None = None,
        *,
        n: int | None = None,
        max_units: npt.ArrayLike | None = None,
    ) -> IntArray:
        """Begin a window and return round 1's units per query.

        Parameters
        ----------
        prior_curves : array-like of shape (n, K), optional
            The probe's predicted curve per query (pass@k for a verifier, vote accuracy for votes); needed by
            ``first_round="plan"`` and by evidence models without a fitted or given prior.
        n : int, optional
            Window size when no prior curves are given.
        max_units : array-like of int, shape (n,), optional
            Per-query caps below ``max_k`` (e.g. samples available in a replay).
        """
        self._validate()
        curve = self._begin(prior_curves, n, max_units, int(self.max_k))
        self.budget_ = float(self.budget_per_query) * self.n_
        c = float(self.unit_cost)
        if self.n_ * c > self.budget_ * (1 + 1e-12):
            raise InfeasibleBudgetError(
                f"budget_per_query={self.budget_per_query:g} cannot give every query one unit of cost {c:g}; "
                f"raise it to at least {c:g}"
            )
        self.state_ = self.evidence.begin(curve, self.max_units_)
        if self.n_ == 0:
            return self._stop("budget")
        if self.first_round == "one" or not isinstance(self.first_round, str):
            k = 1 if self.first_round == "one" else int(self.first_round)
            first = np.minimum(k, self.max_units_)
            if float(first.sum()) * c > self.budget_ * (1 + 1e-12):
                raise InfeasibleBudgetError(
                    f"first_round={k} costs {float(first.sum()) * c:g}, above the window's budget "
                    f"{self.budget_:g}; lower first_round or raise budget_per_query"
                )
            return self._issue(first)
        if curve is None:
            raise ConfigError("first_round='plan' needs the probe's prior_curves in start()")
        kmax = int(self.max_units_.max())
        values = np.full((self.n_, kmax), np.nan)
        width = min(kmax, curve.shape[1])
        values[:, :width] = curve[:, :width]
        values[np.arange(kmax)[None, :] >= self.max_units_[:, None]] = np.nan
        values[:, 0] = np.nan_to_num(values[:, 0])
        plan = allocate(values, c * np.arange(1, kmax + 1), self.budget_).choice + 1
        first = np.clip(np.ceil(float(self.plan_fraction) * plan - 1e-9), 1, plan).astype(np.int64)
        return self._issue(first)

    def next_round(self) -> IntArray:
        """Units per query for the next round; all zeros once the planner stops (see ``stop_reason_``)."""
        self._check_started()
        if self.done_:
            return np.zeros(self.n_, dtype=np.int64)
        c = float(self.unit_cost)
        room = self.budget_ - self.spent_
        afford = _units(room, c)
        if afford < 1:
            return self._stop("budget")
        if self.rounds_ >= int(self.max_rounds):
            return self._stop("max_rounds")
        if math.isinf(float(self.price)):
            return self._stop("no_gain")
        horizon = np.minimum(self.max_units_ - self.units_, afford)  # what the window could still pay for
        if horizon.max(initial=0) < 1:
            return self._stop("max_units")
        cap = int(horizon.max())
        if self.round_size is not None:
            cap = min(cap, int(self.round_size))
        # the first few increments, before the round's share is known (gains do not depend on jmax); all
        # of them for a model that does not declare its gains concave (its concavity is checked on all)
        inc = self._increments(horizon, min(cap, 4) if self.evidence.concave else cap, None)
        left = int(self.max_rounds) - self.rounds_
        if self.round_budget == "even":  # this round's share, at least one unit
            room = min(max(room / left, c), room)
        elif self.round_budget == "pace":  # each query's plan for the rest, paced over the rounds left
            first = inc[:, 0] if inc is not None else np.diff(self._flat_gains(horizon, 1, None))[:, 0]
            open_ = int((first > 0).sum())
            if open_:
                share = math.ceil(afford / (left * open_))  # one each while the rounds left can pay
                plan = self._buy(horizon, int(min(horizon.max(), afford)), room, inc)
                paced = np.minimum(plan, np.maximum(-(-plan // left), share))
                return self._issue_or_stop(np.minimum(paced, cap))
        return self._issue_or_stop(self._buy(horizon, int(min(cap, _units(room, c))), room, inc))

    def _buy(self, horizon: IntArray, jmax: int, room: float, inc: FloatArray | None) -> IntArray:
        """Units per query that :func:`allocate` buys with ``room`` on gains of up to ``jmax`` units."""
        afford = _units(room, float(self.unit_cost))
        units = np.zeros(self.n_, dtype=np.int64)
        rows, gains, counts = self._round_gains(horizon, jmax, afford, inc)
        bought = None if counts is None else _cut_ties(gains, counts, afford)
        if bought is not None and int(bought.sum()) <= afford:  # the threshold's choice, ties cut
            units[rows] = bought
        elif rows.size:
            units[rows] = allocate(gains, float(self.unit_cost) * np.arange(gains.shape[1]), room).choice
        return units

    def _issue_or_stop(self, units: IntArray) -> IntArray:
        return self._issue(units) if units.any() else self._stop("no_gain")

    def _round_gains(
        self, horizon: IntArray, jmax: int, afford: int, first: FloatArray | None
    ) -> tuple[IntArray, FloatArray, IntArray | None]:
        """The rows and columns of this round's gains that ``allocate`` can buy, those gains, and how many
        units of each row reach the threshold (None when the rows are passed whole: not concave).

        With equal unit costs and concave rows the allocator buys the ``afford`` largest positive
        increments, so its threshold is the ``afford``-th largest increment; increments below any lower
        bound on it, and rows with none above, can be left out without changing its choice. Gains are asked
        for ``w = 4`` columns first (all of them for a model without ``concave = True``): the ``afford``-th
        largest increment among them bounds the threshold from below, and if every row's ``w``-th increment
        is under that bound no row can take more than ``w``; otherwise all ``jmax`` columns are asked for
        the rows that reach it. If a row is not concave, every row is passed whole.
        ``first`` holds the first ``min(4, ...)`` increments already computed (None: some row is not concave).
        """
        n = self.n_
        if first is None:  # not concave: no trimming
            return np.arange(n), self._flat_gains(horizon, jmax, None), None
        # rows whose first increment is not positive buy nothing (their increments do not increase)
        live = np.flatnonzero(first[:, 0] > 0)
        w = min(jmax, first.shape[1])
        inc = first[live, :w]
        lam = _kth_largest(inc[inc > 0], afford)
        extra = np.zeros((0, 0))
        more = np.zeros(0, dtype=np.int64)
        if w < jmax and not (lam > 0 and bool((inc[:, -1] < lam).all())):
            # only rows whose w-th increment reaches lam can use more columns; the others' later
            # increments are below lam, which the wider (superset) bound below can only raise
            more = np.flatnonzero((inc[:, -1] >= lam) & (horizon[live] > w))
            wide = self._increments(horizon[live[more]], jmax, live[more])
            if wide is None:
                return np.arange(n), self._flat_gains(horizon, jmax, None), None
            extra = wide[:, w:]
            lam = _kth_largest(np.concatenate([inc[inc > 0], extra[extra > 0]]), afford)
        count = ((inc > 0) & (inc >= lam)).sum(axis=1)
        if more.size:
            count[more] += ((extra > 0) & (extra >= lam)).sum(axis=1)
        pick = np.flatnonzero(count > 0)
        width = int(count[pick].max(initial=0))
        sub = np.zeros((pick.size, width + 1))
        np.cumsum(np.maximum(inc[pick, : min(w, width)], 0.0), axis=1, out=sub[:, 1 : min(w, width) + 1])
        if width > w:  # rows of `more` that buy past column w (only they can)
            deep = np.flatnonzero(count[pick] > w)
            src = np.searchsorted(more, pick[deep])
            tail = np.cumsum(np.maximum(extra[src, : width - w], 0.0), axis=1) + sub[deep, w : w + 1]
            sub[deep, w + 1 :] = tail
        return live[pick], _flat_tail(sub, count[pick]), count[pick]

    def _flat_gains(self, horizon: IntArray, w: int, rows: IntArray | None) -> FloatArray:
        """The evidence model's gains, checked, with columns past each horizon flat (:func:`_flat_tail`)."""
        m = self.n_ if rows is None else rows.size
        if rows is None:
            g = self.evidence.gains(self.state_, horizon, w)
        elif "rows" in inspect.signature(self.evidence.gains).parameters:
            g = self.evidence.gains(self.state_, horizon, w, rows=rows)
        else:  # a model without row subsets: compute every row, keep these
            every = np.zeros(self.n_, dtype=np.int64)
            every[rows] = horizon
            g = self.evidence.gains(self.state_, every, w)[rows]
        if g.shape != (m, w + 1) or np.isinf(g).any():
            raise ConfigError(f"{self.evidence!r}.gains must return a finite ({m}, {w + 1}) array")
        g[:, 0] = 0.0
        if self.price:  # the threshold form: a unit pays for itself only above price * unit_cost
            g = g - float(self.price) * float(self.unit_cost) * np.arange(w + 1)[None, :]
        return _flat_tail(g, np.minimum(horizon, w))

    def _increments(self, horizon: IntArray, w: int, rows: IntArray | None) -> FloatArray | None:
        """``(m, w)`` non-increasing increments of the gains, or None if some row is not concave."""
        inc = np.diff(self._flat_gains(horizon, w, rows), axis=1)
        if (np.diff(inc, axis=1) > 1e-12).any():
            return None
        return np.minimum.accumulate(inc, axis=1)  # rounding noise would make rows look bent


def _cut_ties(gains: FloatArray, counts: IntArray, afford: int) -> IntArray:
    """What the allocator buys with ``afford`` units on concave ``gains`` rows: each row's ``counts``
    increments at or above the threshold, less those that tie at the threshold (within a relative 1e-8 of
    the smallest one bought) where they are more than ``afford`` pays for, cut from the last rows first
    (whole rows keep their tied units: a vote of two needs both). Any such cut buys the same total gain."""
    counts = counts.copy()
    excess = int(counts.sum()) - afford
    if excess <= 0:
        return counts
    rows = np.arange(counts.size)
    inc = np.diff(gains, axis=1)
    low = inc[rows, counts - 1]  # each row's smallest increment bought (concave rows: its last)
    lam = float(low.min())
    bought = np.arange(inc.shape[1])[None, :] < counts[:, None]
    tied = ((inc <= lam * (1.0 + 1e-8) + 1e-15) & bought).sum(axis=1)[::-1]  # the last row first
    after = np.cumsum(tied) - tied  # tied units in the rows after each one
    counts -= np.clip(excess - after, 0, tied)[::-1]
    return counts


def _kth_largest(pos: FloatArray, k: int) -> float:
    """The ``k``-th largest of the positive values ``pos`` (a copy, changed), or 0 when there are at most
    ``k``.

    ``np.partition`` is very slow on many equal values (identical states): a relative jitter of at most
    1e-9 downwards makes them distinct and can only lower the order statistic, so the result is still a
    lower bound on the allocator's threshold.
    """
    if not 0 < k < pos.size:
        return 0.0
    pos *= 1.0 - 1e-9 * _scramble(pos.size)
    return float(np.partition(pos, pos.size - k)[pos.size - k])


def _scramble(m: int) -> FloatArray:
    """``m`` deterministic pseudo-random numbers in ``[0, 1)`` (a multiplicative hash of the index; a
    read-only prefix of one cached array, grown when a call needs more)."""
    global _SCRAMBLED
    if _SCRAMBLED.size < m:
        h = (np.arange(max(m, 2 * _SCRAMBLED.size), dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(
            1 << 32
        )
        _SCRAMBLED = h.astype(np.float64) / float(1 << 32)
        _SCRAMBLED.flags.writeable = False
    return _SCRAMBLED[:m]


_SCRAMBLED = np.zeros(0)


def _units(room: float, unit_cost: float) -> int:
    """Whole units ``room`` pays for (a relative 1e-12 forgives float rounding of exact multiples)."""
    return math.floor(room / unit_cost * (1 + 1e-12))


def _flat_tail(g: FloatArray, count: IntArray) -> FloatArray:
    """Columns past ``count`` repeat the value at ``count``: a step with no gain, which is never bought.

    (A NaN would mark the option absent too, but sends the row through the allocator's slower general path.)
    """
    if count.size == 0 or int(count.min()) >= g.shape[1] - 1:  # every row has every column
        return g
    last = g[np.arange(g.shape[0]), count]
    return np.where(np.arange(g.shape[1])[None, :] > count[:, None], last[:, None], g)
