"""CascadeRouter with ``cascade_model``: cascades in rounds, live (runnables/cascade_rounds.py).

The `CascadeModel`s are fitted on synthetic training outcomes where agreeing (or verified) cheap samples are
right and disagreeing (or failing) ones are wrong while the strong model is always right, so the planner
keeps what agrees or passes and escalates the rest, as far as the budget goes. The cheap model answers
``"42"`` (votes) or ``"right"`` (verifier) to prompts containing "easy", and something different on every
sample otherwise; the expensive model answers ``"strong"``.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import adaptive_router.runnables.stages as stages_module
from adaptive_router.allocation import CascadeModel
from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.prices import PriceTable
from adaptive_router.runnables import router_metadata
from adaptive_router.runnables.cascade import CascadeRouter
from adaptive_router.strategies import MajorityVoteReranker, VerifierReranker

VERIFY = VerifierReranker(verify=lambda prompt, answer: answer == "right")
QUERIES = ["easy 0", "hard 1", "easy 2", "hard 3"]


def _vote_model() -> CascadeModel:
    """Agreeing answers are right, four different answers are all wrong; the strong model is right."""
    answers = np.array([[1, 1, 1, 1], [2, 3, 4, 5]] * 10)
    cheap = np.array([[1.0] * 4, [0.0] * 4] * 10)
    return CascadeModel().fit(cheap, np.ones(20), answers=answers)


def _verifier_model() -> CascadeModel:
    """Half the queries pass every cheap sample, half fail every one; the strong model is right."""
    return CascadeModel().fit(np.array([[1.0] * 4, [0.0] * 4] * 10), np.ones(20))


def _cheap_reply(right: str):
    def reply(text: str, i: int) -> str:
        return right if "easy" in text else f"guess {i}"

    return reply


def _router(scripted, *, votes=True, cheap=None, expensive=None, **kwargs):
    cheap = cheap or scripted(reply=_cheap_reply("42" if votes else "right"))
    expensive = expensive or scripted(reply=lambda text, i: "strong")
    kwargs.setdefault("costs", (1.0, 10.0))
    kwargs.setdefault("budget_per_query", 8.0)
    kwargs.setdefault("drafts", 4)
    kwargs.setdefault("draft_evidence", MajorityVoteReranker() if votes else VERIFY)
    kwargs.setdefault("cascade_model", _vote_model() if votes else _verifier_model())
    return CascadeRouter(cheap=cheap, expensive=expensive, **kwargs), cheap, expensive


def _metas(outs):
    return [router_metadata(o) for o in outs]


def _escalated(outs) -> list[bool]:
    return [m["escalated"] for m in _metas(outs)]


def _check_ledger(router, outs, budget: float, extra: float = 0.0) -> None:
    """The ledger holds exactly what the answers spent (plus `extra`, spent by failed items) and never
    more than the budget."""
    (summary,) = router.spend_summary()
    spent = sum(m["cost"] for m in _metas(o for o in outs if not isinstance(o, BaseException))) + extra
    assert summary["allocated"] == pytest.approx(spent)
    assert summary["allocated"] <= summary["budget"] + 1e-9 == budget + 1e-9


# ---------------------------------------------------------------------- what is escalated
def test_agreeing_cheap_answers_are_kept_and_disagreeing_ones_escalate(scripted):
    router, _, expensive = _router(scripted)  # 4 * 8 = 32 units: 8 cheap samples, then 2 escalations
    outs = router.batch(QUERIES)
    assert _escalated(outs) == [False, True, False, True]
    assert [o.content for o in outs] == ["42", "strong", "42", "strong"]
    assert expensive.calls == 2
    _check_ledger(router, outs, 32.0)


def test_the_budget_caps_the_escalations(scripted):
    router, _, expensive = _router(scripted, budget_per_query=5.0)  # 20 units: 8 cheap, one escalation
    outs = router.batch(QUERIES)
    escalated = _escalated(outs)
    assert sum(escalated) == 1 == expensive.calls and not escalated[0] and not escalated[2]
    _check_ledger(router, outs, 20.0)


def test_a_verifier_cascade_escalates_the_queries_that_fail(scripted):
    router, _, _ = _router(scripted, votes=False, budget_per_query=6.0)
    outs = router.batch(QUERIES)
    assert _escalated(outs) == [False, True, False, True]
    assert [o.content for o in outs] == ["right", "strong", "right", "strong"]
    easy = router_metadata(outs[0])
    assert easy["draft_evidence"] == [1.0] and easy["k"] == 1 and easy["cost"] == 1.0  # solved: stops
    _check_ledger(router, outs, 24.0)


# ---------------------------------------------------------------------- failures and the ledger
def test_a_failing_expensive_model_keeps_the_cheap_answer(scripted):
    expensive = scripted(fail=lambda i: True)
    router, _, _ = _router(scripted, votes=False, budget_per_query=6.0, expensive=expensive)
    outs = router.batch(QUERIES)
    metas = _metas(outs)
    assert [m["escalated"] for m in metas] == [False] * 4 and expensive.calls == 2
    failed = [m for m in metas if m["escalation_error"] is not None]
    assert len(failed) == 2 and all("scripted failure" in m["escalation_error"] for m in failed)
    for m, out in zip(metas, outs, strict=True):
        if m["escalation_error"] is not None:  # the paid escalation is charged, the cheap answer kept
            assert out.content.startswith("guess") and m["draft"] == out.content
            assert m["cost"] == 11.0 and m["failed_calls"] == 1 and m["procedure"] == "cheap"
    _check_ledger(router, outs, 24.0)


def _flaky_cheap(scripted, *, down: str, flaky: str):
    """Votes: "42" to easy prompts; every request for `down` fails, the first for `flaky` fails."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def reply(text: str, i: int) -> str:
        with lock:
            seen[text] = count = seen.get(text, 0) + 1
        if text == down or (text == flaky and count == 1):
            raise RuntimeError(f"cheap model down for {text!r}")
        return "42" if "easy" in text else f"guess {i}"

    return scripted(reply=reply), seen


