"""The ``adaptive-router`` command line: label, train, evaluate, run, demo, serve, convert-routellm.

Every command turns a bad input into one ``error: ...`` line on stderr and exit status 2 (no traceback), and
a missing optional dependency into the ``pip install`` command that adds it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from adaptive_router.app.backends import backend_name, sampling_model
from adaptive_router.app.options import (
    PricesOpt,
    check_answer_pattern,
    check_number,
    check_output_file,
    check_output_folder,
    check_plot_file,
    floats,
    read_prices,
    sigterm_interrupts,
    unescape,
)
from adaptive_router.errors import AdaptiveRouterError

__all__ = ["app", "main"]

app = typer.Typer(
    name="adaptive-router",
    help="Decide per query how much LLM compute to spend: label outcomes, train a probe, evaluate, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

_EXTRAS = {
    "torch": "probe",
    "transformers": "probe",
    "safetensors": "probe",
    "llama_cpp": "local",
    "matplotlib": "plot",
    "reasoning_gym": "tasks",
    "math_verify": "tasks",
    "fastapi": "server",
    "uvicorn": "server",
    "ray": "ray",
}


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _errors(fn: F) -> F:
    """Turn library errors and missing extras into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except AdaptiveRouterError as exc:
            _fail(str(exc))
        except ModuleNotFoundError as exc:
            root = (exc.name or "").split(".")[0]
            extra = _EXTRAS.get(root)
            hint = f"pip install 'adaptive-router[{extra}]'" if extra else f"pip install {root}"
            _fail(f"this command needs the missing package {root!r}: {hint}")
        except (
            FileNotFoundError,
            FileExistsError,
            IsADirectoryError,
            NotADirectoryError,
            PermissionError,
        ) as exc:
            _fail(f"{exc.strerror}: {exc.filename}")
        except UnicodeDecodeError as exc:  # a reader that does not say which file: name the bytes at least
            _fail(
                f"an input file is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                "save it as UTF-8"
            )
        except KeyboardInterrupt:
            _fail("interrupted", code=130)

    return wrapper  # type: ignore[return-value]


def _load_outcomes(path: Path, split: str, test_fraction: float, seed: int) -> Any:
    from adaptive_router.outcomes import OutcomeSet

    outcomes = OutcomeSet.read_jsonl(path)
    if split == "all":
        return outcomes
    if split not in ("train", "test"):
        _fail(f"--split must be all, train or test, got {split!r}")
    train, test = outcomes.split(test_fraction, seed=seed)
    return train if split == "train" else test


SplitOpt = Annotated[
    str, typer.Option(help="Use all records, or the train/test side of the stable id-hash split.")
]
FracOpt = Annotated[float, typer.Option(help="Test share of the id-hash split.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the id-hash split.")]
CostsOpt = Annotated[str | None, typer.Option(help="Cost per call, e.g. cheap=1,expensive=10.")]
RayOpt = Annotated[  # rich reads [ray] as markup and drops it: escaped, the help shows the extra
    bool, typer.Option("--ray", help="Run on Ray (pip install 'adaptive-router\\[ray]'); see docs/ray.md.")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(help="With --ray: the cluster (auto, HOST:6379); default $RAY_ADDRESS, else a local Ray."),
]
RayWorkersOpt = Annotated[int | None, typer.Option(help="With --ray: workers (default: one per node).")]
RerankerOpt = Annotated[
    str | None,
    typer.Option(
        help="How the best of k is chosen: verifier (best reward), vote (majority over recorded answers) or "
        "score (best recorded score). Default: score when scores are recorded, else verifier."
    ),
]


def _check_ray(ray: bool, address: str | None, workers: int | None) -> None:
    """``--ray`` options checked (and Ray imported) before anything is loaded or spent."""
    if not ray:
        if address is not None or workers is not None:
            _fail("--ray-address and --ray-workers need --ray")
        return
    from adaptive_router.app.ray_cluster import require_ray

    require_ray()
    if workers is not None and workers < 1:
        _fail(f"--ray-workers must be >= 1, got {workers!r}")


