"""Locust users for teams that already run Locust: the same traffic model and daily profile.

    locust -f loadtest/locustfile.py --headless -u 200 -r 20 -t 10m --ngsp-data-dir ngsp-data

Against a running ``ngsp up``: the hub's URL, the node credentials and the simulated world
come from ``credentials.json`` in ``--ngsp-data-dir`` (``--host`` may override the hub's
URL; it must be loopback). Each user makes exchanges drawn from the traffic model
(``loadtest/data/traffic-hub.yaml``), as the consumer each exchange names, at
``--ngsp-user-rate`` exchanges a second; Locust's statistics are grouped by kind of
exchange.

``DailyShape`` plays the daily profile (``--ngsp-profile``, a weekday by default) over the
run: ``-u`` is the number of users at the busiest moment, ``-r`` the spawn rate, and ``-t``
the length of the simulated day (or of the week) unless ``--ngsp-day-seconds`` is given.

Locust is closed-loop: a user waits for each answer before its next request, so when the
hub slows down Locust sends less and its percentiles under-state the queueing. For
latency figures and capacity, use ``ngsp load`` (open loop, latency from schedule).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import requests
from locust import FastHttpUser, LoadTestShape, constant_throughput, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

from common.contract import HEADER_PROCEDURE
from country.roster import load_roster
from loadtest.applicants import Identifiers
from loadtest.openloop import check_target
from loadtest.profile import SHAPES, DailyProfile, Shape, load_profile
from loadtest.targets import NodeCredential, choose_consumers, parse_world, read_network
from loadtest.traffic import ExchangeGenerator, consumer_weights, load_model
from provincial_nodes.world import build_population

__all__ = ["DailyShape", "HubUser"]

_TOKEN_MARGIN = 120.0


def _options(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("ngsp-sim")
    group.add_argument(
        "--ngsp-data-dir", default="ngsp-data", help="Where `ngsp up` wrote credentials.json"
    )
    group.add_argument("--ngsp-profile", default="weekday", choices=SHAPES, help="Daily profile")
    group.add_argument(
        "--ngsp-day-seconds",
        type=float,
        default=0.0,
        help="Real seconds per simulated day (default: -t)",
    )
    group.add_argument(
        "--ngsp-start-hour", type=float, default=0.0, help="Simulated hour at the start"
    )
    group.add_argument(
        "--ngsp-user-rate", type=float, default=5.0, help="Exchanges a second per user"
    )
    group.add_argument(
        "--ngsp-seed", type=int, default=0, help="Seed of the traffic draws (0: random)"
    )


class _Tokens:
    """Access tokens per consumer, shared by the users of this Locust process."""

    def __init__(self, hub_url: str, credentials: dict[str, NodeCredential]) -> None:
        self.hub_url = hub_url
        self.credentials = credentials
        self.tokens: dict[str, tuple[str, float]] = {}

    def fetch(self, code: str) -> str | None:
        cred = self.credentials[code]
        resp = requests.post(
            f"{self.hub_url}/token",
            data={"grant_type": "client_credentials"},
            auth=(cred.client_id, cred.client_secret),
            timeout=10,
        )
        if resp.status_code != 200:
            return None
        body = resp.json()
        self.tokens[code] = (str(body["access_token"]), time.time() + float(body["expires_in"]))
        return self.tokens[code][0]

    def get(self, code: str) -> str:
        token, expires = self.tokens[code]
        if expires - time.time() < _TOKEN_MARGIN:
            token = self.fetch(code) or token
        return token


class _Setup:
    """What every user shares, prepared once when Locust starts."""

    exchanges: ExchangeGenerator
    tokens: _Tokens


_SETUP = _Setup()


def _prepare(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # pragma: no cover - only when Locust runs as a library
        return
    network = read_network(Path(options.ngsp_data_dir) / "credentials.json")
    host = environment.host or network.hub_url
    check_target(host)
    environment.host = host.rstrip("/")
    model = load_model()
    world = parse_world(requests.get(f"{network.control_url}/world", timeout=10).json())
    credentials, _ = choose_consumers(model, world, network)
    tokens = _Tokens(environment.host, credentials)
    for code in sorted(credentials):
        tokens.fetch(code)
    if not tokens.tokens:
        raise RuntimeError(f"the hub at {environment.host} gave no consumer a token")
    roster = load_roster(world.roster)
    population = build_population(
        roster, size=world.population_size, seed=world.seed, reference=world.reference_date
    )
    seed = options.ngsp_seed or random.randrange(2**31)
    _SETUP.exchanges = ExchangeGenerator(
        model,
        consumer_weights(roster, model.consumers, list(tokens.tokens)),
        Identifiers.build(roster, population, seed=seed),
        seed=seed,
    )
    _SETUP.tokens = tokens
    HubUser.wait_time = constant_throughput(options.ngsp_user_rate)


# Locust's event hooks are untyped; registering by call keeps the listeners themselves typed.
events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_prepare)  # type: ignore[no-untyped-call]


class HubUser(FastHttpUser):
    """Makes exchanges through the hub, each as the consumer the traffic model draws."""

    wait_time = constant_throughput(5.0)

    @task
    def exchange(self) -> None:
        ex = _SETUP.exchanges.next()
        headers = {"Authorization": f"Bearer {_SETUP.tokens.get(ex.consumer)}"}
        if ex.procedure is not None:
            headers[HEADER_PROCEDURE] = ex.procedure
        if ex.body is not None:
            headers["Content-Type"] = "application/json"
        self.client.request(
            ex.method,
            f"/exchange/{ex.provider}/{ex.service}{ex.path}",
            data=None if ex.body is None else ex.body.decode(),
            headers=headers,
            name=ex.kind,
        )


class DailyShape(LoadTestShape):
    """Users follow the daily profile: ``-u`` at the busiest moment, the day lasting ``-t``."""

    use_common_options = True
    profile: DailyProfile | None = None

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        assert options is not None
        if self.profile is None:
            self.profile = load_profile()
        elapsed = time.perf_counter() - self.start_time
        limit = float(options.run_time or 0)
        if limit and elapsed >= limit:
            return None
        period = 7 if options.ngsp_profile == "week" else 1
        day = options.ngsp_day_seconds or (limit or 86_400.0) / period
        shape = Shape(options.ngsp_profile, day_seconds=day, start_hour=options.ngsp_start_hour)
        peak = int(options.num_users or 1)
        users = max(1, round(peak * shape.factor(self.profile, elapsed)))
        return users, float(options.spawn_rate or peak)
