"""Tests for adaptive_router.server.breaker (an injected clock: no waits)."""

from __future__ import annotations

import pytest

from adaptive_router.errors import ConfigError
from adaptive_router.server.breaker import CircuitBreaker


def test_opens_after_consecutive_failures_only():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_s=5.0, clock=lambda: now[0])
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.allow() and not breaker.is_open
    breaker.failure()
    assert breaker.is_open and not breaker.allow() and breaker.retry_after() == 5.0


def test_a_failed_trial_reopens_and_a_lost_trial_expires():
    now = [0.0]
    breaker = CircuitBreaker(failures=1, cooldown_s=2.0, clock=lambda: now[0])
    breaker.failure()
    now[0] = 2.0
    assert breaker.allow() and not breaker.allow()  # one trial
    breaker.failure()
    assert breaker.retry_after() == 2.0  # open again from now
    now[0] = 4.0
    assert breaker.allow()  # the trial never reports back...
    now[0] = 6.5
    assert breaker.allow()  # ...so after another cooldown a new one may go


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="failures must be >= 1"):
        CircuitBreaker(failures=0)
