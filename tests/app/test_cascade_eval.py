"""Tests for adaptive_router.app.cascade_eval: routing data with many cheap samples replayed as a cascade."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router.app.cascade_eval import (
    CASCADE_FILE,
    add_cascade_method,
    cascade_procedures,
    fit_cascade_model,
    load_cascade_model,
    save_cascade_models,
)
from adaptive_router.app.cli import app
from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.app.reports import markdown_summary
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet

runner = CliRunner()


def cascade_objs(n=240, samples=10, seed=0, answers=True, strong_samples=1):
    """A cheap model whose answers agree when right, a strong model right 90% of the time, costs 1 and 20."""
    rng = np.random.default_rng(seed)
    objs = []
    for i in range(n):
        p = rng.choice([0.95, 0.5, 0.1])
        cheap = []
        for _ in range(samples):
            ok = rng.random() < p
            rec: dict = {"reward": float(ok)}
            if answers:
                rec["answer"] = "42" if ok else str(rng.integers(0, 5))
            cheap.append(rec)
        strong = [{"reward": float(rng.random() < 0.9)} for _ in range(strong_samples)]  # no answer: one call
        objs.append({"id": f"q{i}", "prompt": f"question {i}", "cost": {"cheap": 1.0, "strong": 20.0},
                     "outcomes": {"cheap": cheap, "strong": strong}})  # fmt: skip
    return objs


def cascade_set(**kw):
    return OutcomeSet.from_dicts(cascade_objs(**kw))


def _report(data, budgets=(3.0, 6.0, 10.0), reranker="vote", **kw):
    report = evaluate_allocation(data, budgets=list(budgets), reranker=reranker)
    return add_cascade_method(report, data, reranker=reranker, seeds=4, sweep_seeds=2, **kw)


def test_cascade_is_replayed_for_routing_data_with_many_cheap_samples():
    data = cascade_set()
    report = _report(data)
    seq = report["methods"]["sequential"]
    hull = report["methods"]["hull"]["quality"]
    assert all(q > h + 0.02 for q, h in zip(seq["quality"], hull, strict=True))
    assert all(s <= b + 1e-9 for s, b in zip(seq["spend"], report["budgets"], strict=True))
    assert 0 < seq["escalated"][-1] < 1
    routing = report["routing"]
    assert routing["expensive"] == "strong"
    assert routing["cost_savings"]["sequential"] > routing["cost_savings"]["hull"]
    assert 0 < routing["expensive_share"]["sequential"] < routing["expensive_share"]["hull"]
    notes = report["sequential_notes"]
    assert notes["cascade"] == {
        "cheap": "cheap", "strong": "strong", "cheap_cost": 1.0, "escalate_cost": 20.0,
    }  # fmt: skip
    assert "in-sample" in notes["cascade_model"]
    assert len(report["sweep"]["quality"]["sequential"]) == len(report["sweep"]["budgets"])
    text = markdown_summary(report)
    assert "a cascade in rounds" in text and "| sequential |" in text


def test_a_trained_model_is_used_and_must_read_the_same_evidence():
    train, test = cascade_set(seed=1), cascade_set(seed=2)
    model = fit_cascade_model(train, "vote", {"cheap": 1.0, "strong": 20.0})
    assert model is not None and model.needs == "answers"
    report = _report(test, model=model)
    assert report["sequential_notes"]["cascade_model"].startswith("train")
    with pytest.raises(ConfigError, match="reads 'answers' but --reranker verifier gives 'rewards'"):
        _report(test, reranker="verifier", model=model)


def test_skipped_with_a_reason_when_there_is_no_cascade_to_run():
    one_sample = cascade_set(samples=1)
    assert cascade_procedures(one_sample, {"cheap": 1.0, "strong": 20.0}) is None
    report = _report(one_sample)
    assert "sequential" not in report["methods"]
    assert "several recorded samples" in report["sequential_notes"]["skipped"]
    assert fit_cascade_model(cascade_set(answers=False), "vote", {"cheap": 1.0, "strong": 20.0}) is None


def test_verifier_cascade_escalates_failures():
    data = cascade_set(answers=False, seed=3)
    report = _report(data, reranker="verifier")
    assert report["methods"]["sequential"]["quality"][-1] > report["methods"]["hull"]["quality"][-1] + 0.05


def test_cascade_models_are_saved_per_reranker_and_loaded(tmp_path):
    assert load_cascade_model(tmp_path, "vote") is None
    costs = {"cheap": 1.0, "strong": 20.0}
    assert save_cascade_models(tmp_path, cascade_set(samples=1), costs) == []  # no cascade: no file
    assert not (tmp_path / CASCADE_FILE).exists()
    assert save_cascade_models(tmp_path, cascade_set(), costs) == ["verifier", "vote"]
    vote, verifier = load_cascade_model(tmp_path, "vote"), load_cascade_model(tmp_path, "verifier")
    assert vote is not None and vote.needs == "answers"
    assert verifier is not None and verifier.needs == "rewards"
    assert load_cascade_model(tmp_path, "score") is None
    (tmp_path / CASCADE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="retrain"):
        load_cascade_model(tmp_path, "vote")


def test_train_then_evaluate_uses_the_trained_cascade(tmp_path, write_drafted):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    for path, n, seed in ((train, 160, 5), (test, 120, 6)):
        write_drafted(path, cascade_objs(n=n, seed=seed), "#### 42")
    probe, out = tmp_path / "probe", tmp_path / "rep.json"
    res = runner.invoke(app, ["train", str(train), "--out", str(probe), "--featurizer", "none",
                              "--answer-signals", "--budgets", "2,8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "cascade model (verifier, vote) saved" in res.output
    res = runner.invoke(app, ["evaluate", str(test), "--probe", str(probe), "--reranker", "vote",
                              "--budgets", "2,8", "--seeds", "2", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["sequential_notes"]["cascade_model"].startswith("train")
    assert report["methods"]["sequential"]["quality"][1] > report["methods"]["hull"]["quality"][1]


def test_evaluate_cli_reports_the_cascade(tmp_path):
    path = tmp_path / "casc.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in cascade_objs(n=120)), encoding="utf-8")
    out = tmp_path / "rep.json"
    res = runner.invoke(
        app,
        ["evaluate", str(path), "--reranker", "vote", "--budgets", "2,8", "--seeds", "2", "--json", str(out)],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["methods"]["sequential"]["quality"][1] > report["methods"]["hull"]["quality"][1]
    assert "sequential" in report["routing"]["cost_savings"]
