"""Where the load goes: a target is described once, then opened in every generator process.

Extension point. A run has two halves that live in different processes:

- a **target spec** (``TargetSpec``), built in the parent process from what ``ngsp up``
  wrote (credentials, the world's parameters, tokens). It is a frozen dataclass of plain
  values, so it crosses to the worker processes by pickling. It names the URLs the run
  will reach (checked against the loopback rule before anything is sent) and turns the
  run's successful requests into a saving;
- a **target** (``Target``), opened from the spec inside each worker. ``request(i)``
  returns the i-th request of that worker's stream and must be cheap (it runs on the
  generator's hot path); ``maintain()`` runs beside each step for upkeep such as token
  refresh.

Targets here: ``HubTargetSpec`` (node-to-node exchanges through the hub, or straight to
the nodes for comparison), ``GatewayTargetSpec`` (dossiers through the gateway) and
``FixedTargetSpec`` (one request again and again, for benchmarks and tests).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from common.contract import HEADER_PROCEDURE
from common.credentials import read_credentials
from country.procedures import Catalogue, load_catalogue
from country.roster import load_roster
from loadtest.applicants import ApplicantGenerator, Identifiers
from loadtest.openloop import Request, check_target
from loadtest.traffic import (
    ConsumerSet,
    ExchangeGenerator,
    Savings,
    TrafficModel,
    consumer_weights,
    implied_savings,
    load_model,
)
from provincial_nodes.world import build_population

__all__ = [
    "FixedTargetSpec",
    "GatewayTarget",
    "GatewayTargetSpec",
    "HubTarget",
    "HubTargetSpec",
    "Network",
    "NodeCredential",
    "SetupError",
    "Target",
    "TargetSpec",
    "WorldSpec",
    "choose_consumers",
    "fetch_token",
    "gateway_mix",
    "parse_world",
    "prepare_gateway_target",
    "prepare_hub_target",
    "read_network",
]

#: Tokens are renewed this long before they expire.
_TOKEN_MARGIN = 120.0


class SetupError(RuntimeError):
    """The run cannot start: no credentials, a network that does not answer, no tokens."""


class Target(Protocol):
    """A target opened in one worker process."""

    def request(self, i: int) -> Request:
        """The worker's i-th request; called on the hot path."""
        ...

    async def maintain(self) -> None:
        """Upkeep while a step runs (cancelled when it ends)."""
        ...


class TargetSpec(Protocol):
    """A picklable description of a target (see the module docstring)."""

    @property
    def kind(self) -> str: ...

    def urls(self) -> list[str]:
        """Every base URL the target reaches: each must be loopback or allowed."""
        ...

    def open(self, *, worker: int, workers: int, seed: int) -> Target:
        """The target as worker ``worker`` of ``workers`` uses it."""
        ...

    def savings(self, ok_by_label: Mapping[str, int]) -> Savings | None:
        """What the successful requests (by label) save, or None if nothing."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the report says about the target."""
        ...


# --- one fixed request --------------------------------------------------------------------


@dataclass(frozen=True)
class FixedTargetSpec:
    """The same request again and again (a static page, a health check)."""

    request: Request
    kind: str = "fixed"

    def urls(self) -> list[str]:
        return [self.request.url]

    def open(self, *, worker: int, workers: int, seed: int) -> Target:
        return _FixedTarget(self.request)

    def savings(self, ok_by_label: Mapping[str, int]) -> Savings | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.request.url, "method": self.request.method}


class _FixedTarget:
    def __init__(self, request: Request) -> None:
        self._request = request

    def request(self, i: int) -> Request:
        return self._request

    async def maintain(self) -> None:
        return None


# --- the hub, node to node ----------------------------------------------------------------


@dataclass(frozen=True)
class WorldSpec:
    """What the nodes simulate (``GET /world``): enough to rebuild the same population."""

    roster: str
    as_of: dt.date
    population_size: int
    seed: int
    reference_date: dt.date


