"""Tests for adaptive_router.app.sequential_eval and evaluate's --reranker: sequential methods on outcomes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router.app.cli import app
from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.app.reports import markdown_summary
from adaptive_router.app.sequential_eval import add_round_methods, check_reranker
from adaptive_router.errors import ConfigError
from adaptive_router.outcomes import OutcomeSet

runner = CliRunner()


def _half_solved(n=80, samples=8, seed=0, answers=False):
    """Half the queries always solved (the first sample says so), half almost never."""
    rng = np.random.default_rng(seed)
    objs = []
    for i in range(n):
        p = 1.0 if i % 2 == 0 else 0.15
        rewards = (rng.random(samples) < p).astype(float)
        recs = []
        for j, r in enumerate(rewards):
            rec: dict = {"reward": float(r)}
            if answers:
                rec["answer"] = "ok" if r else f"wrong{j % 3}"
            recs.append(rec)
        objs.append({"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": recs}})
    return OutcomeSet.from_dicts(objs)


def _vote_differs(n=20):
    """One right answer among four: best-of-4 always finds it, a vote of 4 never picks it."""
    recs = [{"reward": 1.0, "answer": "2"}] + [{"reward": 0.0, "answer": "3"}] * 3
    return OutcomeSet.from_dicts(
        [{"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": recs}} for i in range(n)]
    )


def _report(data, budgets, reranker=None, max_k=8, seeds=8):
    rep = evaluate_allocation(data, budgets=budgets, max_k=max_k, reranker=reranker)
    return add_round_methods(rep, data, reranker=reranker, seeds=seeds)


def test_sequential_within_budget_and_beats_uniform_when_evidence_helps():
    data = _half_solved()
    rep = _report(data, [1.5, 2, 3, 4])
    seq, uni = rep["methods"]["sequential"], rep["methods"]["uniform"]
    for i, b in enumerate(rep["budgets"]):
        assert seq["max_spend"][i] <= b + 1e-9
        assert seq["spend"][i] <= b + 1e-9
    # a solved query stops after its first sample, the unsolved half gets the rest: clearly above uniform
    assert all(q > u + 0.02 for q, u in zip(seq["quality"][1:], uni["quality"][1:], strict=True))
    assert all(s is not None and s > 0 for s in seq["savings"][1:])
    assert len(seq["quality_se"]) == 4 and "8 orderings" in rep["sequential_notes"]["monte_carlo"]
    assert len(rep["sweep"]["quality"]["sequential"]) == len(rep["sweep"]["budgets"])
    assert "esc" not in rep["methods"]  # no answers recorded
    assert "sequential" in markdown_summary(rep) and "orderings" in markdown_summary(rep)


def test_esc_only_with_answers_and_reports_its_actual_spend():
    data = _half_solved(answers=True)
    rep = _report(data, [2, 4], reranker="vote")
    esc = rep["methods"]["esc"]
    assert esc["spend"][0] == esc["spend"][1]
    assert 5 <= esc["spend"][0] <= 8  # first window of 5; a query is capped at its 8 recorded samples
    assert "window=5, max_k=8" in rep["sequential_notes"]["esc"]
    assert "esc" in [row["method"] for row in rep["table"]]


def test_vote_reports_read_self_consistency_at_20_and_what_each_method_needs_to_reach_it():
    from adaptive_router.curves import expected_majority_vote

    rng = np.random.default_rng(5)  # half always right; half right 40% of the time, wrong over ten values
    data = OutcomeSet.from_dicts([
        {"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": [
            {"reward": 1.0, "answer": "ok"} if i % 2 == 0 or rng.random() < 0.4
            else {"reward": 0.0, "answer": f"w{rng.integers(10)}"} for _ in range(24)]}}
        for i in range(60)
    ])  # fmt: skip
    rep = _report(data, [1.5, 2, 4], reranker="vote", max_k=24, seeds=4)
    sc = rep["self_consistency"]
    codes, _ = data.answers("m")
    assert sc["k"] == 20 and sc["quality"] == pytest.approx(
        expected_majority_vote(codes, data.rewards("m"), 20)[:, -1].mean()
    )
    need = sc["samples_per_query"]
    # half the queries settle on two agreeing answers: the planner needs far fewer than 20 samples a query
    assert sc["quality"] > rep["methods"]["uniform"]["quality"][0] + 0.1
    assert need["sequential"] is not None and 1.5 < need["sequential"] < 10.0
    assert set(need) == {"sequential", "esc", "adaptive_consistency"}
    assert "Self-consistency at 20" in markdown_summary(rep)
    assert "self_consistency" not in _report(_half_solved(answers=True), [2], reranker="vote")  # 8 samples


def test_reranker_vote_uses_vote_curves():
    data = _vote_differs()
    best = _report(data, [4], reranker="verifier", max_k=4)
    vote = _report(data, [4], reranker="vote", max_k=4)
    assert best["methods"]["uniform"]["quality"][0] == pytest.approx(1.0)
    np.testing.assert_allclose(data.true_curves(4, reranker="vote")["m"][0, [0, 3]], [0.25, 0.0])
    # more votes only hurt, so every one-shot method buys k = 1 (a quarter are right) and spends less
    assert vote["methods"]["uniform"]["quality"][0] == pytest.approx(0.25)
    assert vote["methods"]["oracle"]["quality"][0] == pytest.approx(0.25)
    assert vote["sequential_notes"]["reranker"] == "vote"
    # the vote planner returns a plurality: never better than the best single answer, far below best-of-k
    assert vote["methods"]["sequential"]["quality"][0] <= 0.25 + 1e-9
    assert best["methods"]["sequential"]["quality"][0] > 0.9


def test_reranker_errors_before_any_work():
    data = _half_solved()
    with pytest.raises(ConfigError, match="needs each sample's 'answer'"):
        check_reranker(data, "vote")
    with pytest.raises(ConfigError, match="needs each sample's 'score'"):
        check_reranker(data, "score")
    with pytest.raises(ConfigError, match="choose one of verifier, vote, score"):
        check_reranker(data, "judge")
    with pytest.raises(ConfigError, match="'answer'"):
        data.true_curves(4, reranker="vote")
    assert check_reranker(data, None) == "verifier"


def test_score_reranker_replays_with_fitted_score_evidence():
    rng = np.random.default_rng(0)
    objs = []
    for i in range(40):
        r = (rng.random(6) < 0.4).astype(float)
        sc = r + rng.normal(0, 0.3, 6)
        objs.append({"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": [
            {"reward": float(a), "score": float(b)} for a, b in zip(r, sc, strict=True)]}})
    data = OutcomeSet.from_dicts(objs)
    assert check_reranker(data, None) == "score"
    rep = _report(data, [2, 4], reranker="score", max_k=6)
    assert "in-sample" in rep["sequential_notes"]["score_evidence"]
    assert all(s <= b + 1e-9 for s, b in zip(rep["methods"]["sequential"]["max_spend"], [2, 4], strict=True))


def test_cli_evaluate_reranker_vote_and_clear_error(tmp_path):
    path = tmp_path / "o.jsonl"
    with path.open("w") as fh:
        for rec in _half_solved(n=40, answers=True):
            fh.write(json.dumps(rec.to_json()) + "\n")
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", str(path), "--budgets", "2,4", "--max-k", "8", "--reranker", "vote",
                              "--seeds", "4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["reranker"] == "vote" and {"sequential", "esc"} <= set(rep["methods"])
    assert "esc savings" in res.output
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": "p", "outcomes": {"m": {"successes": 1, "samples": 4}}}) + "\n"
        for i in range(10)
    ))
    res = runner.invoke(app, ["evaluate", str(plain), "--reranker", "vote"])
    assert res.exit_code != 0 and "needs each sample's 'answer'" in res.output


def test_train_reranker_vote_gives_the_probe_vote_curves():
    from adaptive_router.app.sequential_eval import RerankedOutcomes
    from adaptive_router.probe.training import outcome_labels

    data = _vote_differs()
    kind, labels = outcome_labels(RerankedOutcomes(data, "vote"), 4, "curve")
    assert kind == "curve"
    np.testing.assert_allclose(labels["m"][0, [0, 3]], [0.25, 0.0])
    _, best = outcome_labels(RerankedOutcomes(data, "verifier"), 4, "curve")
    np.testing.assert_allclose(best["m"][0, [0, 3]], [0.25, 1.0])


def test_round_robin_with_a_verifier_and_adaptive_consistency_with_answers():
    data = _half_solved(answers=True)
    rep = _report(data, [2, 4], reranker="verifier")
    rr, seq = rep["methods"]["round_robin"], rep["methods"]["sequential"]
    assert all(s <= b + 1e-9 for s, b in zip(rr["max_spend"], rep["budgets"], strict=True))
    # no probe, one prior: the planner and round-robin order the unsolved queries the same way
    assert all(abs(a - b) < 0.03 for a, b in zip(seq["quality"], rr["quality"], strict=True))
    assert len(rep["sweep"]["quality"]["round_robin"]) == len(rep["sweep"]["budgets"])
    assert "RoundRobinUnsolved" in rep["sequential_notes"]["round_robin"]
    ac = rep["methods"]["adaptive_consistency"]
    assert ac["spend"][0] == ac["spend"][1] and 1 <= ac["spend"][0] <= 8
    assert "AdaptiveConsistency(threshold=0.95, max_k=8)" in rep["sequential_notes"]["adaptive_consistency"]
    vote = _report(data, [2], reranker="vote")
    assert "round_robin" not in vote["methods"] and "adaptive_consistency" in vote["methods"]
    assert {"round_robin", "adaptive_consistency"} <= {row["method"] for row in rep["table"]}


def test_sequential_savings_are_at_the_hulls_quality_not_uniforms():
    data = _half_solved(answers=True)
    rep = evaluate_allocation(data, budgets=[2, 4], max_k=8, reranker="verifier")
    # a reference far from uniform's: unreachable at B=2, trivial at B=4
    rep["methods"]["hull"]["quality"] = [1.5, 0.0]
    add_round_methods(rep, data, reranker="verifier", seeds=4)
    grid = rep["sweep"]["budgets"]
    for m in ("sequential", "round_robin"):
        r = rep["methods"][m]
        assert "budget_to_match_uniform" not in r
        assert r["budget_to_match_hull"] == [None, grid[0]] and r["savings"] == [None, 1 - grid[0] / 4]
    for m in ("esc", "adaptive_consistency"):
        r = rep["methods"][m]
        assert r["budget_to_match_hull"] == [None, r["spend"][1]]
        assert r["savings"] == [None, pytest.approx(1 - r["spend"][1] / 4)]
    rows = {(row["method"], row["budget"]): row["savings"] for row in rep["table"]}
    assert rows[("esc", 2.0)] is None and rows[("sequential", 4.0)] == 1 - grid[0] / 4
