"""Round planner benchmark: overhead per round at 10,000 queries, and sequential replays vs uniform.

1. Overhead: one window of ``--n`` queries (default 10,000) with ``max_k=16`` and budget 4; every round's
   ``observe`` (the round's samples) and ``next_round`` (gains + allocate) is timed on copies of the same
   state (best of ``--repeat``), for each evidence model. Goal: at most 5 ms per round.
2. Verifier replay: a mixed-difficulty population (success rate ``p ~ Beta(0.5, 0.7)``, 16 recorded samples
   per query) replayed with seeded sample orders. Uniform best-of-4 (budget 4) against the round planner
   with only a population prior (fit on a separate training population) and with a noisy per-query probe
   prior, over a budget sweep; "savings" is the budget share the planner saves at uniform's quality
   (linear interpolation over the sweep).
3. Vote replay: answers instead of a verifier (correct with ``p``, else one of three wrong answers with
   query-specific odds; 40 samples per query): uniform self-consistency at k = 4, ESC (window 5, max 40, the
   authors' GSM8K setting) and the planner with :class:`VoteEvidence`.

Run: ``.venv/bin/python benchmarks/rounds.py`` (``--quick`` for a smaller replay). Figures, not assertions;
the last line is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import numpy as np

from adaptive_router.allocation import (
    EarlyStoppingSC,
    RoundPlanner,
    ScoreEvidence,
    UniformRounds,
    VerifierEvidence,
    VoteEvidence,
    allocate,
    replay_rounds,
)
from adaptive_router.curves import expected_majority_vote


def pass_at_k_beta(a: np.ndarray, b: np.ndarray, kmax: int) -> np.ndarray:
    t = np.arange(kmax)[None, :]
    return 1.0 - np.cumprod((b[:, None] + t) / ((a + b)[:, None] + t), axis=1)


def overhead(n: int, repeat: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Best-of-repeat milliseconds of observe and next_round, per round, for each evidence model."""
    p = rng.beta(0.5, 0.7, n)
    level = rng.normal(size=n)
    train = rng.normal(size=(2000, 1)) + rng.normal(size=(2000, 8))
    models = {
        "verifier": (VerifierEvidence(prior=(0.5, 0.7)), lambda r: (rng.random(r.size) < p[r]).astype(float)),
        "votes": (
            VoteEvidence(),
            lambda r: np.where(rng.random(r.size) < p[r], 0, rng.integers(1, 4, r.size)),
        ),
        "scores": (
            ScoreEvidence().fit(train, (train > 1.0).astype(float)),
            lambda r: level[r] + rng.normal(size=r.size),
        ),
    }
    out = {}
    for name, (evidence, draw) in models.items():
        planner = RoundPlanner(evidence=evidence, budget_per_query=4.0, max_k=16, max_rounds=4)
        t0 = time.perf_counter()
        units = planner.start(n=n)
        start_ms = (time.perf_counter() - t0) * 1e3
        obs_ms, next_ms = [], []
        while units.any():
            rows = np.repeat(np.arange(n), units)
            values = draw(rows)
            best_obs = best_next = np.inf
            for _ in range(repeat):
                trial = copy.deepcopy(planner)
                t0 = time.perf_counter()
                trial.observe(rows, values)
                t1 = time.perf_counter()
                trial.next_round()
                t2 = time.perf_counter()
                best_obs, best_next = min(best_obs, t1 - t0), min(best_next, t2 - t1)
            planner.observe(rows, values)
            units = planner.next_round()
            obs_ms.append(best_obs * 1e3)
            next_ms.append(best_next * 1e3)
        per_round = [o + x for o, x in zip(obs_ms, next_ms, strict=True)]
        out[name] = {
            "start_ms": start_ms,
            "observe_ms": max(obs_ms),
            "next_round_ms": max(next_ms),
            "worst_round_ms": max(per_round),
            "rounds": planner.rounds_,
        }
        print(
            f"  {name:8s} start {start_ms:5.2f} ms | per round, observe + next_round: "
            + ", ".join(f"{o:.2f}+{x:.2f}" for o, x in zip(obs_ms, next_ms, strict=True))
            + f" ms | stop: {planner.stop_reason_}"
        )
    return out


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def savings(target: float, budgets: list[float], qualities: list[float], reference: float) -> float | None:
    """1 - B*/reference where the planner's quality curve first reaches ``target`` (linear interpolation)."""
    if qualities and qualities[0] >= target:
        return 1.0 - budgets[0] / reference
    for b0, b1, q0, q1 in zip(budgets, budgets[1:], qualities, qualities[1:], strict=False):
        if q0 < target <= q1:
            return 1.0 - (b0 + (target - q0) / (q1 - q0) * (b1 - b0)) / reference
    return None


