"""The ``adaptive-router`` command line: label, train, evaluate, run, demo, serve, convert-routellm.

Every command turns a bad input into one ``error: ...`` line on stderr and exit status 2 (no traceback), and
a missing optional dependency into the ``pip install`` command that adds it.

One module per command (``label``, ``train``, ``evaluate``, ``run``, ``demo``, ``convert``, ``serve``) and
what they share in ``_common``; this module builds ``app`` and registers the commands in the order ``--help``
lists them. Heavy modules (torch, the probe, the server) are imported only inside the command bodies.
"""

from __future__ import annotations

import typer

from adaptive_router.app.cli import convert, demo, evaluate, label, run, serve, train

__all__ = ["app", "main"]

app = typer.Typer(
    name="adaptive-router",
    help="Decide per query how much LLM compute to spend: label outcomes, train a probe, evaluate, run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(label.label)
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command()(run.run)
app.command()(demo.demo)
app.command("convert-routellm")(convert.convert_routellm)
app.command()(serve.serve)


def main() -> None:  # pragma: no cover - console entry point
    app()
