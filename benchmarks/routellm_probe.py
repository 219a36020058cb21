"""RouteLLM data (Mixtral = cheap, GPT-4 = expensive): GPT-4 share needed to reach 95% of GPT-4 accuracy.

Data: ``/work/shared/data/routellm`` (Apache-2.0, from lm-sys/RouteLLM), GSM8K (1,319 prompts) and MMLU
(14,042 prompts, 57 subjects); prompts listed in ``contaminated_prompts.jsonl`` are excluded.

Protocol: every prompt becomes an outcome record with one binary sample per model
(``{"successes": 0/1, "samples": 1}``); records are split half/half by a stable sha256 hash of the prompt
(``OutcomeSet.split(0.5, seed=0)``, ids are prompt hashes). A probe is trained on the first half with the
featurizer, head and neighbour weight chosen by `train_probe` on validation unless given (Beta head per
route, cross-fitted, shrinkage/fallback validated at the target budgets),
and evaluated on the other half: the routes are costed 1 (Mixtral) and 2 (GPT-4), so a budget of
``1 + s`` per query buys GPT-4 for a share ``s`` of the queries, and `allocate` gives it to the queries with
the largest predicted gain (scored by `adaptive_router.allocation.Replay`, the replay ``evaluate`` uses, so
prompts the probe cannot tell apart share GPT-4 in expectation). Sweeping s from 0 to 1 gives accuracy vs
GPT-4 share; the share reaching 95% of GPT-4's accuracy on the test half is interpolated linearly between
sweep points. Random routing and a perfect router (oracle allocation on the true outcomes) are computed on
the same half.

Cascade (``--cascade signals`` or ``--cascade query+signals``, GSM8K only): Mixtral always answers first and
the probe reads the question *and* Mixtral's recorded answer (``join_draft``) through `WithAnswerSignals`
(draft checks alone, or with the MiniLM query embedding). Every query then pays for the draft; the routes
keep their costs 1 and 2, since with two routes the GPT-4 share a method needs does not depend on them.
``--cascade auto`` gives `train_probe` the drafted prompts with ``featurizer="auto"``: it finds the drafts and
chooses on validation among the draft checks alone, each featurizer and each featurizer with the checks (what
``adaptive-router train`` does by default).

Run: ``.venv/bin/python benchmarks/routellm_probe.py [--datasets gsm8k mmlu] [--featurizer auto]
[--seeds 0 1 2] [--cascade none|signals|query+signals|auto] [--neighbors K] [--hidden H] [--l2 X]
[--layers L ...] [--pooling mean]``.
Features are cached under ``$ADAPTIVE_ROUTER_CACHE/features`` (MMLU takes minutes the first time on CPU).
The last line is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from adaptive_router.allocation import Replay
from adaptive_router.outcomes import OutcomeSet
from adaptive_router.prompts.text import join_draft

DATA = Path(os.environ.get("ROUTELLM_DATA", "/work/shared/data/routellm"))
CHEAP, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
ROUTELLM_REPORTED = {"gsm8k": 0.65, "mmlu": 0.55}
TARGET = {"gsm8k": 0.45, "mmlu": 0.40}


def load(dataset: str, cascade: bool = False) -> tuple[OutcomeSet, int]:
    csv.field_size_limit(1 << 30)
    files = (
        [DATA / "gsm8k" / "gsm8k_responses.csv"]
        if dataset == "gsm8k"
        else [Path(p) for p in sorted(glob.glob(str(DATA / "mmlu" / "responses" / "*.csv")))]
    )
    contaminated = set()
    with open(DATA / dataset / "contaminated_prompts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                contaminated.add(json.loads(line)["eval_prompt"].strip())
    records, seen, excluded = [], set(), 0
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                prompt = row["prompt"]
                if prompt.strip() in contaminated:
                    excluded += 1
                    continue
                pid = hashlib.sha256(prompt.encode()).hexdigest()[:20]
                while pid in seen:  # a few MMLU prompts repeat across subjects
                    pid = hashlib.sha256(pid.encode()).hexdigest()[:20]
                seen.add(pid)
                if cascade:
                    prompt = join_draft(prompt, row[f"{CHEAP}_response"])
                outcomes = {
                    "mixtral": {"successes": int(row[CHEAP] == "True"), "samples": 1},
                    "gpt4": {"successes": int(row[STRONG] == "True"), "samples": 1},
                }
                records.append(
                    {"id": pid, "prompt": prompt, "outcomes": outcomes, "cost": {"mixtral": 1.0, "gpt4": 2.0}}
                )
    return OutcomeSet.from_dicts(records), excluded


def share_curve(scores: np.ndarray, true_values: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Accuracy at each GPT-4 share when GPT-4 goes to the largest predicted gains (values [cheap, strong]).

    Scored by the library's one replay (`Replay`: costs 1 and 2, budget ``1 + k / n`` per query buys GPT-4
    for k queries); gains are made positive (ranking kept) so the budget binds at every share, and queries
    with equal scores are exchangeable (scored by the expectation over which of them get GPT-4).
    """
    n = len(true_values)
    replay = Replay(true_values, np.array([1.0, 2.0]))
    vals = np.stack([np.zeros(n), scores - scores.min() + 1e-9], axis=1)
    return np.asarray([replay.score(vals, 1.0 + round(s * n) / n).quality for s in shares])


