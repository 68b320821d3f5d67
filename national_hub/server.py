"""uvicorn's HTTP protocol with a deadline for request headers (slow-loris protection).

uvicorn bounds idle keep-alive connections but not a client that sends its request
headers a byte at a time: each such connection would be held open for as long as the
client likes, and enough of them exhaust the process's file descriptors. This protocol
gives every request ``header_timeout`` seconds from its first byte (or from the
connection's opening) to its last header, then answers 408 ``request_timeout`` as
problem+json and closes the connection.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from national_hub.contract import problem_body

__all__ = ["GuardedHttpToolsProtocol", "guarded_protocol"]


def _answer_408(seconds: float) -> bytes:
    body = problem_body(
        status=408,
        code="request_timeout",
        title="Request headers too slow",
        detail=f"the request's headers did not arrive within {seconds:g} s",
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with a deadline for each request's headers.

    The deadline is a class attribute (``header_timeout``) so that the class can be
    handed to uvicorn's worker processes by reference; it comes from the environment
    variable ``NGSP_HEADER_TIMEOUT_SECONDS`` when a worker imports this module.
    """

    header_timeout: float = float(os.environ.get("NGSP_HEADER_TIMEOUT_SECONDS", "10"))
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
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle between requests is the keep-alive timeout's business, not ours.
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class, with its deadline set here and in any worker process."""
    os.environ["NGSP_HEADER_TIMEOUT_SECONDS"] = str(header_timeout)
    GuardedHttpToolsProtocol.header_timeout = header_timeout
    return GuardedHttpToolsProtocol
