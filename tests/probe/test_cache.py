"""Tests for adaptive_router.probe.cache: a bounded on-disk feature cache."""

from __future__ import annotations

import os

import numpy as np
import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.probe.cache import FeatureCache


def _key(i: int) -> str:
    return f"{i:064x}"


def test_least_recently_used_entries_go_first(tmp_path) -> None:
    cache = FeatureCache(tmp_path, max_entries=3)
    for i in range(3):
        cache.put(_key(i), np.full(2, i, dtype=np.float32))
        os.utime(cache.path(_key(i)), (1000 + i, 1000 + i))  # distinct, increasing times
    assert cache.get(_key(0)) is not None  # now the most recently used
    cache.put(_key(3), np.zeros(2, dtype=np.float32))
    assert cache.get(_key(1)) is None and cache.get(_key(0)) is not None and len(cache) == 3


def test_byte_limit_and_a_fresh_process_sees_the_files(tmp_path) -> None:
    cache = FeatureCache(tmp_path, max_bytes=2000)
    for i in range(20):
        cache.put(_key(i), np.zeros(64, dtype=np.float32))  # 384 bytes on disk each
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*.npy"))
    assert on_disk <= 2000 and cache.nbytes == on_disk
    other = FeatureCache(tmp_path, max_bytes=2000)  # another process: counts what is already there
    assert len(other) == len(cache) and other.nbytes == on_disk


def test_unreadable_entries_are_misses_and_limits_are_checked(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put(_key(1), np.ones(3, dtype=np.float32))
    cache.path(_key(1)).write_bytes(b"garbage")
    assert cache.get(_key(1)) is None and cache.get(_key(2)) is None
    with pytest.raises(ConfigError, match="max_entries must be a positive integer or None"):
        FeatureCache(tmp_path, max_entries=0)
    with pytest.raises(ConfigError, match="rescan_every must be a positive integer"):
        FeatureCache(tmp_path, rescan_every=0)
