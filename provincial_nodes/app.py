"""The nodes process: every simulated node on its own port, and a control API beside them.

``create_app(settings)`` builds the control API (node list, fault injection, health). Its
lifespan loads the roster and the synthetic population, opens the nodes' state, starts a
listener per node, and registers the network with the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import random
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response, status
from pydantic import BaseModel

from common.credentials import CredentialsFile, read_credentials
from common.edge import EdgeGuard, EdgeLimits
from common.errors import (
    AdminTokenInvalid,
    NotFound,
    install_error_handlers,
    problem_responses,
)
from common.logs import quiet_libraries
from common.metrics import CONTENT_TYPE_LATEST, drop_created_series, render
from common.pki import Pki
from common.server import settle_heap
from country.citizens import Citizen
from country.roster import Roster, load_roster
from provincial_nodes.faults import FaultBook, FaultSpec
from provincial_nodes.listeners import ASGIApp, ListenerTls, NodeApp, NodeListener
from provincial_nodes.metrics import NodesMetrics
from provincial_nodes.registration import register, registry_document
from provincial_nodes.services.business import sample_tax_codes
from provincial_nodes.services.catalogue import PROVINCE, SERVICES, service_apps
from provincial_nodes.services.insurance import card_number_for, kind_for_age
from provincial_nodes.services.land import sample_parcel_ids
from provincial_nodes.settings import NodesSettings
from provincial_nodes.state import NodeState
from provincial_nodes.world import World, build_population

__all__ = ["Network", "create_app"]

log = logging.getLogger("ngsp.nodes")


@dataclass
class Network:
    """The running simulated network."""

    settings: NodesSettings
    roster: Roster
    world: World
    faults: FaultBook
    listeners: dict[str, NodeListener]
    services: dict[str, list[str]]
    admin_token: str
    metrics: NodesMetrics

    def refresh_listening(self) -> None:
        for code, listener in self.listeners.items():
            self.metrics.listening.labels(code).set(1 if listener.listening else 0)

    def connected(self, code: str) -> bool:
        return self.roster[code].lgsp_connected <= self.settings.effective_as_of()


def _node_services(roster: Roster) -> dict[str, list[str]]:
    offered: dict[str, list[str]] = {node.code: [] for node in roster}
    for spec in SERVICES:
        providers = (
            [p.code for p in roster.provinces] if spec.provider == PROVINCE else [spec.provider]
        )
        for provider in providers:
            if provider in offered:
                offered[provider].append(spec.code)
    return offered


async def _hub_admin_token(settings: NodesSettings, wait_seconds: float = 60.0) -> str:
    if settings.hub_admin_token is not None:
        return settings.hub_admin_token.get_secret_value()
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        token = read_credentials(settings.credentials_path).get("hub", {}).get("admin_token")
        if isinstance(token, str) and token:
            return token
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(
                f"no hub admin token: set NGSP_NODES_HUB_ADMIN_TOKEN or start the hub with "
                f"the same data directory ({settings.credentials_path} has none)"
            )
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def open_network(settings: NodesSettings) -> AsyncIterator[Network]:
    """Start every node and register them; stop them on exit."""
    roster = load_roster(settings.roster)
    population = build_population(
        roster,
        size=settings.population_size,
        seed=settings.seed,
        reference=settings.reference_date,
    )
    state = NodeState(settings.data_dir / "nodes.db")
    await state.open()
    world = World(roster=roster, population=population, state=state)
    apps: dict[str, ASGIApp] = dict(service_apps(world))
    faults = FaultBook(settings.seed)
    metrics = NodesMetrics()
    offered = _node_services(roster)
    listeners: dict[str, NodeListener] = {}
    admin_token = (
        settings.admin_token.get_secret_value()
        if settings.admin_token
        else secrets.token_urlsafe(24)
    )
    pki = Pki(settings.tls_dir) if settings.tls_dir is not None else None
    if pki is not None:
        pki.ensure_nodes([node.code for node in roster])
    try:
        for i, node in enumerate(roster):
            port = settings.node_port_base + i if settings.node_port_base else 0
            tls = (
                ListenerTls(pki.node_cert(node.code), pki.node_key(node.code), pki.ca_cert)
                if pki is not None
                else None
            )
            app = NodeApp(node.code, {s: apps[s] for s in offered[node.code]}, faults, metrics)
            listener = NodeListener(
                node.code,
                EdgeGuard(app, EdgeLimits()),
                settings.host,
                port,
                advertised_host=settings.advertised_host,
                tls=tls,
            )
            await listener.start()
            listeners[node.code] = listener
        network = Network(
            settings=settings,
            roster=roster,
            world=world,
            faults=faults,
            listeners=listeners,
            services=offered,
            admin_token=admin_token,
            metrics=metrics,
        )
        network.refresh_listening()
        credentials = CredentialsFile(settings.credentials_path)
        credentials.set_section(
            "nodes_control",
            {
                "url": f"http://{settings.advertised_host or settings.host}:{settings.port}",
                "admin_token": admin_token,
            },
        )
        if settings.register_with_hub:
            openapi = {code: app.openapi() for code, app in service_apps(world).items()}
            document = registry_document(
                roster,
                as_of=settings.effective_as_of(),
                urls={code: listener.url for code, listener in listeners.items()},
                openapi=openapi,
            )
            if settings.portal_client_secret is not None:
                document["nodes"].append(
                    {
                        "code": settings.portal_code,
                        "name": "Cổng Dịch vụ công quốc gia",
                        "kind": "portal",
                        "base_url": settings.portal_url or settings.hub_url,
                        "connected": True,
                        "services": [],
                        "credentials": [
                            {
                                "client_id": settings.portal_client_id,
                                "client_secret": settings.portal_client_secret.get_secret_value(),
                            }
                        ],
                    }
                )
            result = await register(settings.hub_url, await _hub_admin_token(settings), document)
            for created in result.get("credentials", []):
                credentials.set_node(
                    created["node"],
                    client_id=created["client_id"],
                    client_secret=created["client_secret"],
                )
            log.info(
                "registered %d nodes, %d services, %d grants with %s",
                result["nodes"],
                result["services"],
                result["grants"],
                settings.hub_url,
            )
        yield network
    finally:
        await asyncio.gather(*(listener.stop() for listener in listeners.values()))
        await state.close()


def _network(request: Request) -> Network:
    network: Network = request.app.state.network
    return network


NetworkDep = Annotated[Network, Depends(_network)]


async def require_admin(request: Request, network: NetworkDep) -> None:
    """Admit the nodes process's admin token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), network.admin_token.encode()
    ):
        raise AdminTokenInvalid("send 'Authorization: Bearer <nodes admin token>'")


