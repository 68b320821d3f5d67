"""Fault injection: what a node does wrong, set per node at runtime.

* ``latency``: added before every answer, fixed or drawn from a distribution;
* ``error_rate``: the share of requests answered with ``error_status`` (a 5xx);
* ``slow_seconds``: every answer waits this long, longer than the hub's timeout;
* ``outage``: the node stops listening, so connections are refused.

Draws come from a generator seeded per node, so a run with the same faults and the same
request order behaves the same.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FaultBook", "FaultSpec", "Latency", "Verdict"]


class Latency(BaseModel):
    """Added latency: ``fixed`` (ms), ``uniform`` (ms to max_ms), ``exponential`` (mean ms)
    or ``lognormal`` (median ms, shape sigma)."""

    model_config = ConfigDict(extra="forbid")

    distribution: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    ms: float = Field(ge=0, le=600_000)
    max_ms: float | None = Field(default=None, ge=0, le=600_000)
    sigma: float = Field(default=0.5, gt=0, le=5)

    @model_validator(mode="after")
    def _uniform_bounds(self) -> Latency:
        if self.distribution == "uniform" and (self.max_ms is None or self.max_ms < self.ms):
            raise ValueError("uniform latency needs max_ms >= ms")
        return self

    def draw(self, rng: random.Random) -> float:
        """A delay in seconds."""
        if self.distribution == "fixed":
            ms = self.ms
        elif self.distribution == "uniform":
            assert self.max_ms is not None
            ms = rng.uniform(self.ms, self.max_ms)
        elif self.distribution == "exponential":
            ms = rng.expovariate(1 / self.ms) if self.ms > 0 else 0.0
        else:
            ms = self.ms * math.exp(rng.gauss(0, self.sigma)) if self.ms > 0 else 0.0
        return min(ms, 600_000) / 1000


class FaultSpec(BaseModel):
    """The faults of one node; the default is a healthy node."""

    model_config = ConfigDict(extra="forbid")

    latency: Latency | None = None
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=500, le=599)
    slow_seconds: float | None = Field(default=None, gt=0, le=600)
    outage: bool = False

    @property
    def healthy(self) -> bool:
        return self == FaultSpec()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request."""

    delay: float
    error_status: int | None


_HEALTHY = Verdict(0.0, None)


class FaultBook:
    """The faults of every node, and the per-node generators that draw from them."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._specs: dict[str, FaultSpec] = {}
        self._rngs: dict[str, random.Random] = {}

    def get(self, node: str) -> FaultSpec:
        return self._specs.get(node, FaultSpec())

    def set(self, node: str, spec: FaultSpec) -> None:
        if spec.healthy:
            self._specs.pop(node, None)
        else:
            self._specs[node] = spec
        self._rngs[node] = random.Random(self._seed ^ zlib.crc32(node.encode()))

    def all(self) -> dict[str, FaultSpec]:
        return dict(self._specs)

    def verdict(self, node: str) -> Verdict:
        spec = self._specs.get(node)
        if spec is None:
            return _HEALTHY
        rng = self._rngs[node]
        delay = spec.latency.draw(rng) if spec.latency else 0.0
        if spec.slow_seconds is not None:
            delay += spec.slow_seconds
        error = spec.error_status if spec.error_rate and rng.random() < spec.error_rate else None
        return Verdict(delay, error)
