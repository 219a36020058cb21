"""Tests for adaptive_router.app.round_choice: train's choice of round settings per budget, on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptive_router.allocation import CascadePlanner, RoundChoice, RoundPlanner, Rounds
from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.app.round_choice import MARGIN, choose_rounds, save_round_choices
from adaptive_router.app.sequential_eval import add_round_methods
from adaptive_router.errors import ConfigError, ProbeFormatError
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.probe.persistence import ROUNDS_FILE, read_round_choices


def vote_objs(n=400, samples=12, seed=0):
    """Questions the model mostly gets right or mostly wrong, wrong answers scattered over ten values."""
    rng = np.random.default_rng(seed)
    objs = []
    for i in range(n):
        p = rng.beta(0.3, 0.1)
        recs = []
        for _ in range(samples):
            ok = rng.random() < p
            recs.append({"reward": float(ok), "answer": "7" if ok else str(rng.integers(10, 20))})
        objs.append({"id": f"q{seed}-{i}", "prompt": f"question {i}", "outcomes": {"m": recs}})
    return objs


@pytest.fixture(scope="module")
def votes():
    return OutcomeSet.from_dicts(vote_objs())


@pytest.fixture(scope="module")
def chosen(votes):
    return choose_rounds(votes, "vote", budgets=[1.0, 2.0, 3.0, 6.0], max_k=12, unit_cost=1.0, seeds=2)


def test_the_choice_is_the_better_candidate_on_validation(chosen):
    assert chosen.evidence == "answers" and chosen.budgets == (1.0, 2.0, 3.0, 6.0)
    val = chosen.validation
    assert set(val) == {"posterior", "learned"} and all(len(v) == 4 for v in val.values())
    assert val["posterior"][0] == val["learned"][0] == 0.0  # one answer each: nothing replayed, the default
    for i, name in enumerate(chosen.choice):  # learned only where it wins by the margin (and on each half)
        assert name == "posterior" or val["learned"][i] > val["posterior"][i] + MARGIN
    assert chosen.choice[0] == "posterior"
    assert all(0.5 < q < 1 for q in val["posterior"][1:]) and all(0.5 < q < 1 for q in val["learned"][1:])
    assert chosen.model.needs == "answers" and chosen.model.n_train_ == 400  # refitted on everything


def test_learned_replaces_the_posterior_only_ahead_on_both_halves_and_by_the_margin(votes, monkeypatch):
    """The rule itself, on scripted validation qualities (half 0, half 1) per budget."""
    from types import SimpleNamespace

    import adaptive_router.app.round_choice as rc

    m = 2 * MARGIN
    learned = {2.0: (0.7 + m, 0.7 + m), 3.0: (0.7 + 4 * m, 0.7 - m), 4.0: (0.7 + m / 4, 0.7 + m / 4)}
    calls: dict[tuple[bool, float], int] = {}

    def scripted(planner, *args, **kwargs):
        key = (isinstance(planner, CascadePlanner), float(planner.budget_per_query))
        half = calls.get(key, 0)
        calls[key] = half + 1
        return SimpleNamespace(quality=learned[key[1]][half] if key[0] else 0.7)

    monkeypatch.setattr(rc, "replay_rounds", scripted)
    got = rc.choose_rounds(votes, "vote", budgets=[1.0, 2.0, 3.0, 4.0], max_k=12, unit_cost=1.0, seeds=1)
    # B=2: ahead on both halves by 2 margins; B=3: ahead on average, behind on one half; B=4: below the margin
    assert got.choice == ("posterior", "learned", "posterior", "posterior")
    assert set(calls.values()) == {2}  # each setting replayed once per half, B=1 not at all


def test_the_choice_is_described_by_runs_of_budgets(chosen):
    from adaptive_router.app.round_choice import choice_budgets, describe_choice

    grid = choice_budgets([1.0, 2.0, 4.0], max_k=5, unit_cost=2.0)  # CHOICE_GRID x 2, up to 5 samples
    assert grid == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
    names = ("posterior", "learned", "learned", "learned", "posterior")
    forced = RoundChoice("answers", (1.0, 1.5, 2.0, 3.0, 4.0), names, chosen.model)
    assert describe_choice(forced) == "B=1 posterior, B=1.5-3 learned, B=4 posterior"


def test_at_reads_the_nearest_validated_budget(chosen):
    forced = RoundChoice("answers", (1.0, 4.0), ("posterior", "learned"), chosen.model)
    assert forced.name_at(1.9) == "posterior" and forced.name_at(2.1) == "learned"  # 2 is the log midpoint
    assert forced.name_at(100.0) == "learned" and forced.name_at(0.0) == "posterior"
    assert forced.at(1.0) == Rounds()
    learned = forced.at(5.0)
    assert learned.model is chosen.model
    assert isinstance(learned.planner("answers", budget_per_query=5.0, max_k=12, prior=False), CascadePlanner)
    assert isinstance(forced.at(1.0).planner("answers", budget_per_query=1.0, max_k=12, prior=False),
                      RoundPlanner)  # fmt: skip


def test_saved_choices_load_back_and_bad_files_say_retrain(tmp_path, votes, chosen):
    saved = save_round_choices(tmp_path, votes, budgets=[2.0, 4.0], max_k=12, unit_cost=1.0)
    assert [c.evidence for c in saved] == ["rewards", "answers"]
    back = read_round_choices(tmp_path)
    assert set(back) == {"rewards", "answers"}
    assert back["answers"].choice == saved[1].choice
    assert back["answers"].budgets == (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0)  # + CHOICE_GRID
    np.testing.assert_allclose(back["answers"].model.cheap_, saved[1].model.cheap_)
    assert read_round_choices(tmp_path / "missing") == {}
    (tmp_path / ROUNDS_FILE).write_text("[1, 2]")
    with pytest.raises(ProbeFormatError, match="retrain"):
        read_round_choices(tmp_path)
    bad = saved[1].to_dict() | {"choice": ["posterior", "oracle"]}
    (tmp_path / ROUNDS_FILE).write_text(json.dumps({"answers": bad}))
    with pytest.raises(ProbeFormatError, match="retrain"):
        read_round_choices(tmp_path)
    with pytest.raises(ConfigError, match="fitted on 'rewards'"):
        RoundChoice("rewards", (2.0,), ("learned",), chosen.model)  # a vote model for a verifier
    with pytest.raises(ConfigError, match="one choice per budget"):
        RoundChoice("answers", (2.0, 3.0), ("learned",), chosen.model)


def test_nothing_to_choose_for_routing_data_or_votes_without_answers(votes):
    two = OutcomeSet.from_dicts(
        [o | {"outcomes": {"a": o["outcomes"]["m"], "b": o["outcomes"]["m"][:1]}} for o in vote_objs(n=40)]
    )
    assert choose_rounds(two, "vote", budgets=[2.0], max_k=12, unit_cost=1.0) is None
    bare = OutcomeSet.from_dicts(
        [o | {"outcomes": {"m": [{"reward": r["reward"]} for r in o["outcomes"]["m"]]}}
         for o in vote_objs(n=40)]
    )  # fmt: skip
    assert choose_rounds(bare, "vote", budgets=[2.0], max_k=12, unit_cost=1.0) is None
    assert choose_rounds(votes, "score", budgets=[2.0], max_k=12, unit_cost=1.0) is None


def test_evaluate_replays_sequential_with_the_choice(chosen):
    test = OutcomeSet.from_dicts(vote_objs(n=200, seed=1))
    base = evaluate_allocation(test, budgets=[2.0, 6.0], reranker="vote")
    plain = add_round_methods(json.loads(json.dumps(base)), test, reranker="vote", seeds=2, sweep_seeds=1,
                              esc=False)  # fmt: skip
    learned = RoundChoice("answers", (2.0, 6.0), ("learned", "learned"), chosen.model)
    with_choice = add_round_methods(json.loads(json.dumps(base)), test, reranker="vote", seeds=2,
                                    sweep_seeds=1, esc=False, round_choice=learned)  # fmt: skip
    notes = with_choice["sequential_notes"]
    assert notes["round_choice"]["choice"] == ["learned", "learned"]
    assert "chosen by train" in notes["settings"]
    assert plain["sequential_notes"]["round_choice"] is None
    assert with_choice["methods"]["sequential"]["quality"] != plain["methods"]["sequential"]["quality"]
    verifier_model = chosen.model.__class__().fit(test.rewards("m"))
    other = RoundChoice("rewards", (2.0,), ("learned",), verifier_model)  # another evidence's: not used
    ignored = add_round_methods(json.loads(json.dumps(base)), test, reranker="vote", seeds=2, sweep_seeds=1,
                                esc=False, round_choice=other)  # fmt: skip
    assert ignored["methods"]["sequential"]["quality"] == plain["methods"]["sequential"]["quality"]


def test_train_writes_the_choice_and_evaluate_uses_it(tmp_path, write_drafted):
    from typer.testing import CliRunner

    from adaptive_router.app.cli import app

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    for path, n, seed in ((train, 200, 2), (test, 120, 3)):
        write_drafted(path, vote_objs(n=n, seed=seed), "#### 7")
    runner = CliRunner()
    probe, out = tmp_path / "probe", tmp_path / "rep.json"
    res = runner.invoke(app, ["train", str(train), "--out", str(probe), "--featurizer", "none",
                              "--answer-signals", "--budgets", "2,4",
                              "--reranker", "vote"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "rounds (verifier), chosen on validation: B=1.5" in res.output and "rounds (vote)" in res.output
    saved = read_round_choices(probe)["answers"]
    # evaluate's max_k: every recorded sample for votes (12), at most 8 with a verifier
    assert saved.budgets == (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0)
    assert read_round_choices(probe)["rewards"].budgets == saved.budgets[:-1]
    assert "max_k=12" in res.output
    assert saved.model.max_samples_ == 12
    res = runner.invoke(app, ["evaluate", str(test), "--probe", str(probe), "--reranker", "vote",
                              "--budgets", "2,4", "--seeds", "2", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    notes = json.loads(out.read_text())["sequential_notes"]
    assert notes["round_choice"]["choice"] == list(saved.choice)
    assert "posterior" in saved.validation and saved.prior_weight in (None, 0.0, 0.5, 1.0)
    # a choice whose posterior reads the probe's prediction at weight 1: evaluate re-predicts at it
    choices = read_round_choices(probe)
    forced = RoundChoice("answers", (2.0, 4.0), ("posterior", "posterior"), saved.model, prior_weight=1.0)
    (probe / ROUNDS_FILE).write_text(json.dumps({k: (forced if k == "answers" else c).to_dict()
                                                 for k, c in choices.items()}))  # fmt: skip
    res = runner.invoke(app, ["evaluate", str(test), "--probe", str(probe), "--reranker", "vote",
                              "--budgets", "2,4", "--seeds", "2", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    notes = json.loads(out.read_text())["sequential_notes"]
    assert notes["round_choice"]["prior_weight"] == 1.0 and "weight 1, chosen by train" in notes["prior"]


def mixed_stream(n, seed, samples=10):
    """Two kinds of question with the same first-sample accuracy: one mostly solvable on a retry, the other
    often hopeless. Its kind is a probe's only signal, worth nothing before the first sample."""
    rng = np.random.default_rng(seed)
    kind = rng.random(n) < 0.5
    hopeless = rng.random(n) < 0.45
    p = np.where(kind, rng.beta(1.2, 0.6, n), np.where(hopeless, rng.beta(0.2, 8, n), rng.beta(1.5, 1.0, n)))
    rewards = (rng.random((n, samples)) < p[:, None]).astype(float)
    data = OutcomeSet.from_dicts(
        {"id": f"m{seed}-{i}", "prompt": f"q {i}", "outcomes": {"m": [{"reward": float(r)} for r in row]}}
        for i, row in enumerate(rewards)
    )
    return data, kind


