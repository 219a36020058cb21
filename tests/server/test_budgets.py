"""Tests for adaptive_router.server.budgets: reserve before spending, settle after, never exceed."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from adaptive_router.server.budgets import BudgetExhaustedError, MemoryBudgets, SqliteBudgets


def _stores(tmp_path):
    return [MemoryBudgets(limit=lambda k: 10.0), SqliteBudgets(tmp_path / "state.db", limit=lambda k: 10.0)]


@pytest.mark.parametrize("kind", [0, 1])
def test_reserve_settle_and_refuse(tmp_path, kind):
    store = _stores(tmp_path)[kind]
    first = store.reserve("a", [8.0, 4.0])
    assert first.amount == 8.0
    assert store.reserve("a", [8.0, 2.0]).amount == 2.0  # 2 of 10 left while 8 are reserved
    with pytest.raises(BudgetExhaustedError, match="key 'a' has 0 of its 10 units left") as info:
        store.reserve("a", [1.0])
    assert info.value.needed == 1.0
    state = store.settle(first, spent=3.0)
    assert (state.spent, state.reserved, state.remaining) == (3.0, 2.0, 5.0)
    store.settle(first, spent=3.0)  # settling twice changes nothing
    assert store.snapshot()["a"].spent == 3.0
    over = store.reserve("b", [1.0])
    assert store.settle(over, spent=50.0).spent == 1.0  # never more than reserved
    store.close()


def test_threads_never_overspend():
    store = MemoryBudgets(limit=lambda k: 25.0)
    granted: list[float] = []

    def worker() -> None:
        for _ in range(20):
            try:
                r = store.reserve("k", [3.0, 1.0])
            except BudgetExhaustedError:
                continue
            granted.append(r.amount)
            store.settle(r, r.amount)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == store.snapshot()["k"].spent <= 25.0
    assert store.snapshot()["k"].spent >= 24.0  # it did fill up


def _spend_in_process(path: str, out: multiprocessing.Queue) -> None:
    store = SqliteBudgets(path, limit=lambda k: 30.0)
    total = 0.0
    for _ in range(40):
        try:
            r = store.reserve("shared", [2.0])
        except BudgetExhaustedError:
            continue
        store.settle(r, 2.0)
        total += 2.0
    store.close()
    out.put(total)


def test_processes_share_one_sqlite_budget(tmp_path):
    path = str(tmp_path / "state.db")
    SqliteBudgets(path, limit=lambda k: 30.0).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_spend_in_process, args=(path, out)) for _ in range(3)]
    for p in procs:
        p.start()
    totals = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(totals) == 30.0  # 3 processes x 40 tries at 2 units: exactly the limit, never more
    assert SqliteBudgets(path, limit=lambda k: 30.0).snapshot()["shared"].spent == 30.0


def test_reservations_of_dead_processes_are_dropped(tmp_path):
    path = tmp_path / "state.db"
    store = SqliteBudgets(path, limit=lambda k: 5.0)
    store.reserve("k", [5.0])
    store._db.execute("UPDATE reservations SET pid = 2147483646")  # a pid that does not exist
    assert SqliteBudgets(path, limit=lambda k: 5.0).reserve("k", [5.0]).amount == 5.0
