"""Tests for adaptive_router.server.metrics: the Prometheus text format."""

from __future__ import annotations

import re

from adaptive_router.server.metrics import Metrics, record_answer

LINE = re.compile(r'^adaptive_router_[a-z_]+(\{([a-z_]+="(\\.|[^"\\])*",?)*\})? -?[0-9.e+]+$|^# (HELP|TYPE) ')


def test_render_is_valid_exposition_text():
    metrics = Metrics(collect=[lambda: [("ledger_balance_units", {"router": 'a"b'}, 1.5)]])
    metrics.inc("requests_total", {"router": "a", "status": "200", "stream": "false"}, 2)
    metrics.observe("request_duration_seconds", {"router": "a"}, 0.02)
    metrics.observe("request_duration_seconds", {"router": "a"}, 3.0)
    text = metrics.render()
    assert all(LINE.match(line) for line in text.strip().splitlines()), text
    assert "# TYPE adaptive_router_requests_total counter" in text
    assert 'status="200",stream="false"} 2' in text
    assert 'router="a\\"b"} 1.5' in text  # quotes escaped
    assert re.search(r'_bucket\{le="0\.025"[^}]*\} 1$', text, re.M)
    assert re.search(r'_bucket\{le="\+Inf"[^}]*\} 2$', text, re.M)
    assert re.search(r"adaptive_router_request_duration_seconds_count\{[^}]*\} 2", text)


def test_record_answer_counts_k_route_spend_and_tokens():
    metrics = Metrics()
    meta = {"procedure": "cheap", "k": 3, "calls": 3, "failed_calls": 1, "cost": 3.0, "allocated_cost": 3.0,
            "tokens": {"input_tokens": 10, "output_tokens": 4}, "allocator": "window"}  # fmt: skip
    record_answer(metrics, "r", meta)
    assert metrics.value("k_total", {"router": "r", "k": "3"}) == 1
    assert metrics.value("upstream_failed_calls_total", {"router": "r", "procedure": "cheap"}) == 1
    assert metrics.value("tokens_total", {"router": "r", "kind": "input"}) == 10
    assert metrics.value("allocator_total", {"router": "r", "allocator": "window"}) == 1
