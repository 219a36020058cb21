"""Prometheus metrics in the text exposition format (version 0.0.4), with no client library.

`Metrics` holds the server's counters and gauges; `Metrics.render` writes them, followed by what the
``collect`` callbacks report at scrape time (ledger balances, key budgets, circuit and probe fallback state).
Every series is prefixed ``adaptive_router_``:

=========================================  =================================================================
requests_total{router,status,stream}        requests answered, by HTTP status
request_duration_seconds{router}            a histogram of the server's wall time per request
upstream_calls_total{router,procedure}      requests sent upstream (failed ones included)
upstream_failed_calls_total{router,procedure}
spend_units_total{router} / allocated_…    units spent / allocated by the router
tokens_total{router,kind}                   input and output tokens over every upstream request
k_total{router,k}, route_total{router,…}   how many queries got k samples / which procedure
allocator_total{router,allocator}           window, threshold, uniform or fixed
fallbacks_total{router,reason}              answers from the fallback backend
probe_fallback_active{router}               1 while the probe's uniform fallback is on
circuit_open{router}                        1 while the upstream is skipped after repeated failures
ledger_{queries,allocated,budget,balance}_units{router,budget_per_query}   the router's ledgers
key_{spent,reserved,limit}_units{key}       per-key budgets
in_flight_requests                          requests being handled
=========================================  =================================================================

With several worker processes each serves its own counters (the ``pid`` label tells them apart); the key
budgets of a shared state file are the same in every one.

Examples
--------
>>> m = Metrics()
>>> m.inc("requests_total", {"router": "a", "status": "200", "stream": "false"})
>>> print(m.render().splitlines()[2])  # doctest: +ELLIPSIS
adaptive_router_requests_total{pid="...",router="a",status="200",stream="false"} 1
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["DURATION_BUCKETS", "Metrics", "Sample", "record_answer"]

PREFIX = "adaptive_router_"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

_HELP = {
    "requests_total": ("counter", "Requests answered, by router, HTTP status and streaming."),
    "request_duration_seconds": ("histogram", "Server wall time per request."),
    "upstream_calls_total": ("counter", "Requests sent to upstream models (failed ones included)."),
    "upstream_failed_calls_total": ("counter", "Upstream requests that failed."),
    "spend_units_total": ("counter", "Units spent by answered requests."),
    "allocated_units_total": ("counter", "Units allocated to answered requests."),
    "tokens_total": ("counter", "Tokens over every upstream request."),
    "k_total": ("counter", "Queries by number of samples k."),
    "route_total": ("counter", "Queries by the procedure (model) that answered."),
    "allocator_total": ("counter", "Queries by allocation path."),
    "fallbacks_total": ("counter", "Answers from the fallback backend."),
    "rejected_total": ("counter", "Requests refused before routing, by reason."),
    "probe_fallback_active": ("gauge", "1 while the probe's uniform fallback is active."),
    "circuit_open": ("gauge", "1 while the router's upstream is skipped after repeated failures."),
    "ledger_queries": ("gauge", "Queries planned per router ledger."),
    "ledger_allocated_units": ("gauge", "Units allocated per router ledger."),
    "ledger_budget_units": ("gauge", "Units granted per router ledger (budget_per_query * queries)."),
    "ledger_balance_units": ("gauge", "Granted but unallocated units per router ledger."),
    "key_spent_units": ("gauge", "Units spent per API key."),
    "key_reserved_units": ("gauge", "Units reserved by in-flight requests per API key."),
    "key_limit_units": ("gauge", "Budget per API key (absent: unlimited)."),
    "in_flight_requests": ("gauge", "Requests being handled."),
}

Labels = Mapping[str, str]
Sample = tuple[str, Labels, float]
"""One collected series: metric name (without prefix), labels, value."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value


