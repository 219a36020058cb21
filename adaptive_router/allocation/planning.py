"""Planning a stream of queries: predicted option values + a budget per query -> one option each (numpy only).

A `Planner` turns the ``(n, m)`` predicted values of the queries that arrived together into one `Decision`
per query, under a `PlanSpec` (a `Ladder` of options, a budget per query and an optional cap on k):

- ``window`` (two or more queries): allocated jointly and exactly by
  :func:`~adaptive_router.allocation.allocate` under the window's share of the budget plus what earlier
  decisions left unspent;
- ``threshold`` (one query): the option a `ThresholdAllocator` picks with its λ calibrated on reference
  values (the planner's ``reference`` callback, else the queries planned so far, refitted when that set
  doubles, up to ``max_reference`` rows), downgraded when it costs more than the ledger holds;
- ``uniform`` (no values: no probe): the most expensive option that fits the budget per query.

Every path records into one `Ledger` per spec: ``queries``, units ``allocated`` and the ``balance``
(``budget_per_query * queries - allocated``), which never goes negative, so the allocated spend never
exceeds the budget, whichever mix of windows and lone queries arrives. Specs compare by value (two
strategies with the same ladder share a ledger); the planner keeps the ``max_groups`` most recently used
specs and forgets the oldest (its unspent balance is forfeited, which only makes later plans more frugal),
so a stream of distinct budgets holds bounded memory, and no strategy or model object is ever held.

A planner is used through `Planner.plan(spec, values)`. Queries whose spend is decided later, in rounds,
get a `Grant` instead (`Planner.reserve`: their share plus the whole balance, held in the ledger's
``reserved`` so that concurrent plans never spend the same units; for a lone query with values, also the
threshold's λ), and `Planner.settle(grant, spent)` records what the rounds used and returns the rest.
`Planner.charge(spec, cost)` spends extra units on queries already planned (a router's cross-model
fallback after a model failed) only when the balance covers them. The
value types (`PlanSpec`, `Decision`, `Ledger`, `Grant`) live in `adaptive_router.allocation.decisions`.

Examples
--------
>>> import numpy as np
>>> from adaptive_router.allocation import Ladder
>>> planner = Planner()
>>> spec = PlanSpec(Ladder.best_of_k(3), budget_per_query=2.0)
>>> easy, hard = [0.9, 0.95, 0.97], [0.2, 0.4, 0.55]
>>> [d.option.k for d in planner.plan(spec, np.array([easy, hard]))]
[1, 3]
>>> planner.ledger(spec).balance
0.0
>>> [d.option.k for d in planner.plan(spec, None, n=2)], planner.ledger(spec).queries
([2, 2], 4)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._validate import Problem
from adaptive_router.allocation.decisions import (
    AllocatorName,
    Decision,
    Grant,
    Ledger,
    PlanSpec,
    finite_or_none,
    value_row,
)
from adaptive_router.allocation.engine import allocate
from adaptive_router.allocation.streaming import ThresholdAllocator
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.predictors import FloatArray

__all__ = [
    "DEFAULT_MAX_GROUPS", "DEFAULT_MAX_REFERENCE", "Decision", "Grant", "Ledger", "PlanSpec", "Planner",
]  # fmt: skip

DEFAULT_MAX_GROUPS = 256
"""Specs (budget, max_k, ladder) whose ledger and threshold a `Planner` keeps."""

DEFAULT_MAX_REFERENCE = 256
"""Reference rows a threshold is calibrated on when no ``reference`` callback is given."""

_EPS = 1e-9


@dataclass
class _Group:
    """The planning state of one spec: its ledger and its threshold."""

    spec: PlanSpec
    costs: FloatArray
    allowed: npt.NDArray[np.bool_]
    uniform: int
    ledger: Ledger
    threshold: ThresholdAllocator | None = None
    reference: list[FloatArray] = field(default_factory=list)
    fitted_rows: int = 0

    @classmethod
    def new(cls, spec: PlanSpec) -> _Group:
        costs = spec.ladder.costs
        allowed = np.ones(len(costs), dtype=bool) if spec.max_k is None else spec.ladder.ks <= spec.max_k
        fits = allowed & (costs <= spec.budget_per_query + _EPS)
        uniform = int(np.flatnonzero(fits)[np.argmax(costs[fits])])
        return cls(spec, costs, allowed, uniform, Ledger(spec))


class Planner:
    """Plans and ledgers of every `PlanSpec` in use (thread-safe, bounded).

    Parameters
    ----------
    reference : callable, optional
        ``reference(spec) -> (n_ref, m)`` predicted values of reference queries that calibrate the threshold
        of lone queries (called once per spec, outside the planner's lock). Without it the threshold is
        calibrated on the queries planned so far.
    max_groups : int
        Specs kept; the least recently used one is forgotten beyond that.
    max_reference : int
        Planned rows kept to calibrate a threshold without ``reference``.
    horizon : float
        The threshold's ledger horizon (see `ThresholdAllocator`).
    """

    def __init__(
        self,
        *,
        reference: Callable[[PlanSpec], npt.ArrayLike] | None = None,
        max_groups: int = DEFAULT_MAX_GROUPS,
        max_reference: int = DEFAULT_MAX_REFERENCE,
        horizon: float = 256.0,
    ) -> None:
        for name, value in (("max_groups", max_groups), ("max_reference", max_reference)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        self.reference = reference
        self.max_groups = max_groups
        self.max_reference = max_reference
        self.horizon = horizon
        self._lock = threading.Lock()
        self._groups: OrderedDict[PlanSpec, _Group] = OrderedDict()

    # ------------------------------------------------------------------ state
    def _group(self, spec: PlanSpec) -> _Group:
        """The spec's state, most recently used now (call with the lock held)."""
        group = self._groups.get(spec)
        if group is None:
            group = self._groups[spec] = _Group.new(spec)
            while len(self._groups) > self.max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(spec)
        return group

    def ledger(self, spec: PlanSpec) -> Ledger:
        """The spec's ledger (empty if it was never planned or has been forgotten)."""
        with self._lock:
            group = self._groups.get(spec)
            return Ledger(spec) if group is None else group.ledger

    def ledgers(self) -> list[Ledger]:
        """Every kept spec's ledger, least recently used first."""
        with self._lock:
            return [group.ledger for group in self._groups.values()]

    def _values(self, group: _Group, values: npt.ArrayLike) -> FloatArray:
        v = np.array(values, dtype=np.float64, ndmin=2)
        if v.ndim != 2 or v.shape[1] != len(group.costs):
            raise ConfigError(
                f"values must be (n queries, {len(group.costs)} options) for this ladder, got shape {v.shape}"
            )
        if np.isinf(v).any():
            raise ConfigError("values must be finite (NaN marks an absent option)")
        v[:, ~group.allowed] = np.nan
        if np.isnan(v[:, group.allowed]).all(axis=1).any():
            raise ConfigError("a query has no allowed option with a value; give every query one value")
        return v

    @staticmethod
    def _problem(group: _Group, v: FloatArray) -> Problem:
        """What ``check_problem`` makes of rows `_values` returned and the spec's costs, without checking
        them again (the `Ladder` keeps its costs finite, >= 0 and sorted; `_values` rejected inf and rows
        without an allowed value): a lone query's threshold decision validates its row once."""
        present = ~np.isnan(v)
        return Problem(v, group.costs, 0.0, None if present.all() else present)

    # ------------------------------------------------------------------ planning
    def plan(self, spec: PlanSpec, values: npt.ArrayLike | None, *, n: int | None = None) -> list[Decision]:
        """One `Decision` per query: a window for two or more rows, the threshold for one, uniform for none.

        Parameters
        ----------
        spec : PlanSpec
        values : array-like of shape (n, m), or None
            Predicted value of every ladder option per query (NaN: absent); ``None`` plans uniformly.
        n : int, optional
            The number of queries when ``values`` is None.
        """
        if values is None:
            return self.plan_uniform(spec, 1 if n is None else n)
        v = np.asarray(values, dtype=np.float64)
        if v.ndim == 1 or (v.ndim == 2 and v.shape[0] == 1):
            return [self.plan_one(spec, v.reshape(-1))]
        return self.plan_window(spec, v)

    def plan_uniform(self, spec: PlanSpec, n: int) -> list[Decision]:
        """``n`` queries without values: each gets the most expensive option within the budget per query."""
        with self._lock:
            group = self._group(spec)
            index = group.uniform
            group.ledger = group.ledger.record([group.costs[index]] * n)
        return [Decision(spec.ladder[index], index, None, "uniform", n) for _ in range(n)]

    def fixed(self, spec: PlanSpec, index: int, n: int = 1) -> list[Decision]:
        """Record ``n`` queries given option ``index`` by the caller (e.g. a cascade keeping a paid draft).

        Raises
        ------
        InfeasibleBudgetError
            The option costs more than the ledger holds for them.
        """
        with self._lock:
            group = self._group(spec)
            cost = float(group.costs[index])
            if cost * n > group.ledger.balance + spec.budget_per_query * n + _EPS:
                raise InfeasibleBudgetError(
                    f"option {index} costs {cost:g} units, more than the budget holds for {n} queries"
                )
            group.ledger = group.ledger.record([cost] * n)
        return [Decision(spec.ladder[index], index, None, "fixed", n) for _ in range(n)]

    def plan_window(self, spec: PlanSpec, values: npt.ArrayLike) -> list[Decision]:
        """Allocate a window jointly under ``n * budget_per_query`` plus the ledger's balance."""
        with self._lock:
            group = self._group(spec)
            v = self._values(group, values)
            if not v.shape[0]:
                return []
            self._remember(group, v)
            alloc = allocate(v, group.costs, group.ledger.balance + spec.budget_per_query * v.shape[0])
            choice = np.asarray(alloc.choice, dtype=np.int64)
            group.ledger = group.ledger.record(group.costs[choice])
        price = finite_or_none(alloc.shadow_price)
        n = len(choice)
        return [
            Decision(spec.ladder[int(j)], int(j), value_row(row), "window", n, price)
            for row, j in zip(v, choice, strict=True)
        ]

    def calibrate(self, spec: PlanSpec, reference_values: npt.ArrayLike) -> None:
        """Fit the spec's threshold on ``(n_ref, m)`` reference values now (keeps its ledger)."""
        with self._lock:
            group = self._group(spec)
            rows = self._values(group, reference_values)
            if not rows.shape[0]:
                raise ConfigError("no reference values to calibrate on; pass at least one row")
            group.threshold = self._fit(group, rows)
            group.fitted_rows = rows.shape[0]

    def _fit(self, group: _Group, rows: FloatArray) -> ThresholdAllocator:
        """The spec's threshold fitted on ``rows``; a refit keeps the threshold's own λ correction."""
        threshold = group.threshold or ThresholdAllocator(
            budget_per_query=group.spec.budget_per_query, horizon=self.horizon
        )
        return threshold.fit(rows, group.costs)

    def _remember(self, group: _Group, rows: FloatArray) -> None:
        room = self.max_reference - len(group.reference)
        if self.reference is None and room > 0:
            group.reference.extend(np.array(r) for r in rows[:room])

    def _calibrated(self, spec: PlanSpec) -> None:
        """Fit the spec's threshold on the ``reference`` callback's values once (outside the lock)."""
        if self.reference is not None:
            with self._lock:
                calibrated = self._group(spec).threshold is not None
            if not calibrated:
                self.calibrate(spec, self.reference(spec))

    def _threshold(self, group: _Group, v: FloatArray) -> ThresholdAllocator:
        """The spec's threshold, (re)fitted on the rows planned so far when due (call with the lock held)."""
        self._remember(group, v)
        n_ref = len(group.reference)
        if group.threshold is None or (self.reference is None and n_ref >= 2 * group.fitted_rows):
            group.threshold = self._fit(group, np.vstack(group.reference) if group.reference else v)
            group.fitted_rows = max(n_ref, 1)
        return group.threshold

    def plan_one(self, spec: PlanSpec, row: npt.ArrayLike) -> Decision:
        """The option of a query that arrives alone: the calibrated threshold, within the ledger's balance."""
        self._calibrated(spec)
        with self._lock:
            group = self._group(spec)
            v = self._values(group, row)
            threshold = self._threshold(group, v)
            chosen = threshold.choose_checked(self._problem(group, v))
            index = int(np.asarray(chosen.choice).ravel()[0])
            available = group.ledger.balance + spec.budget_per_query
            if group.costs[index] > available + _EPS:  # never allocate more than has been granted
                ok = np.isfinite(v[0]) & (group.costs <= available + _EPS)
                if not ok.any():
                    raise InfeasibleBudgetError(
                        f"no option with a value costs at most the {available:g} units available; "
                        "give the cheapest allowed option a value"
                    )
                planned = float(group.costs[index])
                index = int(np.flatnonzero(ok)[np.argmax(group.costs[ok])])
                threshold.settle(planned=planned, actual=float(group.costs[index]))
            group.ledger = group.ledger.record(group.costs[index : index + 1])  # an array: no list to convert
            price = finite_or_none(threshold.shadow_price_)
        return Decision(spec.ladder[index], index, value_row(v[0]), "threshold", 1, price)

    def charge(self, spec: PlanSpec, cost: float) -> bool:
        """Spend ``cost`` more units on queries the spec planned already, if its ledger's balance covers them.

        No query is added (unlike `fixed` and `reserve`, which add the units of a new query to the
        budget): the units come out of the balance that earlier plans left unspent, so the allocated spend
        still never exceeds the budget. A router charges the cost of a fallback option this way when a
        planned model failed. All or nothing, atomic under concurrent plans.

        Parameters
        ----------
        spec : PlanSpec
        cost : float
            Units to spend (>= 0).

        Returns
        -------
        bool
            Whether the units were charged (False: the balance holds less, or the spec is not kept).

        Raises
        ------
        ConfigError
            A negative or non-finite cost.

        Examples
        --------
        >>> from adaptive_router.allocation import Ladder
        >>> planner = Planner()
        >>> spec = PlanSpec(Ladder.routes({"cheap": 1, "expensive": 4}), budget_per_query=3.0)
        >>> [d.option.procedure for d in planner.plan(spec, None, n=2)], planner.ledger(spec).balance
        (['cheap', 'cheap'], 4.0)
        >>> planner.charge(spec, 4.0), planner.charge(spec, 4.0)
        (True, False)
        >>> planner.ledger(spec).queries, planner.ledger(spec).allocated, planner.ledger(spec).balance
        (2, 6.0, 0.0)
        """
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not np.isfinite(cost) or cost < 0:
            raise ConfigError(f"a charge must be a finite number of units >= 0, got {cost!r}")
        with self._lock:
            group = self._groups.get(spec)
            if group is None or cost > group.ledger.balance + _EPS:
                return False
            self._groups.move_to_end(spec)
            group.ledger = replace(group.ledger, allocated=group.ledger.allocated + float(cost))
        return True

    # ------------------------------------------------------------------ spend decided later (rounds)
    def reserve(self, spec: PlanSpec, values: npt.ArrayLike | None, *, n: int | None = None) -> Grant:
        """Reserve the budget of queries whose spend is decided later, in rounds; `settle` it afterwards.

        The grant is the queries' share (``budget_per_query`` each) plus the ledger's whole balance, taken
        from the ledger now, so that concurrent plans never spend the same units; `settle` returns what
        the rounds did not use. For one query with values the grant carries the calibrated threshold's λ
        (ledger-corrected, as `plan_one` buys at): its rounds buy a unit only when it gains more than λ
        per unit of cost (`RoundPlanner` ``price``). Without values the price is 0 (no probe: buy any
        positive gain within the grant).

        Parameters
        ----------
        spec : PlanSpec
        values : array-like of shape (n, m), or None
            The queries' predicted option values (their rounds' prior), or None without a probe.
        n : int, optional
            The number of queries when ``values`` is None.
        """
        v_in = None if values is None else np.array(values, dtype=np.float64, ndmin=2)
        count = int(v_in.shape[0]) if v_in is not None else (1 if n is None else int(n))
        if count < 1:
            raise ConfigError(f"reserve needs at least one query, got {count}")
        if v_in is not None and count == 1:
            self._calibrated(spec)
        with self._lock:
            group = self._group(spec)
            v, price, planned = None, 0.0, 0.0
            allocator: AllocatorName = "window"
            if v_in is not None:
                v = self._values(group, v_in)
                if count == 1:
                    chosen = self._threshold(group, v).choose_checked(self._problem(group, v))
                    price, planned, allocator = float(chosen.shadow_price), float(chosen.spend), "threshold"
                else:
                    self._remember(group, v)
            ledger = group.ledger
            units = ledger.balance + spec.budget_per_query * count
            group.ledger = replace(ledger, queries=ledger.queries + count, reserved=ledger.reserved + units)
        return Grant(spec, count, units, v, allocator, price, planned, group)

    def settle(self, grant: Grant, spent: float) -> None:
        """Record what a grant's rounds spent (at most its units) and return the rest to the ledger.

        A grant settles once; a spec forgotten since (see ``max_groups``) forfeits the rest.

        Raises
        ------
        ConfigError
            A second settlement, or a spend above the grant.
        """
        if spent > grant.units * (1 + 1e-9) + _EPS:
            raise ConfigError(f"a grant of {grant.units:g} units cannot settle a spend of {spent:g}")
        spent = min(max(float(spent), 0.0), grant.units)
        with self._lock:
            if grant.settled:
                raise ConfigError("this grant was settled already")
            object.__setattr__(grant, "settled", True)
            group = self._groups.get(grant.spec)
            if group is not grant.group:
                return
            ledger = group.ledger
            left = ledger.reserved - grant.units
            reserved = left if left > _EPS else 0.0  # the last open grant: no float residue
            group.ledger = replace(ledger, allocated=ledger.allocated + spent, reserved=reserved)
            if grant.allocator == "threshold" and group.threshold is not None:
                group.threshold.settle(planned=grant.planned, actual=spent)
