"""AdaptiveRouter in rounds (runnables/rounds.py, BaseRouter's round loop): exact calls, ledger, metadata.

`PerQueryModel` answers each prompt right on its ``j``-th sample (``solve_at``), counting per prompt, so a
verifier round planner's calls are known exactly: a query stops the round after it is solved.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from langchain_core.messages import AIMessage

import adaptive_router.runnables.stages as stages_module
from adaptive_router.allocation import Rounds, ScoreEvidence, VoteEvidence
from adaptive_router.errors import ConfigError
from adaptive_router.runnables import AdaptiveRouter, router_metadata
from adaptive_router.strategies import (
    BestOfK,
    LLMJudgeReranker,
    MajorityVoteReranker,
    Route,
    VerifierReranker,
)

VERIFY = VerifierReranker(verify=lambda prompt, answer: answer.strip() == "right")


def per_query_model(scripted, solve_at, *, wrong=lambda text, count: "wrong", **kwargs):
    """A scripted model whose answer to prompt ``q`` is "right" on its ``solve_at[q]``-th sample (1-based)."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def reply(text: str, i: int) -> str:
        with lock:
            seen[text] = count = seen.get(text, 0) + 1
        return "right" if count == solve_at.get(text, 0) else wrong(text, count)

    return scripted(reply=reply, **kwargs)


def _router(model, reranker=VERIFY, **kwargs):
    kwargs.setdefault("budget_per_query", 3.0)
    return AdaptiveRouter(strategy=BestOfK(model, reranker, max_k=kwargs.pop("max_k", 4)), **kwargs)


def _ks(outs):
    return [router_metadata(o)["k"] for o in outs]


def test_a_solved_query_stops_exact_calls(scripted):
    # budget 9 for 3 queries, paced: round 1 one each (q0 solved); round 2 one to each unsolved query, q1
    # and q2 (q1 solved); rounds 3 and 4 one each to q2 (max_k = 4); then no query gains: stop
    model = per_query_model(scripted, {"q0": 1, "q1": 2})
    router = _router(model)
    outs = router.batch(["q0", "q1", "q2"])
    assert _ks(outs) == [1, 2, 4] and model.calls == 7
    assert [o.content for o in outs] == ["right", "right", "wrong"]
    metas = [router_metadata(o) for o in outs]
    assert [[r["units"] for r in m["rounds"]["per_round"]] for m in metas] == [[1], [1, 1], [1, 1, 1, 1]]
    assert {m["rounds"]["stop_reason"] for m in metas} == {"no_gain"}
    assert metas[1]["rounds"]["per_round"][1] == {
        "round": 2, "units": 1, "calls": 1, "failed_calls": 0, "cost": 1.0, "evidence": [1.0], "best": 1.0,
    }  # fmt: skip
    (summary,) = router.spend_summary()
    assert summary["allocated"] == 7.0 and summary["budget"] == 9.0  # 2 units carried over


async def test_async_paths_match_the_sync_counts(scripted):
    model = per_query_model(scripted, {"q0": 1, "q1": 2})
    outs = await _router(model).abatch(["q0", "q1", "q2"])
    assert _ks(outs) == [1, 2, 4] and model.calls == 7
    model = per_query_model(scripted, {"q0": 1, "q1": 2})
    router = _router(model, max_wait_ms=50)
    outs = await asyncio.gather(*(router.ainvoke(q) for q in ["q0", "q1", "q2"]))  # one micro-batch
    assert _ks(outs) == [1, 2, 4] and model.calls == 7
    assert {router_metadata(o)["predicted"]["window"] for o in outs} == {3}


def test_one_send_per_round_for_the_whole_batch(scripted, monkeypatch):
    sends: list[int] = []
    real = stages_module.send_all

    def counting(requests, max_concurrency=None):
        sends.append(len(requests))
        return real(requests, max_concurrency)

    monkeypatch.setattr(stages_module, "send_all", counting)
    model = per_query_model(scripted, {"q0": 1, "q1": 2})
    outs = _router(model, window_size=2).batch(["q0", "q1", "q2", "q3"])  # two windows, rounds together
    rounds = max(router_metadata(o)["rounds"]["per_round"][-1]["round"] for o in outs)
    assert len(sends) == rounds > 2 and sum(sends) == model.calls


