"""Run untrusted text or code out of process: a fork server whose children have limits and no network.

Threat model
------------
A model's reply is untrusted input. Some verifiers execute it: reasoning-gym scorers ``eval`` replies
(``spiral_matrix``, ``n_queens``, ``binary_matrix``...), parse them with sympy (which ``eval``s), ``exec``
bundled code on them (``codeio``) or ``eval`` task metadata (``bitwise_arithmetic``); math-verify parses with
sympy; a code check runs the reply. Run in-process, a reply such as
``__import__('pathlib').Path('x').write_text('...')`` writes files with the labeller's rights, opens
connections, or hangs the run. So every such verifier runs in a :class:`Sandbox`:

- each job runs in a **fresh child process** forked from a warm server (no state leaks between replies, a
  job cannot change how the next one is scored) with ``RLIMIT_CPU``/``AS``/``NOFILE``/``FSIZE`` limits
  (:class:`SandboxLimits`), a **wall-clock timeout** (its process group is killed), a throwaway **temporary
  working folder** and a **scrubbed environment** (no API keys);
- **no network**: the server leaves the network namespace (``unshare(CLONE_NEWNET)``) where the kernel allows
  it (:attr:`Sandbox.isolation` says whether it did), and as defence in depth an audit hook in the child
  refuses socket connects and binds, process spawns and signals, ``ctypes`` calls, raising limits and file
  writes outside its folder; run as root, the child also drops to ``nobody``.

What it does not promise: a reply that is executed can still forge *its own* score (it runs inside the
scorer), and it can read world-readable files (it cannot send them anywhere). A job that breaks a limit or
raises scores 0; a sandbox that cannot start raises :class:`SandboxError`. Linux only for the namespace and
``nobody``; elsewhere the limits and the audit hook still apply.

Examples
--------
>>> with Sandbox() as box:
...     box.run("operator:add", 2, 3).value
5
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from adaptive_router.errors import AdaptiveRouterError, ConfigError

__all__ = ["DEFAULT_LIMITS", "JobResult", "Sandbox", "SandboxError", "SandboxLimits", "shared_sandbox"]

_SERVER = "from adaptive_router.app.verifiers._jail import serve; serve()"
_STARTUP_SECONDS = 60.0
_SLACK_SECONDS = 15.0


class SandboxError(AdaptiveRouterError, RuntimeError):
    """The sandbox itself failed (it cannot start, or its server died): nothing was scored."""


class _ServerDied(SandboxError):
    """The server's output ended: it died (killed, out of memory), not the job's fault."""


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """Limits of one sandboxed job.

    Parameters
    ----------
    cpu_seconds : float
        CPU time (``RLIMIT_CPU``, rounded up to whole seconds); the child is killed past it.
    wall_seconds : float
        Wall-clock time; the child's process group is killed past it (covers sleeping and blocking).
    memory_bytes : int
        Address space the job may add to the warm server's (``RLIMIT_AS``); beyond it allocations fail.
    max_open_files : int
        ``RLIMIT_NOFILE``.
    max_file_bytes : int
        Largest file the job may write in its temporary folder (``RLIMIT_FSIZE``).
    max_result_bytes : int
        Largest result the job may send back; beyond it the job has no result.
    """

    cpu_seconds: float = 5.0
    wall_seconds: float = 10.0
    memory_bytes: int = 1 << 30
    max_open_files: int = 64
    max_file_bytes: int = 1 << 20
    max_result_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"SandboxLimits.{name} must be a finite number, got {value!r}")
            if value <= 0:
                raise ConfigError(f"SandboxLimits.{name} must be > 0, got {value!r}")
        if self.max_open_files < 8:
            raise ConfigError(f"SandboxLimits.max_open_files must be >= 8, got {self.max_open_files!r}")


DEFAULT_LIMITS = SandboxLimits()
"""Default limits: 5 s CPU, 10 s wall clock, 1 GiB extra memory, 64 files, 1 MiB per file and result."""


@dataclass(frozen=True)
class JobResult:
    """What one job gave: its ``value``, or why it has none (``error``: it raised; ``killed``: a limit)."""

    value: Any = None
    error: str | None = None
    killed: str | None = None

    @property
    def ok(self) -> bool:
        """The job returned a value."""
        return self.error is None and self.killed is None


class Sandbox:
    """A fork server for untrusted jobs; each :meth:`run` call gets a fresh confined child process.

    Parameters
    ----------
    limits : SandboxLimits
        Limits of every job (override per call in :meth:`run`).
    python : str, optional
        Interpreter of the server (default: this one). The server starts on the first :meth:`run` or
        :meth:`start` call, not in the constructor; calls are serialised (thread-safe).

    Examples
    --------
    >>> box = Sandbox(limits=SandboxLimits(cpu_seconds=1, wall_seconds=2))
    >>> box.run("operator:truediv", 1, 0).error
    'ZeroDivisionError: division by zero'
    >>> box.close()
    """

    def __init__(self, *, limits: SandboxLimits = DEFAULT_LIMITS, python: str | None = None) -> None:
        self.limits = limits
        self.python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._info: dict[str, Any] = {}
        self._prepared: dict[str, dict[str, Any]] = {}  # replayed when the server restarts
        self._lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._proc is not None else "stopped"
        return f"Sandbox(limits={self.limits!r}, {state})"

    @property
    def isolation(self) -> dict[str, bool]:
        """What confines the jobs here (it starts the server): ``network_isolated`` (own empty network
        namespace), ``filesystem_read_only`` (every mount read-only but the job folders) and
        ``drops_to_nobody`` (jobs run as ``nobody``; else as a uid 0 without capabilities)."""
        with self._lock:
            self._ensure()
            return {k: bool(v) for k, v in self._info.items() if k not in ("ready", "base")}

    def start(self) -> Sandbox:
        """Start the server now (a broken environment then fails before any work is done)."""
        with self._lock:
            self._ensure()
        return self

    def prepare(self, target: str, *args: Any) -> None:
        """Call ``target(*args)`` once in the server itself, so that every later child inherits its effect.

        For trusted setup only (importing a library, building a scorer): it runs unconfined, never on a
        reply. Repeated calls with the same arguments do nothing. Raises ConfigError when it fails (a
        missing extra or an unknown name, not a bad reply).

        Examples
        --------
        >>> with Sandbox() as box:
        ...     box.prepare("importlib:import_module", "colorsys")
        ...     box.run("colorsys:rgb_to_hsv", 1.0, 0.0, 0.0).value
        [0.0, 1.0, 1.0]
        """
        request = {"prepare": target, "args": list(args)}
        key = json.dumps(request)
        with self._lock:
            if key in self._prepared:
                return
            reply = self._exchange(request, _STARTUP_SECONDS)
            if "setup_error" in reply:
                raise ConfigError(
                    f"the sandbox cannot prepare {target}{tuple(args)!r}: {reply['setup_error']}"
                )
            self._prepared[key] = request

    def run(self, target: str, *args: Any, limits: SandboxLimits | None = None) -> JobResult:
        """Call ``target`` (``"module:function"``, trusted code) on JSON ``args`` in a fresh confined child.

        The return value must be JSON (it comes back through a pipe). A job that raises or breaks a limit
        gives a :class:`JobResult` without a value; a sandbox that cannot run it raises SandboxError.
        """
        return self.map(target, [args], limits=limits)[0]

    def map(
        self,
        target: str,
        arg_lists: Sequence[Sequence[Any]],
        *,
        limits: SandboxLimits | None = None,
        parallel: int | None = None,
    ) -> list[JobResult]:
        """:meth:`run` for each argument list, ``parallel`` children at a time (default: the CPU count).

        Every job still gets its own child; running them side by side only hides the fork and exit costs.
        """
        lim = limits or self.limits
        if not arg_lists:
            return []
        workers = parallel if parallel is not None else os.cpu_count() or 2
        if int(workers) < 1:
            raise ConfigError(f"parallel must be >= 1, got {parallel!r}")
        batch = [{"target": target, "args": list(a), "limits": asdict(lim)} for a in arg_lists]
        # the server runs ceil(n / workers) rounds, each at most the wall-clock limit
        rounds = -(-len(batch) // int(workers))
        with self._lock:
            reply = self._exchange(
                {"batch": batch, "parallel": int(workers)}, rounds * lim.wall_seconds + _SLACK_SECONDS
            )
        results = reply.get("results")
        if not isinstance(results, list) or len(results) != len(batch):
            raise SandboxError(f"the sandbox server sent {reply!r}; run again")
        out = []
        for got in results:
            if "setup_error" in got:
                raise ConfigError(f"the sandbox cannot load {target!r}: {got['setup_error']}")
            if "ok" in got:
                out.append(JobResult(value=got["ok"]))
            else:
                out.append(JobResult(error=got.get("error"), killed=got.get("killed")))
        return out

    def close(self) -> None:
        """Stop the server (it also stops by itself when this process exits)."""
        with self._lock:
            self._stop()

    # ------------------------------------------------------------------ the server connection
    def _exchange(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            json_line = (json.dumps(job) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sandbox job arguments must be JSON: {exc}") from None
        for attempt in (1, 2):  # jobs are pure functions of their arguments: a dead server is retried once
            proc = self._ensure()
            if proc.stdin is None:  # pragma: no cover - Popen(stdin=PIPE) always sets it
                raise SandboxError("the sandbox server has no input pipe")
            try:
                proc.stdin.write(json_line)
                proc.stdin.flush()
                reply = self._read_line(timeout)
                break
            except (OSError, _ServerDied) as exc:
                self._stop()
                if attempt == 2:
                    msg = f"the sandbox server died twice while running a job ({exc}); run again"
                    raise SandboxError(msg) from None
            except BaseException:  # a timeout, or Ctrl-C mid-exchange: a later reply would be this one's
                self._stop()
                raise
        if not isinstance(reply, dict):
            self._stop()
            raise SandboxError(f"the sandbox server sent {reply!r}; run again")
        return reply

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        try:
            self._proc = subprocess.Popen(
                [self.python or sys.executable, "-I", "-B", "-c", _SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,  # Ctrl-C in the terminal reaches the caller, not the server
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox server: {exc}") from None
        try:
            info = self._read_line(_STARTUP_SECONDS)
        except SandboxError:
            self._stop()
            raise
        if not isinstance(info, dict) or not info.get("ready"):
            self._stop()
            raise SandboxError(f"the sandbox server did not start (it sent {info!r})")
        self._info = info
        _LIVE.add(self)
        for request in self._prepared.values():
            if "setup_error" in self._exchange(
                request, _STARTUP_SECONDS
            ):  # pragma: no cover - it worked before
                self._stop()
                raise SandboxError(f"the restarted sandbox server cannot prepare {request!r}")
        return self._proc

    def _read_line(self, timeout: float) -> Any:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise SandboxError("the sandbox server is not running")
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(f"the sandbox server did not answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise _ServerDied(f"the sandbox server exited (status {proc.poll()})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _stop(self) -> None:
        proc, self._proc, self._buffer = self._proc, None, b""
        base, self._info = self._info.get("base"), {}
        _LIVE.discard(self)
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if isinstance(base, str):  # the server's job folders lived on a tmpfs only it could see
            shutil.rmtree(base, ignore_errors=True)


_LIVE: set[Sandbox] = set()
_SHARED: Sandbox | None = None
_SHARED_LOCK = threading.Lock()


def shared_sandbox() -> Sandbox:
    """The process-wide sandbox the verifiers use (started on first use, stopped at exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = Sandbox()
        return _SHARED


@atexit.register
def _stop_all() -> None:  # pragma: no cover - interpreter shutdown
    for box in list(_LIVE):
        box.close()
