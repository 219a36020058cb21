"""Errors raised by adaptive-router.

One root, split by whose fault it is::

    AdaptiveRouterError
    ├── ConfigError (ValueError)          bad arguments, data or budgets: the caller's to fix
    │   ├── InfeasibleBudgetError         budget below the cheapest option of every query
    │   └── OutcomeFormatError            a malformed outcome record (carries .line)
    ├── ProbeError                        a probe that cannot be used
    │   ├── NotFittedError (ValueError, AttributeError)
    │   └── ProbeFormatError (ValueError) a corrupted or mismatched probe directory
    └── BackendError                      a model backend failed
        ├── BackendUnavailableError       nothing answers (server down, connection refused)
        └── RetryExhaustedError           retries ran out (carries .attempts)
"""

from __future__ import annotations

__all__ = [
    "AdaptiveRouterError",
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "InfeasibleBudgetError",
    "NotFittedError",
    "OutcomeFormatError",
    "ProbeError",
    "ProbeFormatError",
    "RetryExhaustedError",
]


class AdaptiveRouterError(Exception):
    """Root of every error this library raises on purpose."""


class ConfigError(AdaptiveRouterError, ValueError):
    """An argument, budget or data file is invalid; the message says how to fix it."""


class InfeasibleBudgetError(ConfigError):
    """The budget cannot pay for even the cheapest allowed option of every query."""


class OutcomeFormatError(ConfigError):
    """An outcome record does not follow the documented JSONL format."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class ProbeError(AdaptiveRouterError):
    """A difficulty probe cannot be built, loaded or used."""


class NotFittedError(ProbeError, ValueError, AttributeError):
    """An estimator was used before `fit`."""


class ProbeFormatError(ProbeError, ValueError):
    """A saved probe is corrupted or was made with a different featurizer."""


class BackendError(AdaptiveRouterError):
    """A model backend failed to answer."""


class BackendUnavailableError(BackendError):
    """The backend cannot be reached at all."""


class RetryExhaustedError(BackendError):
    """Retries ran out; `.attempts` says how many were made."""

    def __init__(self, message: str, *, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"{message} (after {attempts} attempts)")
