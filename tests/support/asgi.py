"""Apps in the test's own event loop: lifespan run as a server runs it, requests over
``httpx.ASGITransport``.

For a test about one app's behaviour a real server adds only its start, its stop and a
thread; the app itself runs the same code. ``lifespan(app)`` drives the ASGI lifespan
protocol as uvicorn does (startup before the first request, shutdown after the last,
the state the app yields handed to every request), and ``InProcessApps`` is a transport
that sends requests for a mounted host to its app and any other request over the
network, so one client reaches both an app in process and real servers beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx

__all__ = ["InProcessApps", "lifespan"]

Message = MutableMapping[str, Any]
App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class LifespanFailed(RuntimeError):
    """The app refused to start or to stop."""


@contextlib.asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    """Start ``app`` (ASGI lifespan startup); yield its lifespan state; shut it down."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": state}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put), name="lifespan")

    async def reply(sent: str) -> Message:
        getting = asyncio.ensure_future(outbox.get())
        await asyncio.wait({getting, task}, return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            message = getting.result()
            if message["type"].endswith(".failed"):
                await asyncio.wait({task})
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
                raise LifespanFailed(message.get("message") or message["type"])
            if message["type"] != f"{sent}.complete":
                raise LifespanFailed(f"the app answered {sent} with {message['type']}")
            return message
        getting.cancel()
        task.result()  # the app's own exception, if it raised one
        raise LifespanFailed(f"the app returned without answering {sent}")

    await inbox.put({"type": "lifespan.startup"})
    await reply("lifespan.startup")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await reply("lifespan.shutdown")
        await task


class InProcessApps(httpx.AsyncBaseTransport):
    """Requests to a mounted host go to its app in this event loop; others go out over
    the network. The client's read timeout bounds an app's answer as it would a server's.
    """

    def __init__(self) -> None:
        self._apps: dict[str, httpx.ASGITransport] = {}
        self._network = httpx.AsyncHTTPTransport()

    def mount(self, host: str, app: App, state: dict[str, Any] | None = None) -> str:
        """Serve ``host`` with ``app`` (its lifespan ``state`` shallow-copied into each
        request, as uvicorn does); the base URL to call it by."""

        async def with_state(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            if state is not None:
                scope["state"] = state.copy()
            await app(scope, receive, send)

        self._apps[host] = httpx.ASGITransport(app=with_state)
        return f"http://{host}"

    def unmount(self, host: str) -> None:
        self._apps.pop(host, None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._apps.get(request.url.host)
        if transport is None:
            return await self._network.handle_async_request(request)
        read = request.extensions.get("timeout", {}).get("read")
        deadline = asyncio.timeout(read)
        try:
            async with deadline:
                return await transport.handle_async_request(request)
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own
            raise httpx.ReadTimeout(f"no answer within {read} s", request=request) from None

    async def aclose(self) -> None:
        await self._network.aclose()
