"""The demo's run folder: report.md, report.json and the plots, written from the steps' results."""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptive_router.app.demo.config import CHEAP, EXPENSIVE
from adaptive_router.app.reports import markdown_summary, percent, plot_cost_quality, routing_table

__all__ = [
    "LIVE_METHODS",
    "command_line",
    "environment",
    "final_table",
    "short_report",
    "write_json",
    "write_run_folder",
]


def environment() -> dict[str, Any]:
    """Python, machine, CPU count and the time, for the report."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def command_line(argv: Sequence[str]) -> str:
    """The command that reproduces this run, shell-quoted.

    Examples
    --------
    >>> command_line(["/x/cli.py", "demo", "--n-test", "40"])
    'adaptive-router demo --n-test 40'
    """
    prog = Path(argv[0]).name if argv else "adaptive-router"
    if prog in ("__main__.py", "cli.py"):
        prog = "adaptive-router"
    return " ".join([prog, *map(shlex.quote, argv[1:])])


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n", encoding="utf-8")


def short_report(report: Mapping[str, Any]) -> str:
    """The first few scalar entries of a probe's validation report, on one line.

    Examples
    --------
    >>> short_report({"brier": 0.12345, "fallback": False, "per_budget": []})
    'brier=0.123, fallback=False'
    """
    keys = [k for k, v in report.items() if isinstance(v, int | float | bool | str)][:6]
    return ", ".join(
        f"{k}={report[k]:.3g}" if isinstance(report[k], float) else f"{k}={report[k]}" for k in keys
    )


LIVE_METHODS = ("uniform", "adaptive", "rounds", "vote", "rounds_vote")
"""The live methods in table order: one-shot uniform and adaptive, rounds on the verifier, self-consistency
(one-shot vote) and rounds on the votes."""


def final_table(rep: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """Live accuracy per budget and method, the expected accuracy of the same allocations, and savings.

    One accuracy column per live method that ran (see `LIVE_METHODS`; at least uniform and adaptive).
    """
    methods = [m for m in LIVE_METHODS if m in ("uniform", "adaptive") or any(m in r for r in live.values())]
    lines = [
        "| budget (calls/query) | "
        + " | ".join(f"{m} acc (live)" for m in methods)
        + f" | calls/query {' / '.join(methods)} | expected acc uniform / adaptive "
        "| adaptive savings at equal accuracy (replay) |",
        "|---:|" + "---:|" * (len(methods) + 3),
    ]
    adaptive = rep["methods"].get("adaptive")
    for i, b in enumerate(rep["budgets"]):
        row = live.get(str(b), {})
        u, a = row.get("uniform"), row.get("adaptive")
        sav = adaptive["savings"][i] if adaptive else None
        if u and a:
            cells = [percent(row[m]["quality"]) if m in row else "n/a" for m in methods]
            calls = [f"{row[m]['calls_per_query']:.2f}" if m in row else "n/a" for m in methods]
            cells.append(" / ".join(calls))
            cells.append(f"{percent(u['expected_quality'])} / {percent(a['expected_quality'])}")
        else:
            exp_a = percent(adaptive["quality"][i]) if adaptive else "n/a"
            cells = ["n/a"] * (len(methods) + 1)
            cells.append(f"{percent(rep['methods']['uniform']['quality'][i])} / {exp_a}")
        lines.append(f"| {b:g} | " + " | ".join(cells) + f" | {percent(sav, signed=True)} |")
    return "\n".join(lines)


def write_run_folder(
    folder: Path,
    report: dict[str, Any],
    *,
    command: str,
    rep: Mapping[str, Any],
    live: Mapping[str, Any],
    routing: Mapping[str, Any] | None,
    console: Any,
) -> None:
    """Write report.md, report.json and the PNGs of one run into ``folder`` and print the tables.

    ``report`` is the run's JSON report (its ``timings_s`` and ``missing`` are read), ``rep`` the best-of-k
    replay, ``live`` the live rows by budget, ``routing`` the routing results or None.
    """
    timings: Mapping[str, float] = report.get("timings_s", {})
    missing: Sequence[str] = report.get("missing", [])
    report["environment"] = environment()
    report["command"] = command
    pts = (
        {
            m: [(v[m]["spend"], v[m]["quality"]) for v in live.values() if m in v]
            for m in LIVE_METHODS
        }
        if live
        else None
    )
    plot_cost_quality(
        rep,
        folder / "best_of_k.png",
        live=pts,
        xlabel="samples per query",
        title=f"Best-of-k on {rep['n_queries']} held-out arithmetic queries (Gemma-3-270M)",
    )
    if routing:
        plot_cost_quality(routing["replay"], folder / "routing.png", title=f"Routing {CHEAP} vs {EXPENSIVE}")
    table = final_table(rep, live)
    md = [
        f"# adaptive-router demo ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Command: `{command}`",
        "",
        "## Live best-of-k through the router (real llama.cpp samples, real verifier)",
        "",
        table,
        "",
        "uniform and adaptive are one-shot (k fixed before sampling, without / with the probe), rounds reads "
        "the verifier after each round (the probe's prior); vote is self-consistency (the plurality of k "
        "answers, one-shot) and rounds_vote reads the answers' agreement after each round (no verifier, no "
        "probe). Every method is scored by the verifier and reads the same sample streams.",
        "",
        markdown_summary(rep, title="Replay on held-out queries (expected accuracy from recorded outcomes)"),
        "![best-of-k](best_of_k.png)",
        "",
    ]
    if "verification" in report:
        v = report["verification"]
        md += [
            "## Labels vs real sampling",
            "",
            f"Exact P(correct) from one forward pass vs {v['samples_per_query']} real llama.cpp "
            f"samples on {v['queries']} queries: mean {v['mean_predicted']:.3f} "
            f"vs {v['mean_sampled']:.3f}, "
            f"mean |diff| {v['mean_abs_diff']:.3f}, Pearson r {v['pearson']:.2f}.",
            "",
        ]
    if routing:
        md += [markdown_summary(routing["replay"], title="Routing replay"), "![routing](routing.png)", ""]
        if "live" in routing:
            r = routing["live"]
            md += [
                f"Live routing at {r['budget_per_query']:.2f} units/query: accuracy {r['quality']:.1%} "
                f"with {r['expensive_share']:.0%} `{EXPENSIVE}` calls "
                f"(expected {r['expected_quality']:.1%}; all-`{EXPENSIVE}` expected "
                f"{r['all_expensive_expected_quality']:.1%}).",
                "",
            ]
    if missing:
        md += ["## Missing", "", *[f"- {m}" for m in missing], ""]
    md += ["## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in timings.items()), ""]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    write_json(folder / "report.json", report)
    console.print("")
    console.print(table, soft_wrap=True, markup=False, highlight=False)
    if routing:
        console.print("")
        console.print(routing_table(routing["replay"]), soft_wrap=True, markup=False, highlight=False)
    console.print(f"\nReport: {folder / 'report.md'} (total {timings.get('total', 0):.0f}s)")
