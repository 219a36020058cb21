"""Probe throughput on CPU: featurizer queries/s for both embedded defaults, and the whole probe pipeline
(tokenize, length-sorted batches, forward, pooling, head, shrinkage) as a fraction of a bare batched forward
pass of the same model over the same pre-tokenized, length-sorted batches (so the ratio is the pipeline's
overhead, not a batching advantage).

Run: ``.venv/bin/python benchmarks/probe.py [--threads 2] [--n-minilm 256] [--n-gemma 64]``.
The feature cache is off here (every query is computed). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _queries(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ("apples", "train", "speed", "cost", "each", "total", "how", "many", "if", "she", "buys",
             "sells", "per", "hour", "minutes", "dollars", "more", "than", "twice", "half", "left")
    out = []
    for i in range(n):
        length = int(rng.integers(8, 60))
        body = " ".join(rng.choice(words, size=length))
        out.append(f"Q{i}: {body} {int(rng.integers(2, 500))} {int(rng.integers(2, 90))}?")
    return out


def _bare_forward(feat, texts: list[str]) -> float:
    """Seconds for model forward passes alone over the featurizer's own length-sorted batches."""
    import torch

    tok, model = feat._tokenizer, feat._model
    enc = tok(texts, truncation=True, max_length=int(feat.max_length))["input_ids"]
    order = np.argsort([len(e) for e in enc], kind="stable")[::-1]
    bs = int(feat.batch_size)
    batches = [tok.pad({"input_ids": [enc[i] for i in order[s : s + bs]]}, padding=True, return_tensors="pt")
               for s in range(0, len(order), bs)]
    t = time.perf_counter()
    with torch.inference_mode():
        for b in batches:
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    return time.perf_counter() - t


def _probe_for(feat, texts: list[str]):
    """A probe fitted on synthetic labels over these features (fallback off, so the head always runs)."""
    from adaptive_router.probe import CurveProbe, Probe

    X = feat.transform(texts)
    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-(X[:, 0] - X[:, 0].mean()) / (X[:, 0].std() + 1e-6)))
    y = {"default": (rng.binomial(8, p), np.full(len(texts), 8))}
    est = CurveProbe(max_k=8, budgets=(2, 4), n_folds=2, max_epochs=10, hidden=32, fallback="never",
                     n_bootstrap=100, num_threads=feat.num_threads).fit(X, y)
    return Probe(featurizer=feat, estimator=est)


def bench(name: str, n: int, threads: int, repeats: int) -> dict[str, float]:
    import torch

    from adaptive_router.probe import get_featurizer

    torch.set_num_threads(threads)
    feat = get_featurizer(name, cache_dir=None, num_threads=threads)
    texts = _queries(n)
    t = time.perf_counter()
    feat.transform(texts[:8])  # load + warm-up
    load_s = time.perf_counter() - t
    probe = _probe_for(feat, _queries(64, seed=1))
    feat_s, bare_s, pipe_s = [], [], []
    for _ in range(repeats):  # interleaved, best of `repeats`: the machine is shared
        t = time.perf_counter()
        feat.transform(texts)
        feat_s.append(time.perf_counter() - t)
        bare_s.append(_bare_forward(feat, texts))
        t = time.perf_counter()
        probe.predict_curves(texts)
        pipe_s.append(time.perf_counter() - t)
    res = {
        "featurizer_qps": n / min(feat_s),
        "bare_forward_qps": n / min(bare_s),
        "pipeline_qps": n / min(pipe_s),
        "load_s": load_s,
    }
    res["pipeline_over_bare"] = res["pipeline_qps"] / res["bare_forward_qps"]
    print(
        f"{name:>13}: featurizer {res['featurizer_qps']:.1f} q/s | bare forward "
        f"{res['bare_forward_qps']:.1f} q/s | probe pipeline {res['pipeline_qps']:.1f} q/s = "
        f"{res['pipeline_over_bare']:.2f} of bare | load+warm-up {load_s:.1f}s "
        f"({n} queries, {threads} threads, best of {repeats})"
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-minilm", type=int, default=256)
    ap.add_argument("--n-gemma", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out: dict[str, float] = {"threads": args.threads}
    for name, n in (("minilm-l6", args.n_minilm), ("gemma-3-270m", args.n_gemma)):
        res = bench(name, n, args.threads, args.repeats)
        key = name.replace("-", "_")
        out.update({f"{key}_{k}": round(v, 3) for k, v in res.items()})
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
