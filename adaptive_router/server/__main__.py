"""``python -m adaptive_router.server --config router.toml``: the same as ``adaptive-router serve``."""

from __future__ import annotations

import argparse
import sys

from adaptive_router.errors import AdaptiveRouterError
from adaptive_router.server.serve import serve


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; a bad config is one ``error:`` line and exit status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m adaptive_router.server",
        description="Serve the routers of a TOML config (as adaptive-router serve).",
    )
    parser.add_argument("--config", required=True, help="the TOML config (docs/server.md)")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    parser.add_argument("--workers", type=int, help="override server.workers")
    parser.add_argument("--log-level", help="override server.log_level")
    args = parser.parse_args(argv)
    try:
        serve(args.config, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    except AdaptiveRouterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
