"""A circuit breaker per router: after repeated upstream failures, stop waiting on an upstream that is down.

Closed (normal) until ``failures`` requests in a row failed upstream; then *open* for ``cooldown_s``:
requests skip the upstream (they go to the fallback backend, or get 503 with ``Retry-After`` at once
instead of spending their timeout on retries). After the cooldown the breaker lets one request through
(*half-open*); its success closes the circuit, its failure opens it for another cooldown. The clock is
injected, so tests need no waits.

Examples
--------
>>> now = [0.0]
>>> breaker = CircuitBreaker(failures=2, cooldown_s=10.0, clock=lambda: now[0])
>>> breaker.failure(); breaker.failure(); breaker.allow()
False
>>> now[0] = 10.5; breaker.allow(), breaker.allow()     # one trial request after the cooldown
(True, False)
>>> breaker.success(); breaker.allow(), breaker.is_open
(True, False)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from adaptive_router.errors import ConfigError

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Open after `failures` consecutive upstream failures, for `cooldown_s` seconds, then try once.

    Parameters
    ----------
    failures : int
        Consecutive failures that open the circuit.
    cooldown_s : float
        Seconds the circuit stays open before a trial request.
    clock : callable
        Monotonic seconds (injectable).
    """

    def __init__(
        self, *, failures: int = 5, cooldown_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or not cooldown_s > 0:
            raise ConfigError(f"failures must be >= 1 and cooldown_s > 0, got {failures}, {cooldown_s}")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None

    @property
    def is_open(self) -> bool:
        """Whether requests currently skip the upstream."""
        with self._lock:
            return self._opened_at is not None

    def retry_after(self) -> float:
        """Seconds until a trial request is let through (0 when closed)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(self._opened_at + self.cooldown_s - self.clock(), 0.0)

    def allow(self) -> bool:
        """Whether this request may go upstream (at most one trial while half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            now = self.clock()
            if now < self._opened_at + self.cooldown_s:
                return False
            if self._trial_at is not None and now < self._trial_at + self.cooldown_s:
                return False  # a trial is under way (one that never reported expires after a cooldown)
            self._trial_at = now
            return True

    def success(self) -> None:
        """An upstream answered: close the circuit."""
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_at = None

    def failure(self) -> None:
        """An upstream failed: count it; open (again) at the threshold or when a trial failed."""
        with self._lock:
            self._consecutive += 1
            if self._trial_at is not None or self._consecutive >= self.failures:
                self._opened_at = self.clock()
                self._trial_at = None

    def __repr__(self) -> str:
        state = "open" if self._opened_at is not None else "closed"
        return f"CircuitBreaker({state}, failures={self._consecutive}/{self.failures})"
