"""A small keep-alive HTTP/1.1 client for JSON ``POST`` requests: asyncio protocols, httptools parsing.

`ConnectionPool` holds the connections to one upstream (``http://`` or ``https://``) on one event loop:
idle ones are reused last-in first-out, at most ``limit`` at a time (`ConnectionPool.slots`, acquired by
the caller). `ConnectionPool.send` writes one request and returns the `Connection` once its response has
arrived (a stream: once its headers have, the body then comes through `Connection.queue`). Responses with
``Content-Length``, chunked ones and ones that end with the connection are read; there are no proxies,
redirects or compression. It is the transport of `adaptive_router.server.upstream.UpstreamChatModel`,
whose module docstring says why the server has one.

Examples
--------
>>> import asyncio
>>> from adaptive_router.server.fake_upstream import FakeUpstream
>>> async def post(url):
...     pool = ConnectionPool(url, limit=4)
...     body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
...     conn = await pool.send("/chat/completions", body, b"", stream=False)
...     pool.release(conn)
...     idle = len(pool.idle)
...     pool.close()
...     return conn.status, b"echo: hi" in b"".join(conn.chunks), idle
>>> with FakeUpstream(latency=0.0) as up:
...     asyncio.run(post(up.base_url))
(200, True, 1)
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

__all__ = ["Connection", "ConnectionPool", "drain"]


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; httptools parses what arrives (see `ConnectionPool.send`)."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.received = False
        self.head: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None
        self.queue: asyncio.Queue[bytes | BaseException | None] | None = None

    def start(self, data: bytes, *, stream: bool) -> None:
        loop = asyncio.get_running_loop()
        self.status, self.headers, self.chunks, self.received, self.reusable = 0, {}, [], False, False
        self.head, self.done = loop.create_future(), loop.create_future()
        self.queue = asyncio.Queue() if stream else None
        assert self.transport is not None
        self.transport.write(data)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError and its kind
            self._fail(ConnectionError(f"the upstream sent a malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        started = self.head is not None and self.head.done() and not self.head.exception()
        if started and "content-length" not in self.headers and "transfer-encoding" not in self.headers:
            self.on_message_complete()  # a body delimited by the end of the connection ends here
            return
        self._fail(ConnectionError("the upstream closed the connection" + (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.queue is not None:
            self.queue.put_nowait(bytes(body))
        else:
            self.chunks.append(bytes(body))

    def on_message_complete(self) -> None:
        self.reusable = not self.closed and self.parser.should_keep_alive()
        if self.queue is not None:
            self.queue.put_nowait(None)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        for future in (self.head, self.done):
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a request that was cancelled meanwhile is not warned about
        if self.queue is not None:
            self.queue.put_nowait(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """Keep-alive connections to one upstream on one event loop, at most `limit` at a time."""

    def __init__(self, base_url: str, limit: int) -> None:
        url = urlsplit(base_url)
        self.tls = url.scheme == "https"
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/")
        self.authority = url.netloc.rpartition("@")[2].encode("ascii")
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[Connection] = []
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.tls else None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        host = self.host if self.tls else None
        _, conn = await loop.create_connection(
            Connection, self.host, self.port, ssl=self._ssl, server_hostname=host
        )
        return conn

    def _request(self, path: str, body: bytes, headers: bytes) -> bytes:
        return (
            b"POST " + self.prefix.encode() + path.encode() + b" HTTP/1.1\r\nHost: " + self.authority
            + b"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip

    async def send(self, path: str, body: bytes, headers: bytes, *, stream: bool) -> Connection:
        """Send one request; returns the connection once the response arrived (a stream: its headers).

        The caller holds one of the pool's slots and gives the connection back with `release`. A reused
        connection the upstream had closed before answering anything is replaced by a new one, once.
        """
        data = self._request(path, body, headers)
        conn = None
        while self.idle and conn is None:
            conn = self.idle.pop()
            if conn.closed:
                conn = None
        if conn is not None:
            try:
                return await self._exchange(conn, data, stream)
            except ConnectionError:
                if conn.received:
                    raise
        return await self._exchange(await self._connect(), data, stream)

    @staticmethod
    async def _exchange(conn: Connection, data: bytes, stream: bool) -> Connection:
        conn.start(data, stream=stream)
        waiting = conn.head if stream else conn.done
        assert waiting is not None
        try:
            if not waiting.done():
                await waiting
            waiting.result()
        except BaseException:
            conn.close()
            raise
        return conn

    def release(self, conn: Connection) -> None:
        """Keep a connection whose response was read to the end, close any other."""
        if conn.reusable and not conn.closed and conn.done is not None and conn.done.done():
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def drain(queue: asyncio.Queue[bytes | BaseException | None]) -> bytes:
    """The body pieces a stream's queue holds so far."""
    out = []
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, bytes):
            out.append(item)
    return b"".join(out)
