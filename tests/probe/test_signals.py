from __future__ import annotations

import json

import numpy as np
import pytest

from adaptive_router.errors import ConfigError, ProbeFormatError
from adaptive_router.probe.estimator import CurveProbe
from adaptive_router.probe.featurizer import TransformersFeaturizer
from adaptive_router.probe.probe import Probe
from adaptive_router.probe.signals import AnswerSignals, WithAnswerSignals, arithmetic_checks
from adaptive_router.prompts import DRAFT_MARKER, join_draft, split_draft

GSM8K = r"####\s*(.+)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<<16-3-4=9>>", (1, 0)),
        ("so she has 16 - 3 = 13 eggs", (1, 0)),
        ("9 * $2 = $18", (1, 0)),
        ("(3 + 4) * 2 = 15", (1, 1)),
        ("1,200 + 300 = 1,500 and 3 x 4 = 13", (2, 1)),
        ("half: 5/2 = 2.5, a fraction 2 * 1/4 = 1/2", (2, 0)),
        ("a 20% rise: 50 * 20% = 10", (0, 0)),  # percentages are skipped, not guessed
        ("x = 7 and no arithmetic at all", (0, 0)),
        ("2 ^ 99999 = 1", (0, 0)),  # huge powers are not evaluated
        ("10 / 0 = 3", (0, 0)),
    ],
)
def test_arithmetic_checks(text, expected) -> None:
    assert arithmetic_checks(text) == expected


def test_draft_round_trip_keeps_markers_inside_the_query() -> None:
    query = f"quoted {DRAFT_MARKER} inside"
    assert split_draft(join_draft(query, "42")) == (query, "42")
    assert split_draft(join_draft("q", "")) == ("q", "")


def test_signals_columns_and_values() -> None:
    signals = AnswerSignals(final_answer=GSM8K)
    rows = signals.transform(
        ["2 + 2 = 4\n#### 4", "2 + 2 = 5\n#### 4.5", "I think it is 4, however unclear", ""]
    )
    assert rows.shape == (4, len(signals.names)) and rows.dtype == np.float32
    col = {name: rows[:, i] for i, name in enumerate(signals.names)}
    np.testing.assert_array_equal(col["any_wrong"], [0, 1, 0, 0])
    np.testing.assert_array_equal(col["no_final_answer"], [0, 0, 1, 1])
    np.testing.assert_array_equal(col["not_integer"], [0, 1, 0, 0])
    assert col["log_hedges"][2] == pytest.approx(np.log1p(2))
    assert AnswerSignals().transform([]).shape == (0, 6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"final_answer": "(unclosed"}, "not a valid regular"),
        ({"final_answer": "####"}, "capturing group"),
        ({"hedges": "however"}, "sequence of non-empty"),
        ({"hedges": ["ok", ""]}, "sequence of non-empty"),
    ],
)
def test_bad_signal_settings(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        AnswerSignals(**kwargs)


def _drafts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Same-looking questions; the draft's arithmetic slip is what predicts failure."""
    rng = np.random.default_rng(seed)
    texts, ok = [], []
    for i in range(n):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        slip = bool(rng.random() < 0.4)
        draft = f"{a} + {b} = {a + b + (3 if slip else 0)}\n#### {a + b}"
        texts.append(join_draft(f"Question {i}: add the numbers.", draft))
        ok.append(rng.random() < (0.15 if slip else 0.9))
    return texts, np.asarray(ok, dtype=int)


def test_cascade_probe_learns_from_the_draft_and_round_trips(tiny_encoder_dir, fast, tmp_path) -> None:
    feat = WithAnswerSignals(
        TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=24), AnswerSignals(final_answer=GSM8K)
    )
    texts, ok = _drafts(300, seed=0)
    y = {"cheap": (ok, np.ones_like(ok)), "expensive": (np.ones_like(ok), np.ones_like(ok))}
    est = CurveProbe(max_k=1, budgets=(1.3,), costs={"cheap": 1, "expensive": 2}, fallback="never", **fast)
    probe = Probe(featurizer=feat, estimator=est.fit(feat.transform(texts), y))
    test_texts, _ = _drafts(200, seed=1)
    cheap = probe.predict_curves(test_texts)["cheap"][:, 0]
    slipped = np.array(["= " + str(int(t.split("#### ")[1])) + "\n" not in t for t in test_texts])
    # slipped drafts rank below clean ones (AUC), whatever shrinkage the probe chose; the query text is noise
    auc = (cheap[slipped][:, None] < cheap[~slipped][None, :]).mean()
    assert auc > 0.95

    path = probe.save(tmp_path / "cascade")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["featurizer"]["signals"]["final_answer"] == GSM8K
    assert manifest["n_features"] == 16 + len(feat.signals.names)
    loaded = Probe.load(path, featurizer=WithAnswerSignals(feat.base, AnswerSignals(final_answer=GSM8K)))
    np.testing.assert_allclose(
        loaded.predict_curves(test_texts[:5])["cheap"], probe.predict_curves(test_texts[:5])["cheap"]
    )
    with pytest.raises(ProbeFormatError, match="signals"):
        Probe.load(path, featurizer=feat.base)
    with pytest.raises(ProbeFormatError, match="signals"):
        Probe.load(path, featurizer=WithAnswerSignals(feat.base, AnswerSignals()))


def test_signals_only_featurizer_round_trips(fast, tmp_path) -> None:
    feat = WithAnswerSignals(None, AnswerSignals(final_answer=GSM8K))
    texts, ok = _drafts(200, seed=2)
    y = {"cheap": (ok, np.ones_like(ok)), "expensive": (np.ones_like(ok), np.ones_like(ok))}
    est = CurveProbe(max_k=1, budgets=(1.3,), costs={"cheap": 1, "expensive": 2}, fallback="never", **fast)
    probe = Probe(featurizer=feat, estimator=est.fit(feat.transform(texts), y))
    assert feat.identity()["featurizer_id"] == "none"
    loaded = Probe.load(probe.save(tmp_path / "signals-only"))  # rebuilt from the manifest alone
    assert isinstance(loaded.featurizer, WithAnswerSignals) and loaded.featurizer.base is None
    np.testing.assert_allclose(
        loaded.predict_curves(texts[:5])["cheap"], probe.predict_curves(texts[:5])["cheap"]
    )


def test_texts_without_a_draft_are_rejected(tiny_encoder_dir) -> None:
    feat = WithAnswerSignals(
        TransformersFeaturizer(model_path=tiny_encoder_dir, max_length=24), AnswerSignals()
    )
    with pytest.raises(ConfigError, match="no draft answer"):
        feat.transform([join_draft("q", "a"), "plain query"])
    with pytest.raises(ConfigError, match="must be a featurizer"):
        WithAnswerSignals(object(), AnswerSignals())
