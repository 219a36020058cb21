"""``adaptive-router evaluate``: replay recorded outcomes under every allocation method and report."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from adaptive_router.app.cli._common import (
    CostsOpt,
    FracOpt,
    RayAddressOpt,
    RayOpt,
    RayWorkersOpt,
    RerankerOpt,
    SeedOpt,
    SplitOpt,
    _check_ray,
    _costs,
    _errors,
    _fail,
    _load_outcomes,
)
from adaptive_router.app.options import PricesOpt, check_output_file, check_plot_file, floats, read_prices

__all__ = ["evaluate"]


@_errors
def evaluate(
    outcomes: Annotated[Path, typer.Argument(help="Outcome JSONL (held-out queries).")],
    probe: Annotated[
        Path | None, typer.Option(help="Probe folder; without it only the baselines and the oracle.")
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Per-query budgets in cost units (dollars with --prices), comma-separated. Default 1,2,4; "
            "with --prices five from the cheapest to the dearest model's cost, log-spaced."
        ),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the cost-quality PNG here.")] = None,
    costs: CostsOpt = None,
    prices: PricesOpt = None,
    cost_unit: Annotated[
        str | None,
        typer.Option(help="What a cost unit is: '$' shows money per 1,000 queries (default with --prices)."),
    ] = None,
    max_k: Annotated[int | None, typer.Option(help="Largest k (best-of-k) or k per route.")] = None,
    split: SplitOpt = "all",
    test_fraction: FracOpt = 0.5,
    seed: SeedOpt = 0,
    reranker: RerankerOpt = None,
    seeds: Annotated[
        int,
        typer.Option(
            help="Sample orderings the sequential replays (sequential, round_robin, esc, "
            "adaptive_consistency) average over."
        ),
    ] = 16,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
) -> None:
    """Replay recorded outcomes under the baselines (every single model, their cost-quality hull, the best
    single model within the budget, uniform, random), adaptive and oracle allocation, with each method's
    AIQ, and sequentially for best-of-k data: the round planner with the router's default rounds, the round
    baselines (round_robin: one more sample per round to every unsolved query, with a verifier;
    Early-Stopping SC and Adaptive-Consistency for data with answers), savings against the hull; for
    routing data with several samples of the cheapest model per query, a cascade in rounds (the probe's
    cascade.json from train, else fitted in-sample)."""
    from adaptive_router.app.aiq_report import add_aiq
    from adaptive_router.app.budget_sweep import default_budgets
    from adaptive_router.app.cascade_eval import STATE_EVIDENCE, load_cascade_model
    from adaptive_router.app.evaluation import default_ladder, default_max_k, evaluate_allocation
    from adaptive_router.app.reports import markdown_summary, plot_cost_quality
    from adaptive_router.app.sequential_eval import add_round_methods, check_reranker

    budget_list = None if budgets is None else floats(budgets, "--budgets", positive=True)
    if max_k is not None and max_k < 1:
        _fail(f"--max-k must be >= 1, got {max_k!r}")
    table = read_prices(prices, costs=costs)  # a bad file fails before any work
    check_output_file(json_out, "--json")
    check_plot_file(plot)
    if seeds < 1:
        _fail(f"--seeds must be >= 1, got {seeds!r}")
    _check_ray(ray, ray_address, ray_workers)
    data = _load_outcomes(outcomes, split, test_fraction, seed)
    rerank = check_reranker(data, reranker)
    unit = cost_unit or ("$" if table is not None else None)
    if budget_list is None or table is not None:  # every query priced (or its cost found) before the probe
        ladder, _ = default_ladder(data, max_k=max_k, costs=_costs(costs), prices=table)
        budget_list = budget_list or default_budgets(ladder.costs, money=unit == "$")
    predicted = None
    choices: dict[str, Any] = {}
    if probe is not None:
        from adaptive_router.probe import Probe

        loaded = Probe.load(probe)
        if max_k is None:  # the data's default, within the probe's curves
            max_k = min(default_max_k(data, rerank), int(loaded.max_k))
        predicted = loaded.predict_curves(data.texts())  # once, for one-shot and sequential
        choices = loaded.round_choices  # best-of-k data's round settings, chosen by train
    choice = choices.get(STATE_EVIDENCE.get(rerank, ""))
    rounds_prior = predicted
    if choice is not None and choice.prior_weight is not None:  # the weight train chose for rounds
        rounds_prior = loaded.predict_curves(data.texts(), shrinkage=choice.prior_weight)
    with contextlib.ExitStack() as stack:
        extra: dict[str, Any] = {}
        scores = None
        if ray:  # the same replays, sharded over the cluster: the same report
            from adaptive_router.app.ray_cli import ray_replays

            scores, replay_fn = stack.enter_context(ray_replays(address=ray_address, workers=ray_workers))
            extra = {"replay_fn": replay_fn}
        report = evaluate_allocation(
            data,
            budgets=budget_list,
            predicted=predicted,
            costs=_costs(costs),
            max_k=max_k,
            reranker=rerank,
            scores=scores,
            prices=table,
            cost_unit=unit,
        )
        cascade = None if probe is None else load_cascade_model(probe, rerank)  # routing data's cascade
        add_round_methods(
            report, data, reranker=rerank, prior_curves=rounds_prior, seeds=seeds, cascade_model=cascade,
            round_choice=choice, **extra,
        )  # fmt: skip
    add_aiq(report)  # again: the sequential methods joined the sweep
    report["source"] = {
        "outcomes": str(outcomes),
        "probe": str(probe) if probe else None,
        "split": split,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    typer.echo(markdown_summary(report, title=f"Budgeted evaluation of {outcomes.name}"))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"report written to {json_out}")
    if plot is not None:
        plot_cost_quality(report, plot, title=f"Cost vs quality: {outcomes.name}")
        typer.echo(f"plot written to {plot}")
