"""Connecting to Ray for ``label --ray``, ``train --ray`` and ``evaluate --ray``.

Ray is optional (``pip install 'adaptive-router[ray]'``): nothing here imports it at module import, and
:func:`require_ray` turns a missing Ray into the ``ModuleNotFoundError`` the CLI answers with that command.

:func:`ray_session` connects for the duration of a command: to ``address`` (``"auto"``, ``"HOST:6379"``,
``"ray://HOST:10001"``), else to ``$RAY_ADDRESS``, else it starts a local instance on this machine (and
stops it on exit; a cluster it merely joined is left running). Ray Data's own progress bars and INFO logs
are turned off, so a command's stderr carries only its own progress.

Error tree (beside the library's, see :mod:`adaptive_router.errors`)::

    AdaptiveRouterError
    └── ClusterError (RuntimeError)   Ray failed: cannot connect, a worker cannot start, the job died
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from adaptive_router.errors import AdaptiveRouterError, ConfigError

__all__ = [
    "ClusterError",
    "ClusterInfo",
    "cluster_info",
    "driver_node_affinity",
    "ray_cause",
    "ray_session",
    "require_ray",
]

RAY_INSTALL = "pip install 'adaptive-router[ray]'"


class ClusterError(AdaptiveRouterError, RuntimeError):
    """Ray itself failed (cannot connect, a worker cannot start, the job died); what was written is kept."""


@dataclass(frozen=True)
class ClusterInfo:
    """What the connected cluster offers: ``nodes`` alive, total ``cpus`` and ``gpus``."""

    nodes: int
    cpus: float
    gpus: float


def require_ray() -> Any:
    """The ``ray`` module, or ``ModuleNotFoundError(name="ray")`` naming the extra that installs it.

    Examples
    --------
    >>> require_ray().__name__            # doctest: +SKIP
    'ray'
    """
    try:
        import ray
        import ray.data
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "ray":
            raise
        raise ModuleNotFoundError(f"--ray needs Ray: {RAY_INSTALL}", name="ray") from None
    return ray


def _quiet_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    notices = logging.getLogger("ray.data._internal.progress")  # where Ray Data says its bars are off
    if not any(isinstance(f, _NoProgressBarNotice) for f in notices.filters):
        notices.addFilter(_NoProgressBarNotice())


class _NoProgressBarNotice(logging.Filter):
    """Drop Ray Data's notice that its progress bars are off: the command turned them off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Progress bars disabled" not in record.getMessage()


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ClusterInfo]:
    """Connect to Ray inside the block and yield what the cluster offers.

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (the cluster this machine belongs to), ``"HOST:PORT"`` (its GCS) or ``"ray://HOST:PORT"``
        (Ray Client). Without it: ``$RAY_ADDRESS`` if set, else a new local instance.
    num_cpus : int, optional
        CPUs of a new local instance (default: all of this machine's); ignored when joining a cluster.

    Raises
    ------
    ConfigError
        ``address`` is empty or Ray cannot reach it (the message names the address).

    Examples
    --------
    >>> with ray_session(num_cpus=1) as info:   # doctest: +SKIP
    ...     info.nodes
    1
    """
    ray = require_ray()
    if address is not None and not address.strip():
        raise ConfigError("--ray-address must not be empty; leave it out to start Ray on this machine")
    target = address or os.environ.get("RAY_ADDRESS") or None
    owned = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if target is None:
            kwargs.update(num_cpus=num_cpus, include_dashboard=False)
        try:
            ray.init(address=target, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {target!r}" if target else "a local Ray instance"
            raise ConfigError(
                f"cannot connect to {where}: {exc}. Start it with `ray start --head`, or give its address "
                "with --ray-address HOST:6379 (or $RAY_ADDRESS)"
            ) from None
        owned = True
    _quiet_ray_data()
    try:
        yield cluster_info()
    finally:
        if owned:
            ray.shutdown()


def cluster_info() -> ClusterInfo:
    """Nodes alive and the CPUs and GPUs they offer in total (of the cluster Ray is connected to)."""
    ray = require_ray()
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterInfo(nodes=nodes, cpus=float(res.get("CPU", 0.0)), gpus=float(res.get("GPU", 0.0)))


def driver_node_affinity() -> Any:
    """A scheduling strategy that pins an actor to this (the driver's) node: it writes this node's files."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def ray_cause(exc: BaseException) -> str:
    """The line of a Ray error that says what went wrong (Ray's own message carries the remote traceback).

    Examples
    --------
    >>> ray_cause(RuntimeError("Traceback ...\\n  File x\\nConfigError: no model here\\n"))
    'ConfigError: no model here'
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
