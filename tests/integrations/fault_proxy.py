"""Loopback HTTP servers for tests, each on 127.0.0.1 only, in background threads, and bounded in time.

- `FaultProxy`: a fault-injecting reverse proxy (stdlib asyncio). Every request gets a number (0, 1, 2, ...
  in arrival order). ``fault(i)`` decides what happens to request i: ``None`` forwards it to the upstream
  server; ``Fault.status(429, retry_after=1)`` answers with that status; ``Fault.stall(seconds)`` holds the
  connection and then closes it without answering; ``Fault.drop()`` closes the connection at once;
  ``Fault.trickle(0.3)`` sends headers and then one byte every 0.3 s (for at most 15 s). The proxy counts the
  requests it received and the ones it forwarded.
- `FakeOpenAIServer`: a stand-in for an OpenAI-compatible server (stdlib http.server, HTTP/1.1 keep-alive)
  that answers every completion request, streamed or not, or trickles its answer one byte at a time
  (``trickle=0.3``).
- `write_fake_llama_server`: an executable that takes ``llama_cpp.server``'s command line and serves
  ``/v1/models`` on the port it names, to drive `LlamaServer` without a model.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["FakeOpenAIServer", "Fault", "FaultProxy", "write_fake_llama_server"]


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of forwarding."""

    kind: str
    status_code: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    duration: float = 0.0

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

    @classmethod
    def trickle(cls, interval: float, *, for_seconds: float = 15.0) -> Fault:
        """Answer 200 with headers, then one byte (JSON whitespace) every `interval` s, then hang up."""
        return cls("trickle", seconds=interval, duration=for_seconds)


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


async def _trickle(writer: asyncio.StreamWriter, *, interval: float, duration: float) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n"
        b"Connection: close\r\n\r\n"
    )
    ends = time.monotonic() + duration
    while time.monotonic() < ends:
        await writer.drain()
        await asyncio.sleep(interval)
        writer.write(b" ")


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
            elif fault.kind == "trickle":
                await _trickle(writer, interval=fault.seconds, duration=fault.duration)
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


# ---------------------------------------------------------------------- fake OpenAI server
def completion_body(path: str, text: str) -> bytes:
    """A minimal OpenAI answer for `path` (chat or text completions) whose text is `text`."""
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        kind = "text_completion"
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    body = {"id": "fake", "object": kind, "created": 0, "model": "fake", "choices": [choice], "usage": usage}
    return json.dumps(body).encode()


def stream_body(path: str, text: str) -> bytes:
    """The server-sent events of a streamed answer for `path`: one chunk with `text`, then ``[DONE]``."""
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "finish_reason": None, "logprobs": None}
        kind = "text_completion"
    chunk = {"id": "fake", "object": kind, "created": 0, "model": "fake", "choices": [choice]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


class _FakeOpenAIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers: clients reuse pooled connections
    timeout = 10  # an idle keep-alive connection is closed after this many seconds
    server: _FakeHTTPServer

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        fake = self.server.fake
        fake.count_request()
        if fake.trickle is not None:
            self._trickle(fake.trickle, fake.trickle_for, fake.stopping)
        elif request.get("stream"):
            self._answer("text/event-stream", stream_body(self.path, fake.reply))
        else:
            self._answer("application/json", completion_body(self.path, fake.reply))

    def _answer(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, interval: float, seconds: float, stopping: threading.Event) -> None:
        """Headers now, then one byte (JSON whitespace) every `interval` s for `seconds`, then hang up."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        ends = time.monotonic() + seconds
        try:
            while time.monotonic() < ends and not stopping.wait(interval):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:  # the client gave up: what a deadline should make it do
            pass

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAIServer


class FakeOpenAIServer:
    """An OpenAI-compatible stand-in on 127.0.0.1, as a context manager; ``base_url`` ends in ``/v1``.

    Parameters
    ----------
    reply : str
        The text of every answer (``/v1/chat/completions`` and ``/v1/completions``).
    trickle : float, optional
        When set, answer with headers and then one byte every `trickle` seconds instead (a slow server that
        never finishes in time).
    trickle_for : float
        Seconds a trickling answer lasts before the server hangs up.
    lifetime : float
        The server shuts itself down after this many seconds even if the ``with`` block never ends.

    Attributes
    ----------
    requests : int
        Completion requests received so far.
    """

    def __init__(
        self,
        *,
        reply: str = "ok",
        trickle: float | None = None,
        trickle_for: float = 15.0,
        lifetime: float = 60.0,
    ) -> None:
        self.reply = reply
        self.trickle = trickle
        self.trickle_for = trickle_for
        self.lifetime = lifetime
        self.requests = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _FakeHTTPServer(("127.0.0.1", 0), _FakeOpenAIHandler)
        self._server.fake = self
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def __enter__(self) -> FakeOpenAIServer:
        threading.Thread(target=self._serve, daemon=True).start()
        self._timer.start()
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def close(self) -> None:
        """Stop serving and end every trickle; safe to call twice."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- fake llama.cpp server command
_FAKE_LLAMA_SERVER = """\
import argparse, http.server, threading

parser = argparse.ArgumentParser()
parser.add_argument("-m")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
args, _ = parser.parse_known_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"object": "list", "data": [{"id": "fake", "object": "model"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        code = getattr(code, "value", code)
        print(f'INFO:     127.0.0.1:1 - "{self.requestline}" {code} OK', flush=True)

    def log_message(self, format, *values):
        pass


server = http.server.HTTPServer((args.host, args.port), Handler)
threading.Timer({lifetime}, server.shutdown).start()  # never outlive a broken test by long
print("INFO:     fake llama.cpp server on", args.port, flush=True)
server.serve_forever(poll_interval=0.1)
"""


def write_fake_llama_server(directory: Path, *, lifetime: float = 120.0) -> Path:
    """Write an executable to pass as `LlamaServer`'s ``python``: it serves ``/v1/models`` on ``--port``.

    It ignores the model, logs uvicorn-style access lines to stdout, dies on SIGTERM like the real server and
    exits by itself after `lifetime` seconds. Its process id is the server's ``pid`` (``exec``).
    """
    script = directory / "fake_llama_server.py"
    script.write_text(_FAKE_LLAMA_SERVER.replace("{lifetime}", repr(float(lifetime))))
    launcher = directory / "fake_python"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    return launcher
