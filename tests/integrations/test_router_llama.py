"""AdaptiveRouter in a chain against the real loopback llama.cpp server (Gemma-3-270M base, completions).

The probe is the `TableProbe` test double (difficulty by prompt length); what is checked is the plumbing on
a real OpenAI-compatible server: the number of requests the server received (its access log) equals the
calls the router allocated, exactly. Short by default; ``AR_FULL_TESTS=1`` runs 200 concurrent ainvokes.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from adaptive_router.integrations.openai_backend import OpenAIChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

pytestmark = pytest.mark.realmodel

FEW_SHOT = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n"
N_CONCURRENT = 200 if os.environ.get("AR_FULL_TESTS") == "1" else 24


def _questions(n: int) -> list[dict[str, int]]:
    return [{"a": (7 * i) % 10 if i % 2 else 10 + (13 * i) % 90, "b": (3 * i) % 10} for i in range(n)]


@pytest.fixture
def chain_and_router(llama_gemma, table_probe):
    model = OpenAIChatModel.for_llama_server(
        llama_gemma, max_tokens=2, temperature=0.8, stop=["\n"], timeout=300
    )
    strategy = BestOfK(model, MajorityVoteReranker(extract=lambda t: t.strip() or None), max_k=3)
    # test double: two-digit questions are longer, hence "harder"
    probe = table_probe(by_length=lambda n: 0.8 if n < len(FEW_SHOT) + 8 else 0.3, max_k=3)
    router = AdaptiveRouter(strategy=strategy, probe=probe, budget_per_query=1.5, window_size=16)
    chain = PromptTemplate.from_template(FEW_SHOT + "{a} + {b} =") | router | StrOutputParser()
    llama_gemma.reset_count()
    return chain, router, llama_gemma


def _allocated(router: AdaptiveRouter) -> tuple[int, float]:
    rows = router.spend_summary()
    return sum(r["queries"] for r in rows), sum(r["allocated"] for r in rows)


def test_invoke_and_batch(chain_and_router):
    chain, router, server = chain_and_router
    assert isinstance(chain.invoke({"a": 3, "b": 4}), str)
    answers = chain.batch(_questions(6))
    assert len(answers) == 6 and all(isinstance(a, str) for a in answers)
    queries, allocated = _allocated(router)
    assert queries == 7 and allocated <= 1.5 * 7
    assert server.request_count() == allocated  # one request per allocated sample, exactly


async def test_abatch(chain_and_router):
    chain, router, server = chain_and_router
    answers = await chain.abatch(_questions(6))
    assert len(answers) == 6
    queries, allocated = _allocated(router)
    assert queries == 6 and server.request_count() == allocated <= 1.5 * 6


async def test_concurrent_ainvokes(chain_and_router):
    chain, router, server = chain_and_router
    answers = await asyncio.gather(*(chain.ainvoke(q) for q in _questions(N_CONCURRENT)))
    assert len(answers) == N_CONCURRENT and all(isinstance(a, str) for a in answers)
    queries, allocated = _allocated(router)
    assert queries == N_CONCURRENT and allocated <= 1.5 * N_CONCURRENT
    assert server.request_count() == allocated


def test_metadata_calls_match_server(llama_gemma, table_probe):
    model = OpenAIChatModel.for_llama_server(llama_gemma, max_tokens=2, temperature=0.8, stop=["\n"])
    router = AdaptiveRouter(
        strategy=BestOfK(model, MajorityVoteReranker(), max_k=3),
        probe=table_probe(max_k=3),
        budget_per_query=2.0,
    )
    llama_gemma.reset_count()
    outs = router.batch([FEW_SHOT + "3 + 4 =", FEW_SHOT + "31 + 45 ="])
    metas = [o.response_metadata["adaptive_router"] for o in outs]
    assert llama_gemma.request_count() == sum(m["calls"] for m in metas)
    assert all(m["tokens"]["total_tokens"] > 0 for m in metas)


def test_stream_chat_endpoint_smollm(require_llama):
    """SmolLM2-Instruct on the chat endpoint: the router streams the chosen route's tokens (k = 1)."""
    from adaptive_router.integrations.llama_server import LlamaServer

    with LlamaServer.smollm(n_ctx=512) as server:
        model = OpenAIChatModel.for_llama_server(server, endpoint="chat", max_tokens=8, temperature=0.0)
        router = AdaptiveRouter(strategy=BestOfK(model, max_k=1), budget_per_query=1.0)
        chunks = list(router.stream("What is the capital of France? One word."))
        assert len(chunks) > 2  # token by token, not one block
        assert "Paris" in "".join(str(c.content) for c in chunks)
        assert chunks[-1].response_metadata["adaptive_router"]["calls"] == 1
        assert server.request_count() == 1


def test_rounds_stop_solved_queries_and_the_server_count_matches(llama_gemma):
    """Rounds with a real verifier on the real server: every request the rounds sent reached the server."""
    from adaptive_router.strategies import VerifierReranker

    def verify(prompt: str, answer: str) -> bool:
        a, b = prompt.rsplit("\n", 1)[-1].rstrip(" =").split(" + ")
        return answer.strip().split("\n")[0].strip() == str(int(a) + int(b))

    model = OpenAIChatModel.for_llama_server(llama_gemma, max_tokens=3, temperature=0.8, stop=["\n"])
    router = AdaptiveRouter(
        strategy=BestOfK(model, VerifierReranker(verify=verify), max_k=4), budget_per_query=2.0, window_size=8
    )
    llama_gemma.reset_count()
    outs = router.batch([FEW_SHOT + f"{a} + {b} =" for a, b in [(3, 4), (1, 1), (41, 27), (12, 35)]])
    metas = [o.response_metadata["adaptive_router"] for o in outs]
    (summary,) = router.spend_summary()
    assert llama_gemma.request_count() == sum(m["calls"] for m in metas) == summary["allocated"] <= 8
    for meta in metas:
        rounds = meta["rounds"]["per_round"]
        assert sum(r["units"] for r in rounds) == meta["k"]
        solved_at = [r["round"] for r in rounds if r["best"] == 1.0]
        assert not solved_at or solved_at[0] == rounds[-1]["round"]  # a solved query takes no further round
