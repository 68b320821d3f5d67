"""An HTTP/1.1 client for the hot paths: pooled keep-alive connections and httptools.

The hub forwards every exchange to its provider, and the load generator sends every
request it schedules, on the same cores as everything else. aiohttp's client, measured
here against nginx on loopback, took about 180 µs of CPU a request; this one writes each
request as one buffer on a pooled keep-alive connection and parses the answer with
httptools (the parser uvicorn uses): about 45 µs.

What it does: ``http`` and ``https`` URLs; at most ``limit`` connections in all (a
request waits for a free one, inside its deadline); one deadline for the whole request,
connection and waiting included; bodies delimited by a length, by chunks or by the end of
the connection, kept (``fetch``) or only counted (``request``), with an optional bound on
their size; ``Connection: close`` honoured; one more try, on a new connection, for an
idempotent request whose kept-alive connection the server had closed as it left. What it
leaves out, on purpose: redirects, cookies, decompression, proxies, ``Expect:
100-continue``. The hub passes answers on as the provider made them, and a load test
measures what the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "Answer",
    "AnswerTooLarge",
    "BadAnswer",
    "CannotConnect",
    "Http1Client",
    "ServerDisconnected",
]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DELIMITING = frozenset({b"content-length", b"transfer-encoding"})


class Answer(NamedTuple):
    status: int
    #: The response's headers as sent (names in the server's case); empty unless kept.
    headers: list[tuple[bytes, bytes]]
    #: The body; empty unless kept.
    body: bytes
    #: The body's size in bytes.
    size: int


class ServerDisconnected(ConnectionError):
    """The server closed the connection before its answer was complete."""


class CannotConnect(ConnectionError):
    """No connection could be made to the server (refused, unreachable, unknown host)."""


class BadAnswer(ConnectionError):
    """What the server sent is not an HTTP/1.x response."""


class AnswerTooLarge(Exception):
    """The response's body is over the size the caller allowed."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request on it at a time."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._keep = False
        self._max_body: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._received = False
        self._headers_done = False
        #: The answer says where it ends (a length, or chunks): the connection's end
        #: before then is an error, not the end of the body.
        self._delimited = False
        self._no_body = False
        self.closed = False
        self.reused = False
        #: When it was last put back in the pool (the client's ``clock``).
        self.idle_since = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"unparsable response: {exc}"))
            self._close()

    def eof_received(self) -> bool | None:
        # An answer with neither a length nor chunks ends with the connection.
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if self._headers_done and not self._delimited:
                waiter.set_result(self._answer())
            else:
                waiter.set_exception(ServerDisconnected("the answer ended before its end"))
        self._forget()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._fail(ServerDisconnected("the server closed the connection"))

    # -- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._chunks = []
        self._size = 0
        self._headers_done = False
        self._delimited = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in _DELIMITING:
            self._delimited = True
        if self._keep:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._no_body and not 100 <= self._parser.get_status_code() < 200:
            # The answer to HEAD has no body whatever its headers say, and the parser
            # cannot be told so: take the answer and do not reuse the connection.
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(self._answer())
            self._close()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._max_body is not None and self._size > self._max_body:
            self._fail(AnswerTooLarge(f"response body over {self._max_body} bytes"))
            self._close()
        elif self._keep:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim answer: the final one follows on the same parser
        if self._waiter is None:
            self._close()  # an answer nobody asked for: the connection cannot be trusted
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._answer())
        if self._parser.should_keep_alive() and not self.closed:
            self._parser = httptools.HttpResponseParser(self)
            self._received = False
            self._pool.release(self)
        else:
            self._close()

    # -- use ----------------------------------------------------------------------

    def _answer(self) -> Answer:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return Answer(self._parser.get_status_code(), self._headers, body, self._size)

    def send(
        self,
        data: bytes,
        waiter: asyncio.Future[Answer],
        *,
        head: bool,
        keep: bool,
        max_body: int | None,
    ) -> None:
        assert self.transport is not None
        self._waiter = waiter
        self._received = False
        self._no_body = head
        self._keep = keep
        self._max_body = max_body
        self.transport.write(data)

    @property
    def answered_nothing(self) -> bool:
        return not self._received

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        """Give up on the request in progress (a deadline passed): drop the connection."""
        self._waiter = None
        self._close()

    def _forget(self) -> None:
        self.closed = True
        self._pool.forget(self)

    def _close(self) -> None:
        self._forget()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _Pool:
    """The connections to one scheme, host and port."""

    def __init__(
        self, client: Http1Client, host: str, port: int, tls: bool, server_name: str | None
    ) -> None:
        self._client = client
        self.host, self.port, self.tls = host, port, tls
        #: The name the server's certificate must carry (default: ``host``).
        self.server_name = server_name or host
        self.idle: deque[_Connection] = deque()
        self.open: set[_Connection] = set()

    async def connect(self) -> _Connection:
        """A new connection. Its place under the client's limit is taken before it is
        made, so that many requests starting at once cannot each open one."""
        client = self._client
        client.count += 1
        context = client.ssl_context if self.tls else None
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=context,
                server_hostname=self.server_name if context is not None else None,
            )
        except BaseException as exc:
            client.count -= 1
            client.freed()
            if isinstance(exc, OSError):
                raise CannotConnect(exc.strerror or str(exc)) from exc
            raise
        self.open.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """A connection is free: to the oldest request waiting for one, or idle."""
        if conn.closed:
            return
        conn.reused = True
        waiters = self._client.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        now = self._client.clock()
        conn.idle_since = now
        self.idle.append(conn)
        self.expire(now)

    def expire(self, now: float) -> None:
        """Close the connections idle longer than the client's ``idle_seconds`` (the
        longest idle are at the left)."""
        idle, oldest = self.idle, now - self._client.idle_seconds
        while idle and idle[0].idle_since < oldest:
            idle.popleft().abort()

    def forget(self, conn: _Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            with contextlib.suppress(ValueError):
                self.idle.remove(conn)
            self._client.count -= 1
            self._client.freed()


class Http1Client:
    """Requests over pooled HTTP/1.1 keep-alive connections, at most ``limit`` of them.

    ``clock`` is the monotonic time, in seconds, by which connections idle out
    (``idle_seconds``); a test passes a clock it moves by hand. The deadline (``timeout``)
    is the event loop's.
    """

    def __init__(
        self,
        *,
        limit: int = 256,
        timeout: float = 30.0,
        idle_seconds: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.timeout = timeout
        #: A connection idle this long is closed (below servers' usual keep-alive
        #: timeouts, uvicorn's 5 s among them, so it is not reused as the server closes it).
        self.idle_seconds = idle_seconds
        self.clock = clock
        #: Connections open or being opened, to all hosts.
        self.count = 0
        #: Requests waiting for a connection (to any host), oldest first.
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._pools: dict[tuple[str, str, int, str | None], _Pool] = {}
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[_Pool, bytes]] = {}
        #: For ``https``: the system's trust by default, or the caller's (mutual TLS).
        self._ssl = ssl_context

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def freed(self) -> None:
        """A connection closed: a waiting request may open a new one."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _head(
        self, method: str, url: str, headers: Mapping[str, str], server_name: str | None = None
    ) -> tuple[_Pool, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"only http and https URLs can be requested, not {url!r}")
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
        key = (parts.scheme, host, port, server_name)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, host, port, tls, server_name)
        return pool, ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def _remembered_head(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[_Pool, bytes]:
        # A load test repeats a few requests many times: build each head once.
        key = (method, url, tuple(headers.items()))
        found = self._heads.get(key)
        if found is None:
            found = self._head(method, url, headers)
            if len(self._heads) < 4096:
                self._heads[key] = found
        return found

    async def _acquire(self, pool: _Pool) -> _Connection:
        while True:
            if pool.idle:
                # The most recently used first: a steady load keeps using the few it
                # needs, and the ones a burst opened idle out (``idle_seconds``) instead
                # of being kept open in turn, so the connections (and descriptors) follow
                # the load's concurrency rather than its highest peak so far.
                pool.expire(self.clock())
                while pool.idle:
                    conn = pool.idle.pop()
                    if not conn.closed:
                        return conn
            if self.count >= self.limit:
                for other in self._pools.values():
                    if other.idle:
                        other.idle[0].abort()  # its place is ours
                        break
            if self.count < self.limit:
                return await pool.connect()
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    conn = cast(_Connection, waiter.result())
                    conn._pool.release(conn)  # handed over as we gave up: pass it on
                elif waiter.done() and not waiter.cancelled():
                    self.freed()  # a slot was freed for us as we gave up: pass it on
                raise
            if handed is not None and not handed.closed:
                if handed in pool.open:
                    return handed
                handed.abort()  # another host's connection: close it, its place is ours

    async def _send(
        self,
        method: str,
        pool: _Pool,
        data: bytes,
        *,
        keep: bool,
        max_body: int | None,
    ) -> Answer:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            for attempt in (1, 2):
                conn = await self._acquire(pool)
                waiter: asyncio.Future[Answer] = loop.create_future()
                conn.send(data, waiter, head=method == "HEAD", keep=keep, max_body=max_body)
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
                    if conn._waiter is waiter:  # still ours: not answered, not handed on
                        conn.abort()  # a deadline or a cancellation mid-answer
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _with_body(method: str, head: bytes, body: bytes | None) -> bytes:
        if body or method in ("POST", "PUT", "PATCH"):
            return head + b"Content-Length: %d\r\n\r\n" % len(body or b"") + (body or b"")
        return head + b"\r\n"

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, int]:
        """Send a request; its answer's status and body size (the body is not kept).

        Raises ``TimeoutError`` when the answer is not complete within the client's
        ``timeout``, ``CannotConnect``, ``ServerDisconnected`` or ``BadAnswer``.
        """
        pool, head = self._remembered_head(method, url, headers or {})
        answer = await self._send(
            method, pool, self._with_body(method, head, body), keep=False, max_body=None
        )
        return answer.status, answer.size

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_body: int | None = None,
        server_name: str | None = None,
    ) -> Answer:
        """Send a request; its answer with headers and body. As ``request``, and
        ``AnswerTooLarge`` when the body passes ``max_body`` bytes. Over ``https``, the
        server's certificate must name ``server_name`` (default: the URL's host)."""
        pool, head = self._head(method, url, headers or {}, server_name)
        return await self._send(
            method, pool, self._with_body(method, head, body), keep=True, max_body=max_body
        )

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
