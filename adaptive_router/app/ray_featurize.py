"""``train --ray``: featurize a large training set on a Ray cluster, GPU workers where it has them.

:class:`RayFeaturizer` wraps any featurizer (``identity()`` and ``transform(texts)``, e.g. a
``TransformersFeaturizer`` or ``WithAnswerSignals``) and keeps its identity, so the probe trained on its
features records exactly the featurizer it wraps: the identity (model id, weights revision, layers,
pooling, max length) decides the model, never the cluster. ``transform`` shards the texts as a
``ray.data`` Dataset over an actor pool; each worker builds its own copy of the featurizer on its node (an
embedded model by name, so from that node's install; any other model folder by its path, which must exist
there), checks that the copy's identity is the one it was given, and calls the copy's public
``transform`` on its shard. Rows come back in input order.

Per device: a GPU worker (``gpus_per_worker > 0``) runs the model on CUDA (bf16) with ``gpu_batch_size``
texts per forward pass; a CPU worker on CPU (fp32) with the featurizer's own batch size and one torch thread
per reserved CPU. Workers keep no feature cache (the driver's is not filled either).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptive_router.app.ray_cluster import require_ray
from adaptive_router.errors import ConfigError

__all__ = ["DEFAULT_GPU_BATCH_SIZE", "FeaturizeWorker", "RayFeaturizer"]

DEFAULT_GPU_BATCH_SIZE = 256
"""Texts per forward pass on a GPU worker (a CPU worker keeps the featurizer's own, 32 by default)."""
_PASSES_PER_SHARD = 8


def _init_params(obj: Any) -> dict[str, Any]:
    """``obj``'s constructor arguments, read back from its attributes (scikit-learn's ``get_params``)."""
    names = [
        p.name
        for p in inspect.signature(type(obj).__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise ConfigError(
            f"cannot copy the featurizer {type(obj).__name__} to Ray workers: it does not keep its "
            f"constructor arguments {missing} as attributes"
        )
    return {n: getattr(obj, n) for n in names}


def _for_worker(featurizer: Any, overrides: Mapping[str, Any]) -> Any:
    """A fresh, unloaded copy of ``featurizer`` for a worker: ``overrides`` applied to the model featurizer.

    Runs on the worker, so an embedded model (``get_featurizer`` by name) resolves to that node's files.
    """
    from adaptive_router.probe import DEFAULT_FEATURIZERS, TransformersFeaturizer, get_featurizer

    if isinstance(featurizer, TransformersFeaturizer):
        params = {**_init_params(featurizer), **overrides, "cache_dir": None}
        if params.get("name") in DEFAULT_FEATURIZERS:
            name = params.pop("name")
            params.pop("model_path")
            return get_featurizer(name, **params)
        return TransformersFeaturizer(**params)
    params = _init_params(featurizer)  # e.g. WithAnswerSignals(base, signals): copy the model under it
    if params.get("base") is not None:
        params["base"] = _for_worker(params["base"], overrides)
    return type(featurizer)(**params)


class FeaturizeWorker:
    """One worker of the pool: its own copy of the featurizer, one shard of texts a call."""

    def __init__(self, featurizer: Any, overrides: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
        self._featurizer = _for_worker(featurizer, overrides)
        got = self._featurizer.identity()
        if _canonical(got) != _canonical(identity):
            raise ConfigError(
                f"the featurizer on this Ray node is not the probe's: identity {got} here, {dict(identity)} "
                "on the driver. Install the same model (and adaptive-router) on every node"
            )

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        features = np.asarray(self._featurizer.transform([str(t) for t in batch["text"]]), dtype=np.float32)
        return {"index": np.asarray(batch["index"]), "features": features}


def _canonical(identity: Mapping[str, Any]) -> str:
    import json

    return json.dumps(identity, sort_keys=True, default=str)


class RayFeaturizer:
    """A featurizer whose ``transform`` runs on the connected Ray cluster; its identity is the wrapped one's.

    Parameters
    ----------
    featurizer : Featurizer
        What to run; it is copied to every worker unloaded (its constructor arguments), never pickled with
        a loaded model.
    workers : int
        Size of the actor pool.
    gpus_per_worker : float
        GPUs reserved per worker; > 0 runs the model on CUDA, 0 on CPU.
    cpus_per_worker : float
        CPUs reserved per worker (and torch threads of a CPU worker).
    batch_size : int, optional
        Texts per forward pass (default: ``DEFAULT_GPU_BATCH_SIZE`` on GPU, the featurizer's own on CPU).

    Examples
    --------
    >>> from adaptive_router.probe import get_featurizer
    >>> sharded = RayFeaturizer(get_featurizer("minilm-l6"), workers=2)
    >>> sharded.identity()["featurizer_id"]
    'minilm-l6'
    >>> sharded.transform(["3 + 4 =", "12 + 30 ="]).shape      # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        featurizer: Any,
        *,
        workers: int = 1,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        batch_size: int | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.batch_size = batch_size

    def identity(self) -> dict[str, Any]:
        """The wrapped featurizer's identity: what a probe records, whatever ran it."""
        return dict(self.featurizer.identity())

    def _check(self) -> None:
        if not (hasattr(self.featurizer, "identity") and hasattr(self.featurizer, "transform")):
            raise ConfigError(f"featurizer must have identity() and transform(), got {self.featurizer!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")
        for name in ("gpus_per_worker", "cpus_per_worker"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")

    def _overrides(self) -> tuple[dict[str, Any], int]:
        """Settings of the workers' model featurizer, and texts per forward pass."""
        base = getattr(self.featurizer, "base", self.featurizer)
        own = int(getattr(base, "batch_size", 32) or 32)
        if self.gpus_per_worker > 0:
            per_pass = self.batch_size or DEFAULT_GPU_BATCH_SIZE
            return {"device": "cuda", "batch_size": per_pass}, per_pass
        per_pass = self.batch_size or own
        threads = max(1, int(self.cpus_per_worker))
        return {"device": "cpu", "batch_size": per_pass, "num_threads": threads}, per_pass

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Features of ``texts``, ``(n, d)`` float32, row i for ``texts[i]``, computed on the cluster."""
        self._check()
        if isinstance(texts, str):
            raise ConfigError("texts must be a sequence of strings, not one string; wrap it in a list")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ConfigError("texts must all be str")
        if not texts:
            return np.asarray(self.featurizer.transform([]), dtype=np.float32)
        ray = require_ray()
        overrides, per_pass = self._overrides()
        per_shard = per_pass * _PASSES_PER_SHARD
        rows = [{"index": i, "text": t} for i, t in enumerate(texts)]
        blocks = max(1, math.ceil(len(rows) / per_shard))
        shards = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            FeaturizeWorker,
            fn_constructor_args=(self.featurizer, overrides, self.identity()),
            batch_size=per_shard,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, blocks)),
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker,
        )
        index, parts = [], []
        for batch in shards.iter_batches(batch_size=None, batch_format="numpy"):
            index.append(np.asarray(batch["index"]))
            parts.append(np.asarray(batch["features"], dtype=np.float32))
        order = np.argsort(np.concatenate(index), kind="stable")
        features = np.concatenate(parts)[order]
        if features.shape[0] != len(texts):
            raise ConfigError(f"Ray returned {features.shape[0]} feature rows for {len(texts)} texts")
        return features

    def __repr__(self) -> str:
        return (
            f"RayFeaturizer({self.featurizer!r}, workers={self.workers}, "
            f"gpus_per_worker={self.gpus_per_worker:g})"
        )
