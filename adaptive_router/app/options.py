"""Command-line values, parsed and checked before anything is spent or written.

Each function raises :class:`~adaptive_router.errors.ConfigError` naming the option and what to give
instead; the CLI prints it as one ``error: ...`` line (exit status 2). Paths are checked, and output folders
created, up front: a report is never lost after the model calls or the training it took. An option several
commands take with the same meaning (``PricesOpt``) is defined here once.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from adaptive_router.errors import ConfigError
from adaptive_router.prices import PriceTable

__all__ = [
    "PricesOpt",
    "check_answer_pattern",
    "check_number",
    "check_output_file",
    "check_output_folder",
    "check_plot_file",
    "floats",
    "read_prices",
    "sigterm_interrupts",
    "unescape",
]

PricesOpt = Annotated[
    Path | None,
    typer.Option(
        help="Price table (.toml or .json, dollars per million input/output tokens per model): costs per "
        "call from the recorded input_tokens/output_tokens; a recorded cost wins. Not with --costs."
    ),
]
"""``--prices FILE`` of ``train`` and ``evaluate`` (read by :func:`read_prices`)."""

_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.?)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def floats(text: str, name: str, *, positive: bool = False) -> list[float]:
    """Comma-separated finite numbers (``positive``: each > 0).

    Examples
    --------
    >>> floats("1, 2,4", "--budgets")
    [1.0, 2.0, 4.0]
    >>> floats("1,nan", "--budgets")
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: --budgets must be finite numbers like 1,2,4, got '1,nan'
    """
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated numbers like 1,2,4, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name} must list at least one number, got {text!r}")
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        kind = "positive finite" if positive else "finite"
        raise ConfigError(f"{name} must be {kind} numbers like 1,2,4, got {text!r}")
    return values


def check_number(value: float | None, name: str, *, minimum: float = 0.0, strict: bool = False) -> None:
    """Unless ``value`` is None: it must be finite and >= ``minimum`` (> with ``strict``).

    Examples
    --------
    >>> check_number(float("nan"), "--cost")
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: --cost must be a finite number >= 0, got nan
    """
    if value is None:
        return
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def unescape(text: str, name: str) -> str:
    r"""``text`` with ``\n \t \r \0 \\ \' \" \xNN \uNNNN`` replaced; everything else (UTF-8 included) is kept
    as typed, and any other backslash escape is an error.

    Examples
    --------
    >>> unescape("é\\n", "--stop")
    'é\n'
    >>> unescape("\\q", "--stop")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: --stop '\\q': unknown escape '\\q' at position 1; use \n, ...
    """

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if len(code) > 1:
            return chr(int(code[1:], 16))
        raise ConfigError(
            f"{name} {text!r}: unknown escape {match.group(0)!r} at position {match.start() + 1}; "
            "use \\n, \\t, \\r, \\0, \\\\, \\xNN or \\uNNNN"
        )

    return _ESCAPE.sub(one, text)


def check_answer_pattern(pattern: str | None, name: str = "--final-answer") -> None:
    """Unless None: a regular expression with a group that captures the final answer.

    Examples
    --------
    >>> check_answer_pattern(r"####\\s*(\\S+)")
    >>> check_answer_pattern("####")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: --final-answer '####' needs a group that captures the answer, ...
    """
    if pattern is None:
        return
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ConfigError(f"{name} {pattern!r} is not a regular expression: {exc}") from None
    if groups < 1:
        raise ConfigError(f"{name} {pattern!r} needs a group that captures the answer, e.g. '####\\s*(\\S+)'")


def read_prices(path: Path | None, *, costs: str | None = None) -> PriceTable | None:
    """``--prices`` read and checked before anything is loaded or spent (``None`` when not given).

    ``costs`` is the ``--costs`` text: giving both is refused. A procedure the table has no price for is
    found later, when the outcomes are priced (still before any work).

    Examples
    --------
    >>> read_prices(None) is None
    True
    >>> read_prices(Path("p.toml"), costs="m=1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adaptive_router.errors.ConfigError: give --costs or --prices, not both: --costs sets each procedure's ...
    """
    if path is None:
        return None
    if costs is not None:
        raise ConfigError(
            "give --costs or --prices, not both: --costs sets each procedure's cost per call, --prices "
            "prices the recorded tokens"
        )
    return PriceTable.from_file(path)


def check_output_folder(path: Path, name: str) -> None:
    """``path`` must be (or now becomes) a writable folder."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name}: {str(path)!r} is a file, not a folder; give another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot create the folder {str(path)!r} ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}: the folder {str(path)!r} is not writable")


def check_output_file(path: Path | None, name: str) -> None:
    """Unless ``path`` is None: a file that can be written later (its folder is created now)."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{name} {str(path)!r} is a folder; give a file name")
    check_output_folder(path.parent, name)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{name} {str(path)!r} is not writable")


def check_plot_file(path: Path | None, name: str = "--plot") -> None:
    """Unless ``path`` is None: a writable file whose suffix is an image format matplotlib writes."""
    if path is None:
        return
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if path.suffix.lstrip(".").lower() not in formats:
        raise ConfigError(
            f"{name} {str(path)!r}: name the file with an image format matplotlib writes, one of "
            + ", ".join(f".{f}" for f in formats)
        )
    check_output_file(path, name)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt (so a killed ``label`` stops and keeps what it paid for)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