def share_at(target: float, shares: np.ndarray, acc: np.ndarray) -> float:
    """Smallest share whose (linearly interpolated) accuracy reaches ``target``."""
    above = np.flatnonzero(acc >= target - 1e-12)
    if not len(above):
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(shares[0])
    s0, s1, a0, a1 = shares[i - 1], shares[i], acc[i - 1], acc[i]
    return float(s0 + (target - a0) * (s1 - s0) / (a1 - a0)) if a1 > a0 else float(s1)


GSM8K_FINAL_ANSWER = r"####\s*(.+)"


def make_featurizer(name: str, cascade: str, settings: dict[str, object]) -> object:
    """The featurizer (`settings`: ``layers``/``pooling`` overrides), wrapped in `WithAnswerSignals` for the
    cascade variants."""
    from adaptive_router.probe import AnswerSignals, WithAnswerSignals, get_featurizer

    if cascade in ("none", "auto"):
        if name == "auto":  # train_probe chooses among its candidate featurizers on validation
            if settings:
                raise SystemExit("--layers / --pooling need one named --featurizer, not auto")
            return "auto"
        return get_featurizer(name, **settings)
    base = get_featurizer(name, **settings) if cascade == "query+signals" else None
    return WithAnswerSignals(base, AnswerSignals(final_answer=GSM8K_FINAL_ANSWER))


