"""``adaptive-router run``: live budgeted evaluation through the router (best-of-k or a route)."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from adaptive_router.app.backends import sampling_model
from adaptive_router.app.cli._common import CostsOpt, _costs, _errors, _fail
from adaptive_router.app.options import check_number, check_output_file

__all__ = ["run"]


def _routes(text: str) -> dict[str, str]:
    """``--route`` parsed: ``cheap=llama:smollm,expensive=llama:gemma`` -> ``{name: backend}``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, backend = (x.strip() for x in part.partition("="))
        if not sep or not name or not backend:
            _fail(f"cannot parse route {part!r}; write --route name=backend,name=backend")
        if name in out:
            _fail(f"route {name!r} is named twice in --route {text!r}")
        out[name] = backend
    if len(out) < 2:
        _fail(f"--route needs two or more routes like cheap=llama:smollm,expensive=llama:gemma, got {text!r}")
    return out


def _route_costs(routes: dict[str, str], text: str | None) -> dict[str, float]:
    costs = _costs(text)
    if costs is None or set(costs) != set(routes):
        _fail(
            f"--route needs --costs for exactly its routes {list(routes)}, e.g. --costs "
            + ",".join(f"{n}={i + 1}" for i, n in enumerate(routes))
            + f"; got {text!r}"
        )
    if any(not (c > 0 and math.isfinite(c)) for c in costs.values()):
        _fail(f"--costs must be positive and finite, got {text!r}")
    return costs


