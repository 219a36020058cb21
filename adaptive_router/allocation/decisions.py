"""What a plan is for and what it decided: `PlanSpec`, `Decision`, `Ledger`, `Grant` (numpy only).

Value objects of `adaptive_router.allocation.planning`: a `PlanSpec` names the options, the budget per query
and a cap on k; a `Decision` is one query's chosen option and how it was chosen; a `Ledger` is what the plans
of one spec were granted, allocated and hold in reserve; a `Grant` is budget reserved for queries whose
spend rounds decide (`Planner.reserve` / `Planner.settle`).

Examples
--------
>>> from adaptive_router.allocation import Ladder
>>> spec = PlanSpec(Ladder.best_of_k(3), budget_per_query=2.0)
>>> Ledger(spec).record([1.0, 3.0]).balance
0.0
>>> spec == PlanSpec(Ladder.best_of_k(3), budget_per_query=2)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation.ladders import Ladder, Option
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.predictors import FloatArray

__all__ = ["AllocatorName", "Decision", "Grant", "Ledger", "PlanSpec", "finite_or_none", "value_row"]

AllocatorName = Literal["window", "threshold", "uniform", "fixed"]


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
        Units allocated to them (the cost of the chosen options; for rounds, of the units they issued).
    reserved : float
        Units held by grants whose rounds are still running (`Planner.reserve`).
    """

    spec: PlanSpec
    queries: int = 0
    allocated: float = 0.0
    reserved: float = 0.0

    @property
    def granted(self) -> float:
        """``budget_per_query * queries``."""
        return self.spec.budget_per_query * self.queries

    @property
    def balance(self) -> float:
        """Granted but neither allocated nor reserved (never negative)."""
        return max(self.granted - self.allocated - self.reserved, 0.0)

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


@dataclass(frozen=True, eq=False)
class Grant:
    """Budget reserved by `Planner.reserve` for queries whose spend rounds decide; `Planner.settle` closes it.

    Attributes
    ----------
    spec : PlanSpec
    queries : int
    units : float
        Cost units the queries may spend together: their share plus the ledger's balance at reservation.
    values : ndarray of shape (queries, m), or None
        Their predicted option values (``NaN``: disallowed option); None without a probe.
    allocator : {"window", "threshold"}
        ``threshold`` for one query with values (a lone query's rounds buy at ``price``).
    price : float
        λ: the gain per unit of cost a unit must exceed (0 for windows and without values; may be inf).
    planned : float
        The cost the threshold planned for a lone query (its λ correction is settled against it).
    """

    spec: PlanSpec
    queries: int
    units: float
    values: FloatArray | None
    allocator: AllocatorName
    price: float = 0.0
    planned: float = 0.0
    group: Any = field(default=None, repr=False)
    settled: bool = field(default=False, repr=False)

    def decision(self, index: int, row: int) -> Decision:
        """The `Decision` describing query `row`'s outcome: option `index` of the ladder, bought in rounds."""
        values = None if self.values is None else value_row(self.values[row])
        price = finite_or_none(self.price) if self.allocator == "threshold" else None
        return Decision(self.spec.ladder[index], index, values, self.allocator, self.queries, price)


def value_row(values: FloatArray) -> tuple[float | None, ...]:
    """A row of values as a tuple, ``None`` for an absent (non-finite) option."""
    return tuple(float(x) if math.isfinite(x) else None for x in values.tolist())


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when finite, else None."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
