"""Allocation benchmark: allocate() on 1,000,000 queries x 32 options vs np.sort of the same gains.

Curves are best-of-1..32 predictions of the uncertainty-aware kind the probe emits: each query's success
rate is Beta(a_i, b_i), so q_i(k) = 1 - prod_{t<k} (b_i + t) / (a_i + b_i + t) (smooth and concave);
2% of rows get small noise, as an unconstrained head would predict, so the envelope path runs too.
Also measures the spend drift of the streaming allocators over a long stream.

Run: ``.venv/bin/python benchmarks/allocation.py`` (``--n`` / ``--m`` to change the size). The last line is
one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from adaptive_router.allocation import ThresholdAllocator, WindowAllocator, allocate


def curves(rng: np.random.Generator, n: int, m: int, noisy: float = 0.02) -> np.ndarray:
    mean = rng.beta(0.6, 1.2, n)
    strength = rng.uniform(0.5, 8.0, n)
    a = (mean * strength)[:, None]
    b = ((1 - mean) * strength)[:, None]
    t = np.arange(m, dtype=np.float64)[None, :]
    q = 1.0 - np.cumprod((b + t) / (a + b + t), axis=1)
    bad = rng.random(n) < noisy
    q[bad] += rng.normal(0.0, 0.01, (int(bad.sum()), m))
    return q


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--budget-per-query", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stream", type=int, default=20_000, help="queries in the streaming drift test")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, m = args.n, args.m
    values = curves(rng, n, m)
    costs = np.arange(1.0, m + 1)
    budget = args.budget_per_query * n

    result = allocate(values, costs, budget)  # warm-up, and the figures below
    allocate_s = best_time(lambda: allocate(values, costs, budget), args.repeat)
    gains = np.diff(values, axis=1, prepend=0.0)
    sort_s = best_time(lambda: np.sort(gains, axis=None), args.repeat)
    uniform = float(values[:, int(args.budget_per_query) - 1].sum())
    print(f"allocate  n={n:,} m={m}: {allocate_s:.3f} s (best of {args.repeat})")
    print(f"np.sort of the {gains.size:,} gains: {sort_s:.3f} s  ->  ratio {allocate_s / sort_s:.2f}")
    print(
        f"spend {result.spend:,.0f} / budget {budget:,.0f}; value {result.value:,.1f} "
        f"(uniform best-of-{int(args.budget_per_query)}: {uniform:,.1f}); "
        f"shadow price {result.shadow_price:.4g}; gap bound {result.gap_bound:.3g}"
    )

    # Streaming: one query at a time against a threshold calibrated on a reference set.
    srng = np.random.default_rng(1)
    ms = 16
    scosts = np.arange(1.0, ms + 1)
    target = args.budget_per_query
    ta = ThresholdAllocator(budget_per_query=target).fit(curves(srng, 10_000, ms), scosts)
    stream = curves(srng, args.stream, ms)
    t0 = time.perf_counter()
    spend = np.array([ta.choose(row).spend for row in stream])
    per_query_us = (time.perf_counter() - t0) / len(stream) * 1e6
    threshold_drift = float(spend.mean() / target - 1.0)
    worst_prefix = float(np.max(np.abs(np.cumsum(spend - target))))
    # Shifted stream: queries much easier than the reference set.
    shifted = ThresholdAllocator(budget_per_query=target).fit(curves(srng, 10_000, ms), scosts)
    easy = curves(srng, args.stream, ms)
    easy = 1.0 - (1.0 - easy) ** 3
    shift_spend = np.array([shifted.choose(row).spend for row in easy])
    shift_drift = float(shift_spend.mean() / target - 1.0)
    wa = WindowAllocator(budget_per_query=target)
    for _ in range(args.stream // 200):
        wa.allocate(curves(srng, 200, ms), scosts)
    window_drift = float(wa.spent_ / wa.granted_ - 1.0)
    print(
        f"ThresholdAllocator, {len(stream):,} queries one at a time ({per_query_us:.0f} us/query): "
        f"mean spend {spend.mean():.4f} vs target {target} -> drift {threshold_drift:+.2e}, "
        f"largest ledger imbalance {worst_prefix:.0f} units"
    )
    print(f"  after a distribution shift (easier stream): drift {shift_drift:+.2e}")
    print(
        f"WindowAllocator, {args.stream // 200} windows of 200: spent {wa.spent_:,.0f} of granted "
        f"{wa.granted_:,.0f} -> drift {window_drift:+.2e} (never above: balance {wa.balance_:.3g} >= 0)"
    )
    print(
        json.dumps(
            {
                "allocate_s": round(allocate_s, 4),
                "sort_s": round(sort_s, 4),
                "ratio": round(allocate_s / sort_s, 3),
                "n": n,
                "m": m,
                "threshold_drift": round(threshold_drift, 6),
                "shift_drift": round(shift_drift, 6),
                "window_drift": round(window_drift, 6),
            }
        )
    )


if __name__ == "__main__":
    main()
