"""Type aliases and protocols shared across the pipeline (probe → curves → allocation → router)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["CurvePredictor", "Curves", "FloatArray", "IntArray"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Curves = Mapping[str, FloatArray]
"""Per procedure name, an (n, K) array: expected reward of each query with k = 1..K samples."""


@runtime_checkable
class CurvePredictor(Protocol):
    """What the router needs from a difficulty probe.

    `predict_curves` maps query texts to expected-reward curves per procedure; `fallback_active` says the
    probe did not beat uniform allocation on validation, in which case its curves are the population curve
    (every row identical) and allocation degenerates to uniform / the best fixed mix.
    """

    @property
    def procedures(self) -> tuple[str, ...]: ...

    @property
    def max_k(self) -> int: ...

    @property
    def fallback_active(self) -> bool: ...

    def predict_curves(self, texts: Sequence[str]) -> Curves: ...
