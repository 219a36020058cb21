"""``adaptive-router train``: fit the probe on outcome records and print its validation report."""

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
from adaptive_router.app.options import PricesOpt, check_number, check_output_folder, floats, read_prices

__all__ = ["train"]


@_errors
def train(
    outcomes: Annotated[Path, typer.Argument(help="Outcome JSONL.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to save the probe in.")],
    featurizer: Annotated[
        str,
        typer.Option(
            help="auto (MiniLM-L6 or Gemma-3-270M layer 9, chosen on validation; when every prompt carries "
            "a draft, as convert-routellm's GSM8K cascade does, also the draft's answer signals alone or "
            "with either; MiniLM-L6 with --answer-signals or --ray), minilm-l6, gemma-3-270m, a local model "
            "folder, or none (draft signals only)."
        ),
    ] = "auto",
    max_k: Annotated[
        int | None, typer.Option(help="Largest k the curves cover (default from the data).")
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Per-query budgets the validation checks allocation at (dollars with --prices). Default "
            "1,2,4; with --prices five from the cheapest to the dearest model's cost, log-spaced."
        ),
    ] = None,
    costs: CostsOpt = None,
    prices: PricesOpt = None,
    split: SplitOpt = "all",
    test_fraction: FracOpt = 0.5,
    seed: SeedOpt = 0,
    layers: Annotated[
        str | None, typer.Option(help="Featurizer layers, e.g. 9 or 9,-1 (default: its own).")
    ] = None,
    pooling: Annotated[str | None, typer.Option(help="last or mean (default: the featurizer's).")] = None,
    neighbors: Annotated[
        int | None,
        typer.Option(
            help="Blend in the outcomes of the k most similar training queries (0: off; default 150, its "
            "weight chosen on validation, 0 included)."
        ),
    ] = None,
    hidden: Annotated[
        int | None,
        typer.Option(
            help="Hidden units of the head's one hidden layer; 0 for a linear head (no layer). Without "
            "--hidden and --l2 the head is chosen on validation."
        ),
    ] = None,
    l2: Annotated[float | None, typer.Option(help="Ridge penalty on the head's weights.")] = None,
    answer_signals: Annotated[
        bool,
        typer.Option(help="Prompts are join_draft(query, draft): add checks on the draft (cascade probe)."),
    ] = False,
    final_answer: Annotated[
        str | None,
        typer.Option(
            help="With --answer-signals: regex whose group 1 is the draft's final answer (default: the "
            "built-in reader: '#### 42', '\\boxed{42}', 'the answer is 42', else the last number)."
        ),
    ] = None,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
    reranker: RerankerOpt = None,
) -> None:
    """Fit the probe (validation, shrinkage, uniform fallback) and print its validation report.

    Validated at the costs evaluate uses (recorded, --costs, or priced from the recorded tokens with
    --prices). With --ray the training texts are featurized on the cluster (GPU workers where it has GPUs).
    """
    from adaptive_router.app.budget_sweep import default_budgets
    from adaptive_router.app.cascade_eval import CASCADE_FILE, STATE_EVIDENCE, save_cascade_models
    from adaptive_router.app.evaluation import default_ladder, default_max_k
    from adaptive_router.app.round_choice import ProbePrior, describe_choice, save_round_choices
    from adaptive_router.app.sequential_eval import RerankedOutcomes, check_reranker
    from adaptive_router.probe import AnswerSignals, WithAnswerSignals, get_featurizer, train_probe
    from adaptive_router.probe.persistence import ROUNDS_FILE
    from adaptive_router.probe.signals import AUTO_FINAL_ANSWER

    table = read_prices(prices, costs=costs)  # a bad file fails before anything is loaded
    if out.exists() and not out.is_dir():
        _fail(f"--out {str(out)!r} is a file; the probe is saved as a folder: give a folder path")
    check_output_folder(out.parent, "--out")
    if hidden is not None and hidden < 0:
        _fail(f"--hidden must be >= 0 (0 is a linear head), got {hidden!r}")
    if neighbors is not None and neighbors < 0:
        _fail(f"--neighbors must be >= 0 (0 turns it off), got {neighbors!r}")
    if max_k is not None and max_k < 1:
        _fail(f"--max-k must be >= 1, got {max_k!r}")
    if l2 is not None:
        check_number(l2, "--l2")
    budget_list = None if budgets is None else floats(budgets, "--budgets", positive=True)
    if final_answer is not None and not answer_signals:
        _fail("--final-answer only applies with --answer-signals")
    if featurizer == "none" and not answer_signals:
        _fail("--featurizer none (no query features) needs --answer-signals")
    _check_ray(ray, ray_address, ray_workers)
    settings: dict[str, Any] = {}
    if layers is not None:
        values = floats(layers, "--layers")
        if any(v != int(v) for v in values):
            _fail(f"--layers must be comma-separated integers like 9 or 9,-1, got {layers!r}")
        settings["layers"] = tuple(int(v) for v in values)
    if pooling is not None:
        settings["pooling"] = pooling
    if featurizer == "auto" and settings:
        _fail("--layers and --pooling configure one featurizer: give --featurizer gemma-3-270m (or another)")
    if featurizer == "auto" and (answer_signals or ray):
        featurizer = "minilm-l6"  # one featurizer to wrap with the draft checks, or to ship to the workers
    data = _load_outcomes(outcomes, split, test_fraction, seed)
    rerank = check_reranker(data, reranker)
    data = RerankedOutcomes(data, rerank)  # the curves the probe learns: best of k by this reranker
    if max_k is None:
        max_k = default_max_k(data, rerank)
    # the same procedure costs `evaluate` uses (recorded, --costs, priced with --prices, or the documented
    # routing assumption); every query priced before the featurizer loads
    ladder, notes = default_ladder(data, max_k=max_k, costs=_costs(costs), prices=table)
    budget_list = budget_list or default_budgets(ladder.costs, money=table is not None)
    feat: Any = None if featurizer == "none" else featurizer
    if featurizer not in ("none", "auto"):
        feat = get_featurizer(featurizer, **settings)
    if answer_signals:
        feat = WithAnswerSignals(feat, AnswerSignals(final_answer=final_answer or AUTO_FINAL_ANSWER))
    given = {"neighbors": neighbors, "hidden": hidden, "l2": l2}
    head = {name: value for name, value in given.items() if value is not None}  # the rest: on validation
    with contextlib.ExitStack() as stack:
        fit_with = feat
        if ray:
            from adaptive_router.app.ray_cli import ray_featurizer

            fit_with = stack.enter_context(ray_featurizer(feat, address=ray_address, workers=ray_workers))
        probe = train_probe(
            data,
            featurizer=fit_with,
            max_k=max_k,
            **head,
            budgets=budget_list,
            costs=notes["costs"],
            label_kind="curve" if rerank == "vote" else "auto",
        )
    if ray:
        probe.featurizer = feat  # the probe keeps the featurizer; Ray only computed the training features
    probe.save(out)
    typer.echo(
        f"probe saved to {out} ({len(data)} queries, procedures {list(data.procedures)}, max_k={max_k})"
    )
    cascades = save_cascade_models(out, data, notes["costs"])  # routing data with several cheap samples
    if cascades:
        typer.echo(f"cascade model ({', '.join(cascades)}) saved to {out / CASCADE_FILE}")
    if len(data.procedures) == 1:  # best-of-k: the round settings, per budget, at evaluate's max_k
        proc = data.procedures[0]
        typer.echo("choosing the round settings on validation (two-fold replays)...", err=True)
        choices = save_round_choices(
            out, data, budgets=budget_list, unit_cost=float(notes["costs"][proc]),
            prior=ProbePrior.of(probe.estimator),
        )  # fmt: skip
        for c in choices:
            reranker_name = next(r for r, kind in STATE_EVIDENCE.items() if kind == c.evidence)
            typer.echo(
                f"rounds ({reranker_name}), chosen on validation: "
                + describe_choice(c)
                + ("" if c.prior_weight is None else f"; posterior prior weight {c.prior_weight:g}")
                + f"; saved to {out / ROUNDS_FILE}"
            )
    typer.echo(f"fallback_active: {probe.fallback_active}")
    _echo_selection(probe.report.get("selection"))
    typer.echo(json.dumps(getattr(probe, "report", {}), indent=2, default=str))


def _echo_selection(selection: dict[str, Any] | None) -> None:
    """One line per candidate ``train`` chose among (the report's ``selection``), the winner marked."""
    if not selection:
        return
    drafts = selection.get("drafts")
    if drafts and drafts["answer_signals"]:
        typer.echo("every prompt carries a draft: the draft's answer signals are candidates too")
    elif drafts and drafts["with_draft"]:
        typer.echo(
            f"{drafts['with_draft']} of {drafts['texts']} prompts carry a draft: answer signals need one in "
            "every prompt, so they are not candidates"
        )
    if len(selection["candidates"]) < 2:
        return
    typer.echo("candidates by validation score (mean held-out allocation quality; * chosen):")
    for row in selection["candidates"]:
        mark = "*" if row["candidate"] == selection["chosen"] else " "
        typer.echo(f" {mark} {row['score']:.4f}  {row['candidate']}  (uniform {row['uniform']:.4f})")