def _kind_prior(data, kind, weight, informative=True):
    from adaptive_router.app.round_choice import ProbePrior
    from adaptive_router.curves import pass_at_k

    r = data.rewards("m")
    true = pass_at_k(r.sum(axis=1), np.full(len(r), r.shape[1]), np.arange(1, 9))
    group = kind if informative else np.random.default_rng(9).permutation(kind)
    raw = np.where(group[:, None], true[group].mean(axis=0), true[~group].mean(axis=0))
    return ProbePrior(raw=raw, population=true.mean(axis=0), weight=weight)


def test_rounds_read_the_probes_prediction_where_it_pays_after_a_failure():
    from adaptive_router.app.round_choice import PRIOR_WEIGHTS

    data, kind = mixed_stream(800, 0)
    prior = _kind_prior(data, kind, weight=0.0)  # the probe fell back: one-shot allocation gained nothing
    choice = choose_rounds(data, "verifier", budgets=[1.0, 2.0, 4.0], max_k=8, unit_cost=1.0, seeds=4,
                           prior=prior)  # fmt: skip
    assert choice.prior_weight in PRIOR_WEIGHTS[1:]
    val = choice.validation
    assert set(val) == {"posterior", "posterior, prior weight 0.5", "posterior, prior weight 1", "learned"}
    chosen = val[f"posterior, prior weight {choice.prior_weight:g}"]
    assert chosen[0] == val["posterior"][0]  # one sample each: no prior changes the first round
    assert chosen[1] > val["posterior"][1] + MARGIN
    assert choice.at(2.0) == Rounds(prior_weight=choice.prior_weight)
    assert RoundChoice.from_dict(json.loads(json.dumps(choice.to_dict()))).prior_weight == choice.prior_weight
    noise = _kind_prior(data, kind, weight=0.0, informative=False)  # a prediction that knows nothing
    kept = choose_rounds(data, "verifier", budgets=[1.0, 2.0, 4.0], max_k=8, unit_cost=1.0, seeds=4,
                         prior=noise)  # fmt: skip
    assert kept.prior_weight is None and kept.at(2.0) == Rounds()
    short = _shorter(prior, 4)  # curves shorter than the planner's max_k: a router would not run
    assert choose_rounds(data, "verifier", budgets=[2.0], max_k=8, unit_cost=1.0, seeds=1,
                         prior=short).prior_weight is None  # fmt: skip


def _shorter(prior, k):
    from adaptive_router.app.round_choice import ProbePrior

    return ProbePrior(raw=prior.raw[:, :k], population=prior.population[:k], weight=prior.weight)