@dataclass(frozen=True)
class NodeCredential:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class HubTargetSpec:
    """Node-to-node exchanges through the hub, drawn from the traffic model.

    With ``direct`` (node code → base URL) the same exchanges go straight to the nodes,
    bypassing the hub: the baseline for the latency the hub adds. Pointing ``hub_url`` at
    a reverse proxy that maps ``/exchange/{node}/...`` to the nodes compares the hub with
    that proxy.
    """

    hub_url: str
    world: WorldSpec
    credentials: Mapping[str, NodeCredential]
    #: Node code → (access token, expiry as a Unix time), fetched by the parent.
    tokens: Mapping[str, tuple[str, float]]
    model_path: Path | None = None
    direct: Mapping[str, str] | None = None
    #: Consumers left out, with the reason (not connected yet, no token).
    left_out: Mapping[str, str] = field(default_factory=dict)
    kind: str = "hub"

    def urls(self) -> list[str]:
        return [self.hub_url, *(self.direct or {}).values()]

    def model(self) -> TrafficModel:
        return load_model(self.model_path)

    def open(self, *, worker: int, workers: int, seed: int) -> Target:
        return HubTarget(self, worker=worker, seed=seed)

    def savings(self, ok_by_label: Mapping[str, int]) -> Savings | None:
        return implied_savings(self.model(), load_catalogue(), ok_by_label)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "hub" if self.direct is None else "direct-to-nodes",
            "url": self.hub_url,
            "model": str(self.model_path or "traffic-hub.yaml (packaged)"),
            "consumers": len(self.tokens),
            "consumers_left_out": dict(self.left_out),
            "world": {
                "roster": self.world.roster,
                "as_of": self.world.as_of.isoformat(),
                "population_size": self.world.population_size,
            },
        }


class HubTarget:
    """The hub target inside one worker: its exchange stream and its tokens."""

    def __init__(self, spec: HubTargetSpec, *, worker: int, seed: int) -> None:
        self.spec = spec
        roster = load_roster(spec.world.roster)
        population = build_population(
            roster,
            size=spec.world.population_size,
            seed=spec.world.seed,
            reference=spec.world.reference_date,
        )
        model = spec.model()
        consumers: ConsumerSet = consumer_weights(roster, model.consumers, list(spec.tokens))
        # Every worker draws from the same pools; each has its own stream of choices.
        ids = Identifiers.build(roster, population, seed=seed)
        self.exchanges = ExchangeGenerator(model, consumers, ids, seed=seed * 1009 + worker)
        self.tokens = dict(spec.tokens)
        self._auth = {code: f"Bearer {token}" for code, (token, _) in self.tokens.items()}
        self._base = spec.hub_url.rstrip("/")

    def request(self, i: int) -> Request:
        ex = self.exchanges.next()
        headers = {"Authorization": self._auth[ex.consumer]}
        if ex.procedure is not None:
            headers[HEADER_PROCEDURE] = ex.procedure
        if ex.body is not None:
            headers["Content-Type"] = "application/json"
        if self.spec.direct is not None:
            url = f"{self.spec.direct[ex.provider]}/{ex.service}{ex.path}"
        else:
            url = f"{self._base}/exchange/{ex.provider}/{ex.service}{ex.path}"
        return Request(ex.method, url, headers, ex.body, label=ex.kind)

    async def maintain(self) -> None:
        """Renew tokens shortly before they expire, for runs longer than a token lives."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                soon = time.time() + _TOKEN_MARGIN
                for code, (_, expires) in list(self.tokens.items()):
                    if expires < soon:
                        try:
                            token = await fetch_token(
                                session, self._base, self.spec.credentials[code]
                            )
                        except (aiohttp.ClientError, TimeoutError, SetupError):
                            continue  # the old token still works for a while; retry soon
                        self.tokens[code] = token
                        self._auth[code] = f"Bearer {token[0]}"
                await asyncio.sleep(5.0)


async def fetch_token(
    session: aiohttp.ClientSession, hub_url: str, cred: NodeCredential
) -> tuple[str, float]:
    """A client-credentials token and its expiry (Unix time)."""
    basic = base64.b64encode(f"{cred.client_id}:{cred.client_secret}".encode()).decode()
    async with session.post(
        f"{hub_url.rstrip('/')}/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ) as resp:
        body: Any = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(body, dict):
            code = body.get("code") if isinstance(body, dict) else None
            raise SetupError(f"token refused ({resp.status} {code or ''})".strip())
        return str(body["access_token"]), time.time() + float(body["expires_in"])


@dataclass(frozen=True)
class Network:
    """What ``credentials.json`` says about a running network."""

    hub_url: str
    control_url: str
    nodes: Mapping[str, NodeCredential]


def read_network(credentials_path: Path, *, allowed_hosts: frozenset[str] = frozenset()) -> Network:
    """The hub, the nodes' control API and the node credentials; loopback URLs only."""
    doc = read_credentials(credentials_path)
    if not doc:
        raise SetupError(
            f"no credentials in {credentials_path}: start the network with `ngsp up` "
            "(and give `ngsp load` the same --data-dir)"
        )
    try:
        hub_url = str(doc["hub"]["url"]).rstrip("/")
        control_url = str(doc["nodes_control"]["url"]).rstrip("/")
    except (KeyError, TypeError):
        raise SetupError(
            f"{credentials_path} has no hub or nodes control URL: is `ngsp up` still starting?"
        ) from None
    # Refuse a remote network before anything else is read from, or sent to, it.
    for url in (hub_url, control_url):
        check_target(url, allowed=allowed_hosts)
    try:
        nodes = {
            str(code): NodeCredential(str(c["client_id"]), str(c["client_secret"]))
            for code, c in doc["nodes"].items()
        }
    except (KeyError, TypeError, AttributeError):
        raise SetupError(
            f"{credentials_path} has no node credentials: is `ngsp up` still starting?"
        ) from None
    return Network(hub_url=hub_url, control_url=control_url, nodes=nodes)


