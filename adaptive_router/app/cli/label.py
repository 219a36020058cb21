"""``adaptive-router label``: sample responses per query, score them, append outcome records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptive_router.app.backends import backend_name, sampling_model
from adaptive_router.app.cli._common import RayAddressOpt, RayOpt, RayWorkersOpt, _check_ray, _errors, _fail
from adaptive_router.app.options import (
    check_answer_pattern,
    check_number,
    check_output_file,
    sigterm_interrupts,
    unescape,
)

__all__ = ["label"]


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
