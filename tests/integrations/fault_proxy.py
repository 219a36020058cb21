"""A fault-injecting HTTP reverse proxy for tests (stdlib asyncio, runs in a background thread).

Every request gets a number (0, 1, 2, ... in arrival order). ``fault(i)`` decides what happens to request i:
``None`` forwards it to the upstream server; ``Fault.status(429, retry_after=1)`` answers with that status;
``Fault.stall(seconds)`` holds the connection and then closes it without answering; ``Fault.drop()`` closes
the connection at once. The proxy counts the requests it received and the ones it forwarded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultProxy"]


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of forwarding."""

    kind: str
    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int, *, retry_after: float | None = None) -> Fault:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls("status", status_code=code, headers=headers)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        return cls("stall", seconds=seconds)

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head + body


def _force_close(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


class FaultProxy:
    """Reverse proxy on 127.0.0.1 in front of ``upstream`` (``host:port``), injecting faults.

    Use as a context manager; ``base_url`` is the proxy's ``http://127.0.0.1:port/v1``.
    """

    def __init__(
        self, *, upstream_host: str, upstream_port: int, fault: Callable[[int], Fault | None]
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.fault = fault
        self.received = 0
        self.forwarded = 0
        self.injected: list[str] = []
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return
            with self._lock:
                index = self.received
                self.received += 1
            fault = self.fault(index)
            if fault is None:
                with self._lock:
                    self.forwarded += 1
                await self._forward(request, writer)
                return
            self.injected.append(fault.kind if fault.kind != "status" else str(fault.status_code))
            if fault.kind == "status":
                body = json.dumps({"error": {"message": f"injected {fault.status_code}"}}).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
                writer.write(
                    f"HTTP/1.1 {fault.status_code} Injected\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            elif fault.kind == "stall":
                await asyncio.sleep(fault.seconds)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()  # cancellation at shutdown also ends here, while the loop still runs

    async def _forward(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            return  # upstream down: close the client connection without an answer
        try:
            up_writer.write(_force_close(request))
            await up_writer.drain()
            head = await up_reader.readuntil(b"\r\n\r\n")
            writer.write(_force_close(head))
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            up_writer.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.close()

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