class WorldPublic(BaseModel):
    roster: str
    as_of: dt.date
    population_size: int
    seed: int
    reference_date: dt.date


class SampleCitizen(BaseModel):
    id_number: str
    full_name: str
    age: int
    card_number: str


class Samples(BaseModel):
    citizens: list[SampleCitizen]
    children_under_6: list[SampleCitizen]
    mothers: list[SampleCitizen]
    parcel_ids: list[str]
    tax_codes: list[str]


def sample_identifiers(world: World, *, n: int, seed: int) -> Samples:
    """A few valid citizens, children, mothers, parcels and enterprises."""
    rng = random.Random(seed)
    today = world.today()

    def entry(c: Citizen) -> SampleCitizen:
        person = world.person(c.id_number)
        assert person is not None
        age = c.age(today)
        return SampleCitizen(
            id_number=c.id_number,
            full_name=c.full_name,
            age=age,
            card_number=card_number_for(person, kind_for_age(age)),
        )

    population = world.population
    children = population.sample(rng, n, max_age=4)
    mothers = [
        c
        for c in population.sample(rng, 20 * n)
        if c.gender == "female" and 20 <= c.age(today) <= 40
    ][:n]
    provinces = [p.admin_code for p in world.roster.provinces]
    return Samples(
        citizens=[entry(c) for c in population.sample(rng, n)],
        children_under_6=[entry(c) for c in children],
        mothers=[entry(c) for c in mothers],
        parcel_ids=[sample_parcel_ids(rng, rng.choice(provinces), 1)[0] for _ in range(n)],
        tax_codes=[sample_tax_codes(rng, world, rng.choice(provinces), 1)[0] for _ in range(n)],
    )