def test_the_ledger_carries_what_rounds_did_not_spend(scripted):
    model = per_query_model(scripted, {f"easy{i}": 1 for i in range(4)})
    router = _router(model, budget_per_query=2.0, max_k=8)
    easy = router.batch([f"easy{i}" for i in range(4)])
    assert _ks(easy) == [1, 1, 1, 1]
    hard = router.batch(["hard0", "hard1"])  # 2 * 2 units of its own plus the 4 the easy window left
    assert sum(_ks(hard)) == 8 and model.calls == 12
    (summary,) = router.spend_summary()
    assert summary["allocated"] == 12.0 == summary["budget"]


def test_a_lone_invoke_stops_when_solved_and_never_overdraws(scripted, table_probe):
    model = per_query_model(scripted, {"short": 1, "a long question": 3})
    probe = table_probe(by_length=lambda n: 0.6, max_k=4)
    router = _router(model, probe=probe, budget_per_query=2.0)
    first = router.invoke("short")
    assert (
        router_metadata(first)["k"] == 1 and router_metadata(first)["predicted"]["allocator"] == "threshold"
    )
    second = router_metadata(router.invoke("a long question"))  # 2 units + 1 carried: at most 3
    assert second["k"] == 3 and second["rounds"]["per_round"][-1]["best"] == 1.0
    assert second["predicted"]["shadow_price"] is not None
    for q in ["x1", "x2", "x3"]:  # never solved
        router.invoke(q)
    (summary,) = router.spend_summary()
    assert summary["allocated"] == model.calls <= summary["budget"] == 10.0


def test_metadata_lists_the_rounds(scripted):
    model = per_query_model(scripted, {"q1": 2})
    for out in _router(model).batch(["q0", "q1"]):
        meta = router_metadata(out)
        rounds = meta["rounds"]["per_round"]
        assert meta["rounds"]["evidence"] == "rewards"
        assert sum(r["units"] for r in rounds) == meta["k"] == meta["calls"]
        assert sum(r["cost"] for r in rounds) == meta["allocated_cost"] == meta["cost"]
        assert [len(r["evidence"]) for r in rounds] == [r["units"] for r in rounds]
        assert len(meta["reranker_scores"]) == meta["candidates"] == meta["k"]
        assert meta["predicted"]["allocator"] == "window"


def test_votes_spend_on_the_queries_that_disagree(scripted):
    model = per_query_model(
        scripted, {}, wrong=lambda text, count: "7" if text == "agree" else str(count % 3)
    )
    router = _router(model, reranker=MajorityVoteReranker(), budget_per_query=4.0, max_k=8)
    agree, split = router.batch(["agree", "split"])
    assert agree.content == "7"
    assert router_metadata(split)["k"] > router_metadata(agree)["k"] >= 2  # first round: two votes each
    assert router_metadata(agree)["rounds"]["per_round"][0]["evidence"] == ["7", "7"]
    assert router_metadata(split)["rounds"]["evidence"] == "answers"


def _vote_model():
    from adaptive_router.allocation import CascadeModel

    rng = np.random.default_rng(0)  # training outcomes: agreeing answers are right, scattered ones are not
    right = rng.random((300, 8)) < np.where(rng.random(300) < 0.5, 0.95, 0.2)[:, None]
    codes = np.where(right, 0, rng.integers(1, 9, size=right.shape))
    return CascadeModel().fit(right.astype(float), answers=codes)


def _agree_or_split(scripted):
    return per_query_model(
        scripted, {}, wrong=lambda text, count: "7" if text.startswith("agree") else str(count)
    )


PROMPTS = ["agree-0", "agree-1", "split-0", "split-1"]