class Metrics:
    """Counters, gauges and histograms keyed by name and labels (thread-safe), plus scrape-time collectors.

    Parameters
    ----------
    collect : iterable of callables, optional
        Each returns `Sample` tuples at scrape time (gauges).
    """

    def __init__(self, collect: Iterable[Callable[[], Iterable[Sample]]] = ()) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._histograms: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = {}
        self._collect = list(collect)
        self._pid = str(os.getpid())

    def add_collector(self, collect: Callable[[], Iterable[Sample]]) -> None:
        """Also report what `collect` returns at every scrape."""
        self._collect.append(collect)

    def inc(self, name: str, labels: Labels | None = None, value: float = 1.0) -> None:
        """Add `value` to a counter."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, labels: Labels | None = None, value: float = 0.0) -> None:
        """Set a gauge."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            self._values.setdefault(name, {})[key] = value

    def observe(self, name: str, labels: Labels | None, value: float) -> None:
        """Record `value` in a histogram (buckets `DURATION_BUCKETS`)."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            series = self._histograms.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(DURATION_BUCKETS)
            hist.observe(value)

    def value(self, name: str, labels: Labels | None = None) -> float:
        """The current value of a counter or gauge (0 when never set)."""
        key = tuple(sorted((labels or {}).items()))
        with self._lock:
            return self._values.get(name, {}).get(key, 0.0)

    def _collected(self) -> dict[str, list[tuple[Labels, float]]]:
        out: dict[str, list[tuple[Labels, float]]] = {}
        for collect in self._collect:
            for name, labels, value in collect():
                out.setdefault(name, []).append((labels, value))
        return out

    def render(self) -> str:
        """Everything in the Prometheus text format."""
        pid = {"pid": self._pid}
        lines: list[str] = []
        with self._lock:
            values = {n: dict(s) for n, s in self._values.items()}
            hists = {
                n: {k: (list(h.counts), h.total, h.buckets) for k, h in s.items()}
                for n, s in self._histograms.items()
            }
        series: dict[str, list[tuple[Labels, float]]] = {
            n: [(dict(k), v) for k, v in s.items()] for n, s in values.items()
        }
        for name, rows in self._collected().items():
            series.setdefault(name, []).extend(rows)
        for name in sorted(set(series) | set(hists)):
            kind, text = _HELP.get(name, ("gauge", name.replace("_", " ")))
            lines.append(f"# HELP {PREFIX}{name} {text}")
            lines.append(f"# TYPE {PREFIX}{name} {kind}")
            for labels, value in series.get(name, []):
                lines.append(f"{PREFIX}{name}{_labels({**pid, **labels})} {_number(value)}")
            for key, (counts, total, buckets) in hists.get(name, {}).items():
                base = {**pid, **dict(key)}
                running = 0
                for bound, count in zip((*buckets, math.inf), counts, strict=True):
                    running += count
                    le = {**base, "le": _number(bound)}
                    lines.append(f"{PREFIX}{name}_bucket{_labels(le)} {running}")
                lines.append(f"{PREFIX}{name}_sum{_labels(base)} {_number(total)}")
                lines.append(f"{PREFIX}{name}_count{_labels(base)} {running}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"Metrics({sum(len(s) for s in self._values.values())} series)"


def record_answer(metrics: Metrics, router: str, meta: Mapping[str, Any]) -> None:
    """Count one routed answer's calls, spend, tokens, k, route and allocator."""
    proc = str(meta.get("procedure", ""))
    labels = {"router": router}
    metrics.inc("upstream_calls_total", {**labels, "procedure": proc}, float(meta.get("calls", 0)))
    failed = float(meta.get("failed_calls", 0))
    if failed:
        metrics.inc("upstream_failed_calls_total", {**labels, "procedure": proc}, failed)
    metrics.inc("spend_units_total", labels, float(meta.get("cost", 0.0)))
    metrics.inc("allocated_units_total", labels, float(meta.get("allocated_cost", 0.0)))
    tokens = meta.get("tokens") or {}
    metrics.inc("tokens_total", {**labels, "kind": "input"}, float(tokens.get("input_tokens", 0)))
    metrics.inc("tokens_total", {**labels, "kind": "output"}, float(tokens.get("output_tokens", 0)))
    metrics.inc("k_total", {**labels, "k": str(meta.get("k", 0))})
    metrics.inc("route_total", {**labels, "procedure": proc})
    allocator = (meta.get("predicted") or {}).get("allocator") or meta.get("allocator") or "unknown"
    metrics.inc("allocator_total", {**labels, "allocator": str(allocator)})
