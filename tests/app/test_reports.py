"""Tests for adaptive_router.app.reports: readable money, the baselines' tables and the cost-quality plot."""

from __future__ import annotations

import re

import numpy as np
import pytest

from adaptive_router.app.evaluation import evaluate_allocation
from adaptive_router.app.reports import (
    aiq_table,
    format_cost,
    log_cost_axis,
    markdown_summary,
    plot_cost_quality,
    significant,
    single_models_table,
)
from adaptive_router.outcomes import OutcomeSet

_MONEY = {"cost_unit": "$"}


@pytest.mark.parametrize(
    ("x", "expected"),
    [(1.234e-7, "0.000000123"), (0.0001, "0.000100"), (0.5, "0.500"), (99.94, "99.9"), (123456.0, "123,456"),
     (-0.0123, "-0.0123"), (0.0, "0")],
)
def test_significant_keeps_three_digits_and_never_rounds_to_zero(x, expected):
    assert significant(x) == expected


def test_money_is_shown_per_thousand_queries():
    assert format_cost(1.2e-4, _MONEY) == "$0.120"  # $1.2e-4 a query is 12 cents per 1,000 queries
    assert format_cost(3e-9, _MONEY) == "$0.00000300"
    assert format_cost(2.0, {}) == "2.00"  # cost units are shown per query


def _priced_report():
    rng = np.random.default_rng(0)
    acc = {"a": 0.4, "b": 0.7, "c": 0.8}
    cost = {"a": 1e-5, "b": 2e-4, "c": 3e-3}  # recorded dollars, 2.5 decades
    objs = [
        {"id": str(i), "prompt": str(i), "cost": cost,
         "outcomes": {m: [{"reward": float(rng.random() < q)}] for m, q in acc.items()}}
        for i in range(200)
    ]
    data = OutcomeSet.from_dicts(objs)
    return evaluate_allocation(data, budgets=[5e-5, 1e-3], cost_unit="$", random_seeds=1)


def test_a_dollar_report_reads_in_dollars_per_thousand_queries_and_names_the_baselines():
    rep = _priced_report()
    text = markdown_summary(rep)
    assert "(0.00)" not in text and "$ per 1,000 queries" in text
    assert "| budget ($ per 1,000 queries) | hull | best_single | uniform | random | oracle |" in text
    assert re.search(r"\| \$0\.0500 \| [\d.]+% \(\$0\.0500\) \|", text)  # $5e-5 a query
    assert "| `a` | $0.0100 | " in single_models_table(rep) and "`c` | $3.00 |" in single_models_table(rep)
    table = aiq_table(rep)
    assert "AIQ over costs $0.0100 to $3.00 ($ per 1,000 queries)" in table
    assert all(f"| {m} | " in table for m in ("hull", "best_single", "uniform", "random", "oracle"))
    assert "| method | AIQ | AIQ (log cost) |" in table
    hull = rep["aiq"]["hull"], rep["aiq_log"]["hull"]
    assert f"| hull | {hull[0] * 100:.1f}% | {hull[1] * 100:.1f}% |" in table
    assert "call share needed" in markdown_summary(rep)  # three models: routing data


def test_the_plot_uses_a_log_cost_axis_when_costs_span_decades(tmp_path):
    rep = _priced_report()
    assert log_cost_axis(rep)
    assert not log_cost_axis({"single_models": [{"cost": 1.0}, {"cost": 10.0}]})  # 1 decade: linear
    path = plot_cost_quality(rep, tmp_path / "p.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def _round_methods_report():
    from adaptive_router.app.sequential_eval import add_round_methods

    rng = np.random.default_rng(0)
    objs = []
    for i in range(30):
        rewards = (rng.random(8) < (0.9 if i % 2 else 0.2)).astype(float)
        objs.append({"id": str(i), "prompt": str(i), "outcomes": {"m": [
            {"reward": float(r), "answer": "ok" if r else f"no{j % 2}"} for j, r in enumerate(rewards)]}})
    data = OutcomeSet.from_dicts(objs)
    rep = evaluate_allocation(data, budgets=[2, 4], max_k=8, reranker="verifier", random_seeds=1)
    return add_round_methods(rep, data, reranker="verifier", seeds=2, sweep_seeds=1)


def test_the_round_baselines_get_savings_columns_notes_and_their_own_plot_styles(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    rep = _round_methods_report()
    text = markdown_summary(rep)
    for m in ("round_robin", "adaptive_consistency"):
        assert f" {m} savings |" in text and f"`{m}`: " in text
    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k)))
    plot_cost_quality(rep, tmp_path / "p.png")
    handles = {h.get_label().split(" (")[0]: h for h in figures[0].axes[0].get_legend().legend_handles}
    assert handles["round_robin"].get_linestyle() == "--" and handles["esc"].get_marker() == "D"
    assert handles["adaptive_consistency"].get_marker() == "P"
    methods = ("hull", "best_single", "sequential", "round_robin", "esc", "adaptive_consistency")
    assert len({handles[m].get_color() for m in methods}) == len(methods)
