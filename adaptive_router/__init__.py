"""adaptive-router: decide, per query, how much LLM compute to spend, and spend it.

The pipeline, one subpackage per stage: ``probe`` (difficulty → predicted reward curves) → ``curves``
(recorded outcomes → true curves) → ``allocation`` (curves + budget → units per query) → ``strategies``
(best-of-k, routes) → ``runnables`` (the LangChain ``AdaptiveRouter``). Adapters to outside services live in
``adaptive_router.integrations``.

Names are imported lazily so that ``import adaptive_router`` loads neither torch nor LangChain.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "AdaptiveRouterError": "adaptive_router.errors",
    "BackendError": "adaptive_router.errors",
    "BackendUnavailableError": "adaptive_router.errors",
    "ConfigError": "adaptive_router.errors",
    "InfeasibleBudgetError": "adaptive_router.errors",
    "NotFittedError": "adaptive_router.errors",
    "OutcomeFormatError": "adaptive_router.errors",
    "ProbeError": "adaptive_router.errors",
    "ProbeFormatError": "adaptive_router.errors",
    "RetryExhaustedError": "adaptive_router.errors",
    # allocation
    "Allocation": "adaptive_router.allocation",
    "Ladder": "adaptive_router.allocation",
    "Option": "adaptive_router.allocation",
    "ThresholdAllocator": "adaptive_router.allocation",
    "WindowAllocator": "adaptive_router.allocation",
    "allocate": "adaptive_router.allocation",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptive_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
