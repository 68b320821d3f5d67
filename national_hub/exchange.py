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

import hashlib
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from uuid_utils import uuid7

from common.contract import (
    HEADER_CONSUMER,
    HEADER_TRACEPARENT,
    HEADER_TRANSACTION_ID,
    Outcome,
    outcome_for_status,
)
from common.edge import EdgeLimits, header_bytes, read_body
from common.errors import (
    HeadersTooLarge,
    HubOverloaded,
    InvalidRequest,
    LedgerUnavailableError,
    MethodNotAllowed,
    NotGranted,
    ProblemError,
    ProviderBadResponse,
    ProviderBusy,
    ProviderCircuitOpen,
    ProviderTimeout,
    ProviderUnavailable,
    TokenInvalid,
    TokenMissing,
    UnknownProvider,
    header_block,
    problem_headers,
    send_problem,
    status_line,
)
from common.http1 import AnswerTooLarge, BadAnswer, CannotConnect, ServerDisconnected
from common.pki import node_name
from common.server import ADMITTED, Door
from national_hub.ledger.row import LedgerRow
from national_hub.ledger.writer import LedgerUnavailable
from national_hub.paths import mask_path
from national_hub.registry import ServiceInfo, Snapshot
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


def _declared_length(headers: dict[bytes, bytes]) -> int | None:
    declared = headers.get(b"content-length")
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError:
        raise InvalidRequest("Content-Length is not a number") from None