def _costs(text: str | None) -> dict[str, float] | None:
    """``--costs`` parsed (``None`` when not given): the per-call costs train and evaluate share."""
    from adaptive_router.app.evaluation import parse_costs

    return parse_costs(text) if text else None


# ---------------------------------------------------------------------------------------------------- label
@app.command()
@_errors
def label(
    dataset: Annotated[str, typer.Argument(help="JSONL tasks file, arith:N[:SEED] or rg:NAME:N[:SEED].")],
    out: Annotated[Path, typer.Option("--out", help="Outcome JSONL to append to (resumable).")],
    backend: Annotated[
        str, typer.Option(help="llama:gemma, llama:smollm, or openai:MODEL (with --base-url).")
    ] = "llama:gemma",
    samples: Annotated[int, typer.Option(help="Independent samples per query.")] = 8,
    procedure: Annotated[
        str | None, typer.Option(help="Procedure name recorded (default: the model).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server root, e.g. http://host/v1.")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    mode: Annotated[str, typer.Option(help="completions (raw prompt) or chat.")] = "completions",
    temperature: float = 1.0,
    max_tokens: int = 16,
    stop: Annotated[
        str | None, typer.Option(help="Stop sequence; default newline in completions mode.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 2,
    retries: Annotated[int, typer.Option(help="Attempts per request (429/5xx/timeouts).")] = 4,
    cost: Annotated[float | None, typer.Option(help="Cost per call recorded for the procedure.")] = None,
    reward_model: Annotated[
        Path | None,
        typer.Option(
            help="Local transformers sequence-classification checkpoint folder that also scores "
            "every sample: its score is recorded as the sample's 'score' (reranker score; 'reward' "
            "stays the verifier's), or as 'reward' for a dataset whose tasks have no verifier "
            "('verifier': 'none')."
        ),
    ] = None,
    final_answer: Annotated[
        str | None,
        typer.Option(
            help="Regular expression whose first group captures a response's final answer, recorded as "
            "each sample's 'answer' (for votes); default: the verifier's own reading (first line, ...)."
        ),
    ] = None,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    ray_workers: RayWorkersOpt = None,
) -> None:
    """Sample N responses per query, score them with the dataset's verifier, append outcome records.

    Every value is checked before the backend starts; Ctrl-C (or SIGTERM) sends nothing more, keeps every
    response already paid for and exits 130: run the same command again to resume.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adaptive_router.app.labeling import LabelInterrupted, check_label_run, label_tasks
    from adaptive_router.app.tasks import load_dataset

    if mode not in ("completions", "chat"):
        _fail(f"--mode must be 'completions' or 'chat', got {mode!r}")
    for name, value in (("--retries", retries), ("--samples", samples), ("--concurrency", concurrency)):
        if value < 1:
            _fail(f"{name} must be >= 1, got {value!r}")
    if max_tokens < 1:
        _fail(f"--max-tokens must be >= 1, got {max_tokens!r}")
    check_number(temperature, "--temperature")
    check_number(cost, "--cost")
    if stop is not None and not stop:
        _fail("--stop must not be empty; leave it out for the default")
    stops = [unescape(stop, "--stop")] if stop else (["\n"] if mode == "completions" else None)
    check_output_file(out, "--out")
    check_answer_pattern(final_answer)
    _check_ray(ray, ray_address, ray_workers)
    if ray:
        from adaptive_router.app.ray_label import check_ray_label

        check_ray_label(ray_workers, address=ray_address)
    tasks = load_dataset(dataset)
    scorer = None
    if reward_model is not None:
        if not reward_model.is_dir():
            _fail(f"--reward-model {str(reward_model)!r} is not a folder; give a local checkpoint folder")
        from adaptive_router.strategies.rerankers import RewardModelReranker

        scorer = RewardModelReranker(model=str(reward_model))
    recorded = procedure or backend_name(backend, local=("gemma", "smollm"))
    check_label_run(
        tasks,
        out,
        samples=samples,
        procedure=recorded,
        cost=cost,
        concurrency=concurrency,
        reward_model=scorer,
    )
    settings = {
        "endpoint": mode,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stop": stops,
        "max_attempts": retries,
        "timeout": 120.0,
        "deadline": 120.0 * retries,
    }
    try:
        if ray:
            from adaptive_router.app.ray_cli import label_on_ray

            summary = label_on_ray(
                tasks,
                out,
                backend=backend,
                base_url=base_url,
                api_key_env=api_key_env,
                settings=settings,
                address=ray_address,
                workers=ray_workers,
                samples=samples,
                procedure=recorded,
                cost=cost,
                concurrency=concurrency,
                reward_model=scorer,
                final_answer=final_answer,
            )
        else:
            with (
                sigterm_interrupts(),
                sampling_model(
                    backend, local=("gemma", "smollm"), base_url=base_url, api_key_env=api_key_env, **settings
                ) as (model, _),
                Progress(
                    TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
                ) as prog,
            ):
                bar = prog.add_task("label", total=len(tasks))
                summary = label_tasks(
                    tasks,
                    model,
                    out,
                    samples=samples,
                    procedure=recorded,
                    cost=cost,
                    concurrency=concurrency,
                    progress=lambda done, total: prog.update(bar, completed=done),
                    reward_model=scorer,
                    final_answer=final_answer,
                )
    except LabelInterrupted as stopped:
        got = stopped.summary
        _fail(
            f"interrupted: nothing more was sent; wrote {got.written} records to {out} and kept {got.kept} "
            f"responses of unfinished queries in {stopped.journal}. Run the same command again to resume",
            code=130,
        )
    typer.echo(
        f"wrote {summary.written} records to {out} ({summary.skipped} already there, {summary.calls} calls, "
        f"{summary.seconds:.0f}s)"
    )
    if summary.failed:
        for line in summary.failed[:5]:
            typer.echo(f"failed: {line}", err=True)
        _fail(f"{len(summary.failed)} queries failed; run the same command again to retry them", code=1)


# ---------------------------------------------------------------------------------------------------- train
@app.command()
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
    from adaptive_router.app.cascade_eval import CASCADE_FILE, save_cascade_models
    from adaptive_router.app.evaluation import default_ladder
    from adaptive_router.app.sequential_eval import RerankedOutcomes, check_reranker
    from adaptive_router.probe import AnswerSignals, WithAnswerSignals, get_featurizer, train_probe
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
        max_k = (
            1
            if len(data.procedures) > 1
            else min(8, min(int(data.success_counts(p)[1].min()) for p in data.procedures))
        )
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


# ------------------------------------------------------------------------------------------------ evaluate
@app.command()
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
    from adaptive_router.app.cascade_eval import load_cascade_model
    from adaptive_router.app.evaluation import default_ladder, evaluate_allocation
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
    if probe is not None:
        from adaptive_router.probe import Probe

        predicted = Probe.load(probe).predict_curves(data.texts())  # once, for one-shot and sequential
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
            report, data, reranker=rerank, prior_curves=predicted, seeds=seeds, cascade_model=cascade, **extra
        )
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


# ---------------------------------------------------------------------------------------------------- run
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


@app.command()
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
        int | None, typer.Option(help="Largest number of samples per query (best-of-k; default 8).")
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
                max_k=8 if max_k is None else max_k,
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
            rounds="auto" if rounds == "auto" else None,
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


# ---------------------------------------------------------------------------------------------------- demo
@app.command()
@_errors
def demo(
    n_train: Annotated[int, typer.Option(help="Training queries.")] = 300,
    n_test: Annotated[int, typer.Option(help="Held-out queries (run live).")] = 100,
    samples: Annotated[int, typer.Option(help="Recorded samples per training query.")] = 16,
    max_k: Annotated[int, typer.Option(help="Largest best-of-k.")] = 8,
    budgets: Annotated[str, typer.Option(help="Budgets (calls/query) to compare at.")] = "1,2,4",
    verify_n: Annotated[int, typer.Option(help="Queries checked against real samples.")] = 24,
    live: Annotated[bool, typer.Option(help="Run the held-out queries live through the router.")] = True,
    routing: Annotated[bool, typer.Option(help="Also run the cheap/expensive routing demo.")] = True,
    out_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    seed: int = 0,
) -> None:
    """The offline main job: label Gemma-3-270M on graded arithmetic, train, and compare live."""
    from adaptive_router.app.demo import DemoConfig, run_demo

    check_output_folder(out_dir, "--out-dir")
    cfg = DemoConfig(
        n_train=n_train,
        n_test=n_test,
        samples=samples,
        max_k=max_k,
        budgets=tuple(floats(budgets, "--budgets", positive=True)),
        verify_n=verify_n,
        live=live,
        routing=routing,
        out_dir=str(out_dir),
        seed=seed,
    )
    run_demo(cfg, argv=sys.argv)


# ---------------------------------------------------------------------------------------------------- convert
@app.command("convert-routellm")
@_errors
def convert_routellm(
    data_dir: Annotated[Path, typer.Argument(help="Folder holding RouteLLM's gsm8k/ and mmlu/.")],
    task: Annotated[str, typer.Option(help="gsm8k or mmlu.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <task>.jsonl, .train.jsonl, .test.jsonl.")],
    test_fraction: FracOpt = 0.5,
    seed: SeedOpt = 0,
    cascade: Annotated[
        bool | None,
        typer.Option(
            "--cascade/--no-cascade",
            help="Prompts carry Mixtral's answer as a draft and gpt-4 costs the draft plus the GPT-4 call "
            "(a cascade: every query pays for the draft). Default: on when the files keep Mixtral's answers "
            "(GSM8K), off otherwise (MMLU).",
        ),
    ] = None,
) -> None:
    """Convert RouteLLM's Mixtral-vs-GPT-4 outcomes (contaminated prompts excluded) to outcome JSONL."""
    from adaptive_router.app.routellm import convert_routellm as convert

    check_output_folder(out, "--out")
    data, notes = convert(data_dir, task, cascade=cascade)
    train_set, test_set = data.split(test_fraction, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    data.write_jsonl(out / f"{task}.jsonl")
    train_set.write_jsonl(out / f"{task}.train.jsonl")
    test_set.write_jsonl(out / f"{task}.test.jsonl")
    typer.echo(
        f"{task}: {notes['rows']} rows, {notes['excluded_contaminated']} contaminated excluded, "
        f"{notes['kept']} kept -> {len(train_set)} train / {len(test_set)} test "
        f"(id hash, test_fraction={test_fraction}, seed={seed}) in {out}"
    )
    if notes["cascade"]:
        cost = data.procedure_costs
        typer.echo(
            f"cascade form: every prompt carries Mixtral's answer as a draft, so every query pays for it; "
            f"gpt-4 costs the draft plus the GPT-4 call ({cost['gpt-4']:g} against mixtral's "
            f"{cost['mixtral']:g}). --no-cascade writes the prompts alone"
        )


# ---------------------------------------------------------------------------------------------------- serve
@app.command()
@_errors
def serve(
    config: Annotated[Path, typer.Option("--config", help="The server's TOML config (see docs/server.md).")],
    host: Annotated[
        str | None, typer.Option(help="Override server.host; any non-loopback address needs API keys.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (override server.workers). Each keeps its own router ledger; per-key "
            "budgets are shared through budgets.state_file."
        ),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Override server.log_level.")] = None,
) -> None:
    """Serve the routers of a TOML config as an OpenAI-compatible API (POST /v1/chat/completions)."""
    from adaptive_router.server.serve import serve as serve_routers

    serve_routers(config, host=host, port=port, workers=workers, log_level=log_level)


def main() -> None:  # pragma: no cover - console entry point
    app()
