"""train --ray's featurization and evaluate --ray's replays on a local two-CPU Ray instance: the same
numbers as one machine (bit for bit for the replays), rows in input order, identity kept."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="--ray needs Ray: pip install 'adaptive-router[ray]'")

from adaptive_router.allocation import EarlyStoppingSC, Replay, UniformRounds, replay_rounds  # noqa: E402
from adaptive_router.app.ray_cluster import ray_session  # noqa: E402
from adaptive_router.app.ray_evaluate import ReplayPool, replay_rounds_ray  # noqa: E402
from adaptive_router.app.ray_featurize import RayFeaturizer  # noqa: E402
from adaptive_router.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, at start-up
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
DRIVER_PID = os.getpid()


class HashFeaturizer:
    """A model-free featurizer: character statistics of each text (kept as its constructor arguments)."""

    def __init__(self, dim: int = 4, name: str = "hash") -> None:
        self.dim = dim
        self.name = name

    def identity(self):
        return {"featurizer_id": self.name, "dim": self.dim}

    def transform(self, texts):
        return np.array([[len(t) % (j + 2) + j * t.count("1") for j in range(self.dim)] for t in texts],
                        dtype=np.float32)  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    with ray_session(num_cpus=2) as info:
        yield info


def test_ray_featurizer_returns_the_rows_in_input_order_with_the_same_identity(cluster):
    texts = [f"{i} + {i * 7 % 13} =" for i in range(203)]
    base = HashFeaturizer(dim=5)
    sharded = RayFeaturizer(base, workers=2, batch_size=4)  # 32 texts a shard: seven shards
    np.testing.assert_array_equal(sharded.transform(texts), base.transform(texts))
    assert sharded.identity() == base.identity()


class ElsewhereDifferent(HashFeaturizer):
    """Another model on every other process: its identity names the process it runs in."""

    def identity(self):
        return {**super().identity(), "driver": os.getpid() == DRIVER_PID}


def test_ray_featurizer_refuses_a_node_whose_featurizer_differs(cluster):
    with pytest.raises(Exception, match="not the probe's"):
        RayFeaturizer(ElsewhereDifferent(), workers=1).transform(["a", "b"])
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        RayFeaturizer(HashFeaturizer(), workers=0).transform(["a"])


def test_replay_pool_scores_exactly_as_one_machine(cluster):
    rng = np.random.default_rng(0)
    true = np.sort(rng.random((500, 4)), axis=1)
    replay = Replay(true, costs=[1.0, 2.0, 3.0, 4.0])
    arrays = [true, true + rng.normal(0, 0.1, true.shape), np.sort(rng.random(true.shape), axis=1)]
    pairs = [(v, b) for b in np.linspace(1.0, 4.0, 9) for v in arrays]
    got = ReplayPool(workers=2).score(replay, pairs)
    want = [replay.score(v, b) for v, b in pairs]
    assert [(g.quality, g.spend, g.shares.tolist()) for g in got] == [
        (w.quality, w.spend, w.shares.tolist()) for w in want
    ]


def test_replay_rounds_ray_is_replay_rounds(cluster):
    rng = np.random.default_rng(1)
    rewards = (rng.random((60, 6)) < rng.random((60, 1))).astype(float)
    answers = np.where(rewards > 0, 0, rng.integers(1, 4, rewards.shape))
    for policy, kw in ((UniformRounds(k=3), {}), (EarlyStoppingSC(window=3, max_k=6), {"answers": answers})):
        want = replay_rounds(policy, rewards, seeds=11, **kw)
        got = replay_rounds_ray(policy, rewards, seeds=11, workers=2, **kw)
        assert (got.quality, got.quality_se, got.spend, got.spend_se, got.max_spend, got.rounds) == (
            want.quality, want.quality_se, want.spend, want.spend_se, want.max_spend, want.rounds
        )
        np.testing.assert_array_equal(got.per_seed_quality, want.per_seed_quality)


@pytest.mark.realmodel
def test_train_ray_featurizes_on_the_cluster_and_saves_the_same_featurizer(cluster, tmp_path):
    pytest.importorskip("torch")
    import json

    from typer.testing import CliRunner

    from adaptive_router.app.cli import app
    from adaptive_router.probe import Probe, get_featurizer

    texts = [f"{i} + {i * 7 % 13} = ?" * (1 + i % 5) for i in range(70)]
    feat = get_featurizer("minilm-l6", cache_dir=None)
    np.testing.assert_allclose(RayFeaturizer(feat, workers=2, batch_size=8).transform(texts),
                               feat.transform(texts), atol=1e-5)  # fmt: skip
    src = tmp_path / "o.jsonl"
    rng = np.random.default_rng(0)
    rows = [
        {"id": f"q{i}", "prompt": t,
         "outcomes": {"m": {"successes": int(rng.binomial(4, 0.1 + 0.8 * (i % 2))), "samples": 4}}}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", str(src), "--max-k", "4", "--hidden", "0"]
    for name, extra in (("here", []), ("ray", ["--ray", "--ray-workers", "2"])):
        got = CliRunner().invoke(app, [*args, "--out", str(tmp_path / name), *extra])
        assert got.exit_code == 0, got.output
    here, there = (json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("here", "ray"))
    assert here["featurizer"] == there["featurizer"]
    probe = Probe.load(tmp_path / "ray")
    assert type(probe.featurizer).__name__ == "TransformersFeaturizer"


def test_evaluate_ray_writes_the_report_a_single_node_run_writes(cluster, tmp_path):
    import json

    from typer.testing import CliRunner

    from adaptive_router.app.cli import app

    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        p = 0.05 + 0.9 * (i % 3) / 2
        samples = [
            {"reward": float(rng.random() < p), "answer": str(int(rng.integers(0, 3)))} for _ in range(8)
        ]
        rows.append({"id": f"q{i}", "prompt": f"q{i}", "outcomes": {"m": samples}})
    src = tmp_path / "o.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = {}
    for name, extra in (("here", []), ("ray", ["--ray", "--ray-workers", "2"])):
        out = tmp_path / f"{name}.json"
        args = ["evaluate", str(src), "--budgets", "1,2,4", "--max-k", "8", "--seeds", "4"]
        args += ["--json", str(out)]
        got = CliRunner().invoke(app, [*args, *extra])
        assert got.exit_code == 0, got.output
        reports[name] = json.loads(out.read_text())
    assert {"uniform", "oracle", "sequential", "esc"} <= set(reports["here"]["methods"])
    assert reports["ray"] == reports["here"]