def verifier_replay(n: int, seeds: int, rng: np.random.Generator) -> dict[str, object]:
    s = 16
    p = rng.beta(0.5, 0.7, n)
    rewards = (rng.random((n, s)) < p[:, None]).astype(float)
    train = (rng.random((n, 8)) < rng.beta(0.5, 0.7, n)[:, None]).astype(float)
    population = VerifierEvidence().fit(train)
    # a noisy probe: logit(p_hat) = logit(p) + N(0, 1), reported as a Beta with strength 4 around p_hat
    logit = np.log(np.clip(p, 1e-3, 1 - 1e-3) / np.clip(1 - p, 1e-3, 1)) + rng.normal(0.0, 1.0, n)
    p_hat = 1 / (1 + np.exp(-logit))
    probe = pass_at_k_beta(4 * p_hat, 4 * (1 - p_hat), s)
    uniform = replay_rounds(UniformRounds(k=4), rewards, seeds=seeds)
    print(f"  uniform best-of-4: quality {uniform.quality:.4f} ± {uniform.quality_se:.4f}, spend 4.00")
    one_shot = allocate(probe[:, :s], np.arange(1.0, s + 1), 4.0 * n).choice + 1
    true_curve = 1 - (1 - p[:, None]) ** np.arange(1, s + 1)[None, :]
    one_shot_q = float(true_curve[np.arange(n), one_shot - 1].mean())
    print(f"  one-shot allocation on the noisy probe at B=4: expected quality {one_shot_q:.4f}")
    budgets = [1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    table: dict[str, list[float]] = {}
    for label, evidence, prior in (
        ("population prior", population, None),
        ("noisy probe prior", VerifierEvidence(), probe),
    ):
        qs = []
        for b in budgets:
            planner = RoundPlanner(evidence=evidence, budget_per_query=b, max_k=s, max_rounds=4)
            res = replay_rounds(planner, rewards, prior_curves=prior, seeds=seeds)
            qs.append(res.quality)
            if res.max_spend > b + 1e-9:  # pragma: no cover - the invariant, reported loudly if broken
                print(f"  !! spend {res.max_spend} above budget {b}")
        table[label] = qs
        print(
            f"  planner ({label}): "
            + ", ".join(f"B={b:g}: {q:.4f}" for b, q in zip(budgets, qs, strict=True))
        )
    out: dict[str, object] = {
        "uniform_bo4": uniform.quality,
        "uniform_se": uniform.quality_se,
        "one_shot_probe": one_shot_q,
    }
    for label, qs in table.items():
        key = label.split()[0]
        sv = savings(uniform.quality, budgets, qs, 4.0)
        out[f"planner_{key}_B4"] = qs[-1]
        out[f"savings_{key}"] = sv
        print(f"  savings at uniform best-of-4 quality ({label}): {'n/a' if sv is None else f'{sv:.1%}'}")
    return out


def vote_replay(n: int, seeds: int, rng: np.random.Generator) -> dict[str, object]:
    s = 40
    p = rng.beta(0.5, 0.7, n)
    wrong_odds = rng.dirichlet(np.ones(3) * 0.7, n)
    correct = rng.random((n, s)) < p[:, None]
    wrong = (rng.random((n, s, 1)) > np.cumsum(wrong_odds, axis=1)[:, None, :]).sum(axis=2) + 1
    codes = np.where(correct, 0, np.minimum(wrong, 3))
    rewards = correct.astype(float)
    kw = {"answers": codes, "seeds": seeds}
    sc4 = replay_rounds(UniformRounds(k=4, quality="vote"), rewards, **kw)
    sc40 = replay_rounds(UniformRounds(k=40, quality="vote"), rewards, **kw)
    esc = replay_rounds(EarlyStoppingSC(window=5, max_k=40), rewards, **kw)
    print(f"  self-consistency k=4: {sc4.quality:.4f} ± {sc4.quality_se:.4f}; k=40: {sc40.quality:.4f}")
    print(f"  ESC (window 5, max 40): {esc.quality:.4f} at spend {esc.spend:.2f} per query")
    esc2 = replay_rounds(EarlyStoppingSC(window=2, max_k=40), rewards, **kw)
    print(f"  ESC (window 2, max 40): {esc2.quality:.4f} at spend {esc2.spend:.2f} per query")
    curve = expected_majority_vote(codes, rewards, s)
    oracle = float(curve[np.arange(n), allocate(curve, np.arange(1.0, s + 1), 4.0 * n).choice].mean())
    print(f"  one-shot allocation on the true vote curves at B=4 (oracle, for scale): {oracle:.4f}")
    budgets = [2.0, 3.0, 4.0, 5.0, 6.0, 8.0]
    out: dict[str, object] = {
        "sc4": sc4.quality,
        "sc40": sc40.quality,
        "esc5_quality": esc.quality,
        "esc5_spend": esc.spend,
        "esc2_quality": esc2.quality,
        "esc2_spend": esc2.spend,
        "oracle_one_shot_B4": oracle,
    }
    for label, first in (("first_round=one", "one"), ("first_round=2", 2)):
        qs = []
        for b in budgets:
            planner = RoundPlanner(
                evidence=VoteEvidence(), budget_per_query=b, max_k=s, max_rounds=4, first_round=first
            )
            qs.append(replay_rounds(planner, rewards, **kw).quality)
        print(
            f"  planner ({label}): "
            + ", ".join(f"B={b:g}: {q:.4f}" for b, q in zip(budgets, qs, strict=True))
        )
        sv = savings(sc4.quality, budgets, qs, 4.0)
        print(f"    savings at self-consistency k=4 quality: {'n/a' if sv is None else f'{sv:.1%}'}")
        at_esc = float(np.interp(esc.spend, budgets, qs))
        print(
            f"    at ESC-5's spend ({esc.spend:.2f}): {at_esc:.4f} vs ESC-5 {esc.quality:.4f}"
            + (" (budget sweep ends at 8: value at B=8)" if esc.spend > budgets[-1] else "")
        )
        key = "one" if first == "one" else "two"
        out[f"planner_{key}_B4"] = qs[budgets.index(4.0)]
        out[f"savings_{key}"] = sv
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="queries in the overhead window")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smaller replays")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).random(1_000_000)
    sort_ms = min(timed(lambda: np.sort(x)) for _ in range(5))
    print(f"Machine reference: np.sort of 1,000,000 float64 takes {sort_ms:.1f} ms (best of 5)")
    print(f"Overhead per round, n={args.n}, max_k=16, budget 4/query, 4 rounds (best of {args.repeat}):")
    over = overhead(args.n, args.repeat, rng)
    n_rep, seeds = (1000, 4) if args.quick else (4000, 8)
    print(f"\nVerifier replay: {n_rep} queries x 16 samples, p ~ Beta(0.5, 0.7), {seeds} seeds:")
    ver = verifier_replay(n_rep, seeds, rng)
    print(f"\nVote replay: {n_rep // 4} queries x 40 samples, {seeds} seeds:")
    vote = vote_replay(n_rep // 4, seeds, rng)
    print(
        json.dumps(
            {"overhead_ms": over, "sort_1m_ms": sort_ms, "verifier": ver, "votes": vote}, sort_keys=True
        )
    )


if __name__ == "__main__":
    main()
