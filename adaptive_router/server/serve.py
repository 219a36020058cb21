"""Running the server: `serve` (the ``adaptive-router serve`` command) and `ServerThread` (in-process).

`serve(config_path, host=..., port=..., workers=...)` validates the config, checks the API keys, starts the
embedded llama.cpp backends once (in this process), builds the app (`freeze_startup_heap` then hides its
long-lived objects from the cyclic garbage collector), then runs uvicorn (httptools and uvloop where they
are installed: ``uvicorn[standard]``, the server extra). On SIGTERM or Ctrl-C uvicorn stops
accepting connections and waits up to ``server.shutdown_timeout_s`` for the requests in flight to finish
(streams included) before the process exits and the embedded backends stop.

**Workers.** ``workers = N`` runs N uvicorn worker processes on one socket. Each has its **own router
ledger** and micro-batcher: concurrent requests are allocated jointly within the worker that received them,
and each worker keeps its own spend at ``budget_per_query`` per query, so the sum over workers is within
the budget too (the ledger is a per-process bound, the guarantee adds up). The **per-key budgets** must not
be per process (a key could spend N times its budget), so with N > 1 and key budgets the config must name
``budgets.state_file``: a SQLite file every worker reserves and settles in, one transaction each.
Counters on ``/metrics`` are per worker (``pid`` label).

Examples
--------
>>> from adaptive_router.server.config import parse_config
>>> config = parse_config('''
... [backends.up]
... type = "openai"
... base_url = "http://127.0.0.1:9/v1"
... model = "m"
... [routers.r]
... backend = "up"
... budget_per_query = 1
... ''')
>>> from langchain_core.language_models import GenericFakeChatModel
>>> from langchain_core.messages import AIMessage
>>> fake = lambda name, backend: GenericFakeChatModel(messages=iter([AIMessage("4")] * 5))
>>> with ServerThread(config, model_factory=fake) as server:
...     import httpx
...     httpx.get(server.url + "/health").json()["status"]
'ok'
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptive_router.errors import BackendUnavailableError, ConfigError
from adaptive_router.server.auth import KeyRing
from adaptive_router.server.backends import EmbeddedServers, ModelFactory, Upstream
from adaptive_router.server.config import ServerConfig, load_config, with_overrides

__all__ = ["ServerThread", "freeze_startup_heap", "serve", "worker_app"]

_CONFIG_ENV = "ADAPTIVE_ROUTER_SERVER_CONFIG"
_OVERRIDES_ENV = "ADAPTIVE_ROUTER_SERVER_OVERRIDES"
_UPSTREAMS_ENV = "ADAPTIVE_ROUTER_SERVER_UPSTREAMS"


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ModuleNotFoundError:
        raise ConfigError(
            "serving needs FastAPI and uvicorn: pip install 'adaptive-router[server]'"
        ) from None
    return uvicorn


def _uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    s = config.server
    return {
        "log_level": s.log_level,
        "access_log": s.access_log,
        "timeout_graceful_shutdown": s.shutdown_timeout_s,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        "server_header": False,
    }


def freeze_startup_heap() -> None:
    """Hide what startup built (imports, models, probes: some 170,000 objects) from the cyclic GC.

    They live as long as the process, yet every full collection walked them all (≈ 0.1-0.3 s, and a
    burst of 1,000 requests triggered two or three), stalling the event loop. `gc.freeze` moves them to
    the permanent generation; garbage made afterwards is collected as before.
    """
    gc.collect()
    gc.freeze()


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory with ``workers > 1``; reads the parent's env)."""
    from adaptive_router.server.app import create_app

    path = os.environ.get(_CONFIG_ENV)
    if not path:
        raise ConfigError(f"{_CONFIG_ENV} is not set: start workers with adaptive_router.server.serve()")
    config = with_overrides(load_config(path), **json.loads(os.environ.get(_OVERRIDES_ENV, "{}")))
    upstreams = {k: Upstream(**v) for k, v in json.loads(os.environ.get(_UPSTREAMS_ENV, "{}")).items()}
    app = create_app(config, upstreams=upstreams)
    freeze_startup_heap()
    return app


