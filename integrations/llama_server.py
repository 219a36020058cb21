"""Start and stop llama.cpp's OpenAI-compatible server on 127.0.0.1 with the embedded GGUFs.

`LlamaServer` runs ``python -m llama_cpp.server`` (from ``llama-cpp-python[server]``) as a subprocess on a
free loopback port, waits until ``GET /v1/models`` answers, and stops it (terminate, then kill) when the
``with`` block ends. The server's log goes to a file; :meth:`LlamaServer.request_count` counts the requests
the server actually answered by reading uvicorn's access-log lines, so tests can check the calls made.

The server does not outlive the Python process that started it:

- ``with``/``stop()`` and an ``atexit`` hook stop it on a normal exit;
- while a server runs, a SIGTERM that nothing else handles first stops every server (`LlamaServer.stop`),
  then ends the process as SIGTERM's default action would (so the exit status still says SIGTERM);
- on Linux the server is also started with a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``),
  so even a parent killed with SIGKILL takes its server down with it.

Logs go to ``log_dir`` (see `default_log_dir`); each start deletes the oldest logs there beyond the newest
``keep_logs``, never one that a running server still writes.

Notes
-----
llama.cpp's server ignores the OpenAI ``n`` parameter (one choice per request) and serves one request at a
time; concurrent requests queue inside the server. `OpenAIChatModel.for_llama_server` builds a chat model for
a running server that declares this (``supports_n=False``).

Examples
--------
>>> from adaptive_router.integrations.llama_server import LlamaServer
>>> with LlamaServer.gemma() as server:  # doctest: +SKIP
...     print(server.base_url)           # e.g. http://127.0.0.1:41234/v1
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from adaptive_router.errors import BackendUnavailableError, ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks (an open log cannot be deleted there)
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_KEEP_LOGS", "DEFAULT_STARTUP_TIMEOUT", "LlamaServer", "default_log_dir", "free_port"]

DEFAULT_STARTUP_TIMEOUT = 180.0
"""Seconds to wait for the server to load the model and answer ``/v1/models``."""

DEFAULT_KEEP_LOGS = 10
"""Server logs kept in the log directory (the newest); older ones are deleted when a server starts."""

_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/\S*) HTTP/[0-9.]+" (?P<status>\d{3})')
_LOG_PREFIX, _LOG_SUFFIX = "llama_server_", ".log"
_LIVE: weakref.WeakSet[LlamaServer] = weakref.WeakSet()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- logs
def default_log_dir() -> Path:
    """Where server logs go unless ``log_dir`` is given: ``<tmp>/adaptive-router-llama-logs-<uid>``."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"adaptive-router-llama-logs-{uid}"


def _open_log(log_dir: Path) -> tuple[Path, IO[bytes]]:
    """Create a new log file in `log_dir`, marked in use (a shared lock) for as long as it is open.

    The server process inherits the open file as its stdout, so the mark lasts until the server exits.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_LOG_PREFIX, suffix=_LOG_SUFFIX, dir=log_dir)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_SH)
    return Path(name), os.fdopen(fd, "wb")


def _delete_if_unused(path: Path) -> bool:
    """Delete the log at `path` unless a running server holds it; whether it was deleted."""
    try:
        with open(path, "rb") as fh:
            if fcntl is not None:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return False  # in use
            path.unlink()
            return True
    except OSError:  # already gone, or not ours to delete
        return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _prune_logs(log_dir: Path, keep: int) -> list[Path]:
    """Delete the server logs in `log_dir` older than the newest `keep`, skipping those in use.

    Returns
    -------
    list of Path
        The logs deleted.
    """
    logs = sorted(log_dir.glob(f"{_LOG_PREFIX}*{_LOG_SUFFIX}"), key=_mtime, reverse=True)
    return [path for path in logs[keep:] if _delete_if_unused(path)]


# ---------------------------------------------------------------------- dying with the parent
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM when this process dies (Linux), or ``None``.

    Linux sends the parent-death signal when the *thread* that started the child ends, so this is only used
    from the main thread (a server started from a worker thread would otherwise die when that thread ends).
    What the child runs between fork and exec is prepared here, in the parent: one libc call, no imports.
    """
    prctl = _prctl()
    if prctl is None or not _on_main_thread():
        return None
    parent = os.getpid()
    args = (ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGTERM))

    def preexec() -> None:
        prctl(*args)
        if os.getppid() != parent:  # the parent died before prctl: no signal would ever come
            os._exit(1)

    return preexec


