"""Ray scaling benchmark: ``label --ray`` and the replays of ``evaluate`` on 100,000 queries, 1 and 2 workers.

Label: a fake backend answers every request after a fixed latency (50 ms; a sleep, so it costs no CPU), one
sample per query, ``--concurrency`` requests in flight per worker. The ideal throughput is
``workers x concurrency / latency``; the figure is records per second from the first record to the last
(``steady``; the actor start-up before it is reported apart) and over the whole call (``overall``).

Evaluate: the one-shot replays an evaluation report is made of (uniform, five random seeds, adaptive and
oracle value arrays at every budget of the 41-point sweep plus the report's budgets, best-of-1..8), first
on this process, then sharded with ``ReplayPool``; and a sequential replay (``replay_rounds``, 16 seeds)
with ``replay_rounds_ray``. Every sharded score is checked to equal the single-node one.

Also measures the ceiling of the one ``OutcomeStore`` (responses it journals per second, in-process), the
part of ``label --ray`` that does not scale with machines, and prints the projection to N machines.

Run: ``.venv/bin/python benchmarks/ray_scale.py`` (``--queries``, ``--workers 1,2``, ``--concurrency``,
``--latency``, ``--skip-label``, ``--skip-evaluate``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from adaptive_router.allocation import Replay, UniformRounds, replay_rounds
from adaptive_router.app.labeling import Sample
from adaptive_router.app.ray_cluster import ray_session
from adaptive_router.app.ray_evaluate import ReplayPool, replay_rounds_ray
from adaptive_router.app.ray_label import label_tasks_ray
from adaptive_router.app.ray_store import OutcomeStore
from adaptive_router.app.tasks import Task


class FixedLatency:
    """The fake backend: the right answer after ``latency`` seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __call__(self, prompt: str) -> Sample:
        time.sleep(self.latency)
        return Sample(text=" 2\n", tokens=1)


def bench_label(n: int, workers: int, concurrency: int, latency: float, folder: Path) -> dict:
    tasks = [Task(id=f"q{i}", prompt=f"1 + 1 = ? #{i}", answer="2") for i in range(n)]
    out = folder / f"label-{workers}.jsonl"
    marks: list[tuple[float, int]] = []
    start = time.monotonic()
    summary = label_tasks_ray(
        tasks,
        lambda: FixedLatency(latency),
        out,
        samples=1,
        procedure="fake",
        concurrency=concurrency,
        workers=workers,
        keep_text=False,
        progress=lambda done, total: marks.append((time.monotonic() - start, done)),
    )
    total = time.monotonic() - start
    first = next(t for t, d in marks if d > 0)
    last = next(t for t, d in marks if d >= n)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [t.id for t in tasks], "the outcome file must hold every id once, in dataset order"
    ideal = workers * concurrency / latency
    steady = (n - next(d for t, d in marks if d > 0)) / max(last - first, 1e-9)
    return {
        "workers": workers,
        "concurrency": concurrency,
        "records": summary.written,
        "seconds": round(total, 2),
        "startup_seconds": round(first, 2),
        "steady_per_s": round(steady, 1),
        "overall_per_s": round(n / total, 1),
        "ideal_per_s": ideal,
        "steady_vs_ideal": round(steady / ideal, 3),
        "overall_vs_ideal": round(n / total / ideal, 3),
    }


def store_ceiling(n: int, batch: int, folder: Path) -> float:
    """Responses per second one OutcomeStore journals (in this process: its cost, without Ray's)."""
    store = OutcomeStore(str(folder / "store.jsonl"), "fake", [], {})
    start = time.perf_counter()
    for i in range(0, n, batch):
        responses = [(f"q{j}", " 2\n", 1) for j in range(i, min(n, i + batch))]
        records = [(f"q{j}", json.dumps({"id": f"q{j}"})) for j in range(i, min(n, i + batch))]
        store.commit("part-0", responses, records)
    seconds = time.perf_counter() - start
    store.close()
    return n / seconds


def replay_workload(n: int, m: int, rng: np.random.Generator) -> tuple[Replay, list, list]:
    """A best-of-1..m replay with the value arrays and budgets of one evaluation report."""
    p = rng.beta(0.6, 1.2, n)[:, None]
    true = 1.0 - (1.0 - p) ** np.arange(1, m + 1)[None, :]
    replay = Replay(true, costs=np.arange(1.0, m + 1))
    guess = np.clip(p + rng.normal(0, 0.15, p.shape), 0, 1)  # a probe's noisy success rates
    noisy = 1.0 - (1.0 - guess) ** np.arange(1, m + 1)[None, :]
    randoms = [np.cumsum(np.sort(rng.random((n, m)), axis=1)[:, ::-1], axis=1) for _ in range(5)]
    arrays = [np.tile(true.mean(axis=0), (n, 1)), *randoms, noisy, true]
    budgets = np.unique(np.concatenate([np.linspace(1.0, m, 41), [1.0, 2.0, 4.0]]))
    return replay, arrays, [float(b) for b in budgets]


