"""Where ``label --ray`` keeps what it paid for: one writer actor, a journal, outcome parts, the merge.

:class:`OutcomeStore` is a Ray actor pinned to the driver's node, the one writer of every file (so no
cluster needs a shared filesystem):

- each response is appended to the journal ``<out>.pending`` (the single-node journal, the same lines); a
  worker's :class:`ShardCommits` sends every response that arrived during one round trip in one commit
  (group commit), always before the records scored from them;
- each finished record is appended to its shard's part ``<out>.parts/part-<first index>.jsonl``;
- it remembers the journalled responses of unfinished tasks, so a shard that Ray retries after its worker
  died requests only the samples still missing, and it never writes an id twice.

:func:`merge_parts` folds the parts into ``out`` in dataset order, atomically, and removes them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptive_router.app.ray_cluster import ClusterError, require_ray
from adaptive_router.app.resume import completed_ids, journal_path, jsonl_lines
from adaptive_router.app.sampling import Sample

__all__ = ["OutcomeStore", "ShardCommits", "merge_parts", "parts_dir"]


def parts_dir(out: str | Path) -> Path:
    """Where ``label --ray`` keeps the outcome parts of ``out`` until they are merged into it.

    Examples
    --------
    >>> parts_dir("runs/outcomes.jsonl").as_posix()
    'runs/outcomes.jsonl.parts'
    """
    out = Path(out)
    return out.with_name(out.name + ".parts")


class OutcomeStore:
    """The one writer of ``out``'s journal and parts (a Ray actor on the driver's node).

    ``done`` ids are never written again; ``have`` holds the journalled responses of unfinished tasks.
    It is a plain class (``ray.remote`` makes it the actor), so it runs in-process as well.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "o.jsonl"
    >>> store = OutcomeStore(str(out), "m", done=["a"], have={})
    >>> store.commit("part-000000000", [("b", " 7", 1)], [("a", "{}"), ("b", '{"id": "b"}')])
    False
    >>> store.claim(["a", "b", "c"]), store.close()        # "a" was done: its second record was dropped
    ((False, ['a', 'b'], {}), (1, 1, 0))
    """

    def __init__(self, out: str, procedure: str, done: Sequence[str], have: Mapping[str, list[Any]]) -> None:
        self._procedure, self._parts = procedure, parts_dir(out)
        self._parts.mkdir(parents=True, exist_ok=True)
        self._journal = journal_path(out).open("a", encoding="utf-8")
        self._handles: dict[str, Any] = {}
        self._done, self._have = set(done), {k: list(v) for k, v in have.items()}
        self._stopped, self.written, self.responses = False, 0, 0

    def claim(self, ids: Sequence[str]) -> tuple[bool, list[str], dict[str, list[Any]]]:
        """``(stopped, done ids, {id: journalled (text, tokens)})`` of one shard, as it starts."""
        done = [i for i in ids if i in self._done]
        return self._stopped, done, {i: self._have[i] for i in ids if i in self._have and i not in self._done}

    def commit(self, shard: str, responses: Sequence[tuple[str, str, int]], records: Sequence[Any]) -> bool:
        """Journal ``responses``, then append new ``(id, line)`` records to ``shard``'s part; ``stopped``."""
        for tid, text, tokens in responses:
            line = {"id": tid, "procedure": self._procedure, "text": text, "tokens": tokens}
            self._journal.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._have.setdefault(tid, []).append((text, tokens))
        if responses:
            self._journal.flush()
            self.responses += len(responses)
        fresh = [(tid, line) for tid, line in records if tid not in self._done]
        if fresh:
            if shard not in self._handles:
                self._handles[shard] = (self._parts / f"{shard}.jsonl").open("a", encoding="utf-8")
            fh = self._handles[shard]
            for tid, line in fresh:
                fh.write(line + "\n")
                self._done.add(tid)
                self._have.pop(tid, None)
            fh.flush()
            self.written += len(fresh)
        return self._stopped

    def stop(self) -> None:
        """Ctrl-C on the driver: every worker stops sending at its next commit."""
        self._stopped = True

    def progress(self) -> tuple[int, int, int]:
        """``(records written, responses journalled, responses of unfinished tasks kept)`` so far."""
        return self.written, self.responses, sum(len(v) for v in self._have.values())

    def close(self) -> tuple[int, int, int]:
        """Close every file; the final :meth:`progress`."""
        for fh in [self._journal, *self._handles.values()]:
            fh.close()
        self._handles.clear()
        return self.progress()