def serve(
    config_path: str | os.PathLike[str],
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str | None = None,
) -> None:
    """Serve the routers of a TOML config until SIGTERM/Ctrl-C (``adaptive-router serve --config ...``).

    Parameters
    ----------
    config_path : path
        The TOML config (see ``docs/server.md``).
    host, port, workers, log_level : optional
        Override ``[server]`` values (re-validated: a non-loopback host still needs API keys).

    Raises
    ------
    ConfigError
        The config, the keys or a probe is invalid, or FastAPI/uvicorn are not installed.
    """
    uvicorn = _uvicorn()
    overrides = {
        k: v
        for k, v in {"host": host, "port": port, "workers": workers, "log_level": log_level}.items()
        if v is not None
    }
    config = with_overrides(load_config(Path(config_path)), **overrides)
    KeyRing.from_config(config.auth)  # fail before starting anything
    options = _uvicorn_options(config)
    with EmbeddedServers(config) as embedded:
        if config.server.workers == 1:
            from adaptive_router.server.app import create_app

            app = create_app(config, upstreams=embedded.upstreams)
            freeze_startup_heap()
            uvicorn.run(app, host=config.server.host, port=config.server.port, **options)
            return
        os.environ[_CONFIG_ENV] = str(Path(config_path).resolve())
        os.environ[_OVERRIDES_ENV] = json.dumps(overrides)
        os.environ[_UPSTREAMS_ENV] = json.dumps({k: vars(u) for k, u in embedded.upstreams.items()})
        uvicorn.run(
            "adaptive_router.server.serve:worker_app",
            factory=True,
            host=config.server.host,
            port=config.server.port,
            workers=config.server.workers,
            **options,
        )


class ServerThread:
    """The server on 127.0.0.1 in a background thread (a free port unless given), as a context manager.

    For tests, examples and benchmarks:
    ``with ServerThread(config) as s: openai.OpenAI(base_url=s.base_url)``.
    Exit shuts it down gracefully (in-flight requests finish, up to ``server.shutdown_timeout_s``).

    Parameters
    ----------
    config : ServerConfig
    port : int, optional
        Default: a free port.
    upstreams, model_factory, probes, budgets, environ
        Passed to `create_app`.

    Attributes
    ----------
    url, base_url : str
        ``http://127.0.0.1:PORT`` and that with ``/v1`` (what an OpenAI client takes).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        port: int | None = None,
        upstreams: Mapping[str, Upstream] | None = None,
        model_factory: ModelFactory | None = None,
        probes: Mapping[str, Any] | None = None,
        budgets: Any = None,
        environ: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.port = port
        self._app_kwargs = {
            "upstreams": upstreams,
            "model_factory": model_factory,
            "probes": probes,
            "budgets": budgets,
            "environ": environ,
        }
        self.startup_timeout = startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app: Any = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    def start(self) -> ServerThread:
        """Build the app, bind the socket, start serving; returns once it accepts connections."""
        from adaptive_router.server.app import create_app

        uvicorn = _uvicorn()
        self.app = create_app(self.config, **self._app_kwargs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port or 0))
        self.port = sock.getsockname()[1]
        options = {**_uvicorn_options(self.config), "log_level": "warning", "access_log": False}
        self._server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self._server.install_signal_handlers = lambda: None  # the main thread keeps its own handlers

        def run() -> None:
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name=f"adaptive-router-server:{self.port}", daemon=True)
        self._thread.start()
        deadline = self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise BackendUnavailableError(f"the server on port {self.port} stopped while starting")
            deadline -= 0.01
            if deadline <= 0:
                raise BackendUnavailableError(f"the server on port {self.port} did not start in time")
            threading.Event().wait(0.01)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting connections, let in-flight requests finish, join the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout if timeout is not None else self.config.server.shutdown_timeout_s + 5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerThread({self.url if self.port else 'not started'})"
