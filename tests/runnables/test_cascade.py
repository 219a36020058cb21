"""Tests for adaptive_router.runnables.cascade (CascadeRouter) with in-process test doubles.

The cheap model drafts ``"WRONG"`` for questions containing "hard" and ``"right"`` otherwise; the
`DraftProbe` reads the draft through `split_draft` and predicts a low reward for keeping a WRONG draft, so the
allocator should escalate exactly those (as many as the budget pays for).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from adaptive_router.errors import ConfigError, InfeasibleBudgetError
from adaptive_router.prompts.text import DRAFT_MARKER, join_draft, split_draft
from adaptive_router.runnables.cascade import CascadeRouter

EASY = [f"easy question {i}" for i in range(4)]
HARD = [f"hard question {i}" for i in range(4)]
MIXED = [EASY[0], HARD[0], EASY[1], HARD[1], EASY[2], HARD[2], EASY[3], HARD[3]]


class DraftProbe:
    """CurvePredictor test double that reads the draft: keeping a WRONG draft is worth 0.1, else 0.9.

    Escalating is worth 0.9. A query containing "NAN" gets a NaN curve. Records every text it read.
    """

    max_k = 1
    fallback_active = False

    def __init__(self, procedures: Sequence[str] = ("cheap", "expensive")) -> None:
        self.procedures = tuple(procedures)
        self.calls: list[int] = []
        self.texts: list[str] = []

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        self.calls.append(len(texts))
        self.texts.extend(texts)
        keep, escalate = [], []
        for text in texts:
            query, draft = split_draft(text)
            assert draft is not None, "a cascade probe must see the draft"
            bad = "NAN" in query
            keep.append(math.nan if bad else (0.1 if "WRONG" in draft else 0.9))
            escalate.append(math.nan if bad else 0.9)
        return {self.procedures[0]: np.array(keep)[:, None], self.procedures[1]: np.array(escalate)[:, None]}


def _drafts(text: str, i: int) -> str:
    return "WRONG" if "hard" in text else "right"


def _cascade(scripted, **kwargs):
    cheap = kwargs.pop("cheap", None) or scripted(reply=_drafts)
    expensive = kwargs.pop("expensive", None) or scripted(reply=lambda t, i: "expensive")
    kwargs.setdefault("probe", DraftProbe())
    kwargs.setdefault("costs", (1.0, 10.0))
    kwargs.setdefault("budget_per_query", 6.5)
    kwargs.setdefault("window_size", 8)
    return CascadeRouter(cheap=cheap, expensive=expensive, **kwargs), cheap, expensive


def _meta(message):
    return message.response_metadata["adaptive_router"]


def _escalated(outs) -> list[bool]:
    return [_meta(o)["escalated"] for o in outs]


# ---------------------------------------------------------------------- allocation
def test_batch_escalates_exactly_the_wrong_drafts(scripted):
    router, cheap, expensive = _cascade(scripted)  # 6.5 per query: 4 of 8 can escalate (4*11 + 4 = 48 <= 52)
    outs = router.batch(MIXED)
    assert _escalated(outs) == ["hard" in q for q in MIXED]
    assert [o.content for o in outs] == ["expensive" if "hard" in q else "right" for q in MIXED]
    assert cheap.calls == 8 and expensive.calls == 4
    assert router.probe.calls == [8]
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"window"}


def test_budget_caps_the_escalated_share(scripted):
    router, cheap, expensive = _cascade(scripted, budget_per_query=3.6)  # 28.8 units: 2 escalations fit
    outs = router.batch(MIXED)
    escalated = [q for q, o in zip(MIXED, outs, strict=True) if _meta(o)["escalated"]]
    assert len(escalated) == 2 and all("hard" in q for q in escalated)
    assert cheap.calls == 8 and expensive.calls == 2
    assert sum(_meta(o)["cost"] for o in outs) == 8 * 1 + 2 * 10 <= 3.6 * 8


def test_probe_reads_query_and_draft(scripted):
    router, _, _ = _cascade(scripted)
    router.batch(["hard one", "easy one"])
    assert router.probe.texts == [join_draft("hard one", "WRONG"), join_draft("easy one", "right")]
    assert all(DRAFT_MARKER in t for t in router.probe.texts)


def test_metadata_of_kept_and_escalated(scripted):
    router, _, _ = _cascade(scripted)
    kept, escalated = router.batch(["easy q", "hard q"])
    assert isinstance(kept, AIMessage) and isinstance(escalated, AIMessage)
    meta = _meta(kept)
    assert meta["procedure"] == "cheap" and meta["escalated"] is False and meta["draft"] is None
    assert meta["calls"] == 1 and meta["cost"] == meta["allocated_cost"] == 1.0
    assert meta["tokens"] == {"input_tokens": 3, "output_tokens": 3, "total_tokens": 6}
    assert meta["budget_per_query"] == 6.5 and meta["fallback_active"] is False
    assert meta["predicted"]["values"] == [0.9, 0.9] and meta["probe_ms"] >= 0
    meta = _meta(escalated)
    assert meta["procedure"] == "expensive" and meta["escalated"] is True and meta["draft"] == "WRONG"
    assert meta["calls"] == 2 and meta["cost"] == meta["allocated_cost"] == 11.0
    assert meta["tokens"] == {"input_tokens": 6, "output_tokens": 6, "total_tokens": 12}
    assert meta["predicted"]["values"] == [0.1, 0.9] and escalated.content == "expensive"


def test_windows_keep_order_and_a_window_of_one_uses_the_threshold(scripted):
    router, cheap, _ = _cascade(scripted, window_size=3, expensive=scripted(reply=lambda t, i: f"E:{t}"))
    inputs = [f"hard {i}" if i % 2 else f"easy {i}" for i in range(7)]
    outs = router.batch(inputs)
    assert router.probe.calls == [3, 3, 1] and cheap.calls == 7
    assert [o.content for o in outs] == [
        f"E:{q}" if _meta(o)["escalated"] else "right" for q, o in zip(inputs, outs, strict=True)
    ]
    assert [_meta(o)["predicted"]["allocator"] for o in outs] == ["window"] * 6 + ["threshold"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spend_never_exceeds_budget_over_windows(scripted, seed):
    rng = np.random.default_rng(seed)
    inputs = [f"hard {i}" if h else f"easy {i}" for i, h in enumerate(rng.uniform(size=23) < 0.6)]
    budget = float(rng.uniform(1.0, 8.0))
    router, cheap, expensive = _cascade(scripted, budget_per_query=budget, window_size=5)
    outs = router.batch(inputs)
    spent = sum(_meta(o)["cost"] for o in outs)
    assert spent <= budget * len(inputs) + 1e-9
    assert cheap.calls == 23 and expensive.calls == sum(_escalated(outs))
    assert spent == cheap.calls * 1.0 + expensive.calls * 10.0
    assert all("hard" in q for q, e in zip(inputs, _escalated(outs), strict=True) if e)
    (summary,) = router.spend_summary()
    assert summary == {
        "budget_per_query": budget,
        "queries": 23,
        "allocated": pytest.approx(spent),
        "budget": pytest.approx(budget * 23),
    }


def test_uniform_without_probe(scripted):
    router, cheap, expensive = _cascade(scripted, probe=None, budget_per_query=10.9)
    assert _escalated(router.batch(MIXED)) == [False] * 8  # 11 units needed to escalate everything
    router, cheap, expensive = _cascade(scripted, probe=None, budget_per_query=11.0)
    outs = router.batch(MIXED)
    assert _escalated(outs) == [True] * 8 and cheap.calls == expensive.calls == 8
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"uniform"}


def test_custom_procedure_names_and_fallback_flag(scripted):
    probe = DraftProbe(procedures=("keep", "escalate", "other"))
    probe.fallback_active = True
    router, _, _ = _cascade(scripted, probe=probe, procedures=("keep", "escalate"))
    outs = router.batch(["hard a", "easy b"])
    assert [_meta(o)["procedure"] for o in outs] == ["escalate", "keep"]
    assert all(_meta(o)["fallback_active"] for o in outs)


# ---------------------------------------------------------------------- invoke / async
def test_lone_invoke_uses_threshold_and_credit_ledger(scripted):
    calibration = [join_draft(q, _drafts(q, 0)) for q in MIXED]
    router, cheap, expensive = _cascade(scripted, budget_per_query=6.0, calibration_texts=calibration)
    outs = [router.invoke(q) for q in ("hard a", "easy b", "hard c", "hard d")]
    # credit ledger: 6 paid in < 11, so the first WRONG draft cannot escalate (credit 5); the easy draft is
    # kept (credit 10); then 16 and 11 units are available, enough for both later WRONG drafts.
    assert _escalated(outs) == [False, False, True, True]
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"threshold"}
    assert cheap.calls == 4 and expensive.calls == 2
    (summary,) = router.spend_summary()
    assert summary["queries"] == 4 and summary["allocated"] == 24.0 <= summary["budget"] == 24.0


def test_invoke_escalates_when_the_budget_pays(scripted):
    router, cheap, expensive = _cascade(scripted, budget_per_query=11.0)
    out = router.invoke("hard q")
    assert out.content == "expensive" and _meta(out)["calls"] == 2
    assert router.invoke("easy q").content == "right"  # a good draft is kept even when escalation is paid for
    assert cheap.calls == 2 and expensive.calls == 1


async def test_ainvoke(scripted):
    router, cheap, expensive = _cascade(scripted, budget_per_query=11.0)
    out = await router.ainvoke("hard q")
    assert out.content == "expensive" and _meta(out)["escalated"] and _meta(out)["draft"] == "WRONG"
    assert _meta(out)["predicted"]["allocator"] == "threshold"
    assert cheap.calls == 1 and expensive.calls == 1


async def test_abatch_matches_batch(scripted):
    router, cheap, expensive = _cascade(scripted)
    outs = await router.abatch(MIXED)
    assert _escalated(outs) == ["hard" in q for q in MIXED]
    assert [o.content for o in outs] == ["expensive" if "hard" in q else "right" for q in MIXED]
    assert cheap.calls == 8 and expensive.calls == 4 and router.probe.calls == [8]


def test_chain_with_parser_invoke_batch_stream(scripted):
    router, _, _ = _cascade(scripted, budget_per_query=11.0)
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | router | StrOutputParser()
    assert chain.invoke({"q": "hard"}) == "expensive"
    assert chain.batch([{"q": "easy"}, {"q": "hard"}]) == ["right", "expensive"]
    # the whole answer in one chunk (the draft is read before answering), then the last chunk's metadata
    assert [c for c in chain.stream({"q": "easy"}) if c] == ["right"]


# ---------------------------------------------------------------------- errors
def test_return_exceptions_with_bad_inputs(scripted):
    router, cheap, _ = _cascade(scripted)
    outs = router.batch(["hard a", "", 5, [], "easy b"], return_exceptions=True)
    assert isinstance(outs[1], ConfigError) and "empty prompt" in str(outs[1])
    assert isinstance(outs[2], ConfigError) and "got int" in str(outs[2])
    assert isinstance(outs[3], ConfigError) and "empty message list" in str(outs[3])
    assert _escalated([outs[0], outs[4]]) == [True, False]
    assert cheap.calls == 2  # bad inputs are never drafted
    with pytest.raises(ConfigError, match="empty prompt"):
        router.batch(["fine", ""])


def test_failing_cheap_model_fails_only_its_item(scripted):
    cheap = scripted(reply=_drafts, fail=lambda i: i == 1)
    router, _, expensive = _cascade(scripted, cheap=cheap)
    outs = router.batch(["hard a", "hard b", "easy c"], {"max_concurrency": 1}, return_exceptions=True)
    assert isinstance(outs[1], RuntimeError) and "scripted failure" in str(outs[1])
    assert _escalated([outs[0], outs[2]]) == [True, False]
    assert router.probe.calls == [2]  # the failed draft never reaches the probe
    assert expensive.calls == 1
    (summary,) = router.spend_summary()
    assert summary["queries"] == 2


async def test_abatch_failures_and_max_concurrency(scripted):
    cheap = scripted(reply=_drafts, fail=lambda i: i == 0, latency=0.01)
    expensive = scripted(reply=lambda t, i: "expensive", fail=lambda i: i == 0, latency=0.01)
    router, _, _ = _cascade(scripted, cheap=cheap, expensive=expensive, budget_per_query=11.0)
    inputs = [f"hard {i}" for i in range(6)] + [""]
    outs = await router.abatch(inputs, {"max_concurrency": 2}, return_exceptions=True)
    assert cheap.max_active <= 2 and expensive.max_active <= 2
    assert sum(isinstance(o, RuntimeError) for o in outs) == 1  # the failed draft: nothing was paid for
    assert isinstance(outs[-1], ConfigError)
    assert sum(isinstance(o, AIMessage) for o in outs) == 5  # the failed escalation returns its paid draft
    kept = [o for o in outs if isinstance(o, AIMessage) and _meta(o)["escalation_error"]]
    assert len(kept) == 1 and kept[0].content == "WRONG" and not _meta(kept[0])["escalated"]
    assert cheap.calls == 6 and expensive.calls == 5


def test_sync_max_concurrency(scripted):
    cheap = scripted(reply=_drafts, latency=0.01)
    router, _, expensive = _cascade(scripted, cheap=cheap, probe=None, budget_per_query=1.0)
    router.batch([f"q{i}" for i in range(8)], {"max_concurrency": 2})
    assert cheap.max_active <= 2 and cheap.calls == 8 and expensive.calls == 0


def test_nan_prediction_keeps_that_items_paid_draft(scripted):
    router, _, expensive = _cascade(scripted)
    outs = router.batch(["hard NAN", "hard ok", "easy ok"])
    meta = _meta(outs[0])
    assert outs[0].content == "WRONG" and meta["escalated"] is False and meta["procedure"] == "cheap"
    assert meta["escalation_error"].startswith("ProbeError:") and "non-finite" in meta["escalation_error"]
    assert meta["predicted"]["allocator"] == "fixed" and meta["cost"] == meta["allocated_cost"] == 1.0
    assert _escalated(outs[1:]) == [True, False] and expensive.calls == 1
    assert all(_meta(o)["escalation_error"] is None for o in outs[1:])
    (summary,) = router.spend_summary()
    assert summary["queries"] == 3 and summary["allocated"] == 1 + 11 + 1 <= summary["budget"]
    out = router.invoke("easy NAN")
    assert out.content == "right" and "non-finite" in _meta(out)["escalation_error"]


def test_infeasible_budget(scripted):
    with pytest.raises(InfeasibleBudgetError, match="at least 2"):
        _cascade(scripted, costs=(2.0, 10.0), budget_per_query=1.5)
    router, cheap, _ = _cascade(scripted)
    with pytest.raises(InfeasibleBudgetError, match="below the cost of the draft"):
        router.invoke("q", {"configurable": {"budget_per_query": 0.5}})
    with pytest.raises(ConfigError, match="must be a finite number"):
        router.invoke("q", {"configurable": {"budget_per_query": float("nan")}})
    assert cheap.calls == 0


class _NotAProbe:
    procedures = ("cheap", "expensive")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"costs": (0.0, 10.0)}, "costs must be two positive finite numbers"),
        ({"costs": (1.0, math.inf)}, "costs must be two positive finite numbers"),
        ({"procedures": ("cheap", "cheap")}, "two different non-empty names"),
        ({"probe": _NotAProbe()}, "must satisfy CurvePredictor"),
        ({"probe": DraftProbe(procedures=("cheap", "gpt4"))}, r"does not predict procedures \['expensive'\]"),
        ({"window_size": 0}, "window_size must be"),
        ({"cheap": "gpt-4o-mini"}, "cheap must be a LangChain chat model or Runnable"),
        ({"calibration_texts": ["no draft"]}, r"calibration_texts\[0\] has no draft"),
        ({"budget_per_query": math.nan}, "must be a finite number"),
    ],
)
def test_bad_config(scripted, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _cascade(scripted, **kwargs)


# ---------------------------------------------------------------------- settings / callbacks
def test_config_budget_override_and_per_input_configs(scripted):
    router, _, expensive = _cascade(scripted, budget_per_query=1.0)
    assert _escalated(router.batch(HARD)) == [False] * 4
    outs = router.batch(HARD, {"configurable": {"budget_per_query": 11.0}})
    assert _escalated(outs) == [True] * 4 and {_meta(o)["budget_per_query"] for o in outs} == {11.0}
    configs = [{"configurable": {"budget_per_query": b}} for b in (1.0, 11.0, 1.0, 11.0)]
    assert _escalated(router.batch(HARD, configs)) == [False, True, False, True]
    assert expensive.calls == 6
    assert sorted(r["budget_per_query"] for r in router.spend_summary()) == [1.0, 11.0]


class _Recorder(BaseCallbackHandler):
    """The router's runs (chat-model runs of CascadeRouter) and its wrapped models' runs under them."""

    def __init__(self) -> None:
        self.chains: dict[object, tuple[str | None, object]] = {}
        self.models: list[tuple[object, str]] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kw):
        if "adaptive_router:candidate" in (kw.get("tags") or []):
            self.models.append((parent_run_id, str(messages[0][-1].content)))
        else:
            self.chains[run_id] = (serialized["id"][-1], str(messages[0][-1].content))


def test_callbacks_nest_model_runs_under_each_items_router_run(scripted):
    rec = _Recorder()
    router, cheap, expensive = _cascade(scripted)
    outs = router.batch(["hard a", "easy b", "hard c"], {"callbacks": [rec]})  # 19.5 units: one escalation
    assert sum(_escalated(outs)) == 1 and len(rec.models) == cheap.calls + expensive.calls == 4
    for parent, prompt in rec.models:
        name, inputs = rec.chains[parent]
        assert name == "CascadeRouter" and inputs == prompt  # the model run sits under its own item's run
    rec = _Recorder()
    router.invoke("hard z", {"callbacks": [rec], "configurable": {"budget_per_query": 11.0}})
    assert [rec.chains[p][0] for p, _ in rec.models] == ["CascadeRouter", "CascadeRouter"]


async def test_async_callbacks_nest(scripted):
    rec = _Recorder()
    router, _, _ = _cascade(scripted)
    await asyncio.gather(router.ainvoke("hard a", {"callbacks": [rec]}), router.abatch(["easy b"]))
    assert len(rec.models) == 2 and all(rec.chains[p] == ("CascadeRouter", "hard a") for p, _ in rec.models)


async def test_concurrent_ainvokes_are_planned_in_one_window(scripted):
    router, cheap, expensive = _cascade(scripted, max_wait_ms=50)
    outs = await asyncio.gather(*(router.ainvoke(q) for q in MIXED))
    assert router.probe.calls == [8]  # the eight drafts met in one micro-batch
    assert {_meta(o)["predicted"]["allocator"] for o in outs} == {"window"}
    assert _escalated(outs) == ["hard" in q for q in MIXED]
    assert cheap.calls == 8 and expensive.calls == 4


# ---------------------------------------------------------------------- evidence-driven escalation
def _evidence_cascade(scripted, reader, *, drafts=2, budget=6.0, probe=None, cheap=None):
    cheap = cheap or scripted(reply=lambda t, i: "right" if "easy" in t else f"wrong {i % 2}")
    expensive = scripted(reply=lambda t, i: "expensive")
    router = CascadeRouter(
        cheap=cheap, expensive=expensive, probe=probe, costs=(1.0, 10.0), budget_per_query=budget,
        drafts=drafts, draft_evidence=reader,
    )  # fmt: skip
    return router, cheap, expensive


def test_a_verifier_escalates_only_the_drafts_that_fail(scripted):
    from adaptive_router.strategies import VerifierReranker

    reader = VerifierReranker(verify=lambda prompt, answer: answer == "right")
    router, cheap, expensive = _evidence_cascade(scripted, reader, budget=8.0)  # 4 * 8 = 32: 8 + 2 * 10 fit
    outs = router.batch(["easy 0", "hard 1", "easy 2", "hard 3"])
    assert _escalated(outs) == [False, True, False, True]
    assert cheap.calls == 8 and expensive.calls == 2
    meta = _meta(outs[0])
    assert meta["draft_evidence"] == [1.0, 1.0] and meta["k"] == 2 and meta["cost"] == 2.0
    assert _meta(outs[1])["cost"] == 12.0 and _meta(outs[1])["draft_evidence"] == [0.0, 0.0]
    rich = router.batch(["easy 4", "easy 5"], {"configurable": {"budget_per_query": 12.0}})
    assert _escalated(rich) == [False, False]  # verified drafts: no gain in escalating, whatever the budget


async def test_disagreeing_votes_escalate_first_within_the_budget(scripted):
    from adaptive_router.strategies import MajorityVoteReranker

    router, _, expensive = _evidence_cascade(scripted, MajorityVoteReranker(), budget=7.0)
    outs = await router.abatch(["easy 0", "hard 1", "easy 2", "hard 3"])  # 28 units: 8 + 1 * 10 + ...
    escalated = _escalated(outs)
    assert not escalated[0] and not escalated[2] and sum(escalated) == 2  # (28 - 8) / 10 = 2
    assert sum(_meta(o)["cost"] for o in outs) <= 7.0 * 4
    assert _meta(outs[0])["draft_evidence"] == ["right", "right"] and expensive.calls == 2


def test_draft_evidence_settings_are_checked_before_any_call(scripted):
    from adaptive_router.strategies import LLMJudgeReranker, MajorityVoteReranker

    cheap = scripted()
    with pytest.raises(ConfigError, match="draft_evidence must be a VerifierReranker or a MajorityVote"):
        _evidence_cascade(scripted, LLMJudgeReranker(judge=cheap), cheap=cheap)
    with pytest.raises(ConfigError, match="needs drafts >= 2"):
        _evidence_cascade(scripted, MajorityVoteReranker(), drafts=1, cheap=cheap)
    with pytest.raises(InfeasibleBudgetError, match="at least 2"):
        _evidence_cascade(scripted, MajorityVoteReranker(), budget=1.5, cheap=cheap).invoke("q")
    assert cheap.calls == 0