def run(
    dataset: str, featurizer: object, seed: int, cascade: str = "none", probe_params: dict | None = None
) -> dict[str, float]:
    from adaptive_router.probe import train_probe

    data, excluded = load(dataset, cascade=cascade != "none")
    train, test = data.split(0.5, seed=seed)
    print(
        f"\n== {dataset}: {len(data)} prompts ({excluded} contaminated excluded); "
        f"split by prompt hash: {len(train)} train / {len(test)} test"
    )
    t0 = time.time()
    probe = train_probe(
        train,
        featurizer=featurizer,  # type: ignore[arg-type]
        max_k=1,
        budgets=(1.2, 1.4, 1.6),
        costs={"mixtral": 1.0, "gpt4": 2.0},
        seed=seed,
        **(probe_params or {}),
        num_threads=2,
    )
    print(
        f"trained in {time.time() - t0:.0f}s; fallback={probe.fallback_active} "
        f"({probe.report['fallback_reason']}); shrinkage w={probe.shrinkage:g}; "
        f"neighbour weight {probe.report.get('neighbor_weight', 0.0):g}; "
        f"chosen: {probe.report.get('selection', {}).get('chosen')}"
    )
    curves = probe.predict_curves(test.texts())
    tv = np.stack([test.mean_rewards("mixtral"), test.mean_rewards("gpt4")], axis=1)
    pred_gain = curves["gpt4"][:, 0] - curves["mixtral"][:, 0]
    shares = np.linspace(0.0, 1.0, 201)
    acc_probe = share_curve(pred_gain, tv, shares)
    acc_oracle = share_curve(tv[:, 1] - tv[:, 0], tv, shares)
    acc_cheap, acc_strong = tv[:, 0].mean(), tv[:, 1].mean()
    target = 0.95 * acc_strong
    random_share = (target - acc_cheap) / (acc_strong - acc_cheap)
    res = {
        "n_train": len(train),
        "n_test": len(test),
        "acc_mixtral": float(acc_cheap),
        "acc_gpt4": float(acc_strong),
        "share_probe": share_at(target, shares, acc_probe),
        "share_random": float(max(0.0, random_share)),
        "share_perfect": share_at(target, shares, acc_oracle),
        "fallback": bool(probe.fallback_active),
        "shrinkage": probe.shrinkage,
        "val_gain_spearman": float(probe.report.get("gain_spearman", float("nan"))),
        "chosen": probe.report.get("selection", {}).get("chosen"),
    }
    from adaptive_router.probe import spearman

    res["test_gain_spearman"] = spearman(pred_gain, tv[:, 1] - tv[:, 0])
    for s in (0.2, 0.4, 0.6):
        j = round(s * 200)
        print(
            f"  GPT-4 share {s:.0%}: probe acc {acc_probe[j]:.4f}  random "
            f"{acc_cheap + s * (acc_strong - acc_cheap):.4f}  perfect {acc_oracle[j]:.4f}"
        )
    print(f"  Mixtral {acc_cheap:.4f}, GPT-4 {acc_strong:.4f}, target 95% = {target:.4f}")
    print(
        f"  GPT-4 share to reach 95% of GPT-4 accuracy: probe {res['share_probe']:.1%} | random "
        f"{res['share_random']:.1%} | perfect {res['share_perfect']:.1%} | RouteLLM reported "
        f"~{ROUTELLM_REPORTED[dataset]:.0%} | goal <= {TARGET[dataset]:.0%}"
    )
    print(f"  gain Spearman (test, predicted vs true gpt4-mixtral): {res['test_gain_spearman']:.3f}")
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["gsm8k", "mmlu"], choices=["gsm8k", "mmlu"])
    ap.add_argument("--featurizer", default="auto", help="auto (train_probe chooses), or one featurizer")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cascade", default="none", choices=["none", "signals", "query+signals", "auto"])
    ap.add_argument("--neighbors", type=int, default=None,
                    help="CurveProbe(neighbors=k): blend in kNN curves (default: train_probe's, 150)")
    ap.add_argument("--hidden", type=int, default=None, help="CurveProbe hidden units (0: linear head)")
    ap.add_argument("--weight-decay", type=float, default=None, help="CurveProbe weight decay")
    ap.add_argument("--l2", type=float, default=None, help="CurveProbe ridge penalty on the head's weights")
    ap.add_argument("--layers", type=int, nargs="+", default=None, help="hidden layers (featurizer default)")
    ap.add_argument("--pooling", default=None, choices=["last", "mean"])
    args = ap.parse_args(argv)
    probe_params: dict[str, object] = {}
    if args.neighbors is not None:
        probe_params["neighbors"] = args.neighbors
    if args.hidden is not None:
        probe_params["hidden"] = args.hidden
    if args.weight_decay is not None:
        probe_params["weight_decay"] = args.weight_decay
    if args.l2 is not None:
        probe_params["l2"] = args.l2
    settings: dict[str, object] = {}
    if args.layers is not None:
        settings["layers"] = tuple(args.layers)
    if args.pooling is not None:
        settings["pooling"] = args.pooling
    if args.cascade != "none" and args.datasets != ["gsm8k"]:
        ap.error("--cascade needs Mixtral's answers, which only the GSM8K file keeps: add --datasets gsm8k")
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
    out: dict[str, object] = {
        "featurizer": args.featurizer,
        "featurizer_settings": {
            k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
        },
        "cascade": args.cascade,
        "probe_params": probe_params,
        "seeds": args.seeds,
    }
    featurizer = make_featurizer(args.featurizer, args.cascade, settings)  # loaded once, reused by every seed
    for d in args.datasets:
        runs = [run(d, featurizer, seed, args.cascade, probe_params) for seed in args.seeds]
        for key in ("share_probe", "share_random", "share_perfect"):
            values = [r[key] for r in runs]
            out[f"{d}_{key}"] = float(np.mean(values))
            out[f"{d}_{key}_per_seed"] = values
        per_seed = ", ".join(f"{r['share_probe']:.1%}" for r in runs)
        print(
            f"\n{d}: GPT-4 share over seeds {args.seeds}: probe {out[f'{d}_share_probe']:.1%} "
            f"(per seed {per_seed}), random {out[f'{d}_share_random']:.1%}, "
            f"perfect {out[f'{d}_share_perfect']:.1%}"
        )
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