class NodePublic(BaseModel):
    code: str
    name: str
    kind: str
    url: str
    connected: bool
    listening: bool
    services: list[str]
    faults: FaultSpec


class NodesPublic(BaseModel):
    items: list[NodePublic]
    count: int


def create_app(settings: NodesSettings | None = None) -> FastAPI:
    """The control API of the nodes process."""
    settings = settings or NodesSettings()
    quiet_libraries()
    drop_created_series()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_network(settings) as network:
            app.state.network = network
            settle_heap()
            yield

    app = FastAPI(
        title="Simulated LGSP network — control",
        version="1.0.0",
        description="Every simulated node listens on its own port; this API lists them "
        "and injects faults.",
        lifespan=lifespan,
        responses=problem_responses(),
    )
    install_error_handlers(app)
    app.add_middleware(EdgeGuard, limits=EdgeLimits())

    def describe(network: Network, code: str) -> NodePublic:
        node = network.roster[code]
        listener = network.listeners[code]
        return NodePublic(
            code=code,
            name=node.name,
            kind=node.kind,
            url=listener.url,
            connected=network.connected(code),
            listening=listener.listening,
            services=network.services[code],
            faults=network.faults.get(code),
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
    )
    async def metrics_page(network: NetworkDep) -> Response:
        """Prometheus metrics of every node this process serves."""
        return Response(render(network.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz(network: NetworkDep) -> dict[str, Any]:
        """Alive, with how many nodes listen."""
        listening = sum(1 for listener in network.listeners.values() if listener.listening)
        return {"status": "ok", "nodes": len(network.listeners), "listening": listening}

    @app.get("/nodes", response_model=NodesPublic, dependencies=[Depends(require_admin)])
    async def list_nodes(network: NetworkDep) -> NodesPublic:
        """Every node with its URL, connection state, services and faults (control token)."""
        items = [describe(network, code) for code in network.listeners]
        return NodesPublic(items=items, count=len(items))

    @app.get("/nodes/{code}", response_model=NodePublic, dependencies=[Depends(require_admin)])
    async def get_node(code: str, network: NetworkDep) -> NodePublic:
        """One node with its URL, connection state, services and faults (control token)."""
        if code not in network.listeners:
            raise NotFound(f"no node {code!r}")
        return describe(network, code)

    @app.get("/world", response_model=WorldPublic)
    async def world_settings(network: NetworkDep) -> WorldPublic:
        """What the network simulates: with these, a client rebuilds the same population."""
        s = network.settings
        return WorldPublic(
            roster=s.roster,
            as_of=s.effective_as_of(),
            population_size=s.population_size,
            seed=s.seed,
            reference_date=s.reference_date,
        )

    @app.get("/samples", response_model=Samples)
    async def samples(
        network: NetworkDep,
        n: Annotated[int, Query(ge=1, le=100)] = 5,
        seed: Annotated[int, Query(ge=0)] = 0,
    ) -> Samples:
        """Identifiers that exist, for developers trying the services out."""
        return sample_identifiers(network.world, n=n, seed=seed)

    @app.get("/admin/faults", dependencies=[Depends(require_admin)])
    async def list_faults(network: NetworkDep) -> dict[str, FaultSpec]:
        """The nodes that have faults, and their faults."""
        return network.faults.all()

    @app.put(
        "/admin/faults/{code}", response_model=NodePublic, dependencies=[Depends(require_admin)]
    )
    async def set_faults(code: str, spec: FaultSpec, network: NetworkDep) -> NodePublic:
        """Replace a node's faults; an outage stops its listener, recovery starts it."""
        listener = network.listeners.get(code)
        if listener is None:
            raise NotFound(f"no node {code!r}")
        network.faults.set(code, spec)
        if spec.outage:
            await listener.stop()
        else:
            await listener.start()
        network.refresh_listening()
        return describe(network, code)

    @app.delete(
        "/admin/faults/{code}",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=[Depends(require_admin)],
    )
    async def clear_faults(code: str, network: NetworkDep) -> Response:
        """Make a node healthy again."""
        listener = network.listeners.get(code)
        if listener is None:
            raise NotFound(f"no node {code!r}")
        network.faults.set(code, FaultSpec())
        await listener.start()
        network.refresh_listening()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app
