"""Input checks for the allocators (numpy only; private). Every message names the bad value and the fix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from adaptive_router.errors import ConfigError
from adaptive_router.predictors import FloatArray

__all__ = ["Problem", "check_costs", "check_problem", "check_values"]


@dataclass(frozen=True)
class Problem:
    """A validated allocation problem.

    ``values`` are already multiplied by the weights; ``costs`` is ``(m,)`` or ``(n, m)``; ``allowed`` is
    None when every option of every query is present and allowed (the fast path).
    """

    values: FloatArray
    costs: FloatArray
    budget: float
    allowed: npt.NDArray[np.bool_] | None


def check_values(values: npt.ArrayLike) -> FloatArray:
    """``values`` as a float ``(n, m)`` array without inf."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"values must be a numeric (n queries, m options) array: {exc}") from None
    if v.ndim != 2 or v.shape[1] == 0:
        raise ConfigError(
            f"values must be a 2-D (n queries, m options) array with m >= 1, got shape {v.shape}; "
            "for a single query pass values[None, :]"
        )
    if not np.isfinite(v.sum()) and np.isinf(v).any():
        i, j = np.argwhere(np.isinf(v))[0]
        raise ConfigError(f"values[{i}, {j}] is {v[i, j]}; predicted rewards must be finite (NaN = absent)")
    return v


def check_costs(
    costs: npt.ArrayLike, shape: tuple[int, int], present: npt.NDArray[np.bool_] | None = None
) -> FloatArray:
    """``costs`` as ``(m,)`` or ``(n, m)``: finite and non-negative where present, non-decreasing by row.

    ``present`` (the non-NaN values) defaults to every option being present.
    """
    try:
        c = np.asarray(costs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"costs must be a numeric (m,) or (n, m) array: {exc}") from None
    n, m = shape
    if c.shape not in ((m,), (n, m)):
        raise ConfigError(f"costs has shape {c.shape}; expected ({m},) shared by all queries or ({n}, {m})")
    if c.ndim == 1:
        if not np.isfinite(c).all():
            j = int(np.flatnonzero(~np.isfinite(c))[0])
            raise ConfigError(f"costs[{j}] is {c[j]}; costs must be finite")
        if (c < 0).any():
            j = int(np.flatnonzero(c < 0)[0])
            raise ConfigError(f"costs[{j}] is {c[j]}; costs must be >= 0")
        if m > 1 and (np.diff(c) < 0).any():
            j = int(np.flatnonzero(np.diff(c) < 0)[0]) + 1
            raise ConfigError(
                f"costs[{j}]={c[j]:g} is below costs[{j - 1}]={c[j - 1]:g}; order options by cost "
                "(non-decreasing along each row)"
            )
        return c
    if present is None:
        present = np.ones(shape, dtype=bool)
    bad = present & ~np.isfinite(c)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConfigError(f"costs[{i}, {j}] is {c[i, j]}; costs must be finite where the option is present")
    neg = present & (c < 0)
    if neg.any():
        i, j = np.argwhere(neg)[0]
        raise ConfigError(f"costs[{i}, {j}] is {c[i, j]}; costs must be >= 0")
    if m > 1:
        full = present.all(axis=1)
        down = np.flatnonzero(full & (np.diff(c, axis=1) < 0).any(axis=1))
        holes = np.flatnonzero(~full)
        if holes.size:
            ch = np.where(present[holes], c[holes], -np.inf).T
            prev = np.vstack([np.full((1, holes.size), -np.inf), np.maximum.accumulate(ch, axis=0)[:-1]])
            drop = (ch < prev) & present[holes].T
            down = np.union1d(down, holes[drop.any(axis=0)])
        if down.size:
            i = int(down[0])
            row = np.where(present[i], c[i], np.nan)
            raise ConfigError(
                f"costs of query {i} decrease along the row ({row.tolist()}); order each query's options "
                "by cost (non-decreasing)"
            )
    return c


def _per_query(x: float | npt.ArrayLike, n: int, name: str) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.shape != (n,):
        raise ConfigError(f"{name} must be a scalar or have shape ({n},), got shape {a.shape}")
    if np.isnan(a).any():
        raise ConfigError(f"{name} contains NaN; use -inf / inf (or None) for no limit")
    return a


def check_problem(
    values: npt.ArrayLike,
    costs: npt.ArrayLike,
    budget: float,
    *,
    min_cost: float | npt.ArrayLike | None = None,
    max_cost: float | npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
) -> Problem:
    """Validate the arguments of ``allocate`` and return a :class:`Problem`."""
    v = check_values(values)
    n, m = v.shape
    full = bool(np.isfinite(v.sum())) or bool(np.isfinite(v).all())  # only NaN can be left: inf was rejected
    present = None if full else ~np.isnan(v)
    c = check_costs(costs, (n, m), present)
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise ConfigError(f"budget={budget!r} must be a number (the total for all queries)") from None
    if not np.isfinite(b):
        raise ConfigError(f"budget={budget!r} must be finite")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,):
            raise ConfigError(f"weights must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ConfigError("weights must be finite and >= 0 (they multiply each query's values)")
        v = v * w[:, None]
    allowed = None if full else present
    if min_cost is not None or max_cost is not None:
        c2 = np.broadcast_to(c, (n, m))
        ok = np.ones((n, m), dtype=bool) if present is None else present.copy()
        if min_cost is not None:
            ok &= c2 >= _per_query(min_cost, n, "min_cost")[:, None]
        if max_cost is not None:
            ok &= c2 <= _per_query(max_cost, n, "max_cost")[:, None]
        allowed = None if bool(ok.all()) else ok
    if allowed is not None:
        empty = ~allowed.any(axis=1)
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            has = ~np.isnan(v[i])
            if not has.any():
                raise ConfigError(f"query {i} has no option: every value in row {i} is NaN")
            row = np.broadcast_to(c, (n, m))[i][has]
            raise ConfigError(
                f"query {i} has no option within [min_cost, max_cost]; its options cost {row.tolist()}: "
                "widen the limits for this query"
            )
    return Problem(v, c, b, allowed)
