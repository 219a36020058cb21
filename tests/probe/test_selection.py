from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.probe.selection import Candidate, candidate_score, select_candidate
from adaptive_router.probe.training import train_probe

_FIT = {"max_k": 4, "budgets": (2,), "lr": 0.03, "max_epochs": 40, "patience": 8, "n_folds": 3,
        "n_bootstrap": 300, "num_threads": 1}


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-3 * signal[:, 0]))
    return signal, rng.normal(size=(n, 4)), {"gen": (rng.binomial(4, p), np.full(n, 4))}


def test_selection_picks_the_informative_features_whatever_their_order() -> None:
    signal, noise, y = _data()
    for order in (("noise", "signal"), ("signal", "noise")):
        sel = select_candidate({"signal": signal, "noise": noise}, y,
                               [Candidate(f, {"hidden": 0}) for f in order], **_FIT)
        assert sel.candidate.featurizer == "signal"
        assert not sel.estimator.fallback_
        by_name = {row["featurizer"]: row["score"] for row in sel.scores}
        assert by_name["signal"] > by_name["noise"]
        assert sel.scores[0]["candidate"] == f"{order[0]} hidden=0"


def test_selection_picks_the_better_head() -> None:
    # the success rate depends on |x0|: a linear head cannot see it, an MLP can
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 3))
    p = 1 / (1 + np.exp(-4 * (np.abs(X[:, 0]) - 0.8)))
    y = {"gen": (rng.binomial(4, p), np.full(600, 4))}
    cands = [Candidate("x", {"hidden": 0, "l2": 1.0}), Candidate("x", {"hidden": 32})]
    sel = select_candidate({"x": X}, y, cands, **{**_FIT, "lr": 0.01, "max_epochs": 80, "patience": 15})
    assert sel.candidate.params == {"hidden": 32}
    assert sel.scores[1]["score"] > sel.scores[0]["score"]


def test_no_candidate_scores_below_uniform_on_validation() -> None:
    _, noise, y = _data(seed=2)
    rng = np.random.default_rng(3)
    cands = [Candidate("a", {"hidden": 0}), Candidate("b", {"hidden": 16, "neighbors": 20})]
    sel = select_candidate({"a": noise, "b": rng.normal(size=noise.shape)}, y, cands, **_FIT)
    for row in sel.scores:
        assert row["score"] >= row["uniform"] - 1e-12
    assert candidate_score(sel.estimator) >= sel.scores[0]["uniform"] - 1e-12
    if sel.estimator.fallback_:  # a fallen-back winner predicts the population curve: exactly uniform
        assert candidate_score(sel.estimator) == sel.scores[0]["uniform"]


def test_a_fallen_back_candidate_scores_uniform_not_its_adaptive_figure() -> None:
    signal, _, y = _data()
    sel = select_candidate({"s": signal}, y, [Candidate("s", {"hidden": 0, "fallback": "always"})], **_FIT)
    rows = sel.estimator.report_["allocation"]
    assert sel.estimator.fallback_
    assert sel.scores[0]["score"] == pytest.approx(np.mean([r["uniform"] for r in rows]))
    assert sel.scores[0]["score"] < np.mean([r["adaptive"] for r in rows])


def test_selection_errors_name_the_fix() -> None:
    signal, _, y = _data(n=40)
    with pytest.raises(ConfigError, match="at least one Candidate"):
        select_candidate({"s": signal}, y, [], **_FIT)
    with pytest.raises(ConfigError, match=r"features \['t'\] that were not given; have \['s'\]"):
        select_candidate({"s": signal}, y, [Candidate("t")], **_FIT)


class _Fixed:
    """A featurizer with no model: the difficulty tier (informative) or seeded noise."""

    def __init__(self, *, informative: bool) -> None:
        self.informative = informative

    def identity(self) -> dict[str, Any]:
        return {"id": "tier" if self.informative else "noise"}

    def transform(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(0)
        noise = rng.normal(size=(len(texts), 3))
        if not self.informative:
            return noise.astype(np.float32)
        tier = np.array([[t.split(" ")[0].count("9")] for t in texts], dtype=np.float64)
        return np.hstack([tier, 0.1 * noise]).astype(np.float32)


def _outcomes(n: int = 150) -> OutcomeSet:
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        digits = 1 + i % 3
        c = int(rng.binomial(4, [0.85, 0.4, 0.05][digits - 1]))
        recs.append({"id": f"q{i}", "prompt": f"{'9' * digits} + {i} =",
                     "outcomes": {"gen": {"successes": c, "samples": 4}}})
    return OutcomeSet.from_dicts(recs)


def test_train_probe_chooses_featurizer_and_head_on_validation() -> None:
    fit = {k: v for k, v in _FIT.items() if k not in ("max_k", "budgets")}
    probe = train_probe(_outcomes(), featurizer=[_Fixed(informative=False), _Fixed(informative=True)],
                        budgets=(2,), **fit)
    sel = probe.report["selection"]
    assert len(sel["candidates"]) == 4  # 2 featurizers x the 2 automatic heads
    assert probe.report["featurizer"] == {"id": "tier"}
    assert sel["chosen"].startswith("_Fixed'")  # the second of the two
    assert not probe.fallback_active
    assert {row["params"]["hidden"] for row in sel["candidates"]} == {0, 64}
    assert all(row["neighbor_weight"] in (0.0, 0.25, 0.5, 0.75, 1.0) for row in sel["candidates"])


def test_train_probe_given_head_is_the_only_head() -> None:
    fit = {k: v for k, v in _FIT.items() if k not in ("max_k", "budgets")}
    probe = train_probe(_outcomes(60), featurizer=_Fixed(informative=True), budgets=(2,), hidden=8,
                        neighbors=0, **fit)
    rows = probe.report["selection"]["candidates"]
    assert [r["params"] for r in rows] == [{}]
    assert probe.report["neighbor_weight"] == 0.0


def test_train_probe_refuses_an_empty_featurizer_list() -> None:
    with pytest.raises(ConfigError, match="empty list"):
        train_probe(_outcomes(60), featurizer=[])
