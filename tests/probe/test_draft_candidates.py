"""``featurizer="auto"`` on drafted prompts: draft detection, the answer-signal candidates, the built-in
final-answer reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.probe import training
from adaptive_router.probe.probe import Probe
from adaptive_router.probe.selection import AUTO_SIGNALS, draft_candidates
from adaptive_router.probe.signals import AUTO_FINAL_ANSWER, AnswerSignals, WithAnswerSignals, final_answer
from adaptive_router.probe.training import train_probe
from adaptive_router.prompts import DRAFT_MARKER, has_draft, join_draft

GSM8K = r"####\s*(.+)"


class _Fixed:
    """A stand-in featurizer (identity + transform) that never loads a model."""

    def identity(self) -> dict:
        return {"featurizer_id": "fixed"}

    def transform(self, texts):
        return np.zeros((len(texts), 2), dtype=np.float32)


def test_has_draft() -> None:
    assert has_draft(join_draft("What is 3 + 4?", "7"))
    assert has_draft(join_draft("q", ""))  # an empty draft is still a draft
    assert not has_draft("What is 3 + 4?")
    assert not has_draft("draft answer: 7")  # the marker, not the words, makes a draft
    assert has_draft("q" + DRAFT_MARKER + "7")


@pytest.mark.parametrize(
    ("draft", "expected"),
    [
        ("3 + 4 = 7\n#### 7", ("7", True)),
        ("#### 5\nno wait\n#### 6", ("6", True)),  # the last marked answer
        ("so she has 9 eggs\n#### $1,200", ("$1,200", True)),
        ("The answer is 42.", ("42", True)),
        ("Therefore, the answer is: $18 per day", ("$18", True)),
        ("the ANSWER IS -3/4", ("-3/4", True)),
        ("We get \\boxed{12} in the end, 5 more", ("12", True)),
        ("She pays 3 * 4 = 12, then 12 + 5 = 17 dollars.", ("17", False)),
        ("It costs 2.50 dollars", ("2.50", False)),
        ("I cannot tell.", (None, False)),
        ("", (None, False)),
    ],
)
def test_final_answer_reader(draft, expected) -> None:
    assert final_answer(draft) == expected


def test_auto_signals_read_the_final_answer_without_a_pattern() -> None:
    auto, regex = AnswerSignals(final_answer=AUTO_FINAL_ANSWER), AnswerSignals(final_answer=GSM8K)
    assert auto.names == regex.names
    drafts = ["2 + 2 = 4\n#### 4", "2 + 2 = 5\n#### 4.5", "so about 7 apples", "The answer is -2.", "no idea"]
    col = {name: auto.transform(drafts)[:, i] for i, name in enumerate(auto.names)}
    np.testing.assert_array_equal(col["no_final_answer"], [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(col["not_a_number"], [0, 0, 0, 0, 0])  # only an answer that is no number
    assert auto.transform(["#### seven"])[0, auto.names.index("not_a_number")] == 1
    np.testing.assert_array_equal(col["not_integer"], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(col["negative"], [0, 0, 0, 1, 0])
    np.testing.assert_allclose(col["log_abs_answer"], np.log1p([4, 4.5, 7, 2, 0]), rtol=1e-6)
    # on GSM8K-style drafts the reader agrees with the '####' pattern
    np.testing.assert_array_equal(auto.transform(drafts[:2]), regex.transform(drafts[:2]))
    assert AnswerSignals(**auto.identity()).identity() == auto.identity()  # what a manifest rebuilds


def test_draft_candidates_only_when_every_text_has_a_draft() -> None:
    base = [("a", _Fixed()), ("b", _Fixed())]
    drafted = [join_draft(f"q{i}", f"#### {i}") for i in range(4)]
    got, note = draft_candidates(base, drafted)
    names = [name for name, _ in got]
    assert names == ["answer-signals", "a", "a + answer-signals", "b", "b + answer-signals"]
    assert note == {"texts": 4, "with_draft": 4, "answer_signals": True}
    signals_only, plain, with_base = got[0][1], got[1][1], got[2][1]
    assert isinstance(signals_only, WithAnswerSignals) and signals_only.base is None
    assert signals_only.signals.identity()["final_answer"] == AUTO_SIGNALS["final_answer"]
    assert plain is base[0][1] and with_base.base is base[0][1]  # one featurizer object, not a second load
    assert with_base.transform(drafted).shape == (4, 2 + len(with_base.signals.names))

    got, note = draft_candidates(base, [f"q{i}" for i in range(4)])
    assert got == base and note == {"texts": 4, "with_draft": 0, "answer_signals": False}
    got, note = draft_candidates(base, [*drafted[:3], "q3"])  # one prompt without a draft: no signals
    assert got == base and note["with_draft"] == 3 and not note["answer_signals"]
    assert draft_candidates(base, [])[0] == base


def _outcomes(n: int, drafted: bool, seed: int = 0) -> OutcomeSet:
    """Same-looking questions; the draft's arithmetic slip is what makes the cheap route fail."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        slip = bool(rng.random() < 0.4)
        total = a + b + 3 * slip
        work = f"{a} + {b} = {total}"
        draft = f"{work}\nSo the answer is {total}." if i % 2 else f"{work}\n#### {total}"
        question = f"Question {i}: add the numbers."
        ok = int(rng.random() < (0.1 if slip else 0.9))
        recs.append({
            "id": f"q{i}",
            "prompt": join_draft(question, draft) if drafted else question,
            "outcomes": {"cheap": {"successes": ok, "samples": 1},
                         "expensive": {"successes": 1, "samples": 1}},
        })
    return OutcomeSet.from_dicts(recs)


