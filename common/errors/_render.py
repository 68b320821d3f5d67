"""The one renderer of problem+json answers, in each form a service sends them.

* ``problem_response``: a Starlette response, for FastAPI handlers;
* ``send_problem``: ASGI messages, for the raw ASGI handlers (the edge guard, the hub's
  exchange, the nodes' listeners);
* ``problem_headers``, ``status_line``, ``header_block``, ``http_answer``: the parts of an
  answer prepared once (the hub's shed answer) or written straight to a socket by the
  server protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from common.contract import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE

if TYPE_CHECKING:
    from common.errors._errors import ProblemError

__all__ = [
    "header_block",
    "http_answer",
    "problem_body",
    "problem_headers",
    "problem_response",
    "send_problem",
    "status_line",
]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

_CONTENT_TYPE = PROBLEM_CONTENT_TYPE.encode()


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise an RFC 9457 problem details object with our ``code`` member."""
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        doc["instance"] = instance
    if extra:
        for key, value in extra.items():
            doc.setdefault(key, value)
    return orjson.dumps(doc)


def problem_headers(
    error: ProblemError, body: bytes, *, before: Iterable[tuple[bytes, bytes]] = ()
) -> Headers:
    """The answer's ASGI headers: the media type and length, ``before``, the error's own."""
    headers = [(b"content-type", _CONTENT_TYPE), (b"content-length", str(len(body)).encode())]
    headers.extend(before)
    headers.extend((k.lower().encode(), v.encode("latin-1")) for k, v in error.headers.items())
    return headers


async def send_problem(
    send: Send,
    error: ProblemError,
    *,
    body: bytes | None = None,
    before: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Answer an ASGI request with ``error`` (its ``body`` if rendered already)."""
    if body is None:
        body = error.body()
    headers = problem_headers(error, body, before=before)
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def problem_response(error: ProblemError, instance: str | None = None) -> Response:
    """Render a problem error as a Starlette response."""
    return Response(
        content=error.body(instance),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def status_line(status: int) -> bytes:
    """An HTTP/1.1 status line, CRLF included."""
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()


def header_block(headers: Headers) -> bytes:
    """Header lines as written on an HTTP/1.1 connection, each ending in CRLF."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def http_answer(error: ProblemError) -> bytes:
    """A whole HTTP/1.1 answer, for a protocol that writes to the socket itself."""
    body = error.body()
    return status_line(error.status) + header_block(problem_headers(error, body)) + b"\r\n" + body
