"""Nothing paid for is lost: a cascade whose escalation (or probe) fails returns the draft it paid for."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage

from adaptive_router.runnables import CascadeRouter, router_metadata


class BrokenProbe:
    """A CurvePredictor whose prediction raises (a crashed featurizer)."""

    procedures = ("cheap", "expensive")
    max_k = 1
    fallback_active = False

    def predict_curves(self, texts: Sequence[str]):
        raise RuntimeError("featurizer crashed")


def _cascade(scripted, *, expensive_fails=True, probe=None):
    cheap = scripted(reply=lambda t, i: f"draft {t}")
    expensive = scripted(reply=lambda t, i: "expensive", fail=lambda i: expensive_fails)
    router = CascadeRouter(
        cheap=cheap, expensive=expensive, probe=probe, costs=(1.0, 4.0), budget_per_query=5.0
    )
    return router, cheap, expensive


def _check_kept_draft(message, query, error):
    meta = router_metadata(message)
    assert isinstance(message, AIMessage) and message.content == f"draft {query}"
    assert meta["escalated"] is False and meta["procedure"] == "cheap"
    assert meta["escalation_error"] is not None and meta["escalation_error"].startswith(error)


def test_failed_escalation_returns_the_draft_sync(scripted):
    router, cheap, expensive = _cascade(scripted)
    outs = router.batch(["q1", "q2"])  # no return_exceptions: the paid drafts come back, nothing raises
    for query, out in zip(["q1", "q2"], outs, strict=True):
        _check_kept_draft(out, query, "RuntimeError: scripted failure")
        meta = router_metadata(out)
        assert meta["draft"] == f"draft {query}" and meta["calls"] == 2 and meta["failed_calls"] == 1
        assert meta["cost"] == meta["allocated_cost"] == 5.0 and meta["errors"] == [meta["escalation_error"]]
    assert cheap.calls == expensive.calls == 2
    _check_kept_draft(router.invoke("q3"), "q3", "RuntimeError")


async def test_failed_escalation_returns_the_draft_async(scripted):
    router, _, _ = _cascade(scripted)
    _check_kept_draft(await router.ainvoke("q1"), "q1", "RuntimeError: scripted failure")
    for query, out in zip(["a", "b"], await router.abatch(["a", "b"]), strict=True):
        _check_kept_draft(out, query, "RuntimeError")


@pytest.mark.parametrize("use_async", [False, True])
async def test_probe_failure_after_the_draft_keeps_it(scripted, use_async):
    router, cheap, expensive = _cascade(scripted, expensive_fails=False, probe=BrokenProbe())
    outs = await router.abatch(["a", "b"]) if use_async else router.batch(["a", "b"])
    for query, out in zip(["a", "b"], outs, strict=True):
        _check_kept_draft(out, query, "RuntimeError: featurizer crashed")
        assert router_metadata(out)["predicted"]["allocator"] == "fixed"
    assert cheap.calls == 2 and expensive.calls == 0
    (summary,) = router.spend_summary()
    assert summary["queries"] == 2 and summary["allocated"] == 2.0


def test_a_successful_escalation_has_no_error(scripted):
    router, _, _ = _cascade(scripted, expensive_fails=False)
    meta = router_metadata(router.invoke("q"))
    assert meta["escalated"] is True and meta["escalation_error"] is None and meta["procedure"] == "expensive"
