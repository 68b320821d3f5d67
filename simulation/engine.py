"""The run: a scenario's traffic, day by day, through the hub's routing, grants and ledger.

The model
---------
Traffic is a set of *flows*. A dossier flow is one procedure in one province: dossiers a
day ~ Poisson(population × rate per 1,000 a year × level-4 share × the day's weight ×
growth); each dossier runs the catalogue's steps in order (``{province}`` is the
dossier's province) and stops at the first step that does not end ``ok``. A lookup flow
is one consumer calling one service (or, for ``provider: provinces``, one province per
exchange, chosen by population) at ``per_day`` × the consumer's share × the day's weight
× growth. A body sends nothing before its connection date; what it sends to a body not
yet connected, or to a service it holds no grant for, is refused by the hub.

Counts, then rows
-----------------
For each flow and day the engine draws *counts* — exchanges by outcome, dossiers by the
step and outcome they ended on — and adds them to the rollups (``stats_daily``,
``stats_node_daily``, ``stats_procedure_daily``) with the hub's semantics: successes are
outcome ``ok``, failures the rest, a completed dossier adds its procedure's saving once.
The rollups are therefore complete whatever is stored. Then a binomial share
(``ledger.sample``) of those exchanges (of dossiers, whole) is *materialised* as ledger
rows and dossier reports with times from the profile. At ``sample: 1`` every exchange is
a row; at 0.001 a run of half a billion exchanges stores half a million rows.

Each flow draws its counts from its own random stream and its rows from another, both
seeded from the run's seed and the flow's name: the figures do not depend on
``--sample``, and a what-if that changes one flow leaves the others' draws alone.

Routing decisions come from ``national_hub.routing`` (``resolve``, ``authorise``) on a
registry ``Snapshot`` whose nodes are connected as of the day. A decision depends only
on the snapshot, the consumer, the provider and the service, so it is taken once per
flow and connection state, and applies to every exchange of that flow on those days.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import random
import re
import time
from bisect import bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import MISSING, dataclass, field, replace
from typing import Any

from common.contract import Outcome
from common.errors import (
    NotGranted,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownProvider,
    UnknownService,
)
from country.procedures import Catalogue
from country.roster import NationalDatabase, Roster
from national_hub.ledger.row import FIELDS
from national_hub.paths import mask_path
from national_hub.registry import Snapshot
from national_hub.routing import authorise, resolve
from simulation.distributions import binomial as _binomial
from simulation.distributions import multinomial, poisson
from simulation.profile import Calendar, DayProfile, HourSampler, day_start_us
from simulation.scenario import Scenario, ScenarioError

__all__ = [
    "ROW_COLUMNS",
    "Batch",
    "Connections",
    "Route",
    "RunFacts",
    "connection_dates",
    "simulate",
    "virtual_uuid7",
]

#: What a row tuple holds, in order: the row's sequence number in the run, from which
#: (with ``requested_at``) a sink makes its id with ``virtual_uuid7``, then every other
#: field a ``LedgerRow`` must be given, in the definition's order (``ledger/row.py``).
#: Fields with a default (the chain's, and fields added since) take their default.
ROW_COLUMNS = (
    "seq",
    *(f.name for f in FIELDS if f.default is MISSING and not f.stored.primary_key),
)
#: The dossier columns of a dossier tuple, in order (the ``dossiers`` table).
DOSSIER_COLUMNS = ("id", "node", "procedure", "outcome", "saving_vnd", "reported_at")

# Indexes of the counters in a Batch's rollup lists.
D_TRANSACTIONS, D_SUCCESSES, D_FAILURES, D_REQ, D_RESP, D_COMPLETED, D_FAILED, D_VND = range(8)
DAILY_FIELDS = (
    "transactions",
    "successes",
    "failures",
    "request_bytes",
    "response_bytes",
    "procedures_completed",
    "dossiers_failed",
    "vnd_saved",
)
NODE_FIELDS = ("transactions", "successes", "failures")
PROCEDURE_FIELDS = ("completed", "failed", "vnd_saved")

_DAY_US = 86_400_000_000
_HUB_US = 180  # the hub's own time before forwarding and after the answer
_THINK_US = 40_000  # the gateway's time between two steps of a dossier
_PARAM = re.compile(r"\{[^/{}]+\}")

# Fault outcomes in the order ``multinomial`` splits them; the remainder is ``ok``.
_FAULTS = (Outcome.CLIENT_ERROR, Outcome.PROVIDER_ERROR, Outcome.TIMEOUT, Outcome.UNAVAILABLE)


def virtual_uuid7(us: int, seq: int) -> str:
    """A UUIDv7 (RFC 9562) for a virtual time: 48 bits of milliseconds, 12 bits of the
    sub-millisecond fraction, and the run's row counter where the random bits would go.

    Time-ordered like the hub's ids, and deterministic, so a scenario and seed give the
    same ledger byte for byte (``uuid_utils.uuid7`` fills those bits at random).
    """
    ms = us // 1000
    return "%08x-%04x-7%03x-%04x-%012x" % (  # noqa: UP031 - %-formatting is the fastest here
        ms >> 16,
        ms & 0xFFFF,
        (us % 1000) * 4096 // 1000,
        0x8000 | ((seq >> 48) & 0x3FFF),
        seq & 0xFFFFFFFFFFFF,
    )


@dataclass(slots=True)
class Batch:
    """What the engine hands a sink: rows, dossier reports and the rollups they belong to.

    The rollups are complete (every exchange counted, stored as a row or not); ``rows``
    and ``dossiers`` are the materialised part, as tuples in ``ROW_COLUMNS`` and
    ``DOSSIER_COLUMNS`` order.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dossiers: list[tuple[Any, ...]] = field(default_factory=list)
    daily: dict[dt.date, list[int]] = field(default_factory=dict)
    per_node: dict[tuple[dt.date, str, str], list[int]] = field(default_factory=dict)
    per_procedure: dict[tuple[dt.date, str], list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """The hub's decision for one consumer calling one service, and what it records."""

    forwarded: bool
    provider: str | None
    service: str | None
    path: str
    status: int = 0
    outcome: str = Outcome.OK
    response_bytes: int = 0


@dataclass
class RunFacts:
    """What the engine knows about a run beyond the rollups."""

    connected_bodies: dict[dt.date, int] = field(default_factory=dict)
    exchanges: int = 0
    rows: int = 0
    dossiers: int = 0
    dossier_reports: int = 0
    routing_decisions: int = 0
    flows: int = 0
    refused: int = 0
    seconds: float = 0.0
    #: Completed dossiers and VND saved per procedure (from the counts).
    completed: dict[str, int] = field(default_factory=dict)
    saved: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Connections:
    """When each node of the roster is connected (``None``: never, in this run)."""

    dates: dict[str, dt.date]
    bodies: frozenset[str]  # ministries and provinces: the published counts are of these

    def state(self, day: dt.date) -> frozenset[str]:
        return frozenset(code for code, since in self.dates.items() if since <= day)


def connection_dates(scenario: Scenario, roster: Roster) -> Connections:
    """Each node's connection date under the scenario (roster dates, overrides, what-if)."""
    c = scenario.connections
    unknown = sorted(set(c.overrides) - {n.code for n in roster})
    if unknown:
        raise ScenarioError(f"connections.overrides: {unknown[0]!r} is not in {roster.name}")
    dates = {}
    for node in roster:
        since = c.overrides.get(node.code, node.lgsp_connected)
        if c.all_from_start:
            since = min(since, scenario.period.start)
        dates[node.code] = since
    bodies = frozenset(n.code for n in roster if not isinstance(n, NationalDatabase))
    return Connections(dates=dates, bodies=bodies)


# -- flows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    provider: str
    service: str
    method: str
    path: str  # concrete: identifiers filled in, so the hub's path templates apply


@dataclass(slots=True)
class _Flow:
    key: str
    consumer: str
    profile: int
    calls: tuple[_Call, ...]  # dossier steps in order, or lookup targets
    target_cum: list[float] | None  # lookups over several targets: cumulative weights
    procedure: str | None
    saving_vnd: int
    scale: float  # expected exchanges (dossiers) a day at weight 1, share 1, growth 1
    share_key: str | None  # procedure whose level-4 curve applies
    rate: Callable[[dt.date], float]  # lookups: per_day curve; dossiers: 1
    counts: random.Random = field(init=False)
    detail: random.Random = field(init=False)


def _concrete(path: str) -> str:
    # Fill identifiers with digits: the hub masks or templates them, as for real requests.
    return _PARAM.sub("000000000000", path)


def _group(roster: Roster, name: str) -> list[str]:
    if name == "provinces":
        return [p.code for p in roster.provinces]
    if name == "ministries":
        return [m.code for m in roster.ministries]
    return [d.code for d in roster.national_databases]


def _build_flows(
    scenario: Scenario, roster: Roster, catalogue: Catalogue, profile_index: dict[str, int]
) -> list[_Flow]:
    flows: list[_Flow] = []
    population = {p.code: roster.population(p.code) for p in roster.provinces}
    for code, demand in scenario.procedures.items():
        procedure = catalogue.get(code)
        if procedure is None:
            raise ScenarioError(f"procedures.{code}: not in the procedure catalogue")
        if demand.per_1000_inhabitants_per_year == 0:
            continue
        for province in roster.provinces:
            if not procedure.offered_in(province.code):
                continue
            steps: list[_Call] = []
            for step in procedure.steps:
                provider = province.code if step.provider == "{province}" else step.provider
                steps.append(_Call(provider, step.service, step.method, _concrete(step.path)))
            yearly = demand.per_1000_inhabitants_per_year * population[province.code] / 1000
            flows.append(
                _Flow(
                    key=f"procedure:{code}:{province.code}",
                    consumer=province.code,
                    profile=profile_index[demand.profile],
                    calls=tuple(steps),
                    target_cum=None,
                    procedure=code,
                    saving_vnd=procedure.saving_vnd,
                    scale=yearly / 365.0,
                    share_key=code,
                    rate=_one,
                )
            )
    for name, lookup in scenario.lookups.items():
        if isinstance(lookup.consumers, str):
            consumers = _group(roster, lookup.consumers)
        else:
            consumers = list(lookup.consumers)
            for c in consumers:
                if c not in roster:
                    raise ScenarioError(f"lookups.{name}.consumers: {c!r} is not in {roster.name}")
        if lookup.split == "population":
            if any(c not in population for c in consumers):
                raise ScenarioError(
                    f"lookups.{name}.split: population needs consumers that are provinces"
                )
            total = sum(population[c] for c in consumers)
            shares = {c: population[c] / total for c in consumers}
        else:
            shares = {c: 1.0 / len(consumers) for c in consumers}
        group_target = lookup.provider == "provinces"
        if not group_target and lookup.provider not in roster:
            raise ScenarioError(
                f"lookups.{name}.provider: {lookup.provider!r} is not in {roster.name}"
            )
        path = _concrete(lookup.path)
        for consumer in consumers:
            if consumer == lookup.provider:
                continue  # a node does not call itself through the hub
            if group_target:
                targets = [p for p in population if p != consumer]
                calls = tuple(_Call(p, lookup.service, lookup.method, path) for p in targets)
                cum: list[float] | None = []
                running = 0.0
                for p in targets:
                    running += population[p]
                    cum.append(running)  # type: ignore[union-attr]
            else:
                calls = (_Call(lookup.provider, lookup.service, lookup.method, path),)
                cum = None
            flows.append(
                _Flow(
                    key=f"lookup:{name}:{consumer}",
                    consumer=consumer,
                    profile=profile_index[lookup.profile],
                    calls=calls,
                    target_cum=cum,
                    procedure=None,
                    saving_vnd=0,
                    scale=shares[consumer],
                    share_key=None,
                    rate=lookup.per_day.at,
                )
            )
    for f in flows:
        f.counts = random.Random(f"{scenario.seed}:counts:{f.key}")
        f.detail = random.Random(f"{scenario.seed}:rows:{f.key}")
    return flows


def _one(_day: dt.date) -> float:
    return 1.0


# -- routing --------------------------------------------------------------------------------


def decide(snapshot: Snapshot, consumer: str, call: _Call) -> Route:
    """The hub's decision for ``consumer`` calling ``call``, and what its ledger row holds."""
    provider = call.provider if call.provider in snapshot.nodes else None
    try:
        service = resolve(snapshot, call.provider, call.service)
    except (UnknownProvider, UnknownService) as err:
        return Route(
            forwarded=False,
            provider=provider,
            service=None,
            path=mask_path(f"/{call.provider}/{call.service}{call.path}"),
            status=err.status,
            outcome=err.outcome,
            response_bytes=len(err.body()),
        )
    path = service.templates.template_for(call.path)
    try:
        authorise(snapshot, consumer, service)
    except NotGranted as err:
        return Route(
            forwarded=False,
            provider=provider,
            service=service.code,
            path=path,
            status=err.status,
            outcome=err.outcome,
            response_bytes=len(err.body()),
        )
    return Route(forwarded=True, provider=provider, service=service.code, path=path)


# -- the run --------------------------------------------------------------------------------

# What a forwarded exchange records, by outcome and method: status, request and response bytes.
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_REQUEST_BYTES = {"GET": 0, "POST": 640, "PUT": 640, "PATCH": 320, "DELETE": 0}
_TIMEOUT = ProviderTimeout("no answer within 10 s")
_UNAVAILABLE = ProviderUnavailable("cannot connect to the provider: refused")
_RECORDED: dict[tuple[str, str], tuple[int, int, int]] = {}
for _m in _METHODS:
    _writes = _m != "GET" and _m != "DELETE"
    _req = _REQUEST_BYTES[_m]
    _RECORDED[(Outcome.OK, _m)] = (201 if _m == "POST" else 200, _req, 420 if _writes else 860)
    _RECORDED[(Outcome.CLIENT_ERROR, _m)] = (422 if _writes else 404, _req, 240 if _writes else 190)
    _RECORDED[(Outcome.PROVIDER_ERROR, _m)] = (500, _req, 120)
    for _err in (_TIMEOUT, _UNAVAILABLE):
        _RECORDED[(_err.outcome, _m)] = (_err.status, _req, len(_err.body()))
#: Outcomes whose provider answered (a latency), as against a timeout or refused connection.
_ANSWERED = frozenset({Outcome.OK, Outcome.CLIENT_ERROR, Outcome.PROVIDER_ERROR})


def _recorded(route: Route, outcome: str, method: str) -> tuple[int, int, int]:
    """Status, request bytes and response bytes of an exchange's ledger row."""
    if not route.forwarded:
        return route.status, 0, route.response_bytes
    return _RECORDED[(outcome, method)]


Flush = Callable[[Batch], Awaitable[None]]
_Times = tuple[int | None, int | None, int]


@asynccontextmanager
async def _fewer_collections() -> AsyncIterator[None]:
    """Run the cyclic garbage collector less often while simulating.

    A run allocates a tuple or two per exchange and frees them a batch later; none is
    part of a cycle. At the default threshold (a collection every 700 allocations) the
    collector took about a third of the engine's time; every 100,000 it takes little.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


@_fewer_collections()
async def simulate(
    scenario: Scenario,
    *,
    roster: Roster,
    catalogue: Catalogue,
    calendar: Calendar,
    snapshot: Snapshot,
    connections: Connections,
    flush: Flush,
    sample: float | None = None,
) -> RunFacts:
    """Run the scenario, handing ``flush`` a batch of rows and rollups every so often."""
    started = time.perf_counter()
    calendar.check_covers(scenario.period.start, scenario.period.end)
    sample = scenario.ledger.sample if sample is None else sample
    profile_names = list(scenario.profiles)
    profile_index = {name: i for i, name in enumerate(profile_names)}
    day_profiles = [DayProfile(scenario.profiles[n], calendar) for n in profile_names]
    samplers = [HourSampler(scenario.profiles[n].hours) for n in profile_names]
    flows = _build_flows(scenario, roster, catalogue, profile_index)
    facts = RunFacts(flows=len(flows))

    lat = scenario.latency
    sigma = math.log(lat.p99_ms / lat.median_ms) / 2.326
    lat_rng = random.Random(f"{scenario.seed}:latency")
    timeout_us = int(lat.timeout_ms * 1000)
    # From the request's arrival to the provider's answer: the hub's own time, then the
    # provider's (capped: answers slower than the timeout are the fault shares' timeouts).
    latencies = sorted(
        _HUB_US
        + min(int(lat.median_ms * 1000 * math.exp(sigma * lat_rng.gauss(0.0, 1.0))), timeout_us)
        for _ in range(4096)
    )
    faults = scenario.faults
    fault_shares = (faults.client_error, faults.provider_error, faults.timeout, faults.unavailable)
    any_faults = sum(fault_shares) > 0
    growth = scenario.demand.growth_per_year

    run = _Run(
        facts=facts,
        sample=sample,
        latencies=latencies,
        timeout_us=timeout_us,
        fault_shares=fault_shares,
        any_faults=any_faults,
        batch_rows=scenario.ledger.batch_rows,
        flush=flush,
    )
    snapshots: dict[frozenset[str], tuple[Snapshot, dict[tuple[str, _Call], Route]]] = {}
    offset = 0
    for day in scenario.period:
        state = connections.state(day)
        if state not in snapshots:
            nodes = {
                code: replace(info, connected=code in state)
                for code, info in snapshot.nodes.items()
            }
            snapshots[state] = (replace(snapshot, nodes=nodes), {})
        snap, routes = snapshots[state]
        facts.connected_bodies[day] = len(state & connections.bodies)
        weights = [p.weight(day) for p in day_profiles]
        growth_factor = (1.0 + growth) ** (offset / 365.25)
        offset += 1
        shares = {code: d.level4_share.at(day) for code, d in scenario.procedures.items()}
        day0 = day_start_us(day)
        for flow in flows:
            if flow.consumer not in state:
                continue
            share = shares[flow.share_key] if flow.share_key is not None else 1.0
            lam = flow.scale * flow.rate(day) * weights[flow.profile] * growth_factor * share
            if lam <= 0.0:
                continue
            n = poisson(flow.counts, lam)
            if n == 0:
                continue
            sampler = samplers[flow.profile]
            if flow.procedure is not None:
                run.dossiers(flow, n, day, day0, snap, routes, sampler)
            else:
                run.lookups(flow, n, day, day0, snap, routes, sampler)
        if len(run.batch.rows) >= run.batch_rows:
            await run.flush_batch()
    await run.flush_batch()
    facts.seconds = time.perf_counter() - started
    return facts


@dataclass
class _Run:
    facts: RunFacts
    sample: float
    latencies: list[int]
    timeout_us: int
    fault_shares: tuple[float, float, float, float]
    any_faults: bool
    batch_rows: int
    flush: Flush
    batch: Batch = field(default_factory=Batch)
    seq: int = 0

    async def flush_batch(self) -> None:
        batch, self.batch = self.batch, Batch()
        if batch.rows or batch.dossiers or batch.daily:
            await self.flush(batch)

    def route(
        self, snap: Snapshot, routes: dict[tuple[str, _Call], Route], consumer: str, call: _Call
    ) -> Route:
        key = (consumer, call)
        route = routes.get(key)
        if route is None:
            route = routes[key] = decide(snap, consumer, call)
            self.facts.routing_decisions += 1
        return route

    def _outcomes(self, rng: random.Random, route: Route, n: int) -> list[tuple[str, int]]:
        """Split ``n`` exchanges along one route by outcome."""
        if not route.forwarded:
            return [(route.outcome, n)]
        if not self.any_faults:
            return [(Outcome.OK, n)]
        ce, pe, to, un, ok = multinomial(rng, n, self.fault_shares)
        split: list[tuple[str, int]] = [(Outcome.OK, ok)]
        for outcome, k in zip(_FAULTS, (ce, pe, to, un), strict=True):
            if k:
                split.append((outcome, k))
        return split

    def _count(
        self, day: dt.date, consumer: str, route: Route, method: str, outcome: str, n: int
    ) -> None:
        b = self.batch
        ok = outcome == Outcome.OK
        _, req, resp = _recorded(route, outcome, method)
        daily = b.daily.get(day)
        if daily is None:
            daily = b.daily[day] = [0] * 8
        daily[D_TRANSACTIONS] += n
        daily[D_SUCCESSES if ok else D_FAILURES] += n
        daily[D_REQ] += req * n
        daily[D_RESP] += resp * n
        for node, role in ((consumer, "consumer"), (route.provider, "provider")):
            if node is None:
                continue
            key = (day, node, role)
            counts = b.per_node.get(key)
            if counts is None:
                counts = b.per_node[key] = [0, 0, 0]
            counts[0] += n
            counts[1 if ok else 2] += n
        self.facts.exchanges += n
        if not route.forwarded:
            self.facts.refused += n

    def _times(self, rand: Callable[[], float], outcome: str, route: Route, t: int) -> _Times:
        """forwarded_at, provider_responded_at and responded_at of an exchange at ``t``."""
        if not route.forwarded:
            return None, None, t + _HUB_US
        if outcome in _ANSWERED:
            answered = t + self.latencies[int(rand() * 4096)]
            return t + _HUB_US, answered, answered + _HUB_US
        if outcome == Outcome.TIMEOUT:
            return t + _HUB_US, None, t + _HUB_US + self.timeout_us
        return t + _HUB_US, None, t + _HUB_US + 1_000  # connection refused at once

    # -- lookups ------------------------------------------------------------------------

    def lookups(
        self,
        flow: _Flow,
        n: int,
        day: dt.date,
        day0: int,
        snap: Snapshot,
        routes: dict[tuple[str, _Call], Route],
        sampler: HourSampler,
    ) -> None:
        if flow.target_cum is None:
            per_call: Sequence[tuple[_Call, int]] = [(flow.calls[0], n)]
        else:
            cum = flow.target_cum
            total = cum[-1]
            last = len(cum) - 1
            picked: dict[int, int] = {}
            for _ in range(n):
                i = min(bisect_right(cum, flow.counts.random() * total), last)
                picked[i] = picked.get(i, 0) + 1
            per_call = [(flow.calls[i], k) for i, k in sorted(picked.items())]
        consumer = flow.consumer
        for call, count in per_call:
            route = self.route(snap, routes, consumer, call)
            for outcome, k in self._outcomes(flow.counts, route, count):
                self._count(day, consumer, route, call.method, outcome, k)
                kept = _binomial(flow.detail, k, self.sample)
                if kept:
                    self._rows(flow, call, route, outcome, kept, day0, sampler)

    def _rows(
        self,
        flow: _Flow,
        call: _Call,
        route: Route,
        outcome: str,
        k: int,
        day0: int,
        sampler: HourSampler,
    ) -> None:
        # The hot loop of a run that stores every row: a few microseconds a row. A row's
        # first item is its sequence number; the sink makes the id from it and the time
        # (``virtual_uuid7``), which keeps the formatting out of this thread.
        rand = flow.detail.random
        cum, starts, belows, scales, total = sampler.tables
        append = self.batch.rows.append
        consumer = flow.consumer
        method = call.method
        path = route.path
        provider = route.provider
        service = route.service
        status, req, resp = _recorded(route, outcome, method)
        # Plain text, one object for all the rows: the sink's SQLite binds it as it is, where
        # an ``Outcome`` would cost an adapter call a row.
        text = str(outcome)
        last_us = day0 + _DAY_US - 1
        seq = self.seq
        if route.forwarded and outcome in _ANSWERED:
            latencies = self.latencies
            for _ in range(k):
                x = rand() * total
                h = bisect_right(cum, x)
                t = day0 + starts[h] + int((x - belows[h]) * scales[h])
                if t > last_us:
                    t = last_us
                seq += 1
                back = t + latencies[int(rand() * 4096)]
                append(
                    (seq, consumer, provider, service, None, None, method, path, status,
                     text, t, t + _HUB_US, back, back + _HUB_US, req, resp, None)
                )  # fmt: skip
        else:
            for _ in range(k):
                x = rand() * total
                h = bisect_right(cum, x)
                t = min(day0 + starts[h] + int((x - belows[h]) * scales[h]), last_us)
                seq += 1
                fwd, answered, done = self._times(rand, outcome, route, t)
                append(
                    (seq, consumer, provider, service, None, None, method, path, status,
                     text, t, fwd, answered, done, req, resp, None)
                )  # fmt: skip
        self.seq = seq
        self.facts.rows += k

    # -- dossiers -----------------------------------------------------------------------

    def dossiers(
        self,
        flow: _Flow,
        n: int,
        day: dt.date,
        day0: int,
        snap: Snapshot,
        routes: dict[tuple[str, _Call], Route],
        sampler: HourSampler,
    ) -> None:
        consumer = flow.consumer
        procedure = flow.procedure
        assert procedure is not None
        # Patterns: (number of steps run, outcome of the last one) -> dossiers.
        patterns: list[tuple[int, str, int]] = []
        going = n
        steps: list[tuple[_Call, Route]] = []
        for i, call in enumerate(flow.calls):
            route = self.route(snap, routes, consumer, call)
            steps.append((call, route))
            passed = 0
            for outcome, k in self._outcomes(flow.counts, route, going):
                if k == 0:
                    continue
                self._count(day, consumer, route, call.method, outcome, k)
                if outcome == Outcome.OK:
                    passed = k
                else:
                    patterns.append((i + 1, outcome, k))
            going = passed
            if going == 0:
                break
        if going:
            patterns.append((len(flow.calls), "completed", going))
        b = self.batch
        daily = b.daily.get(day)
        if daily is None:
            daily = b.daily[day] = [0] * 8
        key = (day, procedure)
        per = b.per_procedure.get(key)
        if per is None:
            per = b.per_procedure[key] = [0, 0, 0]
        failed = n - going
        saved = going * flow.saving_vnd
        daily[D_COMPLETED] += going
        daily[D_FAILED] += failed
        daily[D_VND] += saved
        per[0] += going
        per[1] += failed
        per[2] += saved
        facts = self.facts
        facts.dossiers += n
        facts.completed[procedure] = facts.completed.get(procedure, 0) + going
        facts.saved[procedure] = facts.saved.get(procedure, 0) + saved
        if self.sample <= 0.0:
            return
        for ran, last, k in patterns:
            kept = _binomial(flow.detail, k, self.sample)
            if not kept:
                continue
            plan = []
            for i, (call, route) in enumerate(steps[:ran]):
                outcome = Outcome.OK if (i < ran - 1 or last == "completed") else last
                status, req, resp = _recorded(route, outcome, call.method)
                plan.append((call.method, route, str(outcome), status, req, resp))
            for _ in range(kept):
                self._dossier(flow, plan, last == "completed", day0, sampler)

    def _dossier(
        self,
        flow: _Flow,
        plan: list[tuple[str, Route, str, int, int, int]],
        completed: bool,
        day0: int,
        sampler: HourSampler,
    ) -> None:
        rand = flow.detail.random
        consumer = flow.consumer
        procedure = flow.procedure
        # Start early enough that every step falls on the same statistics day.
        latest = day0 + _DAY_US - len(plan) * (self.timeout_us + _THINK_US + 3 * _HUB_US)
        t = min(day0 + sampler.offset_us(rand()), latest)
        seq = self.seq + 1
        dossier = f"{procedure}:{consumer}:{seq:x}"
        append = self.batch.rows.append
        for method, route, outcome, status, req, resp in plan:
            seq += 1
            fwd, answered, done = self._times(rand, outcome, route, t)
            append(
                (seq, consumer, route.provider, route.service, procedure, dossier, method,
                 route.path, status, outcome, t, fwd, answered, done, req, resp, None)
            )  # fmt: skip
            t = done + _THINK_US
        self.seq = seq
        self.batch.dossiers.append(
            (dossier, consumer, procedure, "completed" if completed else "failed",
             flow.saving_vnd if completed else 0, t)
        )  # fmt: skip
        self.facts.rows += len(plan)
        self.facts.dossier_reports += 1
