"""Every node listens on its own port, as each LGSP is its own server.

With a PKI folder (``NGSP_NODES_TLS_DIR``; ``ngsp up`` sets it), each listener speaks
TLS with its node's certificate and asks every client for one of the network's CA: only
the hub's (``common.pki.HUB_NAME``) is accepted, so a request straight to a node's port,
bypassing the hub's tokens, grants and ledger, fails at the handshake. Listeners use the
same protected protocol as the hub and the gateway (a deadline for request headers).

All listeners run in the nodes process's event loop, one uvicorn server each, sharing the
service apps. A node in outage closes its listener, so connections to it are refused
(the hub sees an unavailable provider, not an error page), and opens it again on
recovery. uvicorn is driven through ``Server.startup`` and ``Server.shutdown`` rather
than ``serve``, which would install signal handlers for each of ~100 servers.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from common.errors import InjectedFault, UnknownService, send_problem
from common.pki import HUB_NAME
from common.server import GuardedHttpToolsProtocol
from provincial_nodes.faults import FaultBook
from provincial_nodes.metrics import NodesMetrics
from provincial_nodes.services.one_stop import NODE_SCOPE_KEY

__all__ = ["HubOnlyProtocol", "ListenerTls", "NodeApp", "NodeListener", "bind"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class NodeApp:
    """One node's front: its services by path prefix, with its injected faults."""

    def __init__(
        self,
        code: str,
        services: dict[str, ASGIApp],
        faults: FaultBook,
        metrics: NodesMetrics | None = None,
    ) -> None:
        self.code = code
        self.services = services
        self.faults = faults
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/healthz":
            await _send(send, 200, "application/json", orjson.dumps({"node": self.code}))
            return
        service, _, _ = path.lstrip("/").partition("/")
        app = self.services.get(service)
        started = time.perf_counter()
        if app is None:
            await send_problem(
                send, UnknownService(f"node {self.code} offers no service {service!r}")
            )
            self._count("unknown", 404, started)
            return
        verdict = self.faults.verdict(self.code)
        if verdict.delay:
            if self.metrics is not None:
                self.metrics.faults.labels(self.code, "latency").inc()
            await asyncio.sleep(verdict.delay)
        if verdict.error_status is not None:
            fault = InjectedFault(
                f"node {self.code} answered with an injected error", status=verdict.error_status
            )
            await send_problem(send, fault)
            if self.metrics is not None:
                self.metrics.faults.labels(self.code, "error").inc()
            self._count(service, verdict.error_status, started)
            return
        child = dict(scope)
        child[NODE_SCOPE_KEY] = self.code
        child["root_path"] = scope.get("root_path", "") + "/" + service
        status = 500

        async def send_watching(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(child, receive, send_watching)
        finally:
            self._count(service, status, started)

    def _count(self, service: str, status: int, started: float) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(self.code, service, str(status)).inc()
            self.metrics.duration.labels(service).observe(time.perf_counter() - started)


async def _send(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """A node's certificate and key, and the CA whose client certificates it accepts."""

    cert: Path
    key: Path
    ca: Path


def _names(peer: dict[str, Any] | None) -> set[str]:
    if not peer:
        return set()
    return {value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"}


class HubOnlyProtocol(GuardedHttpToolsProtocol):
    """A node's protocol: over TLS, only a client whose certificate names the hub is
    served; any other peer is cut off as its handshake completes, before any HTTP."""

    def connection_made(self, transport: Any) -> None:
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and HUB_NAME not in _names(tls.getpeercert()):
            transport.abort()
            return
        super().connection_made(transport)


class NodeListener:
    """A uvicorn server for one node, which can stop listening and start again."""

    def __init__(
        self,
        code: str,
        app: ASGIApp,
        host: str,
        port: int,
        advertised_host: str | None = None,
        tls: ListenerTls | None = None,
    ) -> None:
        self.code = code
        self.app = app
        self.host = host
        self.port = port
        self.advertised_host = advertised_host or host
        self.tls = tls
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Where the hub reaches this node."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.advertised_host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        tls = self.tls
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            http=HubOnlyProtocol,
            timeout_graceful_shutdown=1,
            ssl_certfile=tls.cert if tls else None,
            ssl_keyfile=tls.key if tls else None,
            ssl_ca_certs=str(tls.ca) if tls else None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls else ssl.CERT_NONE,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server, self._socket = server, sock

    async def stop(self) -> None:
        server, sock = self._server, self._socket
        self._server = self._socket = None
        if server is not None:
            await server.shutdown(sockets=[sock] if sock else None)