def hub_location(location: str, service: ServiceInfo) -> str | None:
    """A provider's ``Location`` as the consumer may see it: a place in the provider's
    service becomes the same place under the hub's ``/exchange/...``; any other absolute
    place (the provider's own address, another host) is dropped, so an internal URL never
    reaches a consumer. A reference relative to the request is kept as it is."""
    upstream = service.upstream
    base_path = urlsplit(upstream).path
    hub_base = f"{EXCHANGE_PREFIX}{service.provider}/{service.code}"
    for prefix in (upstream, base_path):
        if prefix and (location == prefix or location.startswith(prefix + "/")):
            return hub_base + location[len(prefix) :]
    if "://" in location or location.startswith(("/", "\\")):
        return None
    return location


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
        "source",
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
        #: The sender's address, for refusals of unknown senders.
        self.source: str | None = None

    def join_trace(self, header: bytes | None) -> None:
        """Continue the consumer's W3C trace (or start one) with a span of the hub's own."""
        if header is not None:
            match = _TRACEPARENT.match(header.decode("latin-1").strip())
            if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
                self.trace_id, self.trace_flags = match.group(1), match.group(3)
        if not self.trace_id:
            self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)

    def hub_seconds(self) -> float:
        """The hub's own part of the exchange so far: everything but the provider's time."""
        added = _now_us() - self.requested_at
        if self.forwarded_at is not None and self.provider_responded_at is not None:
            added -= self.provider_responded_at - self.forwarded_at
        return added / 1e6

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
    """ASGI handler for the exchange routes; bound to a runtime by the app's lifespan.

    One exchange, top to bottom: admitted (``admission``), then ``_exchange`` runs its steps
    in the X-Road order — ``_authenticate``, ``_route`` (provider, service and path
    template), ``authorise`` (the grant), ``_check_request`` (what may be forwarded),
    ``read_body`` (the edge's own reader, within the hub's limits), ``_forward`` (circuit,
    per-provider bound, the provider's answer) — and the ledger row is committed before
    the answer leaves. A refusal at any step is a ``ProblemError``, recorded and answered
    by ``_refuse``.
    """

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self._limits = EdgeLimits()
        #: The name each provider's certificate must carry (``common.pki.node_name``).
        self._tls_names: dict[str, str] = {}

    def bind(self, runtime: Runtime | None) -> None:
        """Serve with ``runtime`` (None: stop serving; requests take FastAPI's path)."""
        self.runtime = runtime
        if runtime is not None:
            settings = runtime.settings
            self._limits = EdgeLimits(
                max_header_bytes=settings.max_header_bytes,
                max_body_bytes=settings.max_request_bytes,
                read_timeout=settings.read_timeout_seconds,
            )

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
        client = scope.get("client")
        if client:
            ex.source = client[0]
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
        added: float | None = None
        try:
            try:
                status, out_headers, body, outcome = await self._exchange(
                    runtime, ex, scope, headers, receive
                )
            except ProblemError as err:
                await self._refuse(runtime, ex, err, send)
                return
            try:
                await runtime.ledger.record(ex.row(status, outcome, len(body)))
            except LedgerUnavailable:
                # Not committed, so not acknowledged: the consumer must retry.
                unrecorded = LedgerUnavailableError("the exchange could not be recorded; retry it")
                await self._send_problem(ex, unrecorded, send)
                return
            added = ex.hub_seconds()
        finally:
            shedder.leave(added)
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
        limits = self._limits
        if header_bytes(scope) > limits.max_header_bytes:
            raise HeadersTooLarge(
                f"request headers are over {limits.max_header_bytes} bytes in all"
            )
        snapshot, consumer = await self._authenticate(runtime, ex, headers)
        service, raw_rest, rest = self._route(ex, snapshot, scope)
        authorise(snapshot, consumer, service)
        ex.granted = True
        self._check_request(ex, headers, rest)
        body = await read_body(receive, limits, _declared_length(headers))
        ex.request_bytes = len(body)
        if body:
            ex.request_sha256 = hashlib.sha256(body).hexdigest()
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
        forward[HEADER_CONSUMER] = consumer
        forward[HEADER_TRACEPARENT] = ex.traceparent
        status, resp_headers, payload = await self._forward(
            runtime, ex, service, url, forward, body
        )
        return status, resp_headers, payload, outcome_for_status(status)

    @staticmethod
    async def _authenticate(
        runtime: Runtime, ex: _Exchange, headers: dict[bytes, bytes]
    ) -> tuple[Snapshot, str]:
        """The consumer, from its Bearer token, in the registry as it stands now."""
        auth = headers.get(b"authorization")
        if not auth:
            raise TokenMissing("send 'Authorization: Bearer <token>' from POST /token")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise TokenInvalid("expected a Bearer token")
        claims = runtime.tokens.verify(token.strip().decode("latin-1"))
        snapshot = await runtime.registry.current()
        try:
            ex.consumer = consumer_of(snapshot, claims).code
        except ProblemError:
            # A token the hub signed for a credential it knows (rotated, disabled, or its
            # node disabled): a known client, whose refusal is a ledger row of its own.
            credential = snapshot.credentials.get(claims.client_id)
            if credential is not None and credential.node == claims.node:
                ex.consumer = claims.node
            raise
        return snapshot, ex.consumer

    @staticmethod
    def _route(ex: _Exchange, snapshot: Snapshot, scope: Scope) -> tuple[ServiceInfo, bytes, str]:
        """The provider's service the path names, and the rest of the path (raw and decoded)."""
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
        return service, raw_rest, rest

    @staticmethod
    def _check_request(ex: _Exchange, headers: dict[bytes, bytes], rest: str) -> None:
        """What is forwarded: the method, the path's segments, the procedure and dossier."""
        if ex.method not in _ALLOWED_METHODS:
            raise MethodNotAllowed(f"method {ex.method} is not forwarded")
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

    async def _forward(
        self,
        runtime: Runtime,
        ex: _Exchange,
        service: ServiceInfo,
        url: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The provider's answer, unless its circuit is open or too many already wait on it."""
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
            answer = await self._fetch(runtime, ex.method, url, headers, body, service)
            ex.provider_responded_at = _now_us()
            succeeded = answer[0] < 500
        finally:
            runtime.in_flight.release(provider)
            runtime.circuits.record(provider, success=succeeded)
        return answer

    async def _fetch(
        self,
        runtime: Runtime,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        service: ServiceInfo,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        limit = runtime.settings.max_response_bytes
        provider = service.provider
        tls_name = self._tls_names.get(provider)
        if tls_name is None:
            tls_name = self._tls_names[provider] = node_name(provider)
        try:
            # One more try on a fresh connection, for an idempotent method whose kept-alive
            # connection the provider had closed, is the client's (``http1``). Over TLS the
            # provider's certificate must name the node the registry says this is.
            answer = await runtime.upstream.fetch(
                method,
                url,
                headers=headers,
                body=body or None,
                max_body=limit,
                server_name=tls_name,
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
                if lowered == b"location":
                    located = hub_location(value.decode("latin-1"), service)
                    if located is None:
                        continue
                    value = located.encode("latin-1")
                out.append((lowered, value))
        return answer.status, out, answer.body

    async def _refuse(
        self,
        runtime: Runtime,
        ex: _Exchange,
        err: ProblemError,
        send: Send,
    ) -> None:
        # No ``instance``: the path as sent may carry a citizen's ID number.
        body = err.body()
        if ex.consumer is None:
            # Refused before the sender is known: counted, not a durable row each.
            runtime.refusals.count(ex.source, err.code)
        else:
            try:
                await runtime.ledger.record(ex.row(err.status, err.outcome, len(body)))
            except LedgerUnavailable:
                log.warning("refusal %s not recorded: ledger unavailable", ex.txid)
        _observe(runtime, ex, err.outcome, len(body), err.status, err.code)
        if err.code in _AUTH_REFUSALS:
            runtime.metrics.auth_failures.labels(err.code).inc()
        await self._send_problem(ex, err, send, body)

    async def _send_problem(
        self, ex: _Exchange, err: ProblemError, send: Send, body: bytes | None = None
    ) -> None:
        ids = ((b"x-transaction-id", ex.txid.encode()), (b"traceparent", ex.traceparent.encode()))
        await send_problem(send, err, body=body, before=ids)
