"""Per-key budgets that are never exceeded: reserve the worst case before spending, settle after.

A request first *reserves* the most its options can cost (`KeyBudgets.reserve` takes the amounts it could
live with, largest first, and reserves the first that fits: a request can run with a lower ``max_k`` when
the key cannot pay for the highest). Concurrent requests see each other's reservations, so however many run
at once ``spent + reserved <= limit`` holds. When the answer is back the reservation is *settled*: the
units actually spent are charged (at most the reservation) and the rest is released. A request that failed
upstream is settled at 0 (its spend could not be measured; an answer that never arrived is not charged).

Two stores:

- `MemoryBudgets`: in this process (one worker), reset on restart;
- `SqliteBudgets`: a SQLite file (``budgets.state_file``) shared by every worker process and kept across
  restarts; each reserve/settle is one ``BEGIN IMMEDIATE`` transaction, so two workers cannot both take the
  last units. Reservations of processes that died are dropped when a store opens.

Examples
--------
>>> budgets = MemoryBudgets(limit=lambda key: 5.0)
>>> r = budgets.reserve("alice", [4.0])
>>> budgets.settle(r, spent=3.0)
KeyState(limit=5.0, spent=3.0, reserved=0.0)
>>> budgets.reserve("alice", [4.0, 2.0]).amount     # 2 units left: the lower option fits
2.0
>>> budgets.reserve("alice", [1.0])
Traceback (most recent call last):
...
adaptive_router.server.budgets.BudgetExhaustedError: key 'alice' has 0 of its 5 units left ...
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adaptive_router.errors import AdaptiveRouterError, ConfigError

__all__ = [
    "BudgetExhaustedError",
    "KeyBudgets",
    "KeyState",
    "MemoryBudgets",
    "Reservation",
    "SqliteBudgets",
]

_EPS = 1e-9
Limit = Callable[[str], "float | None"]


class BudgetExhaustedError(AdaptiveRouterError):
    """The key cannot pay for the request; ``.key``, ``.limit``, ``.remaining`` and ``.needed`` say why."""

    def __init__(self, key: str, *, limit: float, remaining: float, needed: float) -> None:
        self.key, self.limit, self.remaining, self.needed = key, limit, remaining, needed
        super().__init__(
            f"key {key!r} has {max(remaining, 0.0):.4g} of its {limit:.4g} units left (in-flight requests "
            f"included) and this request may cost up to {needed:.4g}; ask for a lower budget "
            "(model='ROUTER:budget=...') or a larger key budget"
        )


@dataclass(frozen=True)
class Reservation:
    """Units held for one request of `key` until it is settled."""

    key: str
    amount: float
    token: int


@dataclass(frozen=True)
class KeyState:
    """A key's limit (``None``: unlimited), units spent and units reserved by requests in flight."""

    limit: float | None
    spent: float
    reserved: float

    @property
    def remaining(self) -> float | None:
        """Units a new request may reserve."""
        return None if self.limit is None else self.limit - self.spent - self.reserved


