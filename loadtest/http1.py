"""The generator's HTTP/1.1 client: keep-alive connections and httptools, nothing more.

A load generator that runs on the same cores as the system it measures must cost far
less than that system, or it measures itself. aiohttp's client, measured here against
nginx on loopback, took about 180 µs of CPU a request; the open-loop generator needs
only to send a request it was given and learn the status and the size of the answer.
This client writes each request as one buffer on a pooled keep-alive connection and
parses the answer with httptools (the parser uvicorn uses), about 45 µs a request.

It does what the generator needs and no more: ``http`` and ``https`` URLs, a bound on
connections (requests wait for a free one, as with aiohttp's connector), a deadline per
request, bodies read and counted (content-length, chunked, or to the end of the
connection), and ``Connection: close`` honoured. No redirects, cookies or
decompression: a load test measures what the server answers, as it answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

__all__ = ["Http1Client", "ServerDisconnected"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class ServerDisconnected(ConnectionError):
    """The server closed the connection before its answer was complete."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request on it at a time."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, int]] | None = None
        self._body_bytes = 0
        self._received = False
        self._headers_done = False
        #: The answer says where it ends (a length, or chunks), so the connection's end
        #: before then is an error, not the end of the body.
        self._delimited = False
        self._no_body = False
        self.closed = False
        self.reused = False

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ServerDisconnected(f"unparsable response: {exc}"))
            self._close()

    def eof_received(self) -> bool | None:
        # A response without a length ends with the connection: complete now.
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if self._headers_done and not self._delimited:
                waiter.set_result((self._parser.get_status_code(), self._body_bytes))
            else:
                waiter.set_exception(ServerDisconnected("the answer ended before its end"))
        self.closed = True
        self._pool.forget(self)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        self._fail(ServerDisconnected("the server closed the connection"))

    # -- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._body_bytes = 0
        self._headers_done = False
        self._delimited = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._no_body:
            # The answer to HEAD has no body whatever its headers say, and the parser
            # cannot be told so: take the status and do not reuse the connection.
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self._parser.get_status_code(), 0))
            self._close()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        keep_alive = self._parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), self._body_bytes))
        if keep_alive:
            self._parser = httptools.HttpResponseParser(self)
            self._received = False
            self._pool.release(self)
        else:
            self._close()

    # -- use ----------------------------------------------------------------------

    def send(self, data: bytes, waiter: asyncio.Future[tuple[int, int]], *, head: bool) -> None:
        assert self.transport is not None
        self._waiter = waiter
        self._received = False
        self._no_body = head
        self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        """Give up on the request in progress (a deadline passed): drop the connection."""
        self._waiter = None
        self._close()

    def _close(self) -> None:
        self.closed = True
        self._pool.forget(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def answered_nothing(self) -> bool:
        return not self._received


class _Pool:
    """Connections to one host and port: the idle ones, and the count of all."""

    def __init__(self, client: Http1Client, host: str, port: int, tls: bool) -> None:
        self._client = client
        self.host, self.port, self.tls = host, port, tls
        self.idle: deque[_Connection] = deque()
        self.open: set[_Connection] = set()

    async def connect(self) -> _Connection:
        """A new connection; its place under the client's limit is taken before it is
        made, so that many requests starting at once cannot all open one."""
        client = self._client
        client.count += 1
        context = client.ssl_context if self.tls else None
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=context
            )
        except BaseException:
            client.count -= 1
            client.freed()
            raise
        self.open.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.reused = True
        waiters = self._client.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            with contextlib.suppress(ValueError):
                self.idle.remove(conn)
            self._client.count -= 1
            self._client.freed()


class Http1Client:
    """Requests over pooled HTTP/1.1 keep-alive connections, at most ``limit`` of them."""

    def __init__(self, *, limit: int = 256, timeout: float = 30.0) -> None:
        self.limit = limit
        self.timeout = timeout
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        #: Requests waiting for a connection (all hosts), oldest first.
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._ssl: ssl.SSLContext | None = None
        #: Connections open or being opened, to all hosts.
        self.count = 0
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[_Pool, bytes]] = {}

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def freed(self) -> None:
        """A connection closed: a waiter may open a new one."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _prepare(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[_Pool, bytes]:
        key = (method, url, tuple(headers.items()))
        found = self._heads.get(key)
        if found is not None:
            return found
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"only http and https URLs can be requested, not {url!r}")
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
        pool_key = (parts.scheme, host, port)
        pool = self._pools.get(pool_key)
        if pool is None:
            pool = self._pools[pool_key] = _Pool(self, host, port, tls)
        head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        if len(self._heads) < 4096:  # fixed targets repeat; generated ones need not be kept
            self._heads[key] = (pool, head)
        return pool, head

    async def _acquire(self, pool: _Pool) -> _Connection:
        while True:
            while pool.idle:
                conn = pool.idle.pop()
                if not conn.closed:
                    return conn
            if self.count < self.limit:
                return await pool.connect()
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                conn_or_none = await waiter
            except BaseException:
                handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if handed is not None:
                    handed._pool.release(handed)  # handed over as we gave up: pass it on
                raise
            if conn_or_none is not None and not conn_or_none.closed:
                if conn_or_none in pool.open:
                    return conn_or_none
                conn_or_none.abort()  # another host's: close it, its place is ours

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, int]:
        """Send one request; the response's status and the size of its body.

        Raises ``TimeoutError`` when the answer is not complete within the client's
        ``timeout``, ``ServerDisconnected`` when the connection ends
        first, and ``OSError`` when no connection can be made.
        """
        pool, head = self._prepare(method, url, headers or {})
        if body or method in ("POST", "PUT", "PATCH"):
            data = head + f"Content-Length: {len(body or b'')}\r\n\r\n".encode() + (body or b"")
        else:
            data = head + b"\r\n"
        async with asyncio.timeout(self.timeout):
            for attempt in (1, 2):
                conn = await self._acquire(pool)
                waiter: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
                conn.send(data, waiter, head=method == "HEAD")
                try:
                    return await waiter
                except ServerDisconnected:
                    # A kept-alive connection the server closed as the request left: if
                    # nothing came back and the method is idempotent, try once more.
                    if (
                        attempt == 1
                        and conn.reused
                        and conn.answered_nothing
                        and method in _IDEMPOTENT
                    ):
                        continue
                    raise
                except BaseException:
                    conn.abort()  # a deadline or a cancellation mid-answer
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        for pool in list(self._pools.values()):
            for conn in list(pool.open):
                conn.abort()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.cancel()
        self.waiters.clear()
        await asyncio.sleep(0)

    async def __aenter__(self) -> Http1Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
