"""Allocation: predicted reward curves + a budget -> one option per query (numpy only).

- :func:`allocate` solves one window exactly (threshold form, vectorised); :class:`Allocation` is its result.
- :class:`Ladder` / :class:`Option` describe which options (procedure, k, cost) a query has.
- :class:`WindowAllocator` and :class:`ThresholdAllocator` allocate a stream under a per-query budget.
"""

from __future__ import annotations

from adaptive_router.allocation.engine import Allocation, allocate
from adaptive_router.allocation.ladders import Ladder, Option
from adaptive_router.allocation.streaming import ThresholdAllocator, WindowAllocator

__all__ = ["Allocation", "Ladder", "Option", "ThresholdAllocator", "WindowAllocator", "allocate"]