class KeyBudgets(Protocol):
    """What the server needs from a budget store."""

    def reserve(self, key: str, amounts: Sequence[float]) -> Reservation:
        """Reserve the first of `amounts` that fits, or raise `BudgetExhaustedError`."""
        ...

    def settle(self, reservation: Reservation, spent: float) -> KeyState:
        """Charge `spent` (at most the reservation), release the rest; the key's state after."""
        ...

    def snapshot(self) -> dict[str, KeyState]:
        """Every key seen: limit, spent, reserved."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


def _pick(key: str, limit: float | None, spent: float, reserved: float, amounts: Sequence[float]) -> float:
    if not amounts:
        raise ConfigError("reserve needs at least one amount")
    if limit is None:
        return float(amounts[0])
    remaining = limit - spent - reserved
    for amount in amounts:
        if amount <= remaining + _EPS:
            return float(amount)
    raise BudgetExhaustedError(key, limit=limit, remaining=remaining, needed=float(min(amounts)))


class MemoryBudgets:
    """Budgets held in this process (thread-safe).

    Parameters
    ----------
    limit : callable
        ``limit(key) -> units or None`` (unlimited).
    """

    def __init__(self, *, limit: Limit) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._open: dict[int, Reservation] = {}
        self._tokens = itertools.count(1)

    def reserve(self, key: str, amounts: Sequence[float]) -> Reservation:
        with self._lock:
            spent, reserved = self._spent.get(key, 0.0), self._reserved.get(key, 0.0)
            amount = _pick(key, self.limit(key), spent, reserved, amounts)
            self._reserved[key] = reserved + amount
            reservation = Reservation(key, amount, next(self._tokens))
            self._open[reservation.token] = reservation
            return reservation

    def settle(self, reservation: Reservation, spent: float) -> KeyState:
        key = reservation.key
        with self._lock:
            if self._open.pop(reservation.token, None) is not None:  # else: settled already
                self._reserved[key] = max(self._reserved.get(key, 0.0) - reservation.amount, 0.0)
                charged = min(max(float(spent), 0.0), reservation.amount)
                self._spent[key] = self._spent.get(key, 0.0) + charged
            return KeyState(self.limit(key), self._spent.get(key, 0.0), self._reserved.get(key, 0.0))

    def snapshot(self) -> dict[str, KeyState]:
        with self._lock:
            keys = set(self._spent) | set(self._reserved)
            return {
                k: KeyState(self.limit(k), self._spent.get(k, 0.0), self._reserved.get(k, 0.0))
                for k in sorted(keys)
            }

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"MemoryBudgets(keys={len(self._spent)})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteBudgets:
    """Budgets in a SQLite file shared by worker processes (WAL mode; one transaction per operation).

    Parameters
    ----------
    path : path
        The state file (created with its tables when missing).
    limit : callable
        ``limit(key) -> units or None``.
    """

    def __init__(self, path: str | os.PathLike[str], *, limit: Limit) -> None:
        self.path = Path(path)
        self.limit = limit
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS spend (key TEXT PRIMARY KEY, spent REAL NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS reservations (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "key TEXT NOT NULL, amount REAL NOT NULL, pid INTEGER NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"budgets.state_file = {str(self.path)!r} cannot be used: {exc}") from None
        self._drop_dead()

    def _drop_dead(self) -> None:
        with self._lock:
            pids = [row[0] for row in self._db.execute("SELECT DISTINCT pid FROM reservations")]
            for pid in pids:
                if not _alive(pid):
                    self._db.execute("DELETE FROM reservations WHERE pid = ?", (pid,))

    def _state(self, key: str) -> tuple[float, float]:
        row = self._db.execute("SELECT spent FROM spend WHERE key = ?", (key,)).fetchone()
        (reserved,) = self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE key = ?", (key,)
        ).fetchone()
        return (row[0] if row else 0.0), float(reserved)

    def reserve(self, key: str, amounts: Sequence[float]) -> Reservation:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                spent, reserved = self._state(key)
                amount = _pick(key, self.limit(key), spent, reserved, amounts)
                cursor = self._db.execute(
                    "INSERT INTO reservations (key, amount, pid, created) VALUES (?, ?, ?, ?)",
                    (key, amount, os.getpid(), time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return Reservation(key, amount, int(cursor.lastrowid or 0))

    def settle(self, reservation: Reservation, spent: float) -> KeyState:
        charged = min(max(float(spent), 0.0), reservation.amount)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._db.execute("DELETE FROM reservations WHERE id = ?", (reservation.token,))
                if gone.rowcount:
                    self._db.execute(
                        "INSERT INTO spend (key, spent) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET spent = spent + excluded.spent",
                        (reservation.key, charged),
                    )
                state = self._state(reservation.key)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return KeyState(self.limit(reservation.key), *state)

    def snapshot(self) -> dict[str, KeyState]:
        with self._lock:
            spent = dict(self._db.execute("SELECT key, spent FROM spend").fetchall())
            reserved = dict(
                self._db.execute("SELECT key, SUM(amount) FROM reservations GROUP BY key").fetchall()
            )
        keys = sorted(set(spent) | set(reserved))
        return {
            k: KeyState(self.limit(k), float(spent.get(k, 0.0)), float(reserved.get(k, 0.0))) for k in keys
        }

    def close(self) -> None:
        """Drop this process's open reservations and close the file."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM reservations WHERE pid = ?", (os.getpid(),))
                self._db.close()
            except sqlite3.Error:
                pass

    def __repr__(self) -> str:
        return f"SqliteBudgets({str(self.path)!r})"
