"""CascadeRouter against the real loopback llama.cpp server (Gemma-3-270M base, completions endpoint).

Cheap and expensive are the same server with different settings; the probe is a test double that reads the
draft and checks the sum. What is checked is the plumbing on a real OpenAI-compatible server: the requests
the server answered (its access log) equal drafts + escalations, exactly, and match the metadata.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel
from langchain_core.prompts import PromptTemplate

from adaptive_router.prompts.text import split_draft
from adaptive_router.runnables.cascade import CascadeRouter

pytestmark = pytest.mark.realmodel

FEW_SHOT = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n"
QUESTIONS = [{"a": a, "b": b} for a, b in ((3, 4), (41, 27), (1, 1), (58, 36), (5, 2), (12, 35))]
COSTS = (1.0, 4.0)
BUDGET = 3.0  # (3 - 1) / 4: half the queries can escalate


class SumCheckProbe:
    """Keeping the draft is worth 1 when it states the right sum, else 0; escalating is worth 0.5."""

    procedures = ("cheap", "expensive")
    max_k = 1
    fallback_active = False

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        keep = []
        for text in texts:
            query, draft = split_draft(text)
            a, b = map(int, re.findall(r"(\d+) \+ (\d+) =", query)[-1])
            answer = re.search(r"-?\d+", draft or "")
            keep.append(float(answer is not None and int(answer.group()) == a + b))
        return {"cheap": np.array(keep)[:, None], "expensive": np.full((len(texts), 1), 0.5)}


@pytest.fixture
def cascade_chain(llama_gemma):
    cheap = OpenAIChatModel.for_llama_server(llama_gemma, max_tokens=2, temperature=0.0, stop=["\n"])
    expensive = OpenAIChatModel.for_llama_server(llama_gemma, max_tokens=3, temperature=0.0, stop=["\n"])
    router = CascadeRouter(
        cheap=cheap, expensive=expensive, probe=SumCheckProbe(), costs=COSTS, budget_per_query=BUDGET
    )
    prompt = PromptTemplate.from_template(FEW_SHOT + "{a} + {b} =")
    llama_gemma.reset_count()
    return prompt, router, llama_gemma


def _check(outs, router, server) -> None:
    metas = [o.response_metadata["adaptive_router"] for o in outs]
    escalations = sum(m["escalated"] for m in metas)
    wrong = [m["predicted"]["values"][0] == 0.0 for m in metas]  # drafts that miss the sum
    # 18 units pay for 3 escalations (3 * 5 + 3 * 1); only wrong drafts are worth escalating
    assert escalations == min(3, sum(wrong)) and all(
        w for m, w in zip(metas, wrong, strict=True) if m["escalated"]
    )
    assert server.request_count() == len(QUESTIONS) + escalations == sum(m["calls"] for m in metas)
    assert sum(m["cost"] for m in metas) <= BUDGET * len(QUESTIONS)
    assert all(m["tokens"]["total_tokens"] > 0 for m in metas)
    (summary,) = router.spend_summary()
    assert summary["queries"] == len(QUESTIONS) and summary["allocated"] == sum(m["cost"] for m in metas)


def test_batch_requests_equal_drafts_plus_escalations(cascade_chain):
    prompt, router, server = cascade_chain
    outs = (prompt | router).batch(QUESTIONS)
    _check(outs, router, server)


async def test_abatch_requests_equal_drafts_plus_escalations(cascade_chain):
    prompt, router, server = cascade_chain
    outs = await (prompt | router).abatch(QUESTIONS)
    _check(outs, router, server)
