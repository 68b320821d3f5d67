"""The daily profile: how busy the platform is hour by hour, and a clock that compresses it.

A profile file (``data/profile.yaml``) gives, for each kind of day, 24 hourly shares of
the busiest hour of the week. ``Shape`` turns it into a rate multiplier over a run's
elapsed seconds: ``Shape("weekday", day_seconds=600)`` plays a whole weekday in ten
minutes, its busiest moment at the run's full rate. Everything here is plain arithmetic on
plain data, so the load runner, the Locust shape and the report share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["SHAPES", "DailyProfile", "ProfileError", "Shape", "ShapeName", "load_profile"]

ShapeName = Literal["flat", "weekday", "saturday", "sunday", "week"]
SHAPES: tuple[str, ...] = get_args(ShapeName)
DAY_SECONDS = 86_400.0


class ProfileError(ValueError):
    """A profile file that cannot be used, with the reason."""


class _ProfileFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    timezone: str = "Asia/Ho_Chi_Minh"
    days: dict[str, list[float]]
    week: list[str] = Field(min_length=7, max_length=7)

    @model_validator(mode="after")
    def _consistent(self) -> _ProfileFile:
        for name, values in self.days.items():
            if len(values) != 24:
                raise ValueError(f"days.{name}: 24 hourly values, not {len(values)}")
            if not all(0 < v <= 1 for v in values):
                raise ValueError(f"days.{name}: every value is a share in (0, 1]")
        for required in ("weekday", "saturday", "sunday"):
            if required not in self.days:
                raise ValueError(f"days: no {required!r}")
        unknown = [d for d in self.week if d not in self.days]
        if unknown:
            raise ValueError(f"week: unknown day kinds {unknown}")
        return self


@dataclass(frozen=True)
class DailyProfile:
    """Hourly shares of the week's busiest hour, by kind of day."""

    days: Mapping[str, tuple[float, ...]]
    week: tuple[str, ...]

    def cycle(self, shape: ShapeName) -> tuple[float, ...]:
        """The hourly values one period of ``shape`` runs through (24, or 168 for a week)."""
        if shape == "flat":
            return (1.0,) * 24
        if shape == "week":
            return tuple(v for day in self.week for v in self.days[day])
        return self.days[shape]

    def mean(self, shape: ShapeName) -> float:
        """The mean multiplier over one period: a day's volume is ``peak × mean × 86,400``."""
        values = self.cycle(shape)
        return sum(values) / len(values)

    def peak(self, shape: ShapeName) -> float:
        return max(self.cycle(shape))


def _interpolate(values: Sequence[float], hour: float) -> float:
    """The value at ``hour`` of a cyclic hourly series, each value holding mid-hour."""
    n = len(values)
    x = hour - 0.5
    i = math.floor(x)
    frac = x - i
    return values[i % n] * (1.0 - frac) + values[(i + 1) % n] * frac


@dataclass(frozen=True, slots=True)
class Shape:
    """How a run's rate varies: a profile cycle compressed so a day lasts ``day_seconds``.

    ``factor(profile, elapsed)`` is the multiplier of the run's full (peak) rate at that
    moment; ``flat`` is always 1. ``start_hour`` is the simulated time at the run's start
    (hours since Monday 00:00 for ``week``, since midnight otherwise).
    """

    name: ShapeName = "flat"
    day_seconds: float = DAY_SECONDS
    start_hour: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in SHAPES:
            raise ValueError(f"unknown profile {self.name!r}; one of {', '.join(SHAPES)}")
        if not self.day_seconds > 0:
            raise ValueError("day_seconds must be positive")

    @property
    def flat(self) -> bool:
        return self.name == "flat"

    @property
    def speedup(self) -> float:
        """Simulated seconds per real second."""
        return DAY_SECONDS / self.day_seconds

    def simulated_hour(self, elapsed: float) -> float:
        return self.start_hour + elapsed * self.speedup / 3600.0

    def factor(self, profile: DailyProfile, elapsed: float) -> float:
        if self.flat:
            return 1.0
        return _interpolate(profile.cycle(self.name), self.simulated_hour(elapsed))

    def mean_factor(self, profile: DailyProfile, duration: float, samples: int = 2000) -> float:
        """The mean multiplier over a run of ``duration`` seconds (midpoint rule)."""
        if self.flat or duration <= 0:
            return 1.0
        step = duration / samples
        total = sum(self.factor(profile, (k + 0.5) * step) for k in range(samples))
        return total / samples


def load_profile(path: Path | None = None) -> DailyProfile:
    """Load and validate a profile file (the packaged one by default); peak scaled to 1."""
    if path is None:
        text = resources.files("loadtest").joinpath("data/profile.yaml").read_text("utf-8")
        name = "profile.yaml"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read: {exc.strerror}") from None
        name = str(path)
    try:
        parsed = _ProfileFile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"{name}: {exc}") from None
    top = max(max(values) for values in parsed.days.values())
    days = {name: tuple(v / top for v in values) for name, values in parsed.days.items()}
    return DailyProfile(days=MappingProxyType(days), week=tuple(parsed.week))
