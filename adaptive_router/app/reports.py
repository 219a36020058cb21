"""Reports people look at: markdown tables and PNG cost-quality curves of an evaluation report.

Money is shown in readable units: a report whose ``cost_unit`` is ``"$"`` prints dollars per 1,000 queries
with three significant digits (never ``0.00``), and a plot puts cost on a log axis when the options' costs
span more than ``LOG_COST_DECADES`` decades. Plots need matplotlib (``pip install 'adaptive-router[plot]'``)
and use the non-interactive Agg backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptive_router.app.budget_sweep import LOG_COST_DECADES
from adaptive_router.errors import ConfigError

__all__ = [
    "aiq_table",
    "cost_scale",
    "format_cost",
    "log_cost_axis",
    "markdown_summary",
    "markdown_table",
    "percent",
    "plot_cost_quality",
    "routing_table",
    "significant",
    "single_models_table",
]

MONEY_PER = 1_000
"""Money is shown per this many queries."""

_STYLE = {
    "hull": ("black", "-"),
    "best_single": ("tab:brown", "-"),
    "uniform": ("tab:gray", "--"),
    "random": ("tab:orange", ":"),
    "adaptive": ("tab:blue", "-"),
    "oracle": ("tab:green", "-."),
    "sequential": ("tab:red", "-"),
    "rounds": ("tab:red", "-"),  # a live run of the router in rounds: what `sequential` replays
    "round_robin": ("tab:pink", "--"),
    "esc": ("tab:purple", "none"),
    "adaptive_consistency": ("tab:olive", "none"),
}
"""Colour and line style of each method in a plot (matplotlib's defaults for any other)."""
_POINT = {"esc": "D", "adaptive_consistency": "P"}
"""Markers of the methods without a budget (one point each, not a curve)."""
_SAVINGS = ("adaptive", "sequential", "round_robin", "esc", "adaptive_consistency")
"""Methods whose savings get a column of the markdown table."""


def percent(x: float | None, signed: bool = False) -> str:
    """``x`` as a percentage with one decimal (``n/a`` for None)."""
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def significant(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits and thousands separators, never rounded to zero.

    Examples
    --------
    >>> [significant(x) for x in (0.000123, 0.1, 1.0, 12.345, 1234.5, 0.0)]
    ['0.000123', '0.100', '1.00', '12.3', '1,234', '0']
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def cost_scale(report: Mapping[str, Any]) -> tuple[float, str]:
    """``(factor, label)``: per-query costs times ``factor`` are shown in ``label``'s unit.

    Examples
    --------
    >>> cost_scale({"cost_unit": "$"})
    (1000, '$ per 1,000 queries')
    >>> cost_scale({})
    (1, 'cost units per query')
    """
    unit = report.get("cost_unit", "units")
    if unit == "$":
        return MONEY_PER, f"$ per {MONEY_PER:,} queries"
    return 1, f"cost {unit} per query"


def format_cost(x: float, report: Mapping[str, Any]) -> str:
    """A per-query cost as the report shows it: ``$0.120`` (per 1,000 queries) for money, else ``1.50``.

    Examples
    --------
    >>> format_cost(0.00012, {"cost_unit": "$"}), format_cost(1.5, {})
    ('$0.120', '1.50')
    """
    factor, _ = cost_scale(report)
    text = significant(x * factor)
    return f"${text}" if report.get("cost_unit") == "$" else text


def markdown_table(report: Mapping[str, Any]) -> str:
    """One row per budget: each method's quality (and spend), and its savings at the hull's quality.

    Budgets and spend are in :func:`cost_scale`'s unit.

    Examples
    --------
    >>> rep = {"budgets": [1.0], "methods": {"uniform": {"quality": [0.5], "spend": [1.0], "savings": [0.0]}}}
    >>> print(markdown_table(rep))
    | budget (cost units per query) | uniform |
    |---:|---:|
    | 1.00 | 50.0% (1.00) |
    """
    methods = list(report["methods"])
    saving = [m for m in _SAVINGS if m in methods]
    _, label = cost_scale(report)
    head = f"| budget ({label}) | " + " | ".join(methods) + " |"
    head += "".join(f" {m} savings |" for m in saving)
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for i, b in enumerate(report["budgets"]):
        cells = [format_cost(b, report)]
        for m in methods:
            r = report["methods"][m]
            se = r.get("quality_se")
            pm = f" ± {se[i] * 100:.1f}" if se is not None else ""
            cells.append(f"{percent(r['quality'][i])}{pm} ({format_cost(r['spend'][i], report)})")
        cells += [percent(report["methods"][m]["savings"][i], signed=True) for m in saving]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def single_models_table(report: Mapping[str, Any]) -> str:
    """Every option alone (a fixed policy): its cost, its quality and whether it is on the hull.

    Examples
    --------
    >>> rep = {"single_models": [{"procedure": "m", "k": 1, "cost": 1.0, "quality": 0.5, "on_hull": True}]}
    >>> print(single_models_table(rep))
    | single model | cost (cost units per query) | quality | on the hull |
    |---|---:|---:|:---:|
    | `m` | 1.00 | 50.0% | yes |
    """
    single = report.get("single_models") or []
    if not single:
        return ""
    _, label = cost_scale(report)
    lines = [f"| single model | cost ({label}) | quality | on the hull |", "|---|---:|---:|:---:|"]
    for s in sorted(single, key=lambda s: s["cost"]):
        name = f"`{s['procedure']}`" + (f" ×{s['k']}" if s["k"] > 1 else "")
        lines.append(
            f"| {name} | {format_cost(s['cost'], report)} | {percent(s['quality'])} | "
            f"{'yes' if s['on_hull'] else ''} |"
        )
    return "\n".join(lines)


def aiq_table(report: Mapping[str, Any]) -> str:
    """Each method's AIQ over the report's stated cost range, linear and per log cost (``""`` without).

    Examples
    --------
    >>> print(aiq_table({"aiq": {"hull": 0.5, "oracle": 0.625}, "aiq_cost_range": [1.0, 3.0]}))
    AIQ over costs 1.00 to 3.00 (cost units per query): the mean of each method's non-decreasing hull.
    <BLANKLINE>
    | method | AIQ |
    |---|---:|
    | hull | 50.0% |
    | oracle | 62.5% |
    """
    values = report.get("aiq")
    if not values:
        return ""
    lo, hi = report["aiq_cost_range"]
    _, label = cost_scale(report)
    per_log = report.get("aiq_log") or {}
    lines = [
        f"AIQ over costs {format_cost(lo, report)} to {format_cost(hi, report)} ({label}): the mean of each "
        "method's non-decreasing hull"
        + (" (per log cost: each decade weighs the same)." if per_log else "."),
        "",
        "| method | AIQ |" + (" AIQ (log cost) |" if per_log else ""),
        "|---|---:|" + ("---:|" if per_log else ""),
    ]
    for m, v in values.items():
        log_cell = f" {percent(per_log.get(m))} |" if per_log else ""
        lines.append(f"| {m} | {percent(v)} |{log_cell}")
    return "\n".join(lines)


def routing_table(report: Mapping[str, Any]) -> str:
    """Share of expensive calls each method needs to reach the target fraction of the expensive quality."""
    r = report.get("routing")
    if not r:
        return ""
    lines = [
        f"Target: {r['target'] * 100:.0f}% of `{r['expensive']}` quality = {percent(r['target_quality'])} "
        f"(`{r['cheap']}` alone {percent(r['cheap_quality'])}, "
        f"`{r['expensive']}` alone {percent(r['expensive_quality'])})",
        "",
        f"| method | `{r['expensive']}` call share needed | cost saved vs all-`{r['expensive']}` "
        f"| cost to match `{r['expensive']}` (share of its cost) |",
        "|---|---:|---:|---:|",
    ]
    match = r.get("match_cost_share", {})
    for m, share in r["expensive_share"].items():
        lines.append(
            f"| {m} | {percent(share)} | {percent(r['cost_savings'][m])} | {percent(match.get(m))} |"
        )
    return "\n".join(lines)


def markdown_summary(report: Mapping[str, Any], *, title: str = "Budgeted evaluation") -> str:
    """Title, a line on the data, the budget table and (for routing data) the routing table."""
    _, label = cost_scale(report)
    costs = ", ".join(f"`{p}`={format_cost(c, report)}" for p, c in report["costs"].items())
    parts = [
        f"## {title}",
        "",
        f"{report['n_queries']} queries, {report['kind'].replace('_', '-')}, procedures {costs} ({label})"
        + (" (costs assumed)" if report.get("costs_assumed") else "")
        + (" (priced from the recorded tokens)" if report.get("costs_priced") else "")
        + f", options up to k={report['max_k']}.",
        f"Quality is the expected reward from the recorded outcomes (true curves); spend in {label} in "
        "parentheses. `hull` mixes the two single models (fixed policies) on the non-decreasing cost-quality "
        "hull that bracket the budget; `uniform` is that mixture replayed in whole queries; `best_single` is "
        "the best single model within the budget. Savings = 1 - budget a method needs to match the hull / "
        "budget; every method is scored by the same replay.",
        "",
        markdown_table(report),
    ]
    for extra in (single_models_table(report), aiq_table(report)):
        if extra:
            parts += ["", extra]
    seq = report.get("sequential_notes") or {}
    if seq.get("cascade"):
        c = seq["cascade"]
        parts += [
            "",
            f"Reranker `{seq['reranker']}`. `sequential`: a cascade in rounds, `{c['cheap']}` sampled and "
            f"escalated to `{c['strong']}` where the evidence pays for it, within the budget; its "
            f"`CascadeModel` {seq['cascade_model']}; {seq['monte_carlo']} (± in points).",
        ]
    elif seq.get("monte_carlo"):
        parts += [
            "",
            f"Reranker `{seq['reranker']}`. `sequential`: the round planner with "
            + (
                "the router's default `Rounds()`"
                if not seq.get("round_choice")
                else "the settings train chose on validation ("
                + ", ".join(
                    f"{name} at B={b:g}"
                    for b, name in zip(*(seq["round_choice"][k] for k in ("budgets", "choice")), strict=True)
                )
                + "; learned: `Rounds(model=CascadeModel)`)"
            )
            + f", {seq['prior']} prior; {seq['monte_carlo']} (± in points)."
            + (f" `round_robin`: {seq['round_robin']}." if seq.get("round_robin") else "")
            + (f" `esc`: {seq['esc']}." if seq.get("esc") else "")
            + (
                f" `adaptive_consistency`: {seq['adaptive_consistency']}."
                if seq.get("adaptive_consistency") else ""
            )
            + (f" {seq['score_evidence']}." if seq.get("score_evidence") else ""),
        ]
    sc = report.get("self_consistency")
    if sc:
        need = ", ".join(
            f"{m} {'never' if v is None else f'{v:.2f}'}" for m, v in sc["samples_per_query"].items()
        )
        parts += ["", f"Self-consistency at {sc['k']} (every query the plurality of {sc['k']} samples): "
                  f"{percent(sc['quality'])}; samples per query to reach it: {need}."]  # fmt: skip
    routing = routing_table(report)
    if routing:
        parts += ["", routing]
    return "\n".join(parts) + "\n"


def log_cost_axis(report: Mapping[str, Any]) -> bool:
    """Whether the single models' (options') costs span more than ``LOG_COST_DECADES`` decades.

    Examples
    --------
    >>> log_cost_axis({"options": [{"cost": 1.0}, {"cost": 10.0}]})
    False
    >>> log_cost_axis({"single_models": [{"cost": 2e-5}, {"cost": 3e-3}]})
    True
    """
    costs = [float(s["cost"]) for s in report.get("single_models") or report.get("options") or []]
    return bool(costs) and min(costs) > 0 and math.log10(max(costs) / min(costs)) > LOG_COST_DECADES


def plot_cost_quality(
    report: Mapping[str, Any],
    path: str | Path,
    *,
    title: str = "Cost vs quality",
    live: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    xlabel: str | None = None,
) -> Path:
    """Write a PNG of each method's quality against spend over the budget sweep.

    Spend is in :func:`cost_scale`'s unit (``xlabel`` overrides the label), on a log axis when the single
    models' costs span more than ``LOG_COST_DECADES`` decades. The single models are marked and named,
    ``best_single`` is drawn against the budget (a step), and each legend entry gives the method's AIQ.
    ``live`` adds measured points ``{method: [(spend, quality), ...]}`` (e.g. from a live run).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'adaptive-router[plot]'") from None
    factor, label = cost_scale(report)
    aiq = report.get("aiq") or {}

    def scaled(xs: Sequence[float]) -> list[float]:
        return [x * factor for x in xs]

    def name(m: str) -> str:
        return f"{m} (AIQ {aiq[m] * 100:.1f}%)" if m in aiq else m

    sweep = report["sweep"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    single = report.get("single_models") or []
    if single:
        ax.plot(scaled([s["cost"] for s in single]), [s["quality"] for s in single], "x", color="black",
                markersize=6, label="single models")
        if len(single) <= 16:
            dearest = max(s["cost"] for s in single)
            for s in single:
                text = s["procedure"] + (f" ×{s['k']}" if s["k"] > 1 else "")
                right = s["cost"] >= dearest  # the dearest model's name goes left, inside the axes
                ax.annotate(text, (s["cost"] * factor, s["quality"]), textcoords="offset points",
                            xytext=(-3 if right else 3, -9), ha="right" if right else "left", fontsize=6,
                            color="dimgray")
    for m, q in sweep["quality"].items():
        color, ls = _STYLE.get(m, (None, "-"))
        r = report["methods"][m]
        if m == "best_single":  # a step against the budget: what fits, not a mixture
            ax.plot(scaled(sweep["budgets"]), q, ls, color=color, label=name(m), linewidth=1.2,
                    drawstyle="steps-post")
            continue
        ax.plot(scaled(sweep["spend"][m]), q, ls, color=color, label=name(m),
                linewidth=1.0 if m == "hull" else 1.8)
        ax.plot(scaled(r["spend"]), r["quality"], "o", color=color, markersize=4)
    for m in [m for m in report["methods"] if m not in sweep["quality"]]:  # one point each (esc)
        color, _ = _STYLE.get(m, (None, "-"))
        r = report["methods"][m]
        ax.plot(scaled(r["spend"][:1]), r["quality"][:1], _POINT.get(m, "D"), color=color, markersize=6,
                label=m)
    for m, pts in (live or {}).items():
        color, _ = _STYLE.get(m, (None, "-"))
        xs, ys = zip(*pts, strict=True) if pts else ((), ())
        ax.plot(scaled(xs), ys, "s", color=color, markersize=7, markerfacecolor="none", label=f"{m} (live)")
    if log_cost_axis(report):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or f"mean spend ({label})")
    ax.set_ylabel("mean quality (expected reward)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
