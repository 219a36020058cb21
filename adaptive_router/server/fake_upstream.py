"""`FakeUpstream`: a tiny OpenAI-compatible server on 127.0.0.1 for tests and benchmarks (stdlib asyncio).

It answers ``POST /v1/chat/completions`` and ``/v1/completions`` (plain or streamed, ``n`` honoured) with
``reply(prompt, i)`` (default ``"echo: <last user text>"``) after ``latency`` seconds, and ``GET /v1/models``.
Set ``fail_status`` to answer every request with that status instead. It counts requests and, with
``record=True``, keeps one record per request (arrival and answer times on the ``time.monotonic`` clock,
shared by all processes of a machine, the prompt, ``n`` and the ``Authorization`` header it got), readable
over HTTP at ``GET /fake/calls`` (``POST /fake/reset`` clears them). It only ever binds to 127.0.0.1.

Run it in a thread (``with FakeUpstream() as up: up.base_url``) or as a process (what a load benchmark
wants, so it does not share the server's CPU)::

    python -m adaptive_router.server.fake_upstream --port 9100 --latency-ms 20 --record

Examples
--------
>>> import httpx
>>> with FakeUpstream(latency=0.0) as up:
...     body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 2}
...     reply = httpx.post(up.base_url + "/chat/completions", json=body).json()
...     [c["message"]["content"] for c in reply["choices"]], up.requests
(['echo: hi', 'echo: hi'], 1)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FakeUpstream"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _echo(prompt: str, index: int) -> str:
    return "echo: " + prompt


def _prompt(body: dict[str, Any]) -> str:
    if "messages" in body:
        users = [m for m in body["messages"] if m.get("role") == "user"] or body["messages"]
        content = users[-1].get("content") or ""
        return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(prompt)


class FakeUpstream:
    """An OpenAI-compatible fake on 127.0.0.1 (see the module docstring).

    Parameters
    ----------
    latency : float
        Seconds before each answer.
    port : int
        0 picks a free one.
    reply : callable
        ``reply(prompt, candidate_index) -> str``.
    record : bool
        Keep one record per request.
    fail_status : int, optional
        Answer every completion request with this status (settable while running).
    fail_message : str
        The error message then; ``{authorization}`` is replaced by the header received (a leaky upstream).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        port: int = 0,
        reply: Callable[[str, int], str] = _echo,
        record: bool = False,
        fail_status: int | None = None,
        fail_message: str = "fake upstream failure",
    ) -> None:
        self.latency = latency
        self.port = port
        self.reply = reply
        self.record = record
        self.fail_status = fail_status
        self.fail_message = fail_message
        self.requests = 0
        self.calls: list[dict[str, Any]] = []
        self._candidates = 0
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" "), "", ""][:3]
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                length = int(headers.get("content-length", "0") or 0)
                raw = await reader.readexactly(length) if length else b""
                if not await self._respond(method, path, headers, raw, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a fake that is being stopped: end quietly
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)

    async def _respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "GET" and path.endswith("/models"):
            self._send(writer, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        elif method == "GET" and path == "/fake/calls":
            self._send(writer, 200, {"requests": self.requests, "calls": self.calls})
        elif method == "POST" and path == "/fake/reset":
            self.requests, self.calls = 0, []
            self._send(writer, 200, {"ok": True})
        elif method == "POST" and path.endswith(("/chat/completions", "/completions")):
            return await self._complete(path, headers, raw, writer)
        else:
            self._send(writer, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})
        await writer.drain()
        return True

    async def _complete(
        self, path: str, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        arrived = time.monotonic()
        self.requests += 1
        body = json.loads(raw or b"{}")
        chat = path.endswith("/chat/completions")
        prompt, n = _prompt(body), int(body.get("n") or 1)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fail_status is not None:
            message = self.fail_message.replace("{authorization}", headers.get("authorization", ""))
            self._send(writer, self.fail_status, {"error": {"message": message, "type": "server_error"}})
            await writer.drain()
            return True
        texts = [self.reply(prompt, self._candidates + j) for j in range(n)]
        self._candidates += n
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": sum(len(t.split()) for t in texts),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.record:
            auth = headers.get("authorization")
            self.calls.append(
                {
                    "arrived": arrived,
                    "answered": time.monotonic(),
                    "prompt": prompt,
                    "n": n,
                    "authorization": auth,
                    "params": {k: body.get(k) for k in ("max_tokens", "temperature", "stop", "seed")},
                }
            )
        if body.get("stream"):
            await self._stream(
                writer, chat, texts[0], usage, bool((body.get("stream_options") or {}).get("include_usage"))
            )
            return True
        if chat:
            choices = [
                {"index": j, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                for j, t in enumerate(texts)
            ]
        else:
            choices = [{"index": j, "text": t, "finish_reason": "stop"} for j, t in enumerate(texts)]
        obj = "chat.completion" if chat else "text_completion"
        self._send(
            writer,
            200,
            {
                "id": "fake-1",
                "object": obj,
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": choices,
                "usage": usage,
            },
        )
        await writer.drain()
        return True

    async def _stream(
        self, writer: asyncio.StreamWriter, chat: bool, text: str, usage: dict[str, int], include_usage: bool
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        words = text.split(" ")
        events: list[dict[str, Any]] = []
        for j, word in enumerate(words):
            piece = word if j == 0 else " " + word
            choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            events.append({"object": "chat.completion.chunk", "choices": [{**choice, "finish_reason": None}]})
        events.append(
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "text": "", "finish_reason": "stop"}],
            }
        )
        if include_usage:
            events.append({"object": "chat.completion.chunk", "choices": [], "usage": usage})
        for payload in [*events, None]:
            data = b"data: " + (json.dumps(payload).encode() if payload is not None else b"[DONE]") + b"\n\n"
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    # ------------------------------------------------------------------ lifecycle
    async def serve_async(self) -> None:
        """Serve on the running loop until cancelled."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> FakeUpstream:
        """Serve in a background thread; returns once it listens."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=4096)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.serve_forever()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        def run() -> None:
            loop = self._loop
            if loop is None:  # pragma: no cover - set just above
                return
            with contextlib.suppress(Exception):
                loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake upstream did not start within 10 s")
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection (as if the upstream died)."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def close() -> None:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        loop.call_soon_threadsafe(close)
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeUpstream(port={self.port}, latency={self.latency}, requests={self.requests})"


def main(argv: list[str] | None = None) -> None:
    """``python -m adaptive_router.server.fake_upstream --port P [--latency-ms L] [--record]``."""
    parser = argparse.ArgumentParser(description="An OpenAI-compatible fake upstream on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    upstream = FakeUpstream(latency=args.latency_ms / 1000.0, port=args.port, record=args.record)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(upstream.serve_async())


if __name__ == "__main__":
    main()
