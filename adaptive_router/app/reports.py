"""Reports people look at: markdown tables and PNG cost-quality curves of an evaluation report.

Plots need matplotlib (``pip install 'adaptive-router[plot]'``) and use the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptive_router.errors import ConfigError

__all__ = ["markdown_summary", "markdown_table", "percent", "plot_cost_quality", "routing_table"]

_STYLE = {
    "uniform": ("tab:gray", "--"),
    "random": ("tab:orange", ":"),
    "adaptive": ("tab:blue", "-"),
    "oracle": ("tab:green", "-."),
    "sequential": ("tab:red", "-"),
    "rounds": ("tab:red", "-"),  # a live run of the router in rounds: what `sequential` replays
    "esc": ("tab:purple", "none"),
}
_SAVINGS = ("adaptive", "sequential", "esc")
"""Methods whose savings get a column of the markdown table."""


def percent(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def markdown_table(report: Mapping[str, Any], *, unit: str = "units") -> str:
    """One row per budget: each method's quality (and spend), and its savings at uniform's quality.

    Examples
    --------
    >>> rep = {"budgets": [1.0], "methods": {"uniform": {"quality": [0.5], "spend": [1.0], "savings": [0.0]}}}
    >>> print(markdown_table(rep))
    | budget/query | uniform |
    |---:|---:|
    | 1 | 50.0% (1.00) |
    """
    methods = list(report["methods"])
    saving = [m for m in _SAVINGS if m in methods]
    head = "| budget/query | " + " | ".join(methods) + " |"
    head += "".join(f" {m} savings |" for m in saving)
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for i, b in enumerate(report["budgets"]):
        cells = [f"{b:g}"]
        for m in methods:
            r = report["methods"][m]
            se = r.get("quality_se")
            pm = f" ± {se[i] * 100:.1f}" if se is not None else ""
            cells.append(f"{percent(r['quality'][i])}{pm} ({r['spend'][i]:.2f})")
        cells += [percent(report["methods"][m]["savings"][i], signed=True) for m in saving]
        lines.append("| " + " | ".join(cells) + " |")
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
        f"| method | `{r['expensive']}` call share needed | cost saved vs all-`{r['expensive']}` |",
        "|---|---:|---:|",
    ]
    for m, share in r["expensive_share"].items():
        lines.append(f"| {m} | {percent(share)} | {percent(r['cost_savings'][m])} |")
    return "\n".join(lines)


def markdown_summary(report: Mapping[str, Any], *, title: str = "Budgeted evaluation") -> str:
    """Title, a line on the data, the budget table and (for routing data) the routing table."""
    costs = ", ".join(f"`{p}`={c:g}" for p, c in report["costs"].items())
    parts = [
        f"## {title}",
        "",
        f"{report['n_queries']} queries, {report['kind'].replace('_', '-')}, procedures {costs}"
        + (" (costs assumed)" if report.get("costs_assumed") else "")
        + f", options up to k={report['max_k']}.",
        "Quality is the expected reward from the recorded outcomes (true curves); spend in cost units per "
        "query in parentheses; savings = 1 - budget a method needs to match uniform / budget. Uniform gives "
        "every query the same option, mixing the two fixed policies on the cost-quality hull that bracket "
        "the budget; every method is scored by the same replay.",
        "",
        markdown_table(report),
    ]
    seq = report.get("sequential_notes") or {}
    if seq.get("monte_carlo"):
        parts += [
            "",
            f"Reranker `{seq['reranker']}`. `sequential`: the round planner with the router's default "
            f"`Rounds()`, {seq['prior']} prior; {seq['monte_carlo']} (± in points)."
            + (f" `esc`: {seq['esc']}." if seq.get("esc") else "")
            + (f" {seq['score_evidence']}." if seq.get("score_evidence") else ""),
        ]
    routing = routing_table(report)
    if routing:
        parts += ["", routing]
    return "\n".join(parts) + "\n"


def plot_cost_quality(
    report: Mapping[str, Any],
    path: str | Path,
    *,
    title: str = "Cost vs quality",
    live: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    xlabel: str = "mean spend per query (cost units)",
) -> Path:
    """Write a PNG of each method's quality against spend over the budget sweep.

    ``live`` adds measured points ``{method: [(spend, quality), ...]}`` (e.g. from a live run).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'adaptive-router[plot]'") from None
    sweep = report["sweep"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m, q in sweep["quality"].items():
        color, ls = _STYLE.get(m, (None, "-"))
        ax.plot(sweep["spend"][m], q, ls, color=color, label=m, linewidth=1.8)
        r = report["methods"][m]
        ax.plot(r["spend"], r["quality"], "o", color=color, markersize=4)
    for m in [m for m in report["methods"] if m not in sweep["quality"]]:  # one point each (esc)
        color, _ = _STYLE.get(m, (None, "-"))
        r = report["methods"][m]
        ax.plot(r["spend"][:1], r["quality"][:1], "D", color=color, markersize=6, label=m)
    for m, pts in (live or {}).items():
        color, _ = _STYLE.get(m, (None, "-"))
        xs, ys = zip(*pts, strict=True) if pts else ((), ())
        ax.plot(xs, ys, "s", color=color, markersize=7, markerfacecolor="none", label=f"{m} (live)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean quality (expected reward)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
