"""The router's own overhead per query at 1,000 concurrent ``ainvoke`` calls.

Setup: a zero-latency in-process chat model (answers at once, no I/O) behind ``BestOfK(max_k=4)`` with a
verifier, a numpy-only probe whose time is measured and excluded, budget 2 units per query, window 32.

Definition: for one trial, ``T_router`` is the wall time of ``asyncio.gather`` over 1,000 ``router.ainvoke``;
``T_model`` is the wall time of ``asyncio.gather`` over as many direct ``model.ainvoke`` calls as the router
made (the LLM's own cost, LangChain's chat-model machinery included); ``T_probe`` is the probe's time as
recorded in the metadata. Overhead per query = ``(T_router - T_model - T_probe) / 1000``: input checks,
tracing (``_acall_with_config``), micro-batching, allocation, best-of-k bookkeeping, reranking and metadata.
p50/p99 are over trials. The same figure is also computed from process CPU time (``cpu_overhead_ms_*``),
which other processes on a shared machine disturb much less than wall time.

Both ways of sampling are measured: one-shot (``rounds=None``: the planned k at once) and in rounds (the
default, ``rounds="auto"``: the verifier's evidence read between rounds; the model answers "42" on every
other call, so unsolved queries take further rounds). Each figure is over its own calls.

Run: ``python benchmarks/router_overhead.py [--trials 30] [--queries 1000]``; the last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from adaptive_router.runnables import AdaptiveRouter, router_metadata
from adaptive_router.strategies import BestOfK, VerifierReranker


class ZeroLatencyChatModel(BaseChatModel):
    """Answers at once (no I/O, no sleep): "42", or with ``alternate`` "42" and "41" in turn."""

    alternate: bool = False
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "zero-latency"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls += 1
        text = "41" if self.alternate and self.calls % 2 else "42"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        return self._generate(messages)


class LengthProbe:
    """Numpy-only probe: success probability falls with prompt length; curves 1 - (1 - p)^k."""

    procedures = ("default",)
    max_k = 4
    fallback_active = False

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        p = np.array([0.95 / (1.0 + len(t) / 20.0) for t in texts])
        return {"default": 1.0 - (1.0 - p[:, None]) ** np.arange(1, 5)[None, :]}


async def trial(router: AdaptiveRouter, model: ZeroLatencyChatModel, queries: list[str]) -> dict[str, float]:
    start, cpu = time.perf_counter(), time.process_time()
    outs = await asyncio.gather(*(router.ainvoke(q) for q in queries))
    t_router, c_router = time.perf_counter() - start, time.process_time() - cpu
    metas = [router_metadata(o) for o in outs]
    calls = sum(m["calls"] for m in metas)
    probe_s = sum(m["probe_ms"] / m["predicted"]["window"] for m in metas) / 1000.0
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(model.ainvoke(q) for q in queries[:1] * calls))
    t_model, c_model = time.perf_counter() - start, time.process_time() - cpu
    return {
        "overhead_ms": (t_router - t_model - probe_s) / len(queries) * 1000.0,
        "cpu_overhead_ms": (c_router - c_model - probe_s) / len(queries) * 1000.0,
        "router_s": t_router,
        "model_s": t_model,
        "probe_s": probe_s,
        "calls": calls,
    }


async def measure(trials: int, n: int, rounds: Any) -> list[dict[str, float]]:
    model = ZeroLatencyChatModel(alternate=rounds is not None)
    strategy = BestOfK(model, VerifierReranker(verify=lambda p, c: float(c == "42")), max_k=4)
    router = AdaptiveRouter(
        strategy=strategy, probe=LengthProbe(), budget_per_query=2.0, window_size=32, rounds=rounds
    )
    queries = [f"{i % 97} + {i % 13} = ?" + " pad" * (i % 7) for i in range(n)]
    await trial(router, model, queries)  # warm-up
    return [await trial(router, model, queries) for _ in range(trials)]


async def main(trials: int, n: int) -> dict[str, Any]:
    rounds = await measure(trials, n, "auto")
    rounds_over = sorted(r["overhead_ms"] for r in rounds)
    print(
        f"rounds: overhead p50 {statistics.median(rounds_over):.3f} ms/query, "
        f"{rounds[0]['calls'] / n:.2f} calls/query"
    )
    results = await measure(trials, n, None)
    over = sorted(r["overhead_ms"] for r in results)
    cpu_over = sorted(r["cpu_overhead_ms"] for r in results)
    for i, r in enumerate(results):
        print(
            f"trial {i:2d}: router {r['router_s'] * 1000:7.1f} ms, model {r['model_s'] * 1000:7.1f} ms "
            f"({r['calls']} calls), probe {r['probe_s'] * 1000:5.1f} ms "
            f"-> overhead {r['overhead_ms']:.3f} ms/query (CPU time: {r['cpu_overhead_ms']:.3f})"
        )
    p50 = statistics.median(over)
    p99 = float(np.percentile(over, 99))
    return {
        "benchmark": "router_overhead",
        "queries": n,
        "trials": trials,
        "overhead_ms_p50": round(p50, 4),
        "overhead_ms_p99": round(p99, 4),
        "cpu_overhead_ms_p50": round(statistics.median(cpu_over), 4),
        "cpu_overhead_ms_p99": round(float(np.percentile(cpu_over, 99)), 4),
        "calls_per_query": round(results[0]["calls"] / n, 3),
        "rounds_overhead_ms_p50": round(statistics.median(rounds_over), 4),
        "rounds_overhead_ms_p99": round(float(np.percentile(rounds_over, 99)), 4),
        "rounds_cpu_overhead_ms_p50": round(statistics.median(r["cpu_overhead_ms"] for r in rounds), 4),
        "rounds_calls_per_query": round(rounds[0]["calls"] / n, 3),
        "goal_ms_p50": 1.0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    summary = asyncio.run(main(args.trials, args.queries))
    print(json.dumps(summary))