def bench_evaluate(n: int, workers_list: list[int], rng: np.random.Generator) -> dict:
    replay, arrays, budgets = replay_workload(n, 8, rng)
    pairs = [(v, b) for v in arrays for b in budgets]
    start = time.perf_counter()
    want = [replay.score(v, b) for v, b in pairs]
    single = time.perf_counter() - start
    result: dict = {"queries": n, "replays": len(pairs), "single_node_seconds": round(single, 2), "pool": {}}
    for w in workers_list:
        start = time.perf_counter()
        got = ReplayPool(workers=w).score(replay, pairs)
        seconds = time.perf_counter() - start
        same = all(g.quality == s.quality and g.spend == s.spend for g, s in zip(got, want, strict=True))
        assert same, "a sharded replay differs from the single-node one"
        result["pool"][str(w)] = {"seconds": round(seconds, 2), "speedup": round(single / seconds, 2)}
    rewards = (rng.random((n, 8)) < rng.beta(0.6, 1.2, n)[:, None]).astype(float)
    start = time.perf_counter()
    want_rounds = replay_rounds(UniformRounds(k=4), rewards, seeds=16)
    result["rounds_single_seconds"] = round(time.perf_counter() - start, 2)
    result["rounds"] = {}
    for w in workers_list:
        start = time.perf_counter()
        got_rounds = replay_rounds_ray(UniformRounds(k=4), rewards, seeds=16, workers=w)
        seconds = time.perf_counter() - start
        assert (got_rounds.quality, got_rounds.quality_se) == (want_rounds.quality, want_rounds.quality_se)
        result["rounds"][str(w)] = {"seconds": round(seconds, 2)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--skip-label", action="store_true")
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args()
    workers_list = [int(w) for w in args.workers.split(",")]
    out: dict = {"queries": args.queries, "latency_s": args.latency, "label": {}, "evaluate": None}
    with tempfile.TemporaryDirectory() as tmp, ray_session(num_cpus=args.cpus):
        folder = Path(tmp)
        out["store_ceiling_responses_per_s"] = round(store_ceiling(200_000, args.concurrency, folder))
        if not args.skip_label:
            for w in workers_list:
                row = bench_label(args.queries, w, args.concurrency, args.latency, folder)
                out["label"][str(w)] = row
                print(
                    f"label --ray, {w} worker(s) x {args.concurrency} in flight, {args.latency * 1000:g} ms: "
                    f"{row['steady_per_s']:.0f} records/s steady ({row['steady_vs_ideal']:.0%} of "
                    f"{row['ideal_per_s']:.0f}), {row['overall_per_s']:.0f}/s overall "
                    f"({row['overall_vs_ideal']:.0%}), start-up {row['startup_seconds']:.1f} s, "
                    f"{row['seconds']:.0f} s in all",
                    flush=True,
                )
        if not args.skip_evaluate:
            ev = bench_evaluate(args.queries, workers_list, np.random.default_rng(0))
            out["evaluate"] = ev
            for w, row in ev["pool"].items():
                print(
                    f"evaluate replays ({ev['replays']} one-shot on {ev['queries']} queries): single node "
                    f"{ev['single_node_seconds']:.1f} s, ReplayPool {w} worker(s) {row['seconds']:.1f} s "
                    f"(x{row['speedup']:.2f}); sequential 16 seeds {ev['rounds_single_seconds']:.1f} s vs "
                    f"{ev['rounds'][w]['seconds']:.1f} s",
                    flush=True,
                )
    ceiling = out["store_ceiling_responses_per_s"]
    print(
        "projection to N machines: label scales with N x workers x concurrency / latency until the "
        f"backend's own limit or the one OutcomeStore ({ceiling:,} responses/s in-process, less Ray's "
        "per-commit cost; a commit carries every response of one round trip, so its rate grows with "
        "load); the merge at the end is one sequential pass over the file on the driver. The replays "
        "scale with N x cores (each replay is independent, arrays are shipped once per node), down to "
        "one replay's time; the report is assembled on the driver."
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
