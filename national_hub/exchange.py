"""The data plane: ``METHOD /exchange/{provider}/{service}/{path}``.

This is the hub's hot path, so it is a plain ASGI handler rather than a FastAPI route:
routing, dependency injection and response models would cost more than the work itself
(authenticate, check the grant, forward, log). The FastAPI app documents the route in its
OpenAPI description and hands matching requests here before its own routing.

The order of checks is the X-Road order: authenticate the consumer, resolve the provider
and service, check the grant, then forward. Every answer the hub makes itself is a
problem+json body, and every request, refused or not, gets a ledger row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from uuid_utils import uuid7

from common.contract import (
    HEADER_CONSUMER,
    HEADER_TRACEPARENT,
    HEADER_TRANSACTION_ID,
    Outcome,
    outcome_for_status,
)
from common.edge import header_bytes
from common.errors import (
    HeadersTooLarge,
    HubOverloaded,
    InvalidRequest,
    LedgerUnavailableError,
    MethodNotAllowed,
    NotGranted,
    PayloadTooLarge,
    ProblemError,
    ProviderBadResponse,
    ProviderBusy,
    ProviderCircuitOpen,
    ProviderTimeout,
    ProviderUnavailable,
    SlowSender,
    TokenInvalid,
    TokenMissing,
    UnknownProvider,
    header_block,
    problem_headers,
    send_problem,
    status_line,
)
from common.http1 import AnswerTooLarge, BadAnswer, CannotConnect, ServerDisconnected
from common.server import ADMITTED, Door
from national_hub.ledger import LedgerRow, LedgerUnavailable
from national_hub.paths import mask_path
from national_hub.routing import authorise, consumer_of, resolve

if TYPE_CHECKING:
    from national_hub.runtime import Runtime

__all__ = ["EXCHANGE_PREFIX", "ExchangeHandler", "LedgerUnavailableError"]

log = logging.getLogger("ngsp.hub.exchange")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EXCHANGE_PREFIX = "/exchange/"
_ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_CODE = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_DOSSIER = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

#: Request headers passed on to the provider; everything else (cookies, the consumer's
#: token) stays at the hub.
_FORWARD_REQUEST = (
    b"content-type",
    b"accept",
    b"accept-language",
    b"x-request-id",
    b"traceparent",
    b"tracestate",
    b"x-procedure",
    b"x-dossier",
    b"if-none-match",
    b"if-match",
)
#: Response headers passed back to the consumer (the first of each name).
_FORWARD_RESPONSE = frozenset(
    {
        b"content-type",
        b"content-language",
        b"cache-control",
        b"etag",
        b"last-modified",
        b"location",
        b"retry-after",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
    }
)

_RETRY_SOON = {"Retry-After": "1"}


_SHED = HubOverloaded("the hub is over capacity; retry shortly", headers=_RETRY_SOON)
_SHED_BODY = _SHED.body()
_SHED_HEADERS = problem_headers(_SHED, _SHED_BODY)


def door(runtime: Runtime) -> Door:
    """The shedder at the HTTP protocol: a refused exchange is answered before any ASGI."""
    shedder = runtime.shedder
    refused = runtime.metrics.shed.labels("hub_overloaded")

    def admit() -> bool:
        if shedder.enter():
            return True
        refused.inc()
        return False

    return Door(
        prefix=EXCHANGE_PREFIX.encode(),
        admit=admit,
        status_line=status_line(_SHED.status),
        headers=header_block(_SHED_HEADERS),
        body=_SHED_BODY,
    )


async def send_shed(send: Send) -> None:
    """The cheapest answer the hub gives: a prepared 503 hub_overloaded."""
    await send({"type": "http.response.start", "status": _SHED.status, "headers": _SHED_HEADERS})
    await send({"type": "http.response.body", "body": _SHED_BODY})


_AUTH_REFUSALS = frozenset({TokenMissing.code, TokenInvalid.code, NotGranted.code})


def _observe(
    runtime: Runtime,
    ex: _Exchange,
    outcome: str,
    response_bytes: int,
    status: int,
    code: str | None = None,
) -> None:
    """Count an exchange in the metrics and log it, with nothing identifying a person."""
    provider_seconds = None
    if ex.forwarded_at is not None and ex.provider_responded_at is not None:
        provider_seconds = (ex.provider_responded_at - ex.forwarded_at) / 1e6
    total_seconds = (_now_us() - ex.requested_at) / 1e6
    runtime.metrics.exchange(
        consumer=ex.consumer or "none",
        provider=ex.provider or "unknown",
        service=ex.service or "unknown",
        outcome=outcome,
        total_seconds=total_seconds,
        provider_seconds=provider_seconds,
        request_bytes=ex.request_bytes,
        response_bytes=response_bytes,
        granted=ex.granted,
    )
    if log.isEnabledFor(logging.INFO):
        log.info(
            "exchange",
            extra={
                "fields": {
                    "transaction_id": ex.txid,
                    "trace_id": ex.trace_id,
                    "consumer": ex.consumer,
                    "provider": ex.provider,
                    "service": ex.service,
                    "procedure": ex.procedure,
                    "method": ex.method,
                    "path": ex.path_template,
                    "status": status,
                    "outcome": outcome,
                    "code": code,
                    "duration_ms": round(total_seconds * 1000, 3),
                }
            },
        )


def _now_us() -> int:
    return time.time_ns() // 1000


class _Exchange:
    """The state of one request as it moves through the handler."""

    __slots__ = (
        "consumer",
        "dossier",
        "forwarded_at",
        "granted",
        "method",
        "path_template",
        "procedure",
        "provider",
        "provider_responded_at",
        "request_bytes",
        "request_sha256",
        "requested_at",
        "service",
        "span_id",
        "trace_flags",
        "trace_id",
        "txid",
    )

    def __init__(self, method: str) -> None:
        self.txid = str(uuid7())
        self.requested_at = _now_us()
        self.method = method
        self.consumer: str | None = None
        self.provider: str | None = None
        self.service: str | None = None
        self.procedure: str | None = None
        self.dossier: str | None = None
        self.path_template = "/"
        self.forwarded_at: int | None = None
        self.provider_responded_at: int | None = None
        self.request_bytes = 0
        self.request_sha256: str | None = None
        self.granted = False
        self.trace_id = ""
        self.span_id = ""
        self.trace_flags = "01"

    def join_trace(self, header: bytes | None) -> None:
        """Continue the consumer's W3C trace (or start one) with a span of the hub's own."""
        if header is not None:
            match = _TRACEPARENT.match(header.decode("latin-1").strip())
            if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
                self.trace_id, self.trace_flags = match.group(1), match.group(3)
        if not self.trace_id:
            self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.trace_flags}"

    def row(self, status: int, outcome: str, response_bytes: int) -> LedgerRow:
        return LedgerRow(
            id=self.txid,
            consumer=self.consumer,
            provider=self.provider,
            service=self.service,
            procedure=self.procedure,
            dossier=self.dossier,
            method=self.method,
            path=self.path_template,
            status=status,
            outcome=outcome,
            requested_at=self.requested_at,
            forwarded_at=self.forwarded_at,
            provider_responded_at=self.provider_responded_at,
            responded_at=_now_us(),
            request_bytes=self.request_bytes,
            response_bytes=response_bytes,
            request_sha256=self.request_sha256,
        )


class ExchangeHandler:
    """ASGI handler for the exchange routes; bound to a runtime by the app's lifespan."""

    def __init__(self) -> None:
        self.runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        if runtime is None:  # pragma: no cover - requests arrive only after startup
            raise RuntimeError("exchange handler used before the hub started")
        ex = _Exchange(scope["method"])
        # Until the service is known, record the path with anything identifying masked.
        ex.path_template = mask_path(scope["path"][len(EXCHANGE_PREFIX) - 1 :])
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers[name] = value
        ex.join_trace(headers.get(b"traceparent"))
        shedder = runtime.shedder
        # Admitted (and counted in) by the server's door, or asked here when the app is
        # served without it.
        if not scope.get(ADMITTED) and not shedder.enter():
            # Refused before any work: the point is to spend nothing on it, so it is
            # counted, not written to the ledger (a flood of rows would cost the very
            # capacity shedding protects).
            runtime.metrics.shed.labels("hub_overloaded").inc()
            await send_shed(send)
            return
        try:
            try:
                status, out_headers, body, outcome = await self._exchange(
                    runtime, ex, scope, headers, receive
                )
            except ProblemError as err:
                await self._refuse(runtime, ex, err, scope, send)
                return
            try:
                await runtime.ledger.record(ex.row(status, outcome, len(body)))
            except LedgerUnavailable:
                # Not committed, so not acknowledged: the consumer must retry.
                unrecorded = LedgerUnavailableError("the exchange could not be recorded; retry it")
                await self._send_problem(ex, unrecorded, scope, send)
                return
            added = _now_us() - ex.requested_at
            if ex.forwarded_at is not None and ex.provider_responded_at is not None:
                added -= ex.provider_responded_at - ex.forwarded_at
            shedder.observe(added / 1e6)
        finally:
            shedder.in_flight -= 1
        _observe(runtime, ex, outcome, len(body), status)
        if not any(name == b"traceparent" for name, _ in out_headers):
            out_headers.append((b"traceparent", ex.traceparent.encode()))
        out_headers.append((b"x-transaction-id", ex.txid.encode()))
        out_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": body})

    async def _exchange(
        self,
        runtime: Runtime,
        ex: _Exchange,
        scope: Scope,
        headers: dict[bytes, bytes],
        receive: Receive,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, Outcome]:
        if header_bytes(scope) > runtime.settings.max_header_bytes:
            raise HeadersTooLarge(
                f"request headers are over {runtime.settings.max_header_bytes} bytes in all"
            )
        # 1. Authenticate.
        auth = headers.get(b"authorization")
        if not auth:
            raise TokenMissing("send 'Authorization: Bearer <token>' from POST /token")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise TokenInvalid("expected a Bearer token")
        claims = runtime.tokens.verify(token.strip().decode("latin-1"))
        snapshot = await runtime.registry.current()
        consumer = consumer_of(snapshot, claims)
        ex.consumer = consumer.code

        # 2. Resolve the provider and service.
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        parts = raw_path.split(b"/", 4)  # ['', 'exchange', provider, service, rest]
        provider_code = unquote(parts[2].decode("latin-1")) if len(parts) > 2 else ""
        service_code = unquote(parts[3].decode("latin-1")) if len(parts) > 3 else ""
        raw_rest = b"/" + parts[4] if len(parts) > 4 else b"/"
        if not _CODE.match(provider_code):
            raise UnknownProvider("no provider named in the path")
        if provider_code in snapshot.nodes:
            ex.provider = provider_code
        service = resolve(snapshot, provider_code, service_code)
        ex.service = service.code
        rest = unquote(raw_rest.decode("latin-1"))
        ex.path_template = service.templates.template_for(rest)

        # 3. Authorise.
        authorise(snapshot, consumer.code, service)
        ex.granted = True

        # 4. Validate what is forwarded.
        method = ex.method
        if method not in _ALLOWED_METHODS:
            raise MethodNotAllowed(f"method {method} is not forwarded")
        if any(seg in (".", "..") for seg in rest.split("/")):
            raise InvalidRequest("dot segments are not allowed in exchange paths")
        procedure = headers.get(b"x-procedure")
        if procedure is not None:
            value = procedure.decode("latin-1")
            if not _CODE.match(value):
                raise InvalidRequest("X-Procedure must be a procedure code (up to 64 characters)")
            ex.procedure = value
        dossier = headers.get(b"x-dossier")
        if dossier is not None:
            value = dossier.decode("latin-1")
            if not _DOSSIER.match(value):
                raise InvalidRequest("X-Dossier must be a dossier id (up to 128 characters)")
            ex.dossier = value
        body = await self._read_body(runtime, headers, receive)
        ex.request_bytes = len(body)
        if body:
            ex.request_sha256 = hashlib.sha256(body).hexdigest()

        # 5. Forward.
        query: bytes = scope.get("query_string", b"")
        url = service.upstream + raw_rest.decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        forward = {
            name.decode("latin-1"): headers[name].decode("latin-1")
            for name in _FORWARD_REQUEST
            if name in headers
        }
        forward[HEADER_TRANSACTION_ID] = ex.txid
        forward[HEADER_CONSUMER] = consumer.code
        forward[HEADER_TRACEPARENT] = ex.traceparent
        provider = service.provider
        wait = runtime.circuits.retry_after(provider)
        if wait is not None:
            runtime.metrics.shed.labels("provider_circuit_open").inc()
            raise ProviderCircuitOpen(
                f"{provider} failed {runtime.circuits.failure_threshold} times in a row; "
                f"retry in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        if not runtime.in_flight.try_acquire(provider):
            runtime.circuits.abandon(provider)
            runtime.metrics.shed.labels("provider_busy").inc()
            raise ProviderBusy(
                f"{runtime.in_flight.per_provider} exchanges already wait on {provider}",
                headers=_RETRY_SOON,
            )
        succeeded = False
        try:
            ex.forwarded_at = _now_us()
            status, resp_headers, payload = await self._forward(runtime, method, url, forward, body)
            ex.provider_responded_at = _now_us()
            succeeded = status < 500
        finally:
            runtime.in_flight.release(provider)
            runtime.circuits.record(provider, success=succeeded)
        return status, resp_headers, payload, outcome_for_status(status)

    async def _read_body(
        self, runtime: Runtime, headers: dict[bytes, bytes], receive: Receive
    ) -> bytes:
        limit = runtime.settings.max_request_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise InvalidRequest("Content-Length is not a number") from None
            if length > limit:
                raise PayloadTooLarge(f"request body of {length} bytes is over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        pause = runtime.settings.read_timeout_seconds
        while True:
            try:
                # asyncio.timeout, not wait_for: no task is created per chunk.
                async with asyncio.timeout(pause):
                    message = await receive()
            except TimeoutError:
                raise SlowSender(f"no part of the body arrived for {pause:g} s") from None
            if message["type"] == "http.disconnect":
                raise InvalidRequest("client disconnected while sending the body")
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _forward(
        self,
        runtime: Runtime,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        limit = runtime.settings.max_response_bytes
        try:
            # One more try on a fresh connection, for an idempotent method whose kept-alive
            # connection the provider had closed, is the client's (``http1``).
            answer = await runtime.upstream.fetch(
                method, url, headers=headers, body=body or None, max_body=limit
            )
        except TimeoutError:
            raise ProviderTimeout(
                f"no answer within {runtime.settings.provider_timeout_seconds:g} s"
            ) from None
        except CannotConnect as exc:
            raise ProviderUnavailable(f"cannot connect to the provider: {exc}") from None
        except ServerDisconnected:
            raise ProviderBadResponse("the provider closed the connection") from None
        except AnswerTooLarge:
            raise ProviderBadResponse(f"provider response over {limit} bytes") from None
        except BadAnswer:
            raise ProviderBadResponse("unusable provider response: not HTTP/1.x") from None
        out: list[tuple[bytes, bytes]] = []
        seen: set[bytes] = set()
        for name, value in answer.headers:
            lowered = name.lower()
            if lowered in _FORWARD_RESPONSE and lowered not in seen:
                seen.add(lowered)
                out.append((lowered, value))
        return answer.status, out, answer.body

    async def _refuse(
        self,
        runtime: Runtime,
        ex: _Exchange,
        err: ProblemError,
        scope: Scope,
        send: Send,
    ) -> None:
        # No ``instance``: the path as sent may carry a citizen's ID number.
        body = err.body()
        try:
            await runtime.ledger.record(ex.row(err.status, err.outcome, len(body)))
        except LedgerUnavailable:
            log.warning("refusal %s not recorded: ledger unavailable", ex.txid)
        _observe(runtime, ex, err.outcome, len(body), err.status, err.code)
        if err.code in _AUTH_REFUSALS:
            runtime.metrics.auth_failures.labels(err.code).inc()
        await self._send_problem(ex, err, scope, send, body)

    async def _send_problem(
        self, ex: _Exchange, err: ProblemError, scope: Scope, send: Send, body: bytes | None = None
    ) -> None:
        ids = ((b"x-transaction-id", ex.txid.encode()), (b"traceparent", ex.traceparent.encode()))
        await send_problem(send, err, body=body, before=ids)
