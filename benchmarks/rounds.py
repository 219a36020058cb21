"""Round planner benchmark: overhead per round at 10,000 queries, and sequential replays vs uniform.

1. Overhead (``overhead``): one window of ``--n`` queries (default 10,000) with ``max_k=16`` and budget 4;
   every round's ``observe`` (the round's samples) and ``next_round`` (gains + allocate) is timed on copies
   of the same state (best of ``--repeat``), for each evidence model, with 4 even rounds and with the
   router's defaults (``Rounds()``). Goal: at most 5 ms per round.
2. Verifier replay (``synthetic``, with 3): a mixed-difficulty population (success rate
   ``p ~ Beta(0.5, 0.7)``, 16 recorded samples per query) replayed with seeded sample orders. Uniform
   best-of-4 (budget 4) against the round planner with only a population prior (fit on a separate training
   population) and with a noisy per-query probe prior, over a budget sweep; "savings" is the budget share
   the planner saves at uniform's quality (linear interpolation over the sweep).
3. Vote replay: answers instead of a verifier (correct with ``p``, else one of three wrong answers with
   query-specific odds; 40 samples per query): uniform self-consistency at k = 4, ESC (window 5, max 40, the
   authors' GSM8K setting) and the planner with :class:`VoteEvidence`.
4. Real votes and a real verifier (``arith``; ``--arith``, default ``/tmp/data/arith40.jsonl`` when
   present: graded arithmetic queries x 40 Gemma-3-270M samples; reward = first-line numeric match,
   answers = the first line as a number): the router's own defaults (``Rounds()``, as
   ``AdaptiveRouter(rounds="auto")`` builds its planner) against one-shot at equal budget, without a probe
   (one-shot = uniform best-of-B / self-consistency at B) and with a probe (leave-one-out tier curves: the
   mean true curve of the other queries of the same tier and operator; one-shot = the exact allocation on
   those curves), windows of 32. Lone queries (a stream of ``invoke``s): the threshold form
   (``Planner.reserve`` + ``price=λ``) against the one-shot threshold (``Planner.plan_one``), each on its
   own ledger.
5. The sequential baselines on arith40 (``baselines``), one window of all 300 queries: the planner
   (``Rounds()``, no probe and the tier probe) against `RoundRobinUnsolved` with a verifier, and against
   ESC (windows of 2 and 5) and Adaptive-Consistency with votes; the samples per query each needs to reach
   uniform best-of-4 / best-of-8, and self-consistency at 20.
6. The choice of ``Rounds()``'s defaults (``defaults``): on the train half of ``arith40_answers.jsonl``
   (beside ``--arith``), paired differences against `RoundRobinUnsolved` (verifier) and 4 even rounds
   (votes) for ``round_budget`` x ``max_rounds``.
7. Live wall time (``live``) through ``AdaptiveRouter.abatch`` with a fake model of fixed latency (20 ms
   per request): rounds against one-shot at equal k (no probe, budget = k = 4 per query).
8. A cascade in rounds (``cascade``), synthetic: a cheap model (cost 1 per sample, 40 samples per query,
   per-sample accuracy ``sigmoid(1 - 1.8 d)`` for difficulty ``d ~ N(0, 1)``, wrong answers among four
   with Dirichlet(0.5) odds per query) and a strong one (cost 20, accuracy ``sigmoid(2.3 - 1.2 d)``), halves
   of 2,000 queries. `CascadePlanner` with a `CascadeModel` fitted on the train half against the mixture of
   the two models (the hull) and fixed rules (``k`` cheap samples, escalate unless they agree): the cost
   share of the strong model's that reaches 95% of its accuracy, and the planner's overhead per round at
   ``--n`` queries.

9. ``train``'s choice of round settings (``choice``) on synthetic vote sets and arith40: see `round_choice`.
10. The rounds' prior where the probe falls back (``prior``): a synthetic mixed stream of two kinds of
    question with the same first-sample accuracy, one often hopeless after a failure; the probe (trained as
    ``train`` does) falls back, `choose_rounds` picks the weight of its prediction for the rounds' prior on
    its held-out curves, and the test half is replayed: uniform, round-robin, the posterior on the probe's
    curves (the population's) and on the chosen weight, with the savings at uniform best-of-4's quality.

Run: ``.venv/bin/python benchmarks/rounds.py`` (``--quick`` for smaller replays, ``--only
baselines,defaults`` for some sections). Figures, not assertions; the last line is one JSON object with
the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import (
    CascadeModel,
    CascadePlanner,
    EarlyStoppingSC,
    Ladder,
    Planner,
    PlanSpec,
    RoundPlanner,
    Rounds,
    ScoreEvidence,
    UniformRounds,
    VerifierEvidence,
    VoteEvidence,
    allocate,
    replay_rounds,
)
from adaptive_router.allocation.round_baselines import AdaptiveConsistency, RoundRobinUnsolved
from adaptive_router.curves import expected_majority_vote, pass_at_k


def pass_at_k_beta(a: np.ndarray, b: np.ndarray, kmax: int) -> np.ndarray:
    t = np.arange(kmax)[None, :]
    return 1.0 - np.cumprod((b[:, None] + t) / ((a + b)[:, None] + t), axis=1)


def overhead(
    n: int, repeat: int, rng: np.random.Generator, settings: Rounds | None = None
) -> dict[str, dict[str, float]]:
    """Best-of-repeat milliseconds of observe and next_round, per round, for each evidence model: a
    `RoundPlanner` with 4 even rounds, or the planner ``settings`` builds (the router's)."""
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
        if settings is None:
            planner = RoundPlanner(evidence=evidence, budget_per_query=4.0, max_k=16, max_rounds=4)
        else:
            kind = {"verifier": "rewards", "votes": "answers", "scores": "scores"}[name]
            planner = Rounds(
                evidence=evidence, max_rounds=settings.max_rounds, round_budget=settings.round_budget
            ).planner(kind, budget_per_query=4.0, max_k=16, prior=False)
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


# ------------------------------------------------------------------ real samples: arith40


def load_arith(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rewards ``(n, s)``, answer codes ``(n, s)`` (the first line as a number; -1: none) and tiers."""
    from adaptive_router.app.verifiers.checks import first_line  # the demo's verifier (application layer)

    rows, answers, tiers = [], [], []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        (samples,) = rec["outcomes"].values()
        rows.append([float(x["reward"]) for x in samples])
        parsed = []
        for x in samples:
            try:
                value = float(first_line(x.get("text", "")).replace(",", ""))
                parsed.append(str(value) if math.isfinite(value) else None)
            except ValueError:
                parsed.append(None)
        answers.append(parsed)
        meta = rec.get("metadata") or {}
        tiers.append(f"{meta.get('tier')}{meta.get('operator')}")
    s = min(len(r) for r in rows)  # the file may still be growing: use the samples every query has
    rewards = np.array([r[:s] for r in rows])
    codes = np.full(rewards.shape, -1)
    for i, row in enumerate(answers):
        seen: dict[str, int] = {}
        for j, a in enumerate(row[:s]):
            if a is not None:
                codes[i, j] = seen.setdefault(a, len(seen))
    return rewards, codes, np.array(tiers)


def _windows(policy_for: Callable[[np.ndarray | None], Any], size: int) -> Callable[..., Any]:
    """A policy that replays windows of ``size`` queries, each with its own planner (as the router does)."""

    class Windowed:
        unit_cost = 1.0

        def __init__(self) -> None:
            self.parts: list[tuple[slice, Any]] = []
            first = policy_for(None)
            self.needs, self.quality = first.needs, first.quality

        @property
        def rounds_(self) -> int:
            return max(p.rounds_ for _, p in self.parts)

        def start(self, prior_curves=None, *, n=None, max_units=None):
            self.parts = []
            out = []
            for lo in range(0, len(max_units), size):
                sl = slice(lo, lo + size)
                pol = policy_for(None if prior_curves is None else prior_curves[sl])
                pr = None if prior_curves is None else prior_curves[sl]
                out.append(pol.start(pr, n=len(max_units[sl]), max_units=max_units[sl]))
                self.parts.append((sl, pol))
            return np.concatenate(out)

        def observe(self, queries, evidence):
            q, ev = np.asarray(queries), np.asarray(evidence)
            for sl, pol in self.parts:
                m = (q >= sl.start) & (q < sl.stop)
                pol.observe(q[m] - sl.start, ev[m])
            return self

        def next_round(self):
            return np.concatenate([pol.next_round() for _, pol in self.parts])

    return lambda: Windowed()  # a factory: replay_rounds starts a fresh one per seed


def arith_replay(path: Path, seeds: int) -> dict[str, Any]:
    rewards, codes, tiers = load_arith(path)
    n, s = rewards.shape
    k_max = min(s, 16)
    true_pass = pass_at_k(rewards.sum(axis=1), np.full(n, s), np.arange(1, k_max + 1))
    true_vote = expected_majority_vote(codes, rewards, k_max)
    prior_pass, prior_vote = np.zeros_like(true_pass), np.zeros_like(true_vote)
    for i in range(n):  # leave-one-out tier probe: the other queries of the same tier and operator
        same = tiers == tiers[i]
        same[i] = False
        prior_pass[i], prior_vote[i] = true_pass[same].mean(axis=0), true_vote[same].mean(axis=0)
    print(f"  {n} queries x {s} samples; mean success rate {rewards.mean():.3f}; "
          f"solved by any sample: {(rewards.max(axis=1) > 0).mean():.1%}")  # fmt: skip
    out: dict[str, Any] = {"queries": n, "samples": s}
    budgets = [2.0, 3.0, 4.0, 6.0]
    for kind, true, prior in (("rewards", true_pass, prior_pass), ("answers", true_vote, prior_vote)):
        label = "verifier" if kind == "rewards" else "votes"
        rows: dict[str, list[float]] = {}
        for b in budgets:
            uniform = true[:, int(b) - 1].mean()
            shot = true[np.arange(n), allocate(prior, np.arange(1.0, k_max + 1), b * n).choice].mean()
            planner = _windows(
                lambda pr, b=b, kind=kind: Rounds().planner(
                    kind, budget_per_query=b, max_k=k_max, prior=pr is not None
                ),
                32,
            )
            kw = {"answers": codes} if kind == "answers" else {}
            r_none = replay_rounds(planner, rewards, seeds=seeds, **kw)
            r_tier = replay_rounds(planner, rewards, prior_curves=prior, seeds=seeds, **kw)
            for key, value in (
                ("one_shot_no_probe", uniform), ("rounds_no_probe", r_none.quality),
                ("one_shot_probe", shot), ("rounds_probe", r_tier.quality),
                ("rounds_se", max(r_none.quality_se, r_tier.quality_se)),
            ):  # fmt: skip
                rows.setdefault(key, []).append(float(value))
            if max(r_none.max_spend, r_tier.max_spend) > b + 1e-9:  # pragma: no cover - the invariant
                print(f"  !! spend above budget {b}")
        print(f"  {label} (windows of 32, {seeds} seeds; one-shot = expected quality of its k):")
        for key, values in rows.items():
            print(
                f"    {key:18s} "
                + "  ".join(f"B={b:g}: {v:.4f}" for b, v in zip(budgets, values, strict=True))
            )
        out[label] = {"budgets": budgets, **rows}
    out["lone"] = lone_replay(rewards, prior_pass, seeds)
    return out


def _reach(target: float, budgets: list[float], qualities: list[float]) -> float | None:
    """Spend per query at which a quality curve first reaches ``target`` (linear interpolation)."""
    if qualities[0] >= target:
        return budgets[0]
    for b0, b1, q0, q1 in zip(budgets, budgets[1:], qualities, qualities[1:], strict=False):
        if q0 < target <= q1:
            return b0 + (target - q0) / (q1 - q0) * (b1 - b0)
    return None


def arith_baselines(path: Path, seeds: int) -> dict[str, Any]:
    """The planner against round-robin over unsolved queries (verifier) and ESC / Adaptive-Consistency
    (votes) on arith40, one window of all queries, and the samples per query each needs to reach uniform
    best-of-4 / best-of-8 (verifier) and self-consistency at 20 (votes)."""
    rewards, codes, tiers = load_arith(path)
    n, s = rewards.shape
    true_pass = pass_at_k(rewards.sum(axis=1), np.full(n, s), np.arange(1, s + 1))
    true_vote = expected_majority_vote(codes, rewards, s)
    prior_pass, prior_vote = np.zeros((n, 16)), np.zeros((n, s))
    for i in range(n):  # the leave-one-out tier probe of arith_replay
        same = tiers == tiers[i]
        same[i] = False
        prior_pass[i], prior_vote[i] = true_pass[same, :16].mean(axis=0), true_vote[same].mean(axis=0)
    out: dict[str, Any] = {}
    grid = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0]
    ver: dict[str, Any] = {"uniform": [float(true_pass[:, int(b) - 1].mean()) for b in (2, 4, 8)]}
    policies = {
        "round_robin": lambda b: RoundRobinUnsolved(budget_per_query=b, max_k=16),
        "sequential": lambda b: Rounds().planner("rewards", budget_per_query=b, max_k=16, prior=False),
        "sequential_4_even": lambda b: Rounds(max_rounds=4, round_budget="even").planner(
            "rewards", budget_per_query=b, max_k=16, prior=False
        ),
        "sequential_tier": lambda b: Rounds().planner("rewards", budget_per_query=b, max_k=16, prior=True),
    }
    print(f"  verifier, max_k=16, {seeds} seeds; uniform best-of-2/4/8 "
          + "/".join(f"{q:.4f}" for q in ver["uniform"]))  # fmt: skip
    for name, make in policies.items():
        prior = prior_pass if name.endswith("tier") else None
        res = {b: replay_rounds(make(b), rewards, prior_curves=prior, seeds=seeds) for b in grid}
        qs = [res[b].quality for b in grid]
        ver[name] = {
            "quality": [qs[grid.index(b)] for b in (2.0, 4.0, 8.0)],
            "se": [res[b].quality_se for b in (2.0, 4.0, 8.0)],
            "rounds": [res[b].rounds for b in (2.0, 4.0, 8.0)],
            "to_uniform_bo4": _reach(ver["uniform"][1], grid, qs),
            "to_uniform_bo8": _reach(ver["uniform"][2], grid, qs),
        }
        r = ver[name]
        print(
            f"    {name:18s} B=2/4/8: " + " ".join(f"{q:.4f}±{e:.4f} ({k:.0f}r)" for q, e, k in
                                              zip(r["quality"], r["se"], r["rounds"], strict=True))
            + f" | samples/query to best-of-4: {r['to_uniform_bo4']}, to best-of-8: {r['to_uniform_bo8']}"
        )  # fmt: skip
    out["verifier"] = ver
    sc = true_vote.mean(axis=0)
    votes: dict[str, Any] = {"sc": {k: float(sc[k - 1]) for k in (2, 3, 4, 8, 16, 20, 40)}}
    target = float(sc[19])
    print(f"  votes, max_k=40, {seeds} seeds; self-consistency at 20: {target:.4f} (at 3: {sc[2]:.4f})")
    vgrid = [2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    for name, prior in (("sequential", None), ("sequential_tier", prior_vote)):
        qs = [
            replay_rounds(
                Rounds().planner("answers", budget_per_query=b, max_k=40, prior=prior is not None),
                rewards, answers=codes, prior_curves=prior, seeds=seeds,
            ).quality
            for b in vgrid
        ]  # fmt: skip
        votes[name] = {"budgets": vgrid, "quality": qs, "to_sc20": _reach(target, vgrid, qs)}
        print(f"    {name:18s} " + " ".join(f"B={b:g}: {q:.4f}" for b, q in zip(vgrid, qs, strict=True))
              + f" | samples/query to SC@20: {votes[name]['to_sc20']}")  # fmt: skip
    for name, pol in (
        ("esc_w2", EarlyStoppingSC(window=2, max_k=40)),
        ("esc_w5", EarlyStoppingSC(window=5, max_k=40)),
        ("adaptive_consistency", AdaptiveConsistency(max_k=40)),
    ):
        # no budget: the stopping rule's own spend; the cap max_k traces a curve through the target
        pts = []
        for cap in (10, 20, 30, 40):
            pol.max_k = cap
            res = replay_rounds(pol, rewards, answers=codes, seeds=seeds)
            pts.append((res.spend, res.quality))
        spends, quals = zip(*pts, strict=True)
        votes[name] = {"max_k": [10, 20, 30, 40], "spend": list(spends), "quality": list(quals),
                       "to_sc20": _reach(target, list(spends), list(quals))}  # fmt: skip
        print(f"    {name:20s} max_k 10/20/30/40: "
              + " ".join(f"{q:.4f} at {sp:.1f}" for sp, q in pts)
              + f" | samples/query to SC@20: {votes[name]['to_sc20']}")  # fmt: skip
    # for scale: a one-shot allocation that knew every query's true vote curve (no method can know it)
    ograde = [1.5, 2.0, 2.5, 3.0, 4.0]
    oq = [
        float(true_vote[np.arange(n), allocate(true_vote, np.arange(1.0, s + 1), b * n).choice].mean())
        for b in ograde
    ]
    votes["oracle_one_shot"] = {"budgets": ograde, "quality": oq, "to_sc20": _reach(target, ograde, oq)}
    print("    oracle one-shot on the true vote curves: "
          + " ".join(f"B={b:g}: {q:.4f}" for b, q in zip(ograde, oq, strict=True))
          + f" | samples/query to SC@20: {votes['oracle_one_shot']['to_sc20']}")  # fmt: skip
    out["votes"] = votes
    return out


def defaults_choice(path: Path, seeds: int) -> dict[str, Any]:
    """How ``Rounds()``'s ``max_rounds`` and ``round_budget`` were chosen: on the train half of arith40's
    id-hash split (``OutcomeSet.split(0.5, seed=0)``, as ``evaluate --split train``), paired over the same
    sample orderings: the verifier planner against `RoundRobinUnsolved`, the vote planner against 4 even
    rounds (the previous default). Differences in points, with their standard error over orderings."""
    from adaptive_router.outcomes import OutcomeSet

    train, _ = OutcomeSet.read_jsonl(path).split(0.5, seed=0)
    proc = train.procedures[0]
    rewards = train.rewards(proc)
    coded = train.answers(proc)
    codes = None if coded is None else coded[0]
    budgets = [1.5, 2.0, 3.0, 4.0, 6.0, 8.0]
    grid = [("even", 4), ("even", 6), ("pace", 4), ("pace", 8), ("pace", 10), ("pace", 12)]
    out: dict[str, Any] = {"queries": len(train), "budgets": budgets}
    kinds = [("rewards", "round_robin")] + ([("answers", "even_4")] if codes is not None else [])
    for kind, base_name in kinds:
        table: dict[str, Any] = {}
        print(f"  {kind}: planner minus {base_name}, points ± se over {seeds} orderings (rounds used)")
        for b in budgets:
            if kind == "rewards":
                base = replay_rounds(RoundRobinUnsolved(budget_per_query=b, max_k=16), rewards, seeds=seeds)
            else:
                base = replay_rounds(
                    Rounds(max_rounds=4, round_budget="even").planner(
                        kind, budget_per_query=b, max_k=16, prior=False
                    ), rewards, answers=codes, seeds=seeds,
                )  # fmt: skip
            cells = [f"B={b:g}: {base_name} {base.quality:.4f} ({base.rounds:.1f}r)"]
            for rb, mr in grid:
                planner = Rounds(max_rounds=mr, round_budget=rb).planner(
                    kind, budget_per_query=b, max_k=16, prior=False
                )
                res = replay_rounds(planner, rewards, answers=codes, seeds=seeds)
                d = (res.per_seed_quality - base.per_seed_quality) * 100
                se = float(d.std(ddof=1) / math.sqrt(d.size))
                table.setdefault(f"{rb}_{mr}", []).append(
                    {"diff_points": float(d.mean()), "se": se, "rounds": res.rounds}
                )
                cells.append(f"{rb} {mr}: {d.mean():+.2f}±{se:.2f} ({res.rounds:.1f}r)")
            table.setdefault(base_name, []).append({"quality": base.quality, "rounds": base.rounds})
            print("    " + " | ".join(cells))
        out[kind] = table
    return out


def lone_replay(rewards: np.ndarray, prior: np.ndarray, seeds: int, k_max: int = 8) -> dict[str, Any]:
    """A stream of lone queries: the threshold form of the rounds against the one-shot threshold."""
    n, s = rewards.shape
    spec_for = {b: PlanSpec(Ladder.best_of_k(k_max), budget_per_query=b) for b in (2.0, 4.0)}
    out: dict[str, Any] = {}
    true = pass_at_k(rewards.sum(axis=1), np.full(n, s), np.arange(1, k_max + 1))
    for b, spec in spec_for.items():
        q_shot, q_rounds, spend_shot, spend_rounds = [], [], [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            order = rng.permutation(n)
            shot, live = Planner(), Planner()
            got_shot, got_rounds = [], []
            for i in order:
                d = shot.plan_one(spec, prior[i, :k_max])
                got_shot.append(true[i, d.option.k - 1])
                grant = live.reserve(spec, prior[i : i + 1, :k_max])
                rp = Rounds().planner(
                    "rewards", budget_per_query=grant.units, max_k=k_max, prior=True, price=grant.price
                )
                samples = rewards[i, rng.permutation(s)]
                units, used, best = rp.start(prior[i : i + 1, :k_max]), 0, 0.0
                while units.any():
                    drawn = samples[used : used + int(units[0])]
                    used += int(units[0])
                    best = max(best, float(drawn.max()))
                    rp.observe(np.zeros(drawn.size, dtype=np.int64), drawn)
                    units = rp.next_round()
                live.settle(grant, rp.spent_)
                got_rounds.append(best)
            q_shot.append(np.mean(got_shot))
            q_rounds.append(np.mean(got_rounds))
            spend_shot.append(shot.ledger(spec).allocated / n)
            spend_rounds.append(live.ledger(spec).allocated / n)
        out[f"B{b:g}"] = {
            "one_shot": float(np.mean(q_shot)), "rounds": float(np.mean(q_rounds)),
            "one_shot_spend": float(np.mean(spend_shot)), "rounds_spend": float(np.mean(spend_rounds)),
        }  # fmt: skip
        r = out[f"B{b:g}"]
        print(
            f"  lone queries, B={b:g}, max_k={k_max}: one-shot threshold {r['one_shot']:.4f} "
            f"(spend {r['one_shot_spend']:.2f}) vs rounds at λ {r['rounds']:.4f} "
            f"(spend {r['rounds_spend']:.2f})"
        )
    return out


# ------------------------------------------------------------------ live wall time through the router


def live_wall_time(n: int, latency_s: float, k: int, caps: tuple[int | None, ...]) -> dict[str, Any]:
    """Wall time per query of ``abatch`` in rounds against one-shot at equal k (fake model, fixed latency)."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from adaptive_router.runnables import AdaptiveRouter, router_metadata
    from adaptive_router.strategies import BestOfK, VerifierReranker

    rates = np.random.default_rng(0).beta(0.5, 0.7, n)

    class FixedLatency(BaseChatModel):
        """Sleeps ``latency_s`` per request; prompt ``q{i}`` is right with probability ``rates[i]``."""

        seed: int = 0

        @property
        def _llm_type(self) -> str:
            return "fixed-latency"

        def _answer(self, messages: Any) -> ChatResult:
            i = int(str(messages[-1].content)[1:])
            ok = np.random.default_rng([self.seed, i, time.perf_counter_ns()]).random() < rates[i]
            return ChatResult(generations=[ChatGeneration(message=AIMessage("right" if ok else "wrong"))])

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            time.sleep(latency_s)
            return self._answer(messages)

        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            await asyncio.sleep(latency_s)
            return self._answer(messages)

    verifier = VerifierReranker(verify=lambda prompt, answer: answer == "right")
    queries = [f"q{i}" for i in range(n)]
    out: dict[str, Any] = {"queries": n, "latency_ms": latency_s * 1e3, "k": k}
    for cap in caps:
        row: dict[str, Any] = {}
        for label, rounds in (("one_shot", None), ("rounds", "auto")):
            strategy = BestOfK(FixedLatency(), verifier, max_k=k)
            router = AdaptiveRouter(
                strategy=strategy, budget_per_query=float(k), window_size=n, rounds=rounds
            )
            best = math.inf
            for _ in range(3):
                t0 = time.perf_counter()
                outs = asyncio.run(router.abatch(queries, {"max_concurrency": cap}))
                best = min(best, time.perf_counter() - t0)
            metas = [router_metadata(o) for o in outs]
            row[label] = {
                "wall_ms_per_query": best * 1e3 / n,
                "batch_wall_ms": best * 1e3,
                "calls_per_query": sum(m["calls"] for m in metas) / n,
                "rounds": max(m["rounds"]["per_round"][-1]["round"] if "rounds" in m else 1 for m in metas),
                "solved": float(np.mean([o.content == "right" for o in outs])),
            }
        key = f"{n} queries, " + ("unbounded" if cap is None else f"max_concurrency={cap}")
        out["unbounded" if cap is None else f"max_concurrency_{cap}"] = row
        for label, r in row.items():
            print(
                f"  {key:32s} {label:8s}: {r['batch_wall_ms']:6.0f} ms per batch, "
                f"{r['wall_ms_per_query']:.2f} ms/query, {r['rounds']} round(s), "
                f"{r['calls_per_query']:.2f} calls/query, solved {r['solved']:.3f}"
            )
    return out


SECTIONS = ("overhead", "synthetic", "arith", "baselines", "defaults", "live", "cascade", "choice", "prior")


def cascade_data(n: int, seed: int, s: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cheap rewards and answer codes ``(n, s)`` and strong rewards ``(n,)`` (see section 8)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n)
    correct = rng.random((n, s)) < (1 / (1 + np.exp(-(1.0 - 1.8 * d))))[:, None]
    odds = rng.dirichlet(np.full(4, 0.5), size=n)
    wrong = 1 + (rng.random((n, s, 1)) > np.cumsum(odds, axis=1)[:, None, :]).sum(axis=2)
    strong = (rng.random(n) < 1 / (1 + np.exp(-(2.3 - 1.2 * d)))).astype(float)
    return correct.astype(float), np.where(correct, 0, np.minimum(wrong, 4)), strong


def cascade_replay(seeds: int, n_overhead: int) -> dict[str, Any]:
    r, codes, strong = cascade_data(2000, seed=1)
    tr, te = slice(0, 1000), slice(1000, 2000)
    model = CascadeModel().fit(r[tr], strong[tr], answers=codes[tr])
    big, goal = 20.0, 0.95 * float(strong[te].mean())
    cheap_q = float(r[te].mean())
    budgets = [2.0, 3.0, 4.0, 6.0, 8.0, 9.0, 10.0, 12.0, 16.0]
    planner_q = []
    for b in budgets:
        res = replay_rounds(
            CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=b, max_k=40,
                           escalate_cost=big),
            r[te], answers=codes[te], escalation_rewards=strong[te], seeds=seeds,
        )  # fmt: skip
        hull = cheap_q + (b - 1.0) / (big - 1.0) * (float(strong[te].mean()) - cheap_q)
        planner_q.append(res.quality)
        print(f"  B={b:4.1f}: planner {res.quality:.3f} ± {res.quality_se:.3f} "
              f"(escalated {res.escalated:.1%}, {res.rounds:.1f} rounds) | hull {hull:.3f}")  # fmt: skip
    rules = {}
    rng = np.random.default_rng(0)
    for k in (2, 3, 4, 5):
        order = np.argsort(rng.random(r[te].shape), axis=1)[:, :k]
        drawn = np.take_along_axis(codes[te], order, axis=1)
        agree = (drawn == drawn[:, :1]).all(axis=1)
        kept = np.take_along_axis(r[te], order, axis=1)[:, 0]
        cost, quality = k + big * float((~agree).mean()), float(np.where(agree, kept, strong[te]).mean())
        rules[f"k{k}_escalate_unless_unanimous"] = {"cost": cost, "quality": quality}
        print(f"  rule: {k} cheap samples, escalate unless unanimous: cost {cost:.2f}, quality {quality:.3f}")
    need = _reach(goal, budgets, planner_q)
    needs = "more than the sweep" if need is None else f"{need:.2f} per query = {need / big:.1%} of its cost"
    print(f"  strong alone {strong[te].mean():.3f} at {big:g}; 95% of it = {goal:.3f}: the planner needs "
          f"{needs}")  # fmt: skip
    # overhead per round at n_overhead queries (a window of the same population, tiled)
    reps = -(-n_overhead // 1000)
    cc = np.tile(codes[te], (reps, 1))[:n_overhead]
    planner = CascadePlanner(evidence=VoteEvidence(), model=model, budget_per_query=6.0, max_k=40,
                             escalate_cost=big)  # fmt: skip
    units, used, worst = planner.start(n=n_overhead), np.zeros(n_overhead, dtype=np.int64), 0.0
    while units.any():
        q = np.repeat(np.arange(n_overhead), units)
        col = used[q] + np.arange(q.size) - np.repeat(np.cumsum(units) - units, units)
        t0 = time.perf_counter()
        planner.observe(q, cc[q, col])
        used += units
        units = planner.next_round()
        worst = max(worst, (time.perf_counter() - t0) * 1e3)
    print(f"  overhead: worst round (observe + next_round) {worst:.2f} ms at n={n_overhead}, "
          f"{planner.rounds_} rounds")  # fmt: skip
    return {"budgets": budgets, "quality": planner_q,
            "cost_share_for_95pct": None if need is None else need / big,
            "rules": rules, "worst_round_ms": worst}  # fmt: skip


# ------------------------------------------------------------------ train's choice of round settings


def _outcome_set(rewards: np.ndarray, codes: np.ndarray, prefix: str) -> Any:
    """Arrays as an `OutcomeSet` of one procedure (code < 0: a sample without an answer)."""
    from adaptive_router.outcomes import OutcomeSet

    return OutcomeSet.from_dicts(
        {"id": f"{prefix}-{i}", "prompt": f"{prefix} question {i}",
         "outcomes": {"m": [{"reward": float(r), **({"answer": str(c)} if c >= 0 else {})}
                            for r, c in zip(rewards[i], codes[i], strict=True)]}}
        for i in range(rewards.shape[0])
    )  # fmt: skip


def bimodal_votes(n: int, seed: int, s: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Vote data of the kind issue #15 describes: most questions nearly always right or nearly always wrong
    (``p ~ Beta(0.3, 0.1)``), wrong answers spread over 20 values (Dirichlet(3) odds per question); ESC with
    its published window 5 needs about 10 samples per query to reach self-consistency at 20 here."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.3, 0.1, n)
    odds = rng.dirichlet(np.ones(20) * 3.0, n)
    correct = rng.random((n, s)) < p[:, None]
    wrong = (rng.random((n, s, 1)) > np.cumsum(odds, axis=1)[:, None, :]).sum(axis=2) + 1
    return correct.astype(float), np.where(correct, 0, np.minimum(wrong, 20))


def _dominant_votes(
    n: int, seed: int, beta: tuple[float, float], share: tuple[float, float], values: int, s: int
) -> tuple[np.ndarray, np.ndarray]:
    """``p ~ Beta(*beta)``; a share ``U(*share)`` of each question's wrong samples on one wrong answer, the
    rest over ``values`` others."""
    rng = np.random.default_rng(seed)
    p = rng.beta(*beta, n)
    w = rng.uniform(*share, n)
    correct = rng.random((n, s)) < p[:, None]
    dominant = rng.random((n, s)) < w[:, None]
    wrong = np.where(dominant, 1, rng.integers(2, 2 + values, (n, s)))
    return correct.astype(float), np.where(correct, 0, wrong)


def systematic_votes(n: int, seed: int, s: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Vote data with systematic errors: ``p ~ Beta(0.2, 0.08)``, and each question's wrong samples mostly
    one wrong answer (a share ``U(0.5, 0.95)`` of them), the rest over 30 values. Two agreeing answers are
    then nearly always the plurality of many, which is where ESC with a window of 2 does well."""
    return _dominant_votes(n, seed, (0.2, 0.08), (0.5, 0.95), 30, s)


def scattered_votes(n: int, seed: int, s: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Vote data with scattered errors: ``p ~ Beta(0.7, 0.3)``, each question's wrong samples over 40
    values (a share ``U(0, 0.1)`` of them on one). Agreement is then nearly always right, and the questions
    worth many samples are the ones whose votes keep splitting."""
    return _dominant_votes(n, seed, (0.7, 0.3), (0.0, 0.1), 40, s)


def easy_votes(n: int, seed: int, s: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Vote data where most questions are easy (90%: ``p ~ U(0.85, 1)``; the rest ``p ~ U(0, 0.6)``) and
    wrong answers spread over 100 values: built so that ESC needs about what issue #15 reports for its
    40-sample reasoning set (3.6 samples per query to self-consistency at 20 with a window of 2, 8.6 with a
    window of 5; the issue: about 3.7 and about 10)."""
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(n) < 0.9, rng.uniform(0.85, 1.0, n), rng.uniform(0.0, 0.6, n))
    correct = rng.random((n, s)) < p[:, None]
    return correct.astype(float), np.where(correct, 0, rng.integers(1, 101, (n, s)))


def round_choice(datasets: dict[str, tuple[np.ndarray, np.ndarray]], seeds: int) -> dict[str, Any]:
    """``train``'s choice of round settings (`choose_rounds` on a train half) replayed on the test half,
    against the posterior ``Rounds()`` and the learned ``Rounds(model=...)`` alone, ESC and
    self-consistency: quality per budget and samples per query to self-consistency at 20."""
    from adaptive_router.app.round_choice import choose_rounds

    grid = [2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 12.0]
    out: dict[str, Any] = {}
    for label, (rewards, codes) in datasets.items():
        data = _outcome_set(rewards, codes, label)
        train, test = data.split(0.5, seed=0)
        s = rewards.shape[1]
        tr, te = test.rewards("m"), test.answers("m")
        assert te is not None
        res: dict[str, Any] = {}
        sc = expected_majority_vote(te[0], tr, s).mean(axis=0)
        target = float(sc[min(20, s) - 1])
        print(f"  {label}: {test.rewards('m').shape[0]} test queries; self-consistency at 1/3/8/20: "
              + "/".join(f"{sc[k - 1]:.4f}" for k in (1, 3, 8, 20) if k <= s))  # fmt: skip
        for reranker in ("vote", "verifier"):
            choice = choose_rounds(train, reranker, budgets=grid, max_k=s, unit_cost=1.0)
            assert choice is not None
            kind, codes_te = ("answers", te[0]) if reranker == "vote" else ("rewards", None)
            settings = {
                "posterior": [Rounds()] * len(grid),
                "learned": [Rounds(model=choice.model)] * len(grid),
                "chosen": [choice.at(b) for b in grid],
            }
            qs: dict[str, list[float]] = {
                name: [
                    replay_rounds(r.planner(kind, budget_per_query=b, max_k=s, prior=False), tr,
                                  answers=codes_te, seeds=seeds).quality
                    for r, b in zip(rs, grid, strict=True)
                ]
                for name, rs in settings.items()
            }  # fmt: skip
            entry: dict[str, Any] = {"budgets": grid, "choice": list(choice.choice), **qs}
            if reranker == "vote":
                entry["sc"] = {k: float(sc[k - 1]) for k in (2, 3, 4, 8, 20)}
                entry["to_sc20"] = {m: _reach(target, grid, q) for m, q in qs.items()}
                for w in (2, 5):
                    pts = [replay_rounds(EarlyStoppingSC(window=w, max_k=cap), tr, answers=te[0],
                                         seeds=seeds) for cap in (4, 6, 8, 10, 15, 20, 30, 40) if cap <= s]
                    spends, quals = [p.spend for p in pts], [p.quality for p in pts]
                    entry["to_sc20"][f"esc_w{w}"] = _reach(target, spends, quals)  # fmt: skip
            else:
                uni = pass_at_k(tr.sum(axis=1), np.full(tr.shape[0], s), np.arange(1, s + 1)).mean(axis=0)
                entry["uniform"] = [float(np.interp(b, np.arange(1, s + 1), uni)) for b in grid]
                entry["to_uniform_bo4"] = {m: _reach(float(uni[3]), grid, q) for m, q in qs.items()}
            res[reranker] = entry
            picks = " ".join(f"B={b:g}:{c}" for b, c in zip(grid, choice.choice, strict=True))
            print(f"  {label}, {reranker}: chosen {picks}")
            for name, q in qs.items():
                print(f"    {name:9s} " + " ".join(f"{x:.4f}" for x in q))
            reach_key = "to_sc20" if reranker == "vote" else "to_uniform_bo4"
            reach = ", ".join(f"{m} {'n/a' if v is None else f'{v:.2f}'}"
                              for m, v in entry[reach_key].items())  # fmt: skip
            print(f"    samples/query to {'SC@20' if reranker == 'vote' else 'uniform best-of-4'}: {reach}")
        out[label] = res
    return out


def mixed_stream(n: int, seed: int, s: int = 10, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Two kinds of question in one stream (``math``: ``p ~ Beta(1.2, 0.6)``; ``code``: 45% hopeless,
    ``p ~ Beta(0.2, 8)``, the rest ``Beta(1.5, 1)``), ``s`` verifier rewards each, and ``d`` features whose
    first tells the kinds apart (shifted by 2 standard deviations) and the rest are noise."""
    rng = np.random.default_rng(seed)
    math_ = rng.random(n) < 0.5
    hopeless = rng.random(n) < 0.45
    p = np.where(math_, rng.beta(1.2, 0.6, n), np.where(hopeless, rng.beta(0.2, 8, n), rng.beta(1.5, 1.0, n)))
    rewards = (rng.random((n, s)) < p[:, None]).astype(float)
    features = rng.normal(size=(n, d)).astype(np.float32)
    features[:, 0] += 2.0 * math_
    return rewards, features


def prior_choice(n: int, seeds: int) -> dict[str, Any]:
    """``train``'s choice of the rounds' prior weight where the probe falls back (a mixed stream whose kinds
    share their first-sample accuracy): a `CurveProbe` with ``train``'s head (linear, l2 = 1, 150
    neighbours) on the train half, `choose_rounds` with its held-out curves, the test half replayed."""
    from adaptive_router.app.round_choice import ProbePrior, choose_rounds
    from adaptive_router.probe import CurveProbe
    from adaptive_router.probe.training import outcome_labels

    (r_tr, x_tr), (r_te, x_te) = mixed_stream(n, 1), mixed_stream(n, 2)
    train = _outcome_set(r_tr, np.full(r_tr.shape, -1), "mixed")
    k = 8
    _, labels = outcome_labels(train, k, "auto")
    est = CurveProbe(max_k=k, budgets=(1, 2, 4), neighbors=150, hidden=0, l2=1.0, num_threads=2)
    est.fit(x_tr, labels)
    choice = choose_rounds(train, "verifier", budgets=[1.0, 2.0, 4.0], max_k=k, unit_cost=1.0,
                           prior=ProbePrior.of(est))  # fmt: skip
    assert choice is not None
    print(f"  probe on the train half: fallback {est.fallback_}, shrinkage {est.shrinkage_:g}; chosen prior "
          f"weight for rounds: {choice.prior_weight}")  # fmt: skip
    grid = [1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    uni = pass_at_k(r_te.sum(axis=1), np.full(n, r_te.shape[1]), np.arange(1, r_te.shape[1] + 1)).mean(axis=0)
    probe_own = est.predict_curves(x_te)["m"]
    chosen = est.predict_curves(x_te, shrinkage=choice.prior_weight)["m"]
    rows: dict[str, list[float]] = {
        "uniform": [float(np.interp(b, np.arange(1, uni.size + 1), uni)) for b in grid],
        "round_robin": [replay_rounds(lambda b=b: RoundRobinUnsolved(budget_per_query=b, max_k=k), r_te,
                                      seeds=seeds).quality for b in grid],
    }  # fmt: skip
    for name, prior in (("posterior, the probe's curves", probe_own), ("posterior, chosen weight", chosen)):
        rows[name] = [
            replay_rounds(Rounds().planner("rewards", budget_per_query=b, max_k=k, prior=True), r_te,
                          prior_curves=prior, seeds=seeds).quality
            for b in grid
        ]  # fmt: skip
    target = float(uni[3])
    out: dict[str, Any] = {"budgets": grid, "prior_weight": choice.prior_weight, "fallback": est.fallback_,
                           **rows, "savings_at_4": {}}  # fmt: skip
    for name, q in rows.items():
        reach = _reach(target, grid, q)
        out["savings_at_4"][name] = None if reach is None else 1.0 - reach / 4.0
        print(f"    {name:30s} " + " ".join(f"{x:.4f}" for x in q)
              + ("" if reach is None else f"  | uniform best-of-4 at {reach:.2f} ({1 - reach / 4:+.1%})"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="queries in the overhead window")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smaller replays")
    parser.add_argument("--arith", type=Path, default=Path("/tmp/data/arith40.jsonl"),
                        help="recorded samples with text (skipped when absent)")  # fmt: skip
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)}")  # fmt: skip
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"--only {args.only!r}: choose from {', '.join(SECTIONS)}")
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).random(1_000_000)
    sort_ms = min(timed(lambda: np.sort(x)) for _ in range(5))
    print(f"Machine reference: np.sort of 1,000,000 float64 takes {sort_ms:.1f} ms (best of 5)")
    out: dict[str, Any] = {"sort_1m_ms": sort_ms}
    if "overhead" in only:
        print(f"Overhead per round, n={args.n}, max_k=16, budget 4/query, 4 even rounds "
              f"(best of {args.repeat}):")  # fmt: skip
        out["overhead_ms"] = overhead(args.n, args.repeat, rng)
        print(f"Overhead per round, the router's defaults ({Rounds()!r}):")
        out["overhead_default_ms"] = overhead(args.n, args.repeat, rng, Rounds())
    n_rep, seeds = (1000, 4) if args.quick else (4000, 8)
    if "synthetic" in only:
        print(f"\nVerifier replay: {n_rep} queries x 16 samples, p ~ Beta(0.5, 0.7), {seeds} seeds:")
        out["verifier"] = verifier_replay(n_rep, seeds, rng)
        print(f"\nVote replay: {n_rep // 4} queries x 40 samples, {seeds} seeds:")
        out["votes"] = vote_replay(n_rep // 4, seeds, rng)
    if args.arith.is_file() and "arith" in only:
        print(f"\nRecorded Gemma-3-270M samples ({args.arith}): router defaults vs one-shot:")
        out["arith40"] = arith_replay(args.arith, 4 if args.quick else 16)
    if args.arith.is_file() and "baselines" in only:
        print(f"\nRecorded Gemma-3-270M samples ({args.arith}): the planner against sequential baselines:")
        out["arith40_baselines"] = arith_baselines(args.arith, 4 if args.quick else 16)
    answers_file = args.arith.with_name(args.arith.stem + "_answers.jsonl")
    if answers_file.is_file() and "defaults" in only:
        print(f"\nThe choice of Rounds() defaults on the train half of {answers_file}:")
        out["defaults_choice"] = defaults_choice(answers_file, 16 if args.quick else 64)
    if "cascade" in only:
        print("\nA cascade in rounds (synthetic; cheap 1 per sample, strong 20 per call):")
        out["cascade"] = cascade_replay(4 if args.quick else 16, args.n)
    if "choice" in only:
        sets = {"bimodal": bimodal_votes(2000, 0), "systematic": systematic_votes(2000, 0),
                "scattered": scattered_votes(2000, 0), "easy": easy_votes(2000, 0)}  # fmt: skip
        if args.arith.is_file():
            rewards, codes, _ = load_arith(args.arith)
            sets["arith40"] = (rewards, codes)
        print("\ntrain's choice of round settings (train half), replayed on the test half:")
        out["choice"] = round_choice(sets, 4 if args.quick else 16)
    if "prior" in only:
        print("\nThe rounds' prior, chosen by train where the probe falls back (a mixed stream, 2 x 2,000):")
        out["prior"] = prior_choice(2000, 4 if args.quick else 16)
    if "live" in only:
        print("\nLive wall time through AdaptiveRouter.abatch (fake model, 20 ms per request), k = 4:")
        out["live"] = {f"n{n}": live_wall_time(n, 0.020, 4, (None, 16)) for n in (8, 64)}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
