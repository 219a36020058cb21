from __future__ import annotations

import numpy as np

from adaptive_router.outcomes import OutcomeSet
from adaptive_router.probe.featurizer import TransformersFeaturizer
from adaptive_router.probe.training import outcome_labels, train_probe


def _outcomes(n: int = 120) -> OutcomeSet:
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        digits = 1 + i % 3
        p = [0.85, 0.4, 0.05][digits - 1]
        c = int(rng.binomial(4, p))
        recs.append({"id": f"q{i}", "prompt": f"{'9' * digits} + {i} =",
                     "outcomes": {"gen": {"successes": c, "samples": 4}}})
    return OutcomeSet.from_dicts(recs)


def test_outcome_labels_kinds() -> None:
    data = _outcomes(20)
    kind, labels = outcome_labels(data, 4)
    assert kind == "binary" and labels["gen"][1].tolist() == [4] * 20
    kind, labels = outcome_labels(data, 4, "curve")
    assert kind == "curve" and labels["gen"].shape == (20, 4)


def test_train_probe_end_to_end(tiny_encoder_dir, fast, tmp_path) -> None:
    data = _outcomes()
    feat = TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=16)
    probe = train_probe(data, featurizer=feat, budgets=(2,), **fast)
    assert probe.max_k == 4  # fewest samples recorded
    assert probe.procedures == ("gen",)
    curves = probe.predict_curves(data.texts()[:6])["gen"]
    assert curves.shape == (6, 4)
    assert probe.report["featurizer"]["pooling"] == "mean"
    assert "fallback_reason" in probe.report
