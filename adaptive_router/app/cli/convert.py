"""``adaptive-router convert-routellm``: RouteLLM's Mixtral-vs-GPT-4 outcomes as outcome JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptive_router.app.cli._common import FracOpt, SeedOpt, _errors
from adaptive_router.app.options import check_output_folder

__all__ = ["convert_routellm"]


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