def test_failed_cheap_requests_are_charged_and_end_the_query(scripted):
    cheap, seen = _flaky_cheap(scripted, down="down", flaky="easy flaky")
    router, _, expensive = _router(scripted, cheap=cheap, costs=(1.0, 100.0), budget_per_query=4.0)
    outs = router.batch(["easy 0", "down", "easy flaky"], return_exceptions=True)  # no escalation fits
    assert isinstance(outs[1], RuntimeError) and "down" in str(outs[1])
    assert seen["down"] == 2 and expensive.calls == 0  # round 1's two samples failed: no further round
    flaky = router_metadata(outs[2])
    assert outs[2].content == "42" and flaky["failed_calls"] == 1
    assert flaky["cost"] == flaky["k"] == sum(r["units"] for r in flaky["rounds"]["per_round"])
    _check_ledger(router, outs, 12.0, extra=2.0)  # the failed query's two samples are spent


def test_a_query_whose_cheap_requests_fail_may_still_escalate(scripted):
    cheap, seen = _flaky_cheap(scripted, down="down", flaky="-")
    router, _, _ = _router(scripted, votes=False, cheap=cheap, budget_per_query=12.0)
    out = router.invoke("down")
    meta = router_metadata(out)
    assert out.content == "strong" and meta["escalated"] and seen["down"] == 1
    assert [(r["units"], r["escalated"]) for r in meta["rounds"]["per_round"]] == [(1, False), (0, True)]
    assert meta["cost"] == 11.0 and meta["draft"] is None
    _check_ledger(router, [out], 12.0)


# ---------------------------------------------------------------------- metadata and rounds
def test_metadata_lists_every_round_and_the_escalation(scripted):
    router, _, _ = _router(scripted)
    outs = router.batch(QUERIES)
    for meta in _metas(outs):
        per_round = meta["rounds"]["per_round"]
        assert meta["rounds"]["evidence"] == "answers" and meta["rounds"]["stop_reason"] is not None
        assert [r["round"] for r in per_round] == sorted({r["round"] for r in per_round})
        assert sum(r["cost"] for r in per_round) == meta["cost"] == meta["allocated_cost"]
        assert sum(r["calls"] for r in per_round) == meta["calls"]
        assert [v for r in per_round for v in r["evidence"]] == meta["draft_evidence"]
        cheap_rounds = [r for r in per_round if not r["escalated"]]
        assert all(len(r["evidence"]) == r["units"] > 0 for r in cheap_rounds)
    hard = router_metadata(outs[1])
    last = hard["rounds"]["per_round"][-1]
    assert last["escalated"] and last["units"] == 0 and last["cost"] == 10.0 and last["evidence"] == []
    assert hard["k"] == 1 and hard["procedure"] == "expensive" and hard["draft"].startswith("guess")
    assert hard["escalation_error"] is None
    easy = router_metadata(outs[0])
    assert easy["procedure"] == "cheap" and easy["draft"] is None and easy["k"] == easy["candidates"]
    assert set(easy["draft_evidence"]) == {"42"}


