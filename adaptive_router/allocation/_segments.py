"""Envelope segments of many ladders, in a dense layout the threshold search scans (numpy only; private).

Column ``j - 1`` of an ``(n, m - 1)`` array is the segment of the upper concave envelope that ends at
option ``j``. Rows that are full concave ladders starting at option 0 (the common case) are detected in
one vectorised pass and used as they are; only the other rows go through :func:`hull_mask`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from adaptive_router.allocation._validate import Problem
from adaptive_router.allocation.hull import hull_mask
from adaptive_router.predictors import FloatArray, IntArray

__all__ = ["Segments", "segments", "take"]


@dataclass
class Segments:
    """Envelope segments in a dense ``(n, m - 1)`` layout: column ``j - 1`` is the segment ending at option j.

    ``key`` is the slope (gain per cost) of a segment, ``<= 0`` where there is no useful segment; along a
    row the useful keys are non-increasing, so any threshold takes a prefix of each row's segments and a
    row is summarised by how many segments it takes. Segment costs are ``step`` (``(m - 1,)``, shared by
    every row) or ``w`` (``(n, m - 1)``). ``general`` rows (not full concave ladders from option 0) have
    their own tables: ``gpos[g, t]`` the column of their (t+1)-th segment, ``gcum[g, t]`` the cost of
    their first t segments, ``gw`` the cost of each column.
    """

    key: FloatArray
    step: FloatArray | None
    w: FloatArray | None
    base: IntArray
    general: IntArray
    gw: FloatArray
    gpos: IntArray
    gcum: FloatArray
    all_concave: bool

    # --- per-row counts ------------------------------------------------------------------------------
    def counts(self, thr: float, *, strict: bool) -> IntArray:
        """Segments per row with ``key > thr`` (``strict``) or ``key >= thr``; ``thr`` must be > 0."""
        mask = self.key > thr if strict else self.key >= thr
        small = np.uint8 if mask.shape[1] < 255 else np.int64
        return mask.view(np.uint8).sum(axis=1, dtype=small).astype(np.int64)

    def prefix_cost(self, counts: IntArray) -> float:
        """Total cost of taking the first ``counts[i]`` segments of every row."""
        n, m1 = self.key.shape
        if self.w is not None:
            cum = np.zeros((n, m1 + 1))
            np.cumsum(self.w, axis=1, out=cum[:, 1:])
            plain = cum[np.arange(n), counts]
        else:
            assert self.step is not None
            plain = np.concatenate([[0.0], np.cumsum(self.step)])[counts]
        total = float(plain.sum())
        if self.general.size:
            g = self.general
            total += float(self.gcum[np.arange(g.size), counts[g]].sum() - plain[g].sum())
        return total

    def segment_cols(self, rows: IntArray, ranks: IntArray) -> IntArray:
        """Column of the ``ranks``-th (0-based) segment of each row in ``rows``."""
        cols = ranks.copy()
        if self.general.size:
            pos = self._general_lookup()[rows]
            hit = pos >= 0
            cols[hit] = self.gpos[pos[hit], ranks[hit]]
        return cols

    def _general_lookup(self) -> IntArray:
        lookup = np.full(self.key.shape[0], -1, dtype=np.int64)
        lookup[self.general] = np.arange(self.general.size)
        return lookup

    def weights_at(self, flat: IntArray) -> FloatArray:
        """Cost of the segments at flat indices ``flat``."""
        if self.w is not None:
            return self.w.ravel()[flat]
        assert self.step is not None
        m1 = self.key.shape[1]
        cols = flat % m1
        out = self.step[cols]
        if self.general.size:
            pos = self._general_lookup()[flat // m1]
            hit = pos >= 0
            out[hit] = self.gw[pos[hit], cols[hit]]
        return out

    def equal_costs(self) -> bool:
        """Whether every useful segment costs the same."""
        if self.w is None and self.step is not None and self.step.size and np.all(self.step == self.step[0]):
            useful_g = self.key[self.general] > 0
            return bool(np.all(self.gw[useful_g] == self.step[0]))
        useful = self.key > 0
        if self.w is not None:
            lo = np.min(self.w, where=useful, initial=np.inf)
            hi = np.max(self.w, where=useful, initial=-np.inf)
            return bool(lo >= hi)
        assert self.step is not None
        plain = np.ones(self.key.shape[0], dtype=bool)
        plain[self.general] = False
        allc = np.concatenate([self.step[useful[plain].any(axis=0)], self.gw[useful[self.general]]])
        return bool(allc.size == 0 or np.all(allc == allc[0]))

    # --- choices -------------------------------------------------------------------------------------
    def choice_from_counts(self, counts: IntArray) -> IntArray:
        """Option index reached by taking the first ``counts[i]`` segments of every row."""
        choice = counts.astype(np.int64).copy()
        if self.general.size:
            g = self.general
            c = counts[g]
            last = self.gpos[np.arange(g.size), np.maximum(c - 1, 0)] + 1
            choice[g] = np.where(c > 0, last, self.base[g])
        return choice

    def choice_from(self, taken: npt.NDArray[np.bool_]) -> IntArray:
        """Option index from a prefix-closed mask of taken segments."""
        small = np.uint8 if taken.shape[1] < 255 else np.int64
        return self.choice_from_counts(taken.view(np.uint8).sum(axis=1, dtype=small).astype(np.int64))


def take(a: FloatArray, choice: IntArray) -> FloatArray:
    if a.ndim == 1:
        return a[choice]
    n, m = a.shape
    return np.ascontiguousarray(a).ravel()[np.arange(n, dtype=np.int64) * m + choice]


def segments(p: Problem) -> Segments:
    v, c, allowed = p.values, p.costs, p.allowed
    n, m = v.shape
    shared = c.ndim == 1
    none = np.zeros(0, dtype=np.int64)
    if m == 1:
        z = np.zeros((0, 0))
        zero = np.zeros(n, np.int64)
        return Segments(np.zeros((n, 0)), np.zeros(0), None, zero, none, z, none[:, None], z, True)
    dc = np.diff(c, axis=-1)
    key = np.diff(v, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        key /= dc
    if allowed is None and shared and bool((dc > 0).all()):
        bad = (key[:, 1:] > key[:, :-1]).any(axis=1)
    else:
        flat_cost = (dc <= 0) if shared else ~(dc > 0)
        bad = (key[:, 1:] > key[:, :-1]) | flat_cost[..., 1:] | flat_cost[..., :-1]
        bad = bad.any(axis=1) | flat_cost[..., :1].any(axis=-1)
        if allowed is not None:
            bad |= ~allowed.all(axis=1)
    general = np.flatnonzero(bad)
    base = np.zeros(n, dtype=np.int64)
    k = general.size
    gw = np.zeros((k, m - 1))
    gpos = np.zeros((k, m - 1), dtype=np.int64)
    gcum = np.zeros((k, m))
    all_concave = True
    if k:
        gv = v[general]
        gc = np.broadcast_to(c, (n, m))[general]
        ga = np.ones_like(gv, dtype=bool) if allowed is None else allowed[general]
        alive = hull_mask(gv, gc, ga)
        base[general] = np.argmax(alive, axis=1)
        gkey, gw, is_seg, concave = _chain(gv, gc, alive, ga)
        key[general] = gkey
        if not shared:
            dc[general] = gw
        # segments first, in column order: rank t -> column, and the running cost of the first t
        gpos = np.argsort(~is_seg, axis=1, kind="stable")
        np.cumsum(np.take_along_axis(gw, gpos, axis=1), axis=1, out=gcum[:, 1:])
        all_concave = bool(concave.all())
    if shared:
        return Segments(key, dc, None, base, general, gw, gpos, gcum, all_concave)
    return Segments(key, None, dc, base, general, gw, gpos, gcum, all_concave)


def _chain(
    v: FloatArray, c: FloatArray, alive: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Slopes, costs and mask of the segments between consecutive live vertices (a few rows, small m)."""
    k, m = v.shape
    j = np.arange(m)
    prev = np.maximum.accumulate(np.where(alive, j, -1), axis=1)
    prev = np.hstack([np.full((k, 1), -1), prev[:, :-1]])
    seg = alive & (prev >= 0)
    flat_prev = np.clip(prev, 0, None) + (np.arange(k) * m)[:, None]
    c = np.ascontiguousarray(c)
    gain = np.where(seg, v - v.ravel()[flat_prev], 0.0)
    cost = np.where(seg, c - c.ravel()[flat_prev], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(seg & (gain > 0), gain / np.where(cost > 0, cost, 1.0), 0.0)
    # Rounding can break monotonicity by an ulp; enforce it so taken segments stay a prefix.
    slope = np.where(seg, slope, np.inf)
    slope = np.minimum.accumulate(slope, axis=1)
    slope = np.where(seg, slope, 0.0)
    # A row is concave (for the exactness claim) when every allowed option cheaper than its best vertex
    # is a vertex.
    top = np.where(slope > 0, j, np.argmax(alive, axis=1)[:, None]).max(axis=1)
    concave = ~(allowed & ~alive & (j[None, :] < top[:, None])).any(axis=1)
    return slope[:, 1:], cost[:, 1:], seg[:, 1:], concave
