"""``adaptive-router serve``: the routers of a TOML config as an OpenAI-compatible API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptive_router.app.cli._common import _errors

__all__ = ["serve"]


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