def test_tokens_and_dollars_count_every_cheap_sample_and_the_escalation(scripted):
    prices = PriceTable({"cheap": (1.0, 2.0), "expensive": (10.0, 20.0)})  # dollars per million tokens
    router, _, _ = _router(scripted, prices=prices)
    outs = router.batch(QUERIES)
    for out, meta in zip(outs, _metas(outs), strict=True):
        cheap_calls = sum(r["calls"] for r in meta["rounds"]["per_round"] if not r["escalated"])
        escalations = meta["calls"] - cheap_calls
        assert meta["tokens"]["total_tokens"] == 6 * meta["calls"] == out.usage_metadata["total_tokens"]
        assert meta["cost_usd"] == pytest.approx((9.0 * cheap_calls + 90.0 * escalations) / 1e6)
    assert [m["calls"] - 2 for m in _metas(outs) if m["escalated"]] == [1, 1]  # round 1's two, one call


def test_one_send_per_round_carries_cheap_samples_and_escalations(scripted, monkeypatch):
    sends: list[int] = []
    real = stages_module.send_all

    def counting(requests, max_concurrency=None):
        sends.append(len(requests))
        return real(requests, max_concurrency)

    monkeypatch.setattr(stages_module, "send_all", counting)
    router, cheap, expensive = _router(scripted, window_size=2)  # two windows, their rounds sent together
    outs = router.batch(QUERIES)
    rounds = max(r["round"] for m in _metas(outs) for r in m["rounds"]["per_round"])
    assert len(sends) == rounds >= 2 and sum(sends) == cheap.calls + expensive.calls


def test_a_lone_invoke_and_stream_run_rounds_within_the_ledger(scripted):
    router, _, expensive = _router(scripted, votes=False, budget_per_query=6.0)
    first = router.invoke("hard 0")  # 6 units: one sample, no escalation fits; 5 left over
    assert not router_metadata(first)["escalated"] and expensive.calls == 0
    carried = router.invoke("hard 1")  # 6 + 5 units: its escalation fits
    assert router_metadata(carried)["escalated"] and carried.content == "strong"
    streamed = list(router.stream("easy 2"))  # 6 units: solved by its one sample
    assert "".join(str(c.content) for c in streamed).strip() == "right"
    assert router_metadata(streamed[-1])["rounds"]["per_round"] == [
        {"round": 1, "units": 1, "calls": 1, "failed_calls": 0, "cost": 1.0, "evidence": [1.0], "best": 1.0,
         "escalated": False},
    ]  # fmt: skip
    (summary,) = router.spend_summary()
    assert summary["queries"] == 3 and summary["allocated"] == 1 + 11 + 1 <= summary["budget"] == 18.0


async def test_abatch_and_concurrent_ainvokes_match_batch(scripted):
    expected = [o.content for o in _router(scripted)[0].batch(QUERIES)]
    router, _, _ = _router(scripted)
    assert [o.content for o in await router.abatch(QUERIES)] == expected
    router, _, expensive = _router(scripted, max_wait_ms=50)
    outs = await asyncio.gather(*(router.ainvoke(q) for q in QUERIES))  # one micro-batch, one window
    assert [o.content for o in outs] == expected and expensive.calls == 2
    assert {m["predicted"]["window"] for m in _metas(outs)} == {4}
    _check_ledger(router, outs, 32.0)


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cascade_model": "not a model"}, ConfigError, "must be an adaptive_router.allocation.CascadeModel"),
        ({"cascade_model": CascadeModel()}, ConfigError, "is not fitted"),
        ({"draft_evidence": None}, ConfigError, "needs draft_evidence="),
        ({"draft_evidence": VERIFY}, ConfigError, "fitted on 'answers' but draft_evidence"),
        ({"cascade_model": _verifier_model()}, ConfigError, "fitted on 'rewards' but draft_evidence"),
        ({"probe": "PROBE"}, ConfigError, "pass probe=None"),
        ({"budget_per_query": 0.5}, InfeasibleBudgetError, "cost of the cheap sample"),
    ],
)
def test_bad_cascade_settings_fail_at_construction(scripted, table_probe, kwargs, error, match):
    if kwargs.get("probe") == "PROBE":
        kwargs["probe"] = table_probe(procedures=("cheap", "expensive"), max_k=1)
    cheap = scripted()
    with pytest.raises(error, match=match):
        _router(scripted, cheap=cheap, **kwargs)
    assert cheap.calls == 0


def test_a_budget_below_one_cheap_sample_per_call_fails_before_any_request(scripted):
    router, cheap, _ = _router(scripted)
    with pytest.raises(InfeasibleBudgetError, match="at least 1"):
        router.invoke("easy 0", {"configurable": {"budget_per_query": 0.5}})
    assert cheap.calls == 0
