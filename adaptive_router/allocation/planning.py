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

A planner is used through `Planner.plan(spec, values)`; anything else that plans (a round-based planner)
can stand behind the same call.

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

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation.engine import allocate
from adaptive_router.allocation.ladders import Ladder, Option
from adaptive_router.allocation.streaming import ThresholdAllocator
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.predictors import FloatArray

__all__ = ["DEFAULT_MAX_GROUPS", "DEFAULT_MAX_REFERENCE", "Decision", "Ledger", "PlanSpec", "Planner"]

DEFAULT_MAX_GROUPS = 256
"""Specs (budget, max_k, ladder) whose ledger and threshold a `Planner` keeps."""

DEFAULT_MAX_REFERENCE = 256
"""Reference rows a threshold is calibrated on when no ``reference`` callback is given."""

AllocatorName = Literal["window", "threshold", "uniform", "fixed"]

_EPS = 1e-9


@dataclass(frozen=True)
class PlanSpec:
    """What a plan is for: the options, the budget per query and an optional cap on the number of calls.

    Hashable and compared by value; plans with equal specs share a `Ledger`.

    Parameters
    ----------
    ladder : Ladder
        The options a query can get, cheapest first.
    budget_per_query : float
        Average units per query; at least the cheapest allowed option.
    max_k : int, optional
        Only options with ``k <= max_k`` may be chosen.

    Raises
    ------
    ConfigError
        A non-`Ladder`, a non-finite budget, a ``max_k`` below 1 or below every option's k.
    InfeasibleBudgetError
        The budget is below the cheapest allowed option.
    """

    ladder: Ladder
    budget_per_query: float
    max_k: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ladder, Ladder):
            raise ConfigError(f"ladder must be an allocation Ladder, got {type(self.ladder).__name__}")
        budget = self.budget_per_query
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget):
            raise ConfigError(f"budget_per_query must be a finite number, got {budget!r}")
        if self.max_k is not None:
            if isinstance(self.max_k, bool) or not isinstance(self.max_k, int):
                raise ConfigError(f"max_k must be an int or None, got {self.max_k!r}")
            if self.max_k < 1:
                raise ConfigError(f"max_k must be >= 1, got {self.max_k!r}")
            if not any(o.k <= self.max_k for o in self.ladder):
                raise ConfigError(f"max_k={self.max_k} is below every option's k; raise max_k")
        object.__setattr__(self, "budget_per_query", float(budget))
        cheapest = min(o.cost for o in self.ladder if self.max_k is None or o.k <= self.max_k)
        if self.budget_per_query < cheapest - 1e-12:
            raise InfeasibleBudgetError(
                f"budget_per_query={self.budget_per_query:g} is below the cheapest option ({cheapest:g} "
                f"units); raise the budget to at least {cheapest:g}"
            )


@dataclass(frozen=True)
class Decision:
    """The option chosen for one query, and how.

    Attributes
    ----------
    option, index : Option, int
        The chosen option and its position in the ladder.
    values : tuple of (float or None), or None
        The query's predicted value of every option (``None`` for a disallowed one; ``None`` without values).
    allocator : {"window", "threshold", "uniform", "fixed"}
        The path that chose it (``fixed``: chosen by the caller, see `Planner.fixed`).
    window : int
        Queries planned together.
    shadow_price : float, optional
        The λ of the allocation (gain per unit of cost at the margin).
    """

    option: Option
    index: int
    values: tuple[float | None, ...] | None
    allocator: AllocatorName
    window: int
    shadow_price: float | None = None

    @property
    def chosen_value(self) -> float | None:
        """The predicted value of the chosen option."""
        return None if self.values is None else self.values[self.index]


@dataclass(frozen=True)
class Ledger:
    """What the plans of one `PlanSpec` were granted and allocated, in units.

    Attributes
    ----------
    spec : PlanSpec
    queries : int
        Queries planned.
    allocated : float
        Units allocated to them (the cost of the chosen options).
    """

    spec: PlanSpec
    queries: int = 0
    allocated: float = 0.0

    @property
    def granted(self) -> float:
        """``budget_per_query * queries``."""
        return self.spec.budget_per_query * self.queries

    @property
    def balance(self) -> float:
        """Granted but not allocated (never negative)."""
        return max(self.granted - self.allocated, 0.0)

    def record(self, costs: Sequence[float] | npt.NDArray[np.float64]) -> Ledger:
        """This ledger with queries of the given costs added."""
        added = float(np.sum(costs))
        return replace(self, queries=self.queries + len(costs), allocated=self.allocated + added)

    def as_dict(self) -> dict[str, Any]:
        """``budget_per_query``, ``max_k``, ``queries``, ``allocated`` and ``budget`` (granted)."""
        return {
            "budget_per_query": self.spec.budget_per_query,
            "max_k": self.spec.max_k,
            "queries": self.queries,
            "allocated": self.allocated,
            "budget": self.granted,
        }


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
        price = _finite_or_none(alloc.shadow_price)
        n = len(choice)
        return [
            Decision(spec.ladder[int(j)], int(j), _row(row), "window", n, price)
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

    def plan_one(self, spec: PlanSpec, row: npt.ArrayLike) -> Decision:
        """The option of a query that arrives alone: the calibrated threshold, within the ledger's balance."""
        if self.reference is not None:
            with self._lock:
                calibrated = self._group(spec).threshold is not None
            if not calibrated:
                self.calibrate(spec, self.reference(spec))
        with self._lock:
            group = self._group(spec)
            v = self._values(group, row)
            self._remember(group, v)
            n_ref = len(group.reference)
            if group.threshold is None or (self.reference is None and n_ref >= 2 * group.fitted_rows):
                group.threshold = self._fit(group, np.vstack(group.reference) if group.reference else v)
                group.fitted_rows = max(n_ref, 1)
            chosen = group.threshold.choose(v, group.costs)
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
                group.threshold.settle(planned=planned, actual=float(group.costs[index]))
            group.ledger = group.ledger.record([group.costs[index]])
            price = _finite_or_none(group.threshold.shadow_price_)
        return Decision(spec.ladder[index], index, _row(v[0]), "threshold", 1, price)


def _row(values: FloatArray) -> tuple[float | None, ...]:
    return tuple(float(x) if math.isfinite(x) else None for x in values.tolist())


def _finite_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
