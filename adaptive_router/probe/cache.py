"""`FeatureCache`: features on disk, one ``.npy`` per text, bounded in bytes and entries (numpy only).

A featurizer keys each text's feature vector by a content hash (featurizer identity + text) and keeps it in
``<folder>/<key[:2]>/<key>.npy``. The cache never grows past its limits: after every write the least
recently used entries (by modification time, which a read refreshes) are deleted until both
``max_bytes`` and ``max_entries`` hold again. Several processes may share a folder; each one counts the files
it found when it first used the cache, the ones it wrote or read since, and rescans the folder every
``rescan_every`` writes, so what the others added is counted (and evicted) too.

Examples
--------
>>> import tempfile, numpy as np
>>> cache = FeatureCache(tempfile.mkdtemp(), max_entries=2)
>>> for key in ("aa01", "aa02", "aa03"):
...     cache.put(key, np.zeros(4, dtype=np.float32))
>>> len(cache), cache.get("aa01") is None, cache.get("aa03").shape
(2, True, (4,))
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from adaptive_router.errors import ConfigError

__all__ = ["DEFAULT_CACHE_MAX_BYTES", "FeatureCache"]

DEFAULT_CACHE_MAX_BYTES = 512 * 2**20
"""Default size limit of a feature cache: 512 MiB (about 300,000 MiniLM vectors)."""


class FeatureCache:
    """A size-limited on-disk cache of feature vectors (see the module docstring).

    Parameters
    ----------
    folder : str or Path
        Where the ``.npy`` files live (created on the first write).
    max_bytes : int or None, default DEFAULT_CACHE_MAX_BYTES
        Total size of the files; None for no byte limit.
    max_entries : int or None, default None
        Number of files; None for no entry limit.
    rescan_every : int, default 1024
        Writes between rescans of the folder (to count files other processes wrote).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        max_bytes: int | None = DEFAULT_CACHE_MAX_BYTES,
        max_entries: int | None = None,
        rescan_every: int = 1024,
    ) -> None:
        for name, value in (("max_bytes", max_bytes), ("max_entries", max_entries)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
        if isinstance(rescan_every, bool) or not isinstance(rescan_every, int) or rescan_every < 1:
            raise ConfigError(f"rescan_every must be a positive integer, got {rescan_every!r}")
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.rescan_every = rescan_every
        self._entries: OrderedDict[str, int] | None = None  # key -> bytes, least recently used first
        self._bytes = 0
        self._writes = 0

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.folder / key[:2] / f"{key}.npy"

    def __len__(self) -> int:
        return len(self._index())

    @property
    def nbytes(self) -> int:
        """Total size of the entries this process knows of."""
        self._index()
        return self._bytes

    def get(self, key: str) -> np.ndarray | None:
        """The vector stored under ``key`` (and it becomes the most recently used), or None."""
        path = self.path(key)
        try:
            vec = np.load(path, allow_pickle=False)
            os.utime(path)
        except FileNotFoundError:
            self._forget(key)
            return None
        except (OSError, ValueError):
            return None  # unreadable entry: the caller recomputes and overwrites it
        self._remember(key, path)
        return np.asarray(vec)

    def put(self, key: str, vec: np.ndarray) -> None:
        """Store ``vec`` under ``key`` (atomically), then evict down to the limits."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(vec), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._writes += 1
        if self._writes % self.rescan_every == 0:
            self._entries = None  # count what other processes wrote too
        self._remember(key, path)
        self._evict()

    # ------------------------------------------------------------------ bookkeeping
    def _index(self) -> OrderedDict[str, int]:
        if self._entries is None:
            found: list[tuple[float, str, int]] = []
            if self.folder.is_dir():
                for sub in os.scandir(self.folder):
                    if not sub.is_dir():
                        continue
                    for entry in os.scandir(sub.path):
                        if entry.name.endswith(".npy"):
                            try:
                                st = entry.stat()
                            except FileNotFoundError:
                                continue
                            found.append((st.st_mtime, entry.name[:-4], st.st_size))
            found.sort()
            self._entries = OrderedDict((key, size) for _, key, size in found)
            self._bytes = sum(size for _, _, size in found)
        return self._entries

    def _remember(self, key: str, path: Path) -> None:
        entries = self._index()
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self._forget(key)
            return
        self._bytes += size - entries.pop(key, 0)
        entries[key] = size

    def _forget(self, key: str) -> None:
        entries = self._index()
        self._bytes -= entries.pop(key, 0)

    def _over(self) -> bool:
        entries = self._index()
        return bool(
            (self.max_bytes is not None and self._bytes > self.max_bytes)
            or (self.max_entries is not None and len(entries) > self.max_entries)
        )

    def _evict(self) -> None:
        entries = self._index()
        while entries and self._over():
            key, size = entries.popitem(last=False)
            self._bytes -= size
            self.path(key).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return (f"FeatureCache(folder={str(self.folder)!r}, max_bytes={self.max_bytes!r}, "
                f"max_entries={self.max_entries!r})")
