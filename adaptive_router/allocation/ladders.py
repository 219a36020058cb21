"""Option ladders: which ``(procedure, k, cost)`` options a query has, and their predicted values.

A ladder is the list of options, ordered by cost, that :func:`~adaptive_router.allocation.allocate`
chooses from. ``Option("cheap", 3, 3.0)`` means "three samples from the cheap route, cost 3". Ladders
turn predicted curves ``{procedure: (n, K)}`` (expected reward with k = 1..K samples) into the
``(n, m)`` value matrix the allocator takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from adaptive_router.errors import ConfigError
from adaptive_router.predictors import Curves, FloatArray, IntArray

__all__ = ["Ladder", "Option"]


@dataclass(frozen=True, order=True)
class Option:
    """One way to answer a query: ``k`` calls of ``procedure`` at a total ``cost``."""

    procedure: str
    k: int
    cost: float

    def __post_init__(self) -> None:
        if not isinstance(self.procedure, str) or not self.procedure:
            raise ConfigError(f"procedure={self.procedure!r} must be a non-empty string")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ConfigError(f"k={self.k!r} must be an integer >= 1 (the number of calls)")
        cost = float(self.cost)
        if not np.isfinite(cost) or cost < 0:
            raise ConfigError(f"cost={self.cost!r} must be finite and >= 0")
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "cost", cost)


def _unit_costs(unit_costs: Mapping[str, float]) -> dict[str, float]:
    if not unit_costs:
        raise ConfigError("pass procedures with their cost per call, e.g. {'cheap': 1, 'expensive': 10}")
    out = {}
    for name, cost in unit_costs.items():
        c = float(cost)
        if not np.isfinite(c) or c < 0:
            raise ConfigError(f"cost of procedure {name!r} is {cost!r}; it must be finite and >= 0")
        out[str(name)] = c
    return out


def _check_max_k(max_k: int) -> None:
    if isinstance(max_k, bool) or int(max_k) != max_k or max_k < 1:
        raise ConfigError(f"max_k={max_k!r} must be an integer >= 1")


@dataclass(frozen=True)
class Ladder:
    """An ordered tuple of :class:`Option`, cheapest first (stable for equal costs).

    Examples
    --------
    >>> ladder = Ladder.grid({"cheap": 1, "expensive": 10}, max_k=2)
    >>> [(o.procedure, o.k, o.cost) for o in ladder]
    [('cheap', 1, 1.0), ('cheap', 2, 2.0), ('expensive', 1, 10.0), ('expensive', 2, 20.0)]
    >>> import numpy as np
    >>> curves = {"cheap": np.array([[0.2, 0.3]]), "expensive": np.array([[0.6, 0.7]])}
    >>> ladder.values(curves)
    array([[0.2, 0.3, 0.6, 0.7]])
    """

    options: tuple[Option, ...]

    def __post_init__(self) -> None:
        opts = tuple(self.options)
        if not opts:
            raise ConfigError("a ladder needs at least one option")
        if not all(isinstance(o, Option) for o in opts):
            raise ConfigError("ladder options must be Option(procedure, k, cost) instances")
        if len(set(opts)) != len(opts):
            raise ConfigError("ladder options must be distinct")
        object.__setattr__(self, "options", tuple(sorted(opts, key=lambda o: o.cost)))

    # constructors ---------------------------------------------------------------------------------------
    @classmethod
    def best_of_k(cls, max_k: int, cost: float = 1.0, procedure: str = "default") -> Ladder:
        """Best-of-k with ``k = 1..max_k`` samples of one procedure at ``cost`` per sample.

        >>> Ladder.best_of_k(3, cost=2.0).costs
        array([2., 4., 6.])
        """
        _check_max_k(max_k)
        return cls(tuple(Option(procedure, k, k * float(cost)) for k in range(1, int(max_k) + 1)))

    @classmethod
    def routes(cls, unit_costs: Mapping[str, float]) -> Ladder:
        """One call of each route, e.g. ``{"cheap": 1, "expensive": 10}``."""
        return cls(tuple(Option(p, 1, c) for p, c in _unit_costs(unit_costs).items()))

    @classmethod
    def grid(cls, unit_costs: Mapping[str, float], max_k: int) -> Ladder:
        """Every route with ``k = 1..max_k`` calls (cheap x k and expensive x k), ordered by cost."""
        _check_max_k(max_k)
        costs = _unit_costs(unit_costs)
        return cls(tuple(Option(p, k, k * c) for p, c in costs.items() for k in range(1, int(max_k) + 1)))

    # views ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.options)

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def __getitem__(self, index: int) -> Option:
        return self.options[index]

    @property
    def costs(self) -> FloatArray:
        """``(m,)`` cost of each option."""
        return np.array([o.cost for o in self.options], dtype=np.float64)

    @property
    def ks(self) -> IntArray:
        """``(m,)`` number of calls of each option."""
        return np.array([o.k for o in self.options], dtype=np.int64)

    @property
    def procedures(self) -> tuple[str, ...]:
        """Procedure of each option (with repeats), in ladder order."""
        return tuple(o.procedure for o in self.options)

    @property
    def max_k(self) -> int:
        """Largest k of any option (the curve length :meth:`values` needs)."""
        return max(o.k for o in self.options)

    def values(self, curves: Curves) -> FloatArray:
        """``(n, m)`` predicted value of each option from ``{procedure: (n, K)}`` curves.

        Column ``j`` is ``curves[options[j].procedure][:, options[j].k - 1]``.
        """
        needed = sorted({o.procedure for o in self.options})
        missing = [p for p in needed if p not in curves]
        if missing:
            raise ConfigError(f"curves lack procedures {missing}; they have {sorted(curves)}")
        arrays = {p: np.asarray(curves[p], dtype=np.float64) for p in needed}
        n = None
        for p, a in arrays.items():
            if a.ndim != 2:
                raise ConfigError(f"curves[{p!r}] must be (n, K), got shape {a.shape}")
            if n is not None and a.shape[0] != n:
                raise ConfigError(f"curves disagree on the number of queries: {a.shape[0]} vs {n}")
            n = a.shape[0]
            kmax = max(o.k for o in self.options if o.procedure == p)
            if a.shape[1] < kmax:
                raise ConfigError(f"curves[{p!r}] has K={a.shape[1]} but the ladder needs k up to {kmax}")
        out = np.empty((n or 0, len(self.options)))
        for j, o in enumerate(self.options):
            out[:, j] = arrays[o.procedure][:, o.k - 1]
        return out

    def describe(self, choice: Sequence[int] | IntArray) -> list[Option]:
        """The chosen :class:`Option` of each query, from an allocation's ``choice``."""
        return [self.options[int(j)] for j in np.asarray(choice).ravel()]