_SIGTERM_GRACE = 5.0
"""Seconds each server gets to exit after SIGTERM when this process is terminated, before SIGKILL."""


def _stop_servers_then_die(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler while servers run: stop them all, then die of the signal as by default.

    Dying by the signal (rather than raising ``SystemExit``, which code such as pytest may catch and carry on
    after) keeps what SIGTERM means for the rest of the program.
    """
    servers = list(_LIVE)
    for server in servers:  # all at once, so they shut down in parallel
        server.terminate()
    for server in servers:
        server.stop(timeout=_SIGTERM_GRACE)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _arm_sigterm() -> None:
    """Install `_stop_servers_then_die` if SIGTERM has its default action (a handler of yours is left alone).

    Python only lets the main thread install handlers; started from another thread, atexit still applies.
    """
    if _on_main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_servers_then_die)


def _disarm_sigterm() -> None:
    """Restore SIGTERM's default action once no server runs (if our handler is still the one installed)."""
    if not _LIVE and _on_main_thread() and signal.getsignal(signal.SIGTERM) is _stop_servers_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _local_models() -> Any:
    """Import the module that knows where the embedded GGUFs are."""
    try:
        import adaptive_router.local_models as local_models
    except ImportError:  # pragma: no cover - layout variant named in docs/architecture.md
        import adaptive_router.integrations.local_models as local_models  # type: ignore[no-redef]
    return local_models


class LlamaServer:
    """A llama.cpp OpenAI-compatible server on loopback, as a context manager.

    Parameters
    ----------
    model_path : str or Path
        The GGUF file to serve.
    model_alias : str, optional
        The name the server reports and accepts in ``model``; defaults to the file's stem.
    chat_format : str, optional
        llama.cpp chat format (``"gemma"`` for Gemma); ``None`` uses the template in the GGUF.
    host : str
        Listen address; loopback by default.
    port : int, optional
        Listen port; a free one is picked when ``None``.
    n_threads : int
        CPU threads for generation.
    n_ctx : int
        Context size in tokens.
    startup_timeout : float
        Seconds to wait for ``/v1/models`` to answer before giving up.
    extra_args : sequence of str
        More command-line arguments for ``llama_cpp.server``.
    python : str
        The interpreter that has ``llama-cpp-python[server]`` installed.
    log_dir : str or Path, optional
        Directory for the server's log; `default_log_dir` when ``None``.
    keep_logs : int
        How many logs (the newest) stay in ``log_dir``; each start deletes older ones that no running server
        still writes.
    die_with_parent : bool
        On Linux, have the kernel send the server SIGTERM when this process dies, however it dies. Only
        applied when started from the main thread (Linux ties the signal to the starting thread).

    Attributes
    ----------
    base_url : str
        ``http://host:port/v1``, what an OpenAI client takes as ``base_url``.
    log_path : Path
        Where the server's stdout and stderr go (set by `start`).

    Raises
    ------
    ConfigError
        ``keep_logs`` is negative.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str],
        model_alias: str | None = None,
        chat_format: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_threads: int = 2,
        n_ctx: int = 2048,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        log_dir: str | os.PathLike[str] | None = None,
        keep_logs: int = DEFAULT_KEEP_LOGS,
        die_with_parent: bool = True,
    ) -> None:
        if keep_logs < 0:
            raise ConfigError(f"keep_logs must be >= 0, got {keep_logs}")
        self.model_path = Path(model_path)
        self.model_alias = model_alias or self.model_path.stem
        self.chat_format = chat_format
        self.host = host
        self.port = port
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.python = python
        self.log_dir = Path(log_dir) if log_dir is not None else default_log_dir()
        self.keep_logs = keep_logs
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.log_path: Path | None = None
        self._count_offset = 0

    # ------------------------------------------------------------------ constructors
    @classmethod
    def gemma(cls, **kwargs: Any) -> LlamaServer:
        """Serve the embedded Gemma-3-270M base GGUF (best with the completions endpoint)."""
        kwargs.setdefault("model_alias", "gemma-3-270m")
        kwargs.setdefault("chat_format", "gemma")
        return cls(model_path=_local_models().gemma_gguf_path(), **kwargs)

    @classmethod
    def smollm(cls, **kwargs: Any) -> LlamaServer:
        """Serve the embedded SmolLM2-135M-Instruct GGUF (chat template from the GGUF)."""
        kwargs.setdefault("model_alias", "smollm2-135m-instruct")
        return cls(model_path=_local_models().smollm_gguf_path(), **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        """Root URL of the server, ``http://host:port``."""
        if self.port is None:
            raise BackendUnavailableError("LlamaServer is not started; use `with LlamaServer(...) as s:`")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server, or ``None`` before start."""
        return None if self._proc is None else self._proc.pid

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model_alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_threads", str(self.n_threads),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.chat_format:
            cmd += ["--chat_format", self.chat_format]
        return cmd + list(self.extra_args)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LlamaServer:
        """Start the server and block until it answers; returns ``self``.

        Raises
        ------
        ConfigError
            The model file does not exist.
        BackendUnavailableError
            The server died or did not answer within ``startup_timeout``; the message has the log tail.
        """
        if self.running:
            return self
        if not self.model_path.is_file():
            raise ConfigError(f"GGUF model file not found: {self.model_path!s}; pass an existing model_path")
        pick_port = self.port is None
        for attempt in range(3):
            if pick_port:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                _LIVE.add(self)
                _arm_sigterm()
                return self
            except BackendUnavailableError as exc:
                if pick_port and attempt < 2 and "address already in use" in str(exc).lower():
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        self.log_path, self._log_file = _open_log(self.log_dir)  # closed in stop()
        _prune_logs(self.log_dir, self.keep_logs)
        self._count_offset = 0
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches only this process, which then stops the server
                preexec_fn=_die_with_parent() if self.die_with_parent else None,
            )
        except OSError as exc:
            self._close_log()
            msg = f"could not run {self.python!r} -m llama_cpp.server: {exc}"
            raise BackendUnavailableError(msg) from exc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise BackendUnavailableError(
                    f"llama.cpp server exited with code {self._proc.returncode} while starting. "
                    f"Is `llama-cpp-python[server]` installed in {self.python}? "
                    f"Log {self.log_path}, tail:\n{tail}"
                )
            if self._models_answer():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise BackendUnavailableError(
                    f"llama.cpp server did not answer {self.url}/v1/models within "
                    f"{self.startup_timeout:.0f} s; "
                    f"raise startup_timeout if the machine is busy. Log {self.log_path}, tail:\n{tail}"
                )
            time.sleep(0.2)

    def _models_answer(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2.0) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, TimeoutError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `timeout` seconds. Safe to call twice."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._close_log()
        _LIVE.discard(self)
        _disarm_sigterm()

    def terminate(self) -> None:
        """Send the server SIGTERM without waiting for it to exit (`stop` waits, and closes the log)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), e.g. to test what clients do when it dies mid-batch."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10.0)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ log
    def log_text(self) -> str:
        """The whole server log so far (empty before start)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of the server log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def request_count(self, path_prefix: str = "/v1/", *, since_reset: bool = True) -> int:
        """How many requests under `path_prefix` the server answered, from its access log.

        ``/v1/models`` (the readiness probe) is never counted. With ``since_reset`` only requests after the
        last :meth:`reset_count` are counted.
        """
        text = self.log_text()
        if since_reset:
            text = text[self._count_offset :]
        count = 0
        for match in _ACCESS_LINE.finditer(text):
            path = match["path"]
            if path.startswith(path_prefix) and not path.startswith("/v1/models"):
                count += 1
        return count

    def reset_count(self) -> None:
        """Start counting requests from now on (see :meth:`request_count`)."""
        self._count_offset = len(self.log_text())

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LlamaServer(model_alias={self.model_alias!r}, port={self.port}, {state})"


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - interpreter shutdown
    for server in list(_LIVE):
        server.stop(timeout=3.0)
