"""The hot paths' HTTP/1.1 client against a real server on loopback that answers as told."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from common.http1 import (
    AnswerTooLarge,
    BadAnswer,
    CannotConnect,
    Http1Client,
    ServerDisconnected,
)
from tests.support.timing import FakeClock, until

Answer = Callable[[bytes], bytes | None]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def listening(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on loopback running ``handler`` for each connection; its URL. On
    exit it stops listening and waits for the handlers to finish (the client has closed
    its connections by then), so that none is left for the next test's event loop."""
    running: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        finally:
            running.discard(task)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await until(lambda: not running, what="the server's connections ending")


class Scripted:
    """A TCP server: reads each request's head (and body, by Content-Length) and writes
    what ``answer(request)`` returns; ``None`` closes the connection instead."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.url = ""
        self._listening = listening(self._serve)

    async def __aenter__(self) -> Scripted:
        self.url = await self._listening.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._listening.__aexit__(None, None, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                out = self.answer(request)
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
                if b"connection: close" in out.lower():
                    return
        finally:
            self.open -= 1
            writer.close()


def ok(body: bytes = b'{"ok":true}', *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture
async def ok_server() -> AsyncIterator[Scripted]:
    async with Scripted(lambda request: ok()) as server:
        yield server


async def test_requests_share_one_kept_alive_connection(ok_server: Scripted) -> None:
    async with Http1Client(limit=8) as client:
        for _ in range(5):
            assert await client.request("GET", f"{ok_server.url}/a?x=1") == (200, 11)
    assert ok_server.connections == 1
    first = ok_server.requests[0]
    assert first.startswith(b"GET /a?x=1 HTTP/1.1\r\n")
    assert f"Host: {ok_server.url[7:]}".encode() in first


async def test_headers_and_body_are_sent_with_their_length(ok_server: Scripted) -> None:
    async with Http1Client() as client:
        await client.request(
            "POST", f"{ok_server.url}/d", headers={"X-Procedure": "P1"}, body=b"hello"
        )
        await client.request("POST", f"{ok_server.url}/e")
    assert ok_server.requests[0].endswith(b"Content-Length: 5\r\n\r\nhello")
    assert b"X-Procedure: P1\r\n" in ok_server.requests[0]
    assert ok_server.requests[1].endswith(b"Content-Length: 0\r\n\r\n")


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    to_the_end = b"HTTP/1.1 202 Accepted\r\nconnection: close\r\n\r\n" + b"x" * 5000
    answers = iter([chunked, chunked, to_the_end, chunked])
    async with Scripted(lambda request: next(answers)) as server, Http1Client() as client:
        assert await client.request("GET", f"{server.url}/") == (201, 5)
        assert await client.request("GET", f"{server.url}/") == (201, 5)
        assert await client.request("GET", f"{server.url}/") == (202, 5000)
        # The server closed after the close-delimited answer: a new connection is made.
        assert await client.request("GET", f"{server.url}/") == (201, 5)
    assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    answer = ok(extra=b"connection: close\r\n")
    async with Scripted(lambda request: answer) as server, Http1Client() as client:
        for _ in range(3):
            assert (await client.request("GET", f"{server.url}/"))[0] == 200
    assert server.connections == 3


async def test_head_answers_have_no_body() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
    async with Scripted(lambda request: answer) as server, Http1Client(timeout=2) as client:
        assert await client.request("HEAD", f"{server.url}/") == (200, 0)
        assert await client.request("HEAD", f"{server.url}/") == (200, 0)


async def test_connections_stay_within_the_limit() -> None:
    async with Scripted(lambda request: ok()) as server, Http1Client(limit=3) as client:
        results = await asyncio.gather(
            *(client.request("GET", f"{server.url}/{i}") for i in range(60))
        )
    assert all(status == 200 for status, _ in results)
    assert server.most_open <= 3
    assert len(server.requests) == 60


async def test_connections_a_burst_opened_idle_out_under_a_steady_load() -> None:
    clock = FakeClock()
    async with (
        Scripted(lambda request: ok()) as server,
        Http1Client(limit=8, idle_seconds=0.2, clock=clock) as client,
    ):
        await asyncio.gather(*(client.request("GET", f"{server.url}/{i}") for i in range(6)))
        burst = server.connections
        assert burst > 1
        # One request at a time: the most recently used connection serves them all, and
        # the rest close once they have been idle for 0.2 s.
        for _ in range(25):
            assert (await client.request("GET", f"{server.url}/steady"))[0] == 200
            clock.advance(0.02)
        await until(lambda: server.open == 1, what="the burst's connections closing")
        assert client.count == 1
        assert server.connections == burst  # none was opened for the steady load


async def test_a_connection_is_reused_until_it_has_been_idle_for_idle_seconds() -> None:
    clock = FakeClock()
    async with (
        Scripted(lambda request: ok()) as server,
        Http1Client(idle_seconds=4.0, clock=clock) as client,
    ):
        assert (await client.request("GET", f"{server.url}/1"))[0] == 200
        clock.advance(3.9)
        assert (await client.request("GET", f"{server.url}/2"))[0] == 200
        assert server.connections == 1  # idle for less than 4 s: reused
        clock.advance(4.1)
        assert (await client.request("GET", f"{server.url}/3"))[0] == 200
        assert server.connections == 2  # idle for longer: closed, and a new one made
        await until(lambda: server.open == 1, what="the idle connection closing")
        assert client.count == 1


async def test_an_idle_connection_is_closed_when_another_is_put_back() -> None:
    """Idle connections are reaped as connections are released, not only as requests
    start: two connections, one put back much later than the other, leave one open."""
    clock = FakeClock()
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"/held" in head:
                    await release.wait()
                writer.write(ok())
                await writer.drain()
        writer.close()

    async with listening(serve) as url, Http1Client(idle_seconds=1.0, clock=clock) as client:
        held = asyncio.create_task(client.request("GET", f"{url}/held"))
        await until(lambda: client.count == 1, what="the first connection opening")
        assert (await client.request("GET", f"{url}/quick"))[0] == 200
        assert client.count == 2  # the quick one is idle, the held one busy
        clock.advance(5)
        release.set()
        assert (await held)[0] == 200  # put back: the long-idle quick one goes
        await until(lambda: client.count == 1, what="the idle connection closing")


async def test_an_answer_that_never_comes_times_out_and_frees_its_connection() -> None:
    def answer(request: bytes) -> bytes:
        return ok() if b"/fast" in request else b""

    async with Scripted(answer) as server, Http1Client(limit=1, timeout=0.3) as client:
        with pytest.raises(TimeoutError):
            await client.request("GET", f"{server.url}/slow")
        # The one connection was dropped with the late answer; the next request gets
        # a new one and its own answer, not the late one.
        assert await client.request("GET", f"{server.url}/fast") == (200, 11)


async def test_an_answer_cut_short_is_an_error() -> None:
    # A length of 100, nine bytes of body, then the server closes the connection.
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly this"
    async with Scripted(lambda request: cut) as server, Http1Client(timeout=5) as client:
        with pytest.raises(ServerDisconnected):
            await client.request("GET", f"{server.url}/")


async def test_a_server_closing_mid_answer_is_reported() -> None:
    def answer(request: bytes) -> bytes | None:
        return None  # close without answering

    async with Scripted(answer) as server, Http1Client() as client:
        with pytest.raises(ServerDisconnected):
            await client.request("POST", f"{server.url}/", body=b"x")


async def test_a_kept_alive_connection_closed_by_the_server_is_replaced() -> None:
    served = 0

    def answer(request: bytes) -> bytes | None:
        nonlocal served
        served += 1
        # Every second request on a connection finds it closed (an idle timeout).
        return ok() if served % 2 else None

    async with Scripted(answer) as server, Http1Client() as client:
        for _ in range(3):
            assert (await client.request("GET", f"{server.url}/"))[0] == 200
    assert server.connections >= 2


async def test_a_refused_connection_is_an_error() -> None:
    async with Scripted(lambda request: ok()) as server:
        url = server.url
    async with Http1Client() as client:
        with pytest.raises(CannotConnect):
            await client.request("GET", f"{url}/")


async def test_only_http_urls() -> None:
    async with Http1Client() as client:
        with pytest.raises(ValueError, match="only http"):
            await client.request("GET", "ftp://127.0.0.1/x")


async def test_fetch_keeps_headers_and_body() -> None:
    chunked = (
        b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nETag: "v1"\r\n'
        b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with Scripted(lambda request: chunked) as server, Http1Client() as client:
        answer = await client.fetch("GET", f"{server.url}/x", headers={"Accept": "*/*"})
    assert answer.status == 404
    assert answer.body == b"abcde"
    assert answer.size == 5
    assert (b"Content-Type", b"application/json") in answer.headers
    assert (b"ETag", b'"v1"') in answer.headers


async def test_a_body_over_the_bound_is_refused_and_the_connection_dropped() -> None:
    big = ok(b"z" * 10_000)
    async with Scripted(lambda request: big) as server, Http1Client() as client:
        with pytest.raises(AnswerTooLarge):
            await client.fetch("GET", f"{server.url}/", max_body=1000)
        answer = await client.fetch("GET", f"{server.url}/", max_body=20_000)
        assert answer.size == 10_000
    assert server.connections == 2


async def test_something_that_is_not_http_is_a_bad_answer() -> None:
    not_http = b"SSH-2.0-OpenSSH\r\n\r\n"
    async with Scripted(lambda request: not_http) as server, Http1Client() as client:
        with pytest.raises(BadAnswer):
            await client.fetch("GET", f"{server.url}/")


async def test_idle_connections_to_one_host_give_way_to_another() -> None:
    async with (
        Scripted(lambda request: ok()) as first,
        Scripted(lambda request: ok()) as second,
        Http1Client(limit=1, timeout=2) as client,
    ):
        assert (await client.request("GET", f"{first.url}/"))[0] == 200
        # The one place is held by an idle connection to the first host: it is closed.
        assert (await client.request("GET", f"{second.url}/"))[0] == 200
        assert client.count == 1


async def test_interim_answers_are_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
    answers = iter([early + ok(b"first"), ok(b"second")])
    async with Scripted(lambda request: next(answers)) as server, Http1Client() as client:
        first = await client.fetch("GET", f"{server.url}/1")
        second = await client.fetch("GET", f"{server.url}/2")
    assert (first.status, first.body) == (200, b"first")
    assert second.body == b"second"


async def test_an_answer_nobody_asked_for_retires_the_connection() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(ok(b"r"))
        finally:
            writer.close()

    async with listening(serve) as url:
        async with Http1Client(timeout=2) as client:
            await client.request("GET", f"{url}/1")
            writers[0].write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            await until(lambda: client.count == 0, what="the connection being retired")
            # Two requests at once must not share a connection that answered out of turn.
            results = await asyncio.gather(
                client.request("GET", f"{url}/a"), client.request("GET", f"{url}/b")
            )
        assert list(results) == [(200, 1), (200, 1)]
        assert len(writers) == 3


async def test_a_request_giving_up_passes_on_a_freed_place() -> None:
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            arrived.set()
            await release.wait()
            writer.write(ok(extra=b"connection: close\r\n"))
            await writer.drain()
        writer.close()

    async with listening(serve) as url, Http1Client(limit=1, timeout=3) as client:
        holder = asyncio.create_task(client.request("GET", f"{url}/hold"))
        await asyncio.wait_for(arrived.wait(), 5)
        gives_up = asyncio.create_task(client.request("GET", f"{url}/b"))
        waits = asyncio.create_task(client.request("GET", f"{url}/c"))
        await until(lambda: len(client.waiters) == 2, what="both requests queueing")
        release.set()
        await holder  # its connection closes: the place goes to the first waiter ...
        gives_up.cancel()  # ... which gives up at that moment: the next one must get it
        with contextlib.suppress(asyncio.CancelledError):
            await gives_up
        assert (await waits)[0] == 200
