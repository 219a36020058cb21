"""Tests for adaptive_router.strategies.best_of_k (BestOfK / SamplingStrategy)."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from adaptive_router.allocation import Option
from adaptive_router.errors import ConfigError
from adaptive_router.strategies import BestOfK, MajorityVoteReranker, VerifierReranker

PROMPT = [HumanMessage("3 + 4 =")]


def _verifier() -> VerifierReranker:
    return VerifierReranker(verify=lambda prompt, c: float(c.strip() == "7"))


def test_k_requests_and_best_selected(scripted):
    model = scripted(reply=lambda text, i: "7" if i == 2 else "9")
    strategy = BestOfK(model, _verifier(), max_k=4)
    result = strategy.execute(PROMPT, Option("default", 3, 3.0))
    assert model.calls == 3
    assert result.calls == 3 and result.failed_calls == 0 and result.candidates == 3
    assert result.message.content == "7"
    assert sorted(result.scores) == [0.0, 0.0, 1.0]
    assert result.cost == 3.0 and result.usage["total_tokens"] == 3 * 6


async def test_async_k_requests(scripted):
    model = scripted(reply=lambda text, i: "7" if i == 0 else "1")
    result = await BestOfK(model, _verifier(), max_k=4).aexecute(PROMPT, Option("default", 4, 4.0))
    assert model.calls == 4 and result.calls == 4 and result.message.content == "7"


def test_one_request_with_n_when_backend_honours_n(scripted):
    model = scripted(reply=lambda text, i: "7" if i == 1 else "8", supports_n=True)
    result = BestOfK(model, _verifier(), max_k=4).execute(PROMPT, Option("default", 3, 3.0))
    assert model.calls == 1 and model.n_seen == [3]
    assert result.calls == 1 and result.candidates == 3 and result.message.content == "7"
    # usage is counted once per request, not once per candidate
    assert result.usage["total_tokens"] == 6
    assert result.cost == 3.0


def test_use_n_false_forces_k_requests(scripted):
    model = scripted(supports_n=True)
    BestOfK(model, _verifier(), max_k=4, use_n=False).execute(PROMPT, Option("default", 2, 2.0))
    assert model.calls == 2 and model.n_seen == [1, 1]


def test_failed_samples_not_charged_twice_best_successful_returned(scripted):
    model = scripted(reply=lambda text, i: "7" if i == 1 else "5", fail=lambda i: i in (0, 1))
    result = BestOfK(model, _verifier(), max_k=4).execute(PROMPT, Option("default", 4, 4.0))
    assert model.calls == 4  # no re-sampling of the failed ones
    assert result.calls == 4 and result.failed_calls == 2 and result.candidates == 2
    assert result.message.content == "7"
    assert result.cost == 4.0 and result.cost <= result.allocated_cost
    assert len(result.errors) == 2 and "scripted failure" in result.errors[0]


def test_all_samples_failing_raises_the_first_error(scripted):
    model = scripted(fail=lambda i: True)
    with pytest.raises(RuntimeError, match="scripted failure"):
        BestOfK(model, _verifier(), max_k=2).execute(PROMPT, Option("default", 2, 2.0))


def test_ladder_is_best_of_k():
    from langchain_core.language_models import GenericFakeChatModel

    strategy = BestOfK(GenericFakeChatModel(messages=iter([])), MajorityVoteReranker(), max_k=3, cost=2.0)
    assert [(o.procedure, o.k, o.cost) for o in strategy.ladder] == [
        ("default", 1, 2.0),
        ("default", 2, 4.0),
        ("default", 3, 6.0),
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_k": 0}, "max_k must be an int >= 1"),
        ({"max_k": 3, "reranker": None}, "needs a reranker"),
        ({"cost": -1.0}, "must be a finite number > 0"),
        ({"cost": float("nan")}, "must be a finite number > 0"),
    ],
)
def test_bad_configuration(scripted, kwargs, match):
    args = {"reranker": _verifier(), "max_k": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        BestOfK(scripted(), **args)


def test_non_runnable_model_rejected():
    with pytest.raises(ConfigError, match="pass a LangChain chat model or Runnable"):
        BestOfK("gpt-4", max_k=1)


def test_option_outside_ladder_rejected(scripted):
    strategy = BestOfK(scripted(), _verifier(), max_k=2)
    with pytest.raises(ConfigError, match=r"outside 1\.\.max_k=2"):
        strategy.execute(PROMPT, Option("default", 3, 3.0))
    with pytest.raises(ConfigError, match="is not one of"):
        strategy.execute(PROMPT, Option("other", 1, 1.0))


def test_stream_k1_passes_chunks_then_result(scripted):
    from adaptive_router.strategies import StrategyResult

    model = scripted(reply=lambda text, i: "seven is the answer")
    pieces = list(BestOfK(model, max_k=1).stream(PROMPT, Option("default", 1, 1.0)))
    assert isinstance(pieces[-1], StrategyResult)
    assert len(pieces) >= 5  # the word chunks as they come, then the accounting
    assert "".join(p.content for p in pieces[:-1]) == "seven is the answer "
    assert pieces[-1].message.content == "seven is the answer "


def test_stream_k_gt_1_yields_only_the_result(scripted):
    from adaptive_router.strategies import StrategyResult

    model = scripted(reply=lambda text, i: "7" if i == 1 else "2")
    pieces = list(BestOfK(model, _verifier(), max_k=2).stream(PROMPT, Option("default", 2, 2.0)))
    assert len(pieces) == 1  # no candidate's text: the router streams the chosen one
    assert isinstance(pieces[0], StrategyResult) and pieces[0].calls == 2
    assert pieces[0].message.content == "7"


def test_requests_finish_is_execute(scripted):
    from adaptive_router.strategies.base import merge, send_all

    model = scripted(reply=lambda t, i: "good" if i == 2 else "bad")
    strategy = BestOfK(model, VerifierReranker(verify=lambda p, c: float(c == "good")), max_k=3)
    option = strategy.ladder.options[-1]
    messages = [HumanMessage("q")]
    requests = strategy.requests(messages, option)
    assert len(requests) == 3 and model.calls == 0  # planning the requests sends nothing
    batch = merge(send_all([(r, {}) for r in requests], max_concurrency=1))
    result = strategy.finish(messages, option, batch)
    assert (result.message.content, result.calls, result.cost, result.selected) == ("good", 3, 3.0, 2)


def test_one_n_request_and_its_failure_are_charged_k(scripted):
    model = scripted(reply=lambda t, i: "x", supports_n=True, fail=lambda i: True)
    strategy = BestOfK(model, VerifierReranker(verify=lambda p, c: 1.0), max_k=3)
    (request,) = strategy.requests([HumanMessage("q")], strategy.ladder.options[-1])
    batch = request.send()
    assert (request.n, batch.calls, batch.failed_calls, batch.requested) == (3, 1, 1, 3)
    with pytest.raises(RuntimeError, match="scripted failure"):
        strategy.finish([HumanMessage("q")], strategy.ladder.options[-1], batch)


async def test_aexecute_bounds_its_k_requests(scripted):
    model = scripted(reply=lambda t, i: "x", latency=0.005)
    strategy = BestOfK(model, VerifierReranker(verify=lambda p, c: 1.0), max_k=4)
    result = await strategy.aexecute([HumanMessage("q")], strategy.ladder.options[-1], {"max_concurrency": 2})
    assert result.calls == 4 and result.candidates == 4 and model.max_active <= 2


def test_vote_over_tool_call_candidates_picks_the_common_call():
    from langchain_core.language_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    def call(a):
        return AIMessage("", tool_calls=[{"name": "add", "args": {"a": a}, "id": f"c{a}"}])

    model = FakeMessagesListChatModel(responses=[call(1), call(2), call(2)])
    result = BestOfK(model, MajorityVoteReranker(), max_k=3).execute(PROMPT, Option("default", 3, 3.0))
    assert result.message.tool_calls[0]["args"] == {"a": 2}  # the candidates arrive in any order
    assert sorted(result.scores) == [1 / 3, 2 / 3, 2 / 3]


def test_a_model_that_ignores_n_gets_the_missing_requests_and_is_remembered(scripted):
    from adaptive_router.strategies.base import honours_n

    class IgnoresN(scripted):  # type: ignore[misc, valid-type]
        """No ``supports_n`` but an ``n`` field, as OpenAI-style models have; returns one generation."""

        n: int = 1
        supports_n: None = None  # type: ignore[assignment]

    model = IgnoresN()
    strategy = BestOfK(model, _verifier(), max_k=3)
    assert honours_n(model)  # an n field: tried with n=k first
    result = strategy.execute(PROMPT, Option("default", 3, 3.0))
    assert result.candidates == 3 and result.calls == 3 and result.cost == 3.0  # 1 (n=3, one back) + 2
    assert not honours_n(model)  # remembered: later requests are sent one candidate each
    strategy.execute(PROMPT, Option("default", 2, 2.0))
    assert model.calls == 5 and model.n_seen == [1, 1, 1, 1, 1]


def test_declared_supports_n_wins_over_detection(scripted):
    from adaptive_router.strategies.base import honours_n

    assert honours_n(scripted(supports_n=True)) and not honours_n(scripted(supports_n=False))
    assert honours_n(scripted(supports_n=True).bind(stop=["x"]))  # through a binding


def test_one_model_has_no_fallback_and_spent_counts_failed_samples(scripted):
    from adaptive_router.strategies.base import SampleBatch

    strategy = BestOfK(scripted(), VerifierReranker(verify=lambda p, c: 1.0), max_k=3, cost=2.0)
    option = strategy.ladder.options[-1]
    assert strategy.fallbacks(option) == ()
    failed = SampleBatch.of([RuntimeError("down"), "ok", RuntimeError("down")])
    assert strategy.spent(option, failed) == 6.0  # all three asked for, failed ones included
