"""``adaptive-router demo``: the offline main job (label, train and compare live on Gemma-3-270M)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from adaptive_router.app.cli._common import _errors
from adaptive_router.app.options import check_output_folder, floats

__all__ = ["demo"]


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