@_errors
def run(
    dataset: Annotated[str, typer.Argument(help="JSONL tasks file, arith:N[:SEED] or rg:NAME:N[:SEED].")],
    budget: Annotated[
        float, typer.Option(help="TOTAL budget for the whole dataset: calls, or cost units with --route.")
    ],
    probe: Annotated[Path | None, typer.Option(help="Probe folder; without it: uniform allocation.")] = None,
    backend: Annotated[
        str, typer.Option(help="llama:gemma or openai:MODEL (with --base-url).")
    ] = "llama:gemma",
    base_url: str | None = None,
    max_k: Annotated[
        int | None,
        typer.Option(
            help="Largest number of samples per query (best-of-k; default: the probe's max_k, 8 without one)."
        ),
    ] = None,
    temperature: float = 1.0,
    route: Annotated[
        str | None,
        typer.Option(
            help="Route instead of best-of-k: name=backend pairs, e.g. "
            "cheap=llama:smollm,expensive=llama:gemma (with --costs; a probe's procedures must include "
            "the names)."
        ),
    ] = None,
    costs: CostsOpt = None,
    rounds: Annotated[
        str,
        typer.Option(
            help="Best-of-k in rounds on the reranker's evidence (auto: a solved query stops, agreeing "
            "votes stop, the rest of the budget goes to the others; one-shot for --reranker score), or off: "
            "every k decided from the prompt alone."
        ),
    ] = "auto",
    reranker: Annotated[
        str,
        typer.Option(
            help="How the best of k is chosen live: verifier (the task's verifier), vote (majority over the "
            "answers the verifier reads; the reference answer is not used) or score (--reward-model)."
        ),
    ] = "verifier",
    reward_model: Annotated[
        Path | None,
        typer.Option(help="With --reranker score: a local sequence-classification reward-model folder."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here.")] = None,
) -> None:
    """Live budgeted evaluation: allocate the TOTAL budget over the dataset, run the router, verify.

    Best-of-k on one --backend (in rounds by default; the best of k picked by --reranker), or with --route a
    cheap/expensive route over several backends. The answers are scored by each task's verifier whatever the
    reranker.
    """
    from adaptive_router.app.live_run import LIVE_RERANKERS, completion_model, live_reranker, run_live
    from adaptive_router.app.tasks import load_dataset
    from adaptive_router.app.verifiers import check_verifiers
    from adaptive_router.runnables import AdaptiveRouter
    from adaptive_router.strategies import BestOfK, Route

    check_number(budget, "--budget", strict=True)
    check_number(temperature, "--temperature")
    if max_k is not None and max_k < 1:
        _fail(f"--max-k must be >= 1, got {max_k!r}")
    check_output_file(json_out, "--json")
    if rounds not in ("auto", "off"):
        _fail(f"--rounds must be auto or off, got {rounds!r}")
    if reranker not in LIVE_RERANKERS:
        _fail(f"--reranker must be one of {', '.join(LIVE_RERANKERS)}, got {reranker!r}")
    if (reranker == "score") != (reward_model is not None):
        _fail("--reward-model goes with --reranker score, and --reranker score needs --reward-model FOLDER")
    if reward_model is not None and not reward_model.is_dir():
        _fail(f"--reward-model {str(reward_model)!r} is not a folder; give a local checkpoint folder")
    if route is not None and reranker != "verifier":
        _fail("--reranker is for best-of-k; a --route sends each query to one model once")
    tasks = load_dataset(dataset)
    check_verifiers({t.verifier for t in tasks})
    picker = None
    if route is None:
        model_dir = None if reward_model is None else str(reward_model)
        picker = live_reranker(reranker, tasks, reward_model=model_dir)
    routes = _routes(route) if route is not None else None
    if routes is None and costs is not None:
        _fail("--costs is for --route; best-of-k costs one unit per call")
    if routes is not None and max_k is not None:
        _fail("--max-k is for best-of-k; a --route sends each query to one model once")
    route_costs = _route_costs(routes, costs) if routes is not None else {"default": 1.0}
    cheapest = min(route_costs.values())
    if budget < len(tasks) * cheapest:
        _fail(
            f"--budget {budget:g} is below one call per query ({len(tasks)} queries"
            + (f" at the cheapest cost {cheapest:g})" if routes is not None else ")")
        )
    loaded = None
    if probe is not None:
        from adaptive_router.probe import Probe

        loaded = Probe.load(probe)
        if routes is not None and not set(routes) <= set(loaded.procedures):
            _fail(
                f"--route names {sorted(set(routes) - set(loaded.procedures))} are not procedures of the "
                f"probe (it predicts {list(loaded.procedures)}); name each route after a probe procedure"
            )
    settings: dict[str, Any] = {
        "endpoint": "completions",
        "temperature": temperature,
        "max_tokens": 16,
        "stop": ["\n"],
    }
    with contextlib.ExitStack() as stack:
        if routes is None:
            model, _ = stack.enter_context(
                sampling_model(backend, local=("gemma",), base_url=base_url, **settings)
            )
            procedure = loaded.procedures[0] if loaded is not None else "default"
            strategy: Any = BestOfK(
                completion_model(model),
                reranker=picker,
                max_k=max_k or (8 if loaded is None else int(loaded.max_k)),
                procedure=procedure,
            )
        else:
            models = {}
            for name, spec in routes.items():
                model, _ = stack.enter_context(
                    sampling_model(spec, local=("gemma", "smollm"), base_url=base_url, **settings)
                )
                models[name] = completion_model(model, name=name)
            strategy = Route(models=models, costs=route_costs)
        router = AdaptiveRouter(
            strategy=strategy,
            probe=loaded,
            budget_per_query=budget / len(tasks),
            window_size=len(tasks),
            rounds="auto" if rounds == "auto" else None,  # auto: the settings train chose, if any
        )
        result = run_live(tasks, router)
    out = {
        "queries": len(tasks),
        "budget_total": budget,
        **({"reranker": reranker} if routes is None else {}),
        **result.as_dict(),
        "total_calls": result.calls * len(tasks),
    }
    line = (
        f"quality {result.quality:.1%} on {len(tasks)} queries; {result.calls * len(tasks):.0f} calls, "
        f"{result.spend * len(tasks):g} of {budget:g} budgeted ({result.spend:.2f} units/query)"
    )
    if routes is None:
        typer.echo(f"{line}; k histogram {out['k_histogram']}")
    else:
        expensive = max(route_costs, key=route_costs.__getitem__)
        out.update(costs=route_costs, expensive=expensive, expensive_share=result.share(expensive))
        typer.echo(
            f"{line}; {out['expensive_share']:.1%} of queries sent to {expensive!r}; "
            f"routes {out['procedure_counts']}"
        )
    if json_out is not None:
        json_out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
