"""The AdaptiveRouter as a chain component over a real local model (Gemma-3-270M on llama.cpp's server).

What it does
------------
1. Starts llama.cpp's OpenAI-compatible server on 127.0.0.1 with the embedded Gemma-3-270M base GGUF.
2. Builds ``prompt | router | StrOutputParser()`` where the router spends best-of-k samples (majority vote
   over the extracted number) on few-shot addition questions, 2 samples per query on average.
3. Runs ``invoke``, ``batch`` and concurrent ``ainvoke`` and prints each answer, the k the router chose, the
   server's own request count (which equals the calls the router allocated) and the accuracy.

The probe: pass ``--probe DIR`` with a probe trained by ``adaptive-router train`` (see the README). Without
one, the example uses `DigitProbe`, a hand-written heuristic `CurvePredictor` (success probability from the
number of digits, following what Gemma-270M does on these prompts) so that the allocation has something to
work with; it is not learned.

Run: ``python examples/chain_with_local_model.py [--probe DIR] [--queries 12]`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
from collections.abc import Sequence

import numpy as np
from adaptive_router.integrations.llama_server import LlamaServer
from adaptive_router.integrations.openai_backend import OpenAIChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

from adaptive_router.runnables import AdaptiveRouter
from adaptive_router.strategies import BestOfK, MajorityVoteReranker

FEW_SHOT = "2 + 3 = 5\n4 + 1 = 5\n6 + 2 = 8\n1 + 7 = 8\n"
_LAST = re.compile(r"(\d+)\s*\+\s*(\d+)\s*=\s*$")


def first_number(text: str) -> str | None:
    """The answer extractor for majority vote: the first integer in the completion."""
    match = re.search(r"-?\d+", text)
    return match.group() if match else None


class DigitProbe:
    """Heuristic CurvePredictor (not learned): p(correct) by operand digits; best-of-k curve 1 - (1 - p)^k."""

    procedures = ("default",)
    fallback_active = False

    def __init__(self, max_k: int = 4) -> None:
        self.max_k = max_k

    def predict_curves(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        p = []
        for text in texts:
            match = _LAST.search(text)
            digits = max(len(match.group(1)), len(match.group(2))) if match else 3
            p.append({1: 0.9, 2: 0.3}.get(digits, 0.02))
        ks = np.arange(1, self.max_k + 1)
        return {"default": 1.0 - (1.0 - np.array(p)[:, None]) ** ks[None, :]}


def questions(n: int, seed: int = 0) -> list[dict[str, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hi = 10 if i % 3 else 100  # two thirds 1-digit, one third 2-digit
        out.append({"a": rng.randrange(1, hi), "b": rng.randrange(1, hi)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="AdaptiveRouter in a LangChain chain over a local model")
    parser.add_argument("--probe", help="directory of a trained probe (adaptive-router train)")
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--budget", type=float, default=2.0, help="samples per query on average")
    args = parser.parse_args()

    if args.probe:
        from adaptive_router.probe import Probe

        probe = Probe.load(args.probe)
    else:
        probe = DigitProbe(max_k=4)

    with LlamaServer.gemma(n_ctx=512) as server:
        model = OpenAIChatModel.for_llama_server(server, max_tokens=4, temperature=0.7, stop=["\n"])
        procedure = probe.procedures[0]
        strategy = BestOfK(model, MajorityVoteReranker(extract=first_number), max_k=4, procedure=procedure)
        router = AdaptiveRouter(strategy=strategy, probe=probe, budget_per_query=args.budget, window_size=16)
        prompt = PromptTemplate.from_template(FEW_SHOT + "{a} + {b} =")
        chain = prompt | router | StrOutputParser()

        print("invoke:", repr(chain.invoke({"a": 3, "b": 4})))

        qs = questions(args.queries)
        server.reset_count()
        messages = (prompt | router).batch(qs)  # same chain without the parser, to show the metadata
        correct = 0
        for q, msg in zip(qs, messages, strict=True):
            meta = msg.response_metadata["adaptive_router"]
            ok = first_number(str(msg.content)) == str(q["a"] + q["b"])
            correct += ok
            print(f"{q['a']:>3} + {q['b']:<3} -> {str(msg.content).strip()!r:8} k={meta['k']} ok={ok}")
        calls = sum(m.response_metadata["adaptive_router"]["calls"] for m in messages)
        print(f"batch: accuracy {correct}/{len(qs)}, {calls} calls, server received {server.request_count()}")

        async def concurrent() -> list[str]:
            return await asyncio.gather(*(chain.ainvoke(q) for q in qs))

        server.reset_count()
        answers = asyncio.run(concurrent())
        acc = sum(first_number(a) == str(q["a"] + q["b"]) for q, a in zip(qs, answers, strict=True))
        print(
            f"{len(qs)} concurrent ainvokes: accuracy {acc}/{len(qs)}, "
            f"server received {server.request_count()}"
        )
        for row in router.spend_summary():
            print(
                f"spend: {row['allocated']:g} units allocated of {row['budget']:g} budgeted "
                f"({row['queries']} queries)"
            )


if __name__ == "__main__":
    main()
