"""Difficulty probe: a local model's hidden states -> predicted reward curves (torch lives here only).

Importing this package is cheap; torch and transformers load when a featurizer or head is first used.
"""

from __future__ import annotations

from adaptive_router._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AUTO_FEATURIZERS": "adaptive_router.probe.selection",
    "AUTO_HEADS": "adaptive_router.probe.selection",
    "AUTO_SIGNALS": "adaptive_router.probe.selection",
    "AnswerSignals": "adaptive_router.probe.signals",
    "DEFAULT_FEATURIZERS": "adaptive_router.probe.featurizer",
    "Candidate": "adaptive_router.probe.selection",
    "CurveProbe": "adaptive_router.probe.estimator",
    "FeatureCache": "adaptive_router.probe.cache",
    "Featurizer": "adaptive_router.probe.featurizer",
    "Probe": "adaptive_router.probe.probe",
    "ShrinkageResult": "adaptive_router.probe.shrinkage",
    "TransformersFeaturizer": "adaptive_router.probe.featurizer",
    "WithAnswerSignals": "adaptive_router.probe.signals",
    "allocation_quality": "adaptive_router.probe.metrics",
    "answer_probabilities": "adaptive_router.probe.answer_probability",
    "arithmetic_checks": "adaptive_router.probe.signals",
    "brier_score": "adaptive_router.probe.metrics",
    "calibration_bins": "adaptive_router.probe.metrics",
    "draft_candidates": "adaptive_router.probe.selection",
    "gain_spearman": "adaptive_router.probe.metrics",
    "gemma_model_dir": "adaptive_router.probe._models",
    "get_featurizer": "adaptive_router.probe.featurizer",
    "has_draft": "adaptive_router.prompts.text",
    "join_draft": "adaptive_router.prompts.text",
    "log_loss": "adaptive_router.probe.metrics",
    "select_candidate": "adaptive_router.probe.selection",
    "select_shrinkage": "adaptive_router.probe.shrinkage",
    "spearman": "adaptive_router.probe.metrics",
    "split_draft": "adaptive_router.prompts.text",
    "train_probe": "adaptive_router.probe.training",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