def test_learned_round_settings_run_live_within_the_budget(scripted):
    model = _agree_or_split(scripted)
    router = _router(model, reranker=MajorityVoteReranker(), budget_per_query=4.0, max_k=8,
                     rounds=Rounds(model=_vote_model()))  # fmt: skip
    outs = router.batch(PROMPTS)
    ks = _ks(outs)
    assert ks[0] == ks[1] == 2 and ks[2] > 2 and ks[3] > 2  # agreement stops; scattered answers get more
    assert sum(ks) == model.calls <= 16
    assert {router_metadata(o)["rounds"]["rule"] for o in outs} == {"learned"}
    (summary,) = router.spend_summary()
    assert summary["allocated"] == model.calls and summary["budget"] == 16.0


def test_auto_rounds_follow_the_probes_choice_for_the_budget(scripted, table_probe):
    from adaptive_router.allocation import RoundChoice

    vote_model = _vote_model()
    runs = {}
    for label, rounds, choices in (
        ("explicit", Rounds(model=vote_model), {}),
        ("default", "auto", {}),
        ("chosen", "auto", {"answers": RoundChoice("answers", (1.0, 4.0), ("posterior", "learned"),
                                                   vote_model)}),
        ("other budget", "auto", {"answers": RoundChoice("answers", (4.0, 16.0), ("posterior", "learned"),
                                                         vote_model)}),
    ):  # fmt: skip
        probe = table_probe(by_length=lambda n: 0.5)
        probe.round_choices = choices
        model = _agree_or_split(scripted)
        router = _router(model, reranker=MajorityVoteReranker(), budget_per_query=4.0, max_k=8, rounds=rounds,
                         probe=probe)  # fmt: skip
        runs[label] = (_ks(router.batch(PROMPTS)), model.calls)
    assert runs["chosen"] == runs["explicit"]  # learned at B = 4
    assert router_metadata(router.invoke(PROMPTS[0]))["rounds"]["rule"] == "posterior"
    assert runs["other budget"] == runs["default"]  # posterior at B = 4 (the nearest validated budget)
    assert runs["chosen"] != runs["default"]


def test_n_backends_get_one_request_per_round(scripted):
    model = per_query_model(scripted, {"q1": 2}, supports_n=True)
    outs = _router(model).batch(["q0", "q1"])
    calls = [r["calls"] for o in outs for r in router_metadata(o)["rounds"]["per_round"]]
    assert set(calls) == {1} and model.calls == len(calls)
    assert sum(_ks(outs)) == sum(model.n_seen)


def test_a_failed_round_keeps_what_was_paid_for(scripted):
    # q0's first sample is "wrong", its second request fails: the answer is the paid first candidate
    model = per_query_model(scripted, {}, fail=lambda i: i == 2)
    router = _router(model, budget_per_query=2.0, max_k=2)
    q0, q1 = router.batch(["q0", "q1"], {"max_concurrency": 1})
    meta = router_metadata(q0)
    assert q0.content == "wrong" and meta["failed_calls"] == 1 and meta["cost"] == 2.0 == meta["k"]
    assert router_metadata(q1)["k"] == 2
    assert router.spend_summary()[0]["allocated"] == 4.0


def test_a_query_whose_every_sample_fails_is_its_error_only(scripted):
    model = scripted(reply=lambda t, i: "wrong", fail=lambda i: i == 0)
    outs = _router(model, budget_per_query=2.0).batch(
        ["q0", "q1"], {"max_concurrency": 1}, return_exceptions=True
    )
    assert isinstance(outs[0], RuntimeError) and isinstance(outs[1], AIMessage)
    assert model.calls == 4  # q0 failed in round 1 and got no further round; q1 took the rest
    assert router_metadata(outs[1])["k"] == 3


def test_a_judge_reads_each_candidate_once(scripted):
    judge = scripted(reply=lambda t, i: "3")
    train = np.random.default_rng(0).normal(size=(40, 4))
    rounds = Rounds(evidence=ScoreEvidence().fit(train, (train > 0).astype(float)))
    model = scripted(reply=lambda t, i: f"answer {i}")
    router = _router(model, reranker=LLMJudgeReranker(judge=judge, cost_per_candidate=0.0), rounds=rounds)
    outs = router.batch(["q0", "q1"])
    assert judge.calls == model.calls == sum(router_metadata(o)["judge_calls"] for o in outs)


