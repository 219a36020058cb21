"""What every ``adaptive-router`` command shares: the option types, the error wrapper, the checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from adaptive_router.errors import AdaptiveRouterError

__all__ = [
    "CostsOpt",
    "FracOpt",
    "RayAddressOpt",
    "RayOpt",
    "RayWorkersOpt",
    "RerankerOpt",
    "SeedOpt",
    "SplitOpt",
]

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
