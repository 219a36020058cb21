"""Parameter checks and constants shared by the round-based planner's modules (numpy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from adaptive_router.errors import ConfigError

__all__ = ["DEFAULT_MAX_ROUNDS", "EPS", "QUALITIES", "int_param", "params_repr", "pos_param"]

EPS = 1e-6
QUALITIES = ("best", "vote", "score")
"""How a policy picks the answer it returns: any verified sample, the plurality answer, the top score."""
DEFAULT_MAX_ROUNDS = 10
"""Most rounds per window by default, the first included (latency grows with rounds, not with k). With
``DEFAULT_ROUND_BUDGET`` a window uses only the rounds its budget needs. Chosen on arith40's train half
(docs/rounds.md): with a verifier and no probe, `RoundRobinUnsolved` (one sample per round to every unsolved
query) needs 3, 5, 8 and 11 rounds at 2, 4, 6 and 8 samples per query; 4 even rounds fell 0.4 points below
it at 8, 10 paced rounds are within 0.13 points of it at every budget while using no more rounds."""


def int_param(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def pos_param(name: str, value: Any, *, zero_ok: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
        raise ConfigError(f"{name}={value!r} must be finite and {'>=' if zero_ok else '>'} 0")
    return v


def params_repr(obj: object, names: Sequence[str]) -> str:
    return f"{type(obj).__name__}({', '.join(f'{k}={getattr(obj, k)!r}' for k in names)})"
