"""uvicorn's HTTP protocol with a deadline for request headers, and a door for floods.

uvicorn bounds idle keep-alive connections but not a client that sends its request
headers a byte at a time: each such connection would be held open for as long as the
client likes, and enough of them exhaust the process's file descriptors. This protocol
gives every request ``header_timeout`` seconds from its first byte (or from the
connection's opening) to its last header, then answers 408 ``request_timeout`` as
problem+json and closes the connection.

The deadline is the app's to set: its lifespan state may carry it under
``HEADER_TIMEOUT`` (seconds; 10 by default), so each worker process takes it from the app
it serves, with nothing kept in the environment or in the class.

The door: an app may put a ``Door`` under ``DOOR`` in its lifespan state. For each request
whose path starts with the door's prefix, the protocol asks it, as soon as the headers are
in, whether the request is admitted; a refused one is answered there with the door's
prepared response, without an ASGI task, a scope or a call into the app. Under a flood the
refusals are most of the traffic, and whatever they cost is taken from the requests that
are admitted.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.errors import SlowSender, http_answer

__all__ = [
    "ADMITTED",
    "DOOR",
    "HEADER_TIMEOUT",
    "Door",
    "GuardedHttpToolsProtocol",
    "settle_heap",
]

#: The lifespan-state key under which an app offers its ``Door``.
DOOR = "ngsp.door"
#: The lifespan-state key under which an app sets its deadline for request headers.
HEADER_TIMEOUT = "ngsp.header_timeout"
_DEFAULT_HEADER_TIMEOUT = 10.0
#: Set in a request's scope when the door admitted it. The door's ``admit`` counts the
#: request in at once (so that a burst read in one turn of the event loop cannot all get
#: through before any of it is counted), and the app counts it out when it is done.
ADMITTED = "ngsp.admitted"


@dataclass(frozen=True, slots=True)
class Door:
    """Admission at the protocol: ``admit()`` for requests under ``prefix``; if it says
    no, the answer is ``status_line`` and ``headers`` (the server's default headers are
    added), then ``body``; if yes, the request counts as in (``ADMITTED``)."""

    prefix: bytes
    admit: Callable[[], bool]
    status_line: bytes
    headers: bytes
    body: bytes


def _answer_408(seconds: float) -> bytes:
    return http_answer(SlowSender(f"the request's headers did not arrive within {seconds:g} s"))


class _NoEvent:
    __slots__ = ()

    def set(self) -> None:
        pass


class _Answered:
    """Stands in for the request cycle of a request the protocol answered itself: its
    body, if any, is read and dropped, and the connection goes on to the next request."""

    __slots__ = ()
    response_complete = True
    message_event = _NoEvent()


_ANSWERED: Any = _Answered()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with a deadline for each request's headers (the app's ``HEADER_TIMEOUT``)."""

    header_timeout: float = _DEFAULT_HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_answer_408(self.header_timeout))
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.header_timeout = self.app_state.get(HEADER_TIMEOUT, _DEFAULT_HEADER_TIMEOUT)
        self._arm()

    def on_message_begin(self) -> None:
        # A request may follow one answered at the door in the same read, after the
        # keep-alive timer was armed for it.
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        door: Door | None = self.app_state.get(DOOR)
        if (
            door is not None
            and self.url.startswith(door.prefix)
            and (self.cycle is None or self.cycle.response_complete)
            and not self.expect_100_continue
            and not self.parser.should_upgrade()
        ):
            if not door.admit():
                self._answer_at_door(door)
                return
            # Counted in from here: the app must not ask again (see ``ADMITTED``).
            self.scope[ADMITTED] = True  # type: ignore[literal-required]
        super().on_headers_complete()

    def _answer_at_door(self, door: Door) -> None:
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        out = [door.status_line]
        for name, value in self.server_state.default_headers:
            out += [name, b": ", value, b"\r\n"]
        out.append(door.headers)
        if not keep_alive:
            out.append(b"connection: close\r\n")
        out += [b"\r\n", door.body]
        self.transport.write(b"".join(out))
        self.cycle = _ANSWERED
        if keep_alive:
            self.on_response_complete()
        else:
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle between requests is the keep-alive timeout's business, not ours.
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def settle_heap() -> None:
    """Called once a service has started: what exists now (modules, the app, schemas,
    the roster) lives as long as the process, so it is taken out of the cyclic garbage
    collector's sight. Otherwise every full collection walks all of it: with the hub
    under load that was a 100-140 ms pause several times a second, which is the whole
    latency objective. Garbage made so far is collected first, so none is kept."""
    gc.collect()
    gc.freeze()
