"""adaptive-router: decide, per query, how much LLM compute to spend, and spend it.

The pipeline, one subpackage per stage: ``probe`` (difficulty → predicted reward curves) → ``curves``
(recorded outcomes → true curves) → ``allocation`` (curves + budget → units per query) → ``strategies``
(best-of-k, routes) → ``runnables`` (the LangChain ``AdaptiveRouter``, and ``CascadeRouter``, which reads a
cheap draft before escalating). Adapters to outside services live in ``adaptive_router.integrations``.

Names are imported lazily so that ``import adaptive_router`` loads neither torch nor LangChain.
"""

from __future__ import annotations

from adaptive_router._lazy import lazy_exports

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
    # prices
    "Price": "adaptive_router.prices",
    "PriceTable": "adaptive_router.prices",
    # curves
    "expected_best_of_k": "adaptive_router.curves",
    "expected_reranked_best_of_k": "adaptive_router.curves",
    "pass_at_k": "adaptive_router.curves",
    # outcomes
    "OutcomeRecord": "adaptive_router.outcomes",
    "OutcomeSet": "adaptive_router.outcomes",
    "ProcedureOutcome": "adaptive_router.outcomes",
    # probe (torch loads on first use)
    "AnswerSignals": "adaptive_router.probe",
    "CurveProbe": "adaptive_router.probe",
    "Probe": "adaptive_router.probe",
    "TransformersFeaturizer": "adaptive_router.probe",
    "WithAnswerSignals": "adaptive_router.probe",
    "get_featurizer": "adaptive_router.probe",
    "join_draft": "adaptive_router.prompts",
    "train_probe": "adaptive_router.probe",
    # strategies and the router (LangChain loads on first use)
    "AdaptiveRouter": "adaptive_router.runnables",
    "BestOfK": "adaptive_router.strategies",
    "CascadeRouter": "adaptive_router.runnables",
    "LLMJudgeReranker": "adaptive_router.strategies",
    "MajorityVoteReranker": "adaptive_router.strategies",
    "RewardModelReranker": "adaptive_router.strategies",
    "Route": "adaptive_router.strategies",
    "VerifierReranker": "adaptive_router.strategies",
}

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
