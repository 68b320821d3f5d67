"""Limits at the edge of every service, before any route sees the request.

* headers over ``max_header_bytes`` in all: 431 ``headers_too_large``;
* a body declared (``Content-Length``) or found over ``max_body_bytes``: 413
  ``payload_too_large``, refused without reading the rest;
* a sender that pauses longer than ``read_timeout`` between body chunks: 408
  ``request_timeout``;
* a JSON body nested deeper than ``max_json_depth``: 400 ``json_too_deep`` (a parser
  would otherwise recurse once per level).

Every refusal is a problem+json body. The hub's data plane, served before this guard,
applies the same limits with the same reader (``read_body``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from common.errors import (
    HeadersTooLarge,
    JsonTooDeep,
    PayloadTooLarge,
    ProblemError,
    SlowSender,
    send_problem,
)

__all__ = ["EdgeGuard", "EdgeLimits", "check_json_depth", "header_bytes", "read_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class EdgeLimits:
    def __init__(
        self,
        *,
        max_header_bytes: int = 16 * 1024,
        max_body_bytes: int = 1 << 20,
        read_timeout: float = 10.0,
        max_json_depth: int = 32,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.max_json_depth = max_json_depth


def header_bytes(scope: Scope) -> int:
    """The size of the request line's target and every header, as received."""
    total = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    for name, value in scope["headers"]:
        total += len(name) + len(value) + 4
    return total


def check_json_depth(body: bytes, limit: int) -> None:
    """Refuse JSON nested deeper than ``limit`` (strings are skipped, escapes honoured)."""
    depth = 0
    in_string = False
    escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise JsonTooDeep(f"JSON bodies may nest at most {limit} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1


async def read_body(receive: Receive, limits: EdgeLimits, declared: int | None) -> bytes:
    """The whole request body, within the size and pace limits."""
    if declared is not None and declared > limits.max_body_bytes:
        raise PayloadTooLarge(
            f"request body of {declared} bytes is over {limits.max_body_bytes} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(limits.read_timeout):
                message = await receive()
        except TimeoutError:
            raise SlowSender(f"no part of the body arrived for {limits.read_timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise SlowSender("the client went away while sending the body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise PayloadTooLarge(f"request body is over {limits.max_body_bytes} bytes")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


class EdgeGuard:
    """ASGI middleware applying ``EdgeLimits`` to every HTTP request."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits | None = None) -> None:
        self.app = app
        self.limits = limits or EdgeLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        try:
            if header_bytes(scope) > limits.max_header_bytes:
                raise HeadersTooLarge(
                    f"request headers are over {limits.max_header_bytes} bytes in all"
                )
            if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and not _declared_length(
                scope
            ):
                await self.app(scope, receive, send)
                return
            body = await read_body(receive, limits, _declared_length(scope))
            if body and _is_json(scope):
                check_json_depth(body, limits.max_json_depth)
        except ProblemError as error:
            await send_problem(send, error)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