@pytest.mark.parametrize("use_async", [False, True])
async def test_stream_yields_the_chosen_answer_after_the_last_round(scripted, use_async):
    model = per_query_model(scripted, {"q": 2})
    router = _router(model, budget_per_query=2.0)
    chunks = [c async for c in router.astream("q")] if use_async else list(router.stream("q"))
    assert [c.content for c in chunks if c.content] == ["right"]
    assert len(router_metadata(chunks[-1])["rounds"]["per_round"]) == 2 and model.calls == 2


def test_one_shot_stays_available_per_call_and_by_default_without_evidence(scripted):
    model = per_query_model(scripted, {"q0": 1})
    router = _router(model)
    (out,) = router.batch(["q0"], {"configurable": {"rounds": "off"}})
    assert router_metadata(out)["k"] == 3 and "rounds" not in router_metadata(out)
    route = Route(cheap=scripted(), expensive=scripted(), costs={"cheap": 1, "expensive": 2})
    assert "rounds" not in router_metadata(AdaptiveRouter(strategy=route, budget_per_query=2.0).invoke("q"))


def test_bad_round_settings_fail_before_anything_is_sent(scripted):
    model = scripted()
    with pytest.raises(ConfigError, match="reads 'answers' but the reranker gives 'rewards'"):
        _router(model, rounds=Rounds(evidence=VoteEvidence()))
    with pytest.raises(ConfigError, match="rounds need a reranker that gives evidence"):
        AdaptiveRouter(strategy=BestOfK(model, max_k=1), rounds=Rounds())
    with pytest.raises(ConfigError, match="scores have no default evidence model"):
        _router(model, reranker=LLMJudgeReranker(judge=model), rounds=Rounds())
    with pytest.raises(ConfigError, match="choose 'auto', 'off', None or a Rounds"):
        _router(model).invoke("q", {"configurable": {"rounds": "sometimes"}})
    with pytest.raises(ConfigError, match="first_round=0"):
        Rounds(first_round=0)
    assert model.calls == 0


def test_a_prior_weight_re_predicts_the_rounds_prior(scripted, table_probe):
    class WeightedProbe(type(table_probe())):  # a fallen-back probe whose own prediction rounds may read
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.weights = []

        def predict_curves(self, texts, shrinkage=None):
            self.weights.append(shrinkage)
            raw = super().predict_curves(texts)
            w = 0.0 if shrinkage is None else shrinkage
            return {p: w * c + (1 - w) * c.mean(axis=0, keepdims=True) for p, c in raw.items()}

    prompts = ["q0", "q1", "hard question number two", "hard question number three"]
    runs = {}
    for weight in (None, 1.0):
        probe = WeightedProbe(table={"q0": 0.9, "q1": 0.9}, by_length=lambda n: 0.01)
        model = per_query_model(scripted, {})  # nothing is ever solved: where the budget goes is the prior's
        router = _router(model, budget_per_query=2.0, probe=probe, rounds=Rounds(prior_weight=weight))
        runs[weight] = _ks(router.batch(prompts))
        assert probe.weights == [weight] and sum(runs[weight]) == model.calls <= 8
        meta = router_metadata(router.invoke("q0"))["rounds"]
        assert meta["rule"] == "posterior" and meta["prior_weight"] == weight
    assert runs[None] == [2, 2, 2, 2]  # the population prior: every query alike
    assert runs[1.0][0] > runs[1.0][2] and runs[1.0][1] > runs[1.0][3]  # hopeless queries stop sooner
    model = scripted()
    with pytest.raises(ConfigError, match="takes no shrinkage"):
        _router(model, probe=table_probe(), rounds=Rounds(prior_weight=0.5)).invoke("q")
    assert model.calls == 0
    with pytest.raises(ConfigError, match="prior_weight=2"):
        Rounds(prior_weight=2)