_FAST = {"max_epochs": 40, "patience": 8, "n_folds": 3, "hidden": 0, "l2": 1.0, "n_bootstrap": 300,
         "num_threads": 1, "neighbors": 0}


def test_auto_chooses_the_draft_signals_on_validation(tiny_encoder_dir, monkeypatch, tmp_path) -> None:
    pytest.importorskip("torch")
    encoder = f"{tiny_encoder_dir} max_length=16"  # the candidate's name: the folder and its settings
    monkeypatch.setattr(training, "AUTO_FEATURIZERS", ((str(tiny_encoder_dir), {"max_length": 16}),))
    probe = train_probe(_outcomes(150, drafted=True), featurizer="auto", max_k=1, budgets=(1.3,),
                        costs={"cheap": 1.0, "expensive": 2.0}, **_FAST)
    sel = probe.report["selection"]
    names = [row["featurizer"] for row in sel["candidates"]]
    assert names == ["answer-signals", encoder, f"{encoder} + answer-signals"]
    assert sel["drafts"] == {"texts": 150, "with_draft": 150, "answer_signals": True}
    scores = {row["featurizer"]: row["score"] for row in sel["candidates"]}
    assert scores["answer-signals"] > scores[encoder]  # the random encoder sees no slip
    assert "answer-signals" in sel["chosen"] and not probe.fallback_active
    assert isinstance(probe.featurizer, WithAnswerSignals)
    if probe.featurizer.base is None:  # signals alone: the manifest rebuilds them, built-in reader included
        path = probe.save(tmp_path / "p")
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["featurizer"]["signals"]["final_answer"] == AUTO_FINAL_ANSWER
        texts = _outcomes(8, drafted=True, seed=1).texts()
        np.testing.assert_allclose(
            Probe.load(path).predict_curves(texts)["cheap"], probe.predict_curves(texts)["cheap"]
        )


def test_auto_without_drafts_offers_no_signals(tiny_encoder_dir, monkeypatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(training, "AUTO_FEATURIZERS", ((str(tiny_encoder_dir), {"max_length": 16}),))
    probe = train_probe(_outcomes(60, drafted=False), featurizer="auto", max_k=1, budgets=(1.3,),
                        costs={"cheap": 1.0, "expensive": 2.0}, **_FAST)
    sel = probe.report["selection"]
    assert [row["featurizer"] for row in sel["candidates"]] == [f"{tiny_encoder_dir} max_length=16"]
    assert sel["drafts"] == {"texts": 60, "with_draft": 0, "answer_signals": False}
    assert not isinstance(probe.featurizer, WithAnswerSignals)


def test_question_checks_read_the_draft_against_its_question():
    signals = AnswerSignals(final_answer=AUTO_FINAL_ANSWER, question=True)
    names = signals.names
    question = "Tom has 3 apples and buys 4 more. How many apples?"
    rows = signals.transform(["3 + 4 = 7\n#### 7", "He has 3.\n#### 3"], [question, question])
    got = [dict(zip(names, row, strict=True)) for row in rows]
    assert got[0]["question_numbers_used"] == 1.0 and got[0]["answer_in_question"] == 0.0
    assert got[1]["question_numbers_used"] == 0.5 and got[1]["answer_in_question"] == 1.0  # copied a number
    assert AnswerSignals(**signals.identity()).question  # a manifest rebuilds them
    plain = AnswerSignals(final_answer=AUTO_FINAL_ANSWER)
    assert "question" not in plain.identity()  # older probes read alike
    assert len(plain.names) == len(names) - 5
    with pytest.raises(ConfigError, match="questions for"):
        signals.transform(["#### 1"], [])
