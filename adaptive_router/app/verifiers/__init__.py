"""Verifiers and the sandbox that runs the ones which could execute a model's reply.

- :mod:`~adaptive_router.app.verifiers.checks`: the verifier registry (``first_line``, ``contains``,
  ``math``, ``python_tests``, ``reasoning_gym:<dataset>``), :func:`score` / :func:`score_many`, and which
  of them run in-process.
- :mod:`~adaptive_router.app.verifiers.sandbox`: :class:`Sandbox`, a fork server whose children run one job
  each with resource limits, a wall-clock timeout, a throwaway folder, a scrubbed environment and no network.
- :mod:`~adaptive_router.app.verifiers.jobs`: the scoring functions that run inside it.
"""

from adaptive_router.app.verifiers.checks import (
    NO_VERIFIER,
    STRING_COMPARE_DATASETS,
    VERIFIERS,
    check_verifiers,
    extract_answer,
    first_line,
    runs_in_sandbox,
    score,
    score_many,
)
from adaptive_router.app.verifiers.sandbox import (
    DEFAULT_LIMITS,
    JobResult,
    Sandbox,
    SandboxError,
    SandboxLimits,
    shared_sandbox,
)

__all__ = [
    "DEFAULT_LIMITS",
    "NO_VERIFIER",
    "STRING_COMPARE_DATASETS",
    "VERIFIERS",
    "JobResult",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "check_verifiers",
    "extract_answer",
    "first_line",
    "runs_in_sandbox",
    "score",
    "score_many",
    "shared_sandbox",
]
