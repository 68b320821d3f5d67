"""A small provider node for the hub's tests: echoes, delays, fails and sizes on demand.

The simulated ministry and provincial nodes are tested in ``tests/provincial_nodes``;
this app exists so the hub's own behaviour can be checked against every provider answer
(including the broken ones) without depending on them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "test provider", "version": "1"},
    "paths": {
        "/echo": {"get": {}, "post": {}},
        "/citizens/{id}": {"get": {}},
        "/citizens/search": {"get": {}},
    },
}


def create_provider() -> FastAPI:
    app = FastAPI()
    app.state.seen = []

    async def describe(request: Request) -> dict[str, Any]:
        body = await request.body()
        seen = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        app.state.seen.append(seen)
        return seen

    @app.api_route("/svc/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(request: Request) -> JSONResponse:
        seen = await describe(request)
        return JSONResponse(
            seen,
            headers={"X-Request-Id": request.headers.get("x-request-id", "none")},
        )

    @app.get("/svc/citizens/{cid}")
    async def citizen(cid: str, request: Request) -> JSONResponse:
        await describe(request)
        return JSONResponse({"id": cid, "full_name": "Nguyễn Văn An"})

    @app.get("/svc/status/{code}")
    async def status(code: int) -> Response:
        return JSONResponse({"status": code}, status_code=code)

    @app.get("/svc/slow")
    async def slow(seconds: float = 1.0) -> JSONResponse:
        await asyncio.sleep(seconds)
        return JSONResponse({"slept": seconds})

    @app.get("/svc/text")
    async def text() -> Response:
        return Response("xin chào", media_type="text/plain; charset=utf-8")

    @app.get("/svc/located")
    async def located(request: Request, to: str = "self") -> Response:
        """201 with a ``Location`` at the provider's own address, another host, or relative."""
        own = str(request.base_url).rstrip("/")
        where = {
            "self": f"{own}/svc/citizens/42",
            "root": f"{own}/internal/admin",
            "elsewhere": "https://10.0.0.5:8443/svc/citizens/42",
            "absolute-path": "/svc/citizens/42",
            "relative": "citizens/42",
        }[to]
        return JSONResponse({"created": True}, status_code=201, headers={"Location": where})

    @app.get("/svc/big")
    async def big(size: int = 1000) -> Response:
        return Response(b"x" * size, media_type="application/octet-stream")

    return app