def parse_world(raw: Mapping[str, Any]) -> WorldSpec:
    """A ``WorldSpec`` from the nodes' ``GET /world`` answer."""
    try:
        return WorldSpec(
            roster=str(raw["roster"]),
            as_of=dt.date.fromisoformat(str(raw["as_of"])),
            population_size=int(raw["population_size"]),
            seed=int(raw["seed"]),
            reference_date=dt.date.fromisoformat(str(raw["reference_date"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SetupError(f"unexpected /world answer {raw!r}: {exc}") from None


def choose_consumers(
    model: TrafficModel, world: WorldSpec, network: Network
) -> tuple[dict[str, NodeCredential], dict[str, str]]:
    """The model's consumers that are connected and have credentials, and those left out."""
    roster = load_roster(world.roster)
    connected = {node.code for node in roster.connected(world.as_of)}
    chosen: dict[str, NodeCredential] = {}
    left_out: dict[str, str] = {}
    for code in consumer_weights(roster, model.consumers).weights:
        if code not in connected:
            left_out[code] = f"not connected as of {world.as_of}"
        elif code not in network.nodes:
            left_out[code] = "no credentials"
        else:
            chosen[code] = network.nodes[code]
    return chosen, left_out


async def prepare_hub_target(
    credentials_path: Path,
    *,
    model_path: Path | None = None,
    allowed_hosts: frozenset[str] = frozenset(),
) -> HubTargetSpec:
    """Read what ``ngsp up`` wrote, rebuild the world's parameters and fetch the tokens."""
    network = read_network(credentials_path, allowed_hosts=allowed_hosts)
    model = load_model(model_path)
    model.check_catalogue(load_catalogue())
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.get(f"{network.control_url}/world") as resp:
                if resp.status != 200:
                    raise SetupError(f"{network.control_url}/world answered {resp.status}")
                world = parse_world(await resp.json())
        except aiohttp.ClientError as exc:
            raise SetupError(f"the nodes do not answer at {network.control_url}: {exc}") from None
        creds, left_out = choose_consumers(model, world, network)
        limit = asyncio.Semaphore(16)

        async def one(code: str) -> tuple[str, tuple[str, float] | str]:
            async with limit:
                try:
                    return code, await fetch_token(session, network.hub_url, creds[code])
                except (aiohttp.ClientError, TimeoutError, SetupError) as exc:
                    return code, str(exc) or type(exc).__name__

        tokens: dict[str, tuple[str, float]] = {}
        for code, got in await asyncio.gather(*(one(c) for c in sorted(creds))):
            if isinstance(got, str):
                left_out[code] = got
            else:
                tokens[code] = got
    if not tokens:
        raise SetupError(f"the hub at {network.hub_url} gave no consumer a token: {left_out}")
    return HubTargetSpec(
        hub_url=network.hub_url,
        world=world,
        credentials=creds,
        tokens=tokens,
        model_path=model_path,
        left_out=left_out,
    )


# --- the gateway, dossiers --------------------------------------------------------------

#: The procedure mix of the gateway target: weights out of 100 (a modelling choice: the
#: everyday residence registrations and card reissues first, then the birth procedures
#: and the lookups).
GATEWAY_MIX: Mapping[str, int] = {
    "1.004222": 30,  # permanent residence registration
    "1.002617": 20,  # health-insurance card reissue
    "1.001022": 15,  # birth + residence + card for a child under 6
    "1.001193": 10,  # birth registration
    "2.001610": 15,  # enterprise information
    "1.003011": 10,  # land parcel information (where offered)
}
#: The weight of a procedure of the catalogue that ``GATEWAY_MIX`` does not list (one added
#: since): it is load-tested all the same, as often as a lookup.
GATEWAY_MIX_DEFAULT = 10


def gateway_mix(catalogue: Catalogue) -> dict[str, int]:
    """Every procedure of the catalogue with its weight in the gateway target's mix."""
    return {p.code: GATEWAY_MIX.get(p.code, GATEWAY_MIX_DEFAULT) for p in catalogue.procedures}


@dataclass(frozen=True)
class GatewayTargetSpec:
    """Dossiers submitted to the gateway, which runs each procedure's steps via the hub.

    Each request is one ``POST /dossiers`` (answered when the dossier has ended) with a
    procedure of the catalogue (weighted by ``gateway_mix``), a province by population
    among those offering it at level 4, and applicant data drawn by the catalogue's field
    kinds and sample hints from what exists in the simulated world. Savings are what the
    hub counted during the run (``/stats/procedures``), so only dossiers that completed
    count, each once. ``catalogue_path`` is the catalogue the gateway runs (the packaged
    one by default).
    """

    gateway_url: str
    hub_url: str
    api_key: str
    world: WorldSpec
    baseline: Mapping[str, tuple[int, int]]
    catalogue_path: Path | None = None
    kind: str = "gateway"

    def catalogue(self) -> Catalogue:
        return load_catalogue(self.catalogue_path)

    def urls(self) -> list[str]:
        return [self.gateway_url, self.hub_url]

    def open(self, *, worker: int, workers: int, seed: int) -> Target:
        return GatewayTarget(self, worker=worker, workers=workers, seed=seed)

    def savings(self, ok_by_label: Mapping[str, int]) -> Savings | None:
        now = _procedure_totals(self.hub_url)
        dossiers = {
            code: completed - self.baseline.get(code, (0, 0))[0]
            for code, (completed, _) in now.items()
        }
        vnd = sum(saved - self.baseline.get(code, (0, 0))[1] for code, (_, saved) in now.items())
        return Savings(
            vnd=vnd,
            dossiers={code: n for code, n in dossiers.items() if n},
            basis=(
                "counted by the hub during the run: completed dossiers reported to it, each "
                "once, times its procedure's saving (failed dossiers save nothing)"
            ),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "gateway",
            "url": self.gateway_url,
            "mix": gateway_mix(self.catalogue()),
            "world": {
                "roster": self.world.roster,
                "as_of": self.world.as_of.isoformat(),
                "population_size": self.world.population_size,
            },
        }


def _procedure_totals(hub_url: str) -> dict[str, tuple[int, int]]:
    import httpx

    resp = httpx.get(f"{hub_url.rstrip('/')}/stats/procedures", timeout=30)
    resp.raise_for_status()
    return {
        str(item["procedure"]): (int(item["completed"]), int(item["vnd_saved"]))
        for item in resp.json()["items"]
    }


class GatewayTarget:
    """The gateway target inside one worker: its stream of dossiers.

    Nothing here knows a procedure by its code: the mix, the provinces and each
    procedure's applicant data all come from the catalogue, worked out at construction.
    """

    def __init__(
        self, spec: GatewayTargetSpec, *, worker: int, seed: int, workers: int = 1
    ) -> None:
        import random

        self.spec = spec
        roster = load_roster(spec.world.roster)
        population = build_population(
            roster,
            size=spec.world.population_size,
            seed=spec.world.seed,
            reference=spec.world.reference_date,
        )
        self.ids = Identifiers.build(roster, population, seed=seed)
        self.rng = random.Random(seed * 1009 + worker)
        catalogue = spec.catalogue()
        connected = {n.code for n in roster.connected(spec.world.as_of)}
        provinces = [p for p in roster.provinces if p.code in connected]
        today = dt.date.today()
        self.mix: list[tuple[str, ApplicantGenerator, list[str], list[int]]] = []
        weights: list[int] = []
        for code, weight in gateway_mix(catalogue).items():
            procedure = catalogue.get(code)
            assert procedure is not None
            offered = [p for p in provinces if procedure.offered_in(p.code)]
            if offered and weight > 0:
                applicants = ApplicantGenerator(
                    procedure, self.ids, self.rng, today=today, worker=worker, workers=workers
                )
                self.mix.append(
                    (
                        code,
                        applicants,
                        [p.code for p in offered],
                        list(accumulate(roster.population(p.code) for p in offered)),
                    )
                )
                weights.append(weight)
        self.cumulative = list(accumulate(weights))
        self.url = spec.gateway_url.rstrip("/") + "/dossiers"
        self.headers = {"X-API-Key": spec.api_key, "Content-Type": "application/json"}

    def request(self, i: int) -> Request:
        choices = self.rng.choices
        code, applicants, provinces, cumulative = choices(self.mix, cum_weights=self.cumulative)[0]
        province = choices(provinces, cum_weights=cumulative)[0]
        body = {"procedure": code, "province": province, "applicant": applicants.draw(i)}
        return Request("POST", self.url, self.headers, _json(body), label=code)

    async def maintain(self) -> None:
        return None


def _json(doc: Any) -> bytes:
    import orjson

    return orjson.dumps(doc)


async def prepare_gateway_target(
    credentials_path: Path,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    catalogue_path: Path | None = None,
) -> GatewayTargetSpec:
    """A load-test key from the gateway's admin API, the world, and the hub's baseline."""
    network = read_network(credentials_path, allowed_hosts=allowed_hosts)
    section = read_credentials(credentials_path).get("gateway")
    if not isinstance(section, dict) or "url" not in section or "admin_token" not in section:
        raise SetupError(f"{credentials_path} has no gateway: is `ngsp up` still starting?")
    gateway_url = str(section["url"]).rstrip("/")
    check_target(gateway_url, allowed=allowed_hosts)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.get(f"{network.control_url}/world") as resp:
                world = parse_world(await resp.json())
            # The demo key's limits suit a developer, not a load test: a key of our own.
            async with session.post(
                f"{gateway_url}/admin/keys",
                json={
                    "name": "ngsp load",
                    "rate_limit_per_minute": 1_000_000,
                    "daily_quota": 1_000_000_000,
                },
                headers={"Authorization": f"Bearer {section['admin_token']}"},
            ) as resp:
                if resp.status != 201:
                    raise SetupError(f"the gateway refused a load-test key: {resp.status}")
                api_key = str((await resp.json())["key"])
        except aiohttp.ClientError as exc:
            raise SetupError(f"the gateway or the nodes do not answer: {exc}") from None
    return GatewayTargetSpec(
        gateway_url=gateway_url,
        hub_url=network.hub_url,
        api_key=api_key,
        world=world,
        baseline=await asyncio.to_thread(_procedure_totals, network.hub_url),
        catalogue_path=catalogue_path,
    )
