"""The offline main job: label -> train -> evaluate -> run live, on Gemma-3-270M and graded arithmetic.

1. Generate graded few-shot arithmetic tasks (``"3 + 4 = 7\\n...\\n{a} + {b} ="``, 1- to 3-digit operands).
2. Label them with Gemma-3-270M: the exact probability ``p`` that one sample's first line is the right answer
   (one teacher-forced forward pass; ``adaptive_router.probe.answer_probabilities``), checked on a subset
   against real samples from the llama.cpp server; each query's recorded outcomes are independent draws
   from that probability.
3. Train the probe on Gemma's own hidden states (best-of-k curves, and a cheap/expensive routing pair).
4. Replay held-out queries under uniform / random / adaptive / oracle allocation (expected accuracy).
5. Run adaptive and uniform best-of-k live THROUGH THE ROUTER against the llama.cpp server with the real
   verifier, and the routing pair live, and write ``runs/demo-<timestamp>/`` (report.md, report.json, PNGs,
   the exact command).
"""

from adaptive_router.app.demo.config import DemoConfig
from adaptive_router.app.demo.steps import run_demo

__all__ = ["DemoConfig", "run_demo"]
