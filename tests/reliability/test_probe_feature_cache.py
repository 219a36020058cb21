"""The feature cache stays under its limit however many distinct queries go through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adaptive_router.probe.featurizer import TransformersFeaturizer


class _TinyFeaturizer(TransformersFeaturizer):
    """No model: two numbers per text, through the real caching `transform`."""

    def identity(self) -> dict[str, Any]:
        return {"featurizer_id": "tiny-fake", "revision": "0", "layers": [-1], "pooling": "mean",
                "max_length": 8}

    def _forward(self, texts: list[str]) -> np.ndarray:
        self.forwarded += len(texts)
        return np.array([[len(t), sum(map(ord, t)) % 97] for t in texts], dtype=np.float32)


def _files(folder: Path) -> list[Path]:
    return list(folder.rglob("*.npy"))


@pytest.mark.parametrize("limit", [{"cache_max_entries": 300}, {"cache_max_bytes": 50_000}])
def test_cache_stays_under_its_limit_over_10000_distinct_queries(tmp_path, limit) -> None:
    """Regression: one file per new text, forever (the cache had no limit)."""
    f = _TinyFeaturizer(model_path="unused", cache_dir=tmp_path, **limit)
    f.forwarded = 0
    hot = "the question everyone asks"
    for start in range(0, 10_000, 250):
        batch = [f"distinct query {i}" for i in range(start, start + 250)]
        f.transform([hot, *batch])
        files = _files(tmp_path)
        assert len(files) <= limit.get("cache_max_entries", 10**9)
        assert sum(p.stat().st_size for p in files) <= limit.get("cache_max_bytes", 10**12)
    assert f.forwarded == 10_001  # the hot query, read in every batch, was computed once and never evicted
    assert len(_files(tmp_path)) > 100  # the cache still caches