class ShardCommits:
    """Group commit of one shard's responses and records to the store, in arrival order.

    :meth:`keep` and :meth:`record` only queue; one thread sends everything queued since its last commit in
    one ``store.commit`` call (responses journalled before records), so a record is never written before
    the responses it was scored from, and a request slot is free again as soon as its response arrives.
    What a killed worker loses is what it had not committed yet: the responses of one round trip to the
    store (milliseconds), as a single-node run killed between a response and its journal line would. Idle,
    the thread still asks the store every half second whether the run is stopping (:attr:`stopped`).
    """

    def __init__(self, store: Any, shard: str, *, interval: float = 0.0) -> None:
        self._store, self._shard, self._interval = store, shard, interval
        self._cv = threading.Condition()
        self._responses: list[tuple[str, str, int]] = []
        self._records: list[tuple[str, str]] = []
        self.stopped, self._closing = False, False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"commit-{shard}")
        self._thread.start()

    def keep(self, tid: str, sample: Sample) -> None:
        """Queue one response for the journal (raises ClusterError once the store is unreachable)."""
        if self._error is not None:
            raise ClusterError(f"cannot journal a response: {self._error}")
        with self._cv:
            self._responses.append((tid, sample.text, sample.tokens))
            self._cv.notify()

    def record(self, tid: str, line: str) -> None:
        """Queue one finished record (its line of JSON), behind the responses it was scored from."""
        with self._cv:
            self._records.append((tid, line))
            self._cv.notify()

    def _run(self) -> None:
        ray = require_ray()
        while True:
            with self._cv:
                if not (self._responses or self._records or self._closing):
                    self._cv.wait(timeout=0.5)
                responses, records = self._responses, self._records
                self._responses, self._records = [], []
                last = self._closing and not responses and not records
            sent = time.monotonic()
            try:
                stopped = ray.get(self._store.commit.remote(self._shard, responses, records))
            except Exception as exc:  # the store (the driver) is gone: nothing more can be kept
                self._error = exc
                return
            self.stopped = self.stopped or stopped
            if last:
                return
            pause = self._interval - (time.monotonic() - sent)
            if pause > 0 and not self._closing:
                time.sleep(pause)  # let more arrive: fewer, larger commits

    def close(self) -> None:
        """Commit everything queued and stop; raises ClusterError if the store could not be reached."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join()
        if self._error is not None:
            raise ClusterError(f"cannot commit to the outcome store: {self._error}")


def merge_parts(out: str | Path, order: Sequence[str]) -> int:
    """Merge ``out``'s parts into ``out`` in dataset ``order``, atomically; remove them; records merged.

    Each id is written once (``out``'s own line first, then the parts' in name order); ids not in ``order``
    come first, in their order. Without parts ``out`` is left as it is.
    """
    out, parts = Path(out), parts_dir(out)
    files = sorted(parts.glob("part-*.jsonl")) if parts.is_dir() else []
    if not files:
        if parts.is_dir():
            parts.rmdir()
        return 0
    lines: dict[str, str] = {}
    for path in [out, *files]:
        for _, raw in jsonl_lines(path):
            lines.setdefault(str(json.loads(raw)["id"]), raw)
    before = len(completed_ids(out)) if out.exists() else 0
    position = {tid: i for i, tid in enumerate(order)}
    foreign = [tid for tid in lines if tid not in position]
    ordered = foreign + sorted((tid for tid in lines if tid in position), key=position.__getitem__)
    tmp = out.with_name(out.name + ".merging")
    with tmp.open("w", encoding="utf-8") as fh:
        for tid in ordered:
            fh.write(lines[tid] + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    for path in files:
        path.unlink()
    parts.rmdir()
    return len(lines) - before


