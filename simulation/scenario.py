"""Scenario files: what a virtual-time run simulates, as validated data.

A scenario is a YAML file (the packaged ones are in ``simulation/data/scenarios``):
the period, the roster and its connection dates, demand per procedure (per thousand
inhabitants a year, population-weighted, times a level-4 share that may change over
time), background lookups between nodes, the daily, weekly and yearly profiles, demand
growth, fault rates, what share of exchanges is written as ledger rows, and the published
figures the report sets the result beside.

Every refusal names the file, the line and the field (``vn-2020.yaml line 41:
procedures.1.001022.level4_share: ...``): a scenario is edited by hand, by analysts.
``--set KEY=VALUE`` overrides change the document before it is validated, so a what-if
is refused in the same words as a bad file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ALIASES",
    "Curve",
    "Lookup",
    "ProcedureDemand",
    "Profile",
    "Projection",
    "Published",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "packaged_scenarios",
    "parse_override",
]

_PACKAGE = "simulation"
_SCENARIO_DIR = "data/scenarios"

#: Short names for the what-if questions analysts ask most (``--set connect_all=true``).
ALIASES: Mapping[str, str] = {
    "connect_all": "connections.all_from_start",
    "level4_share": "procedures.*.level4_share",
    "growth": "demand.growth_per_year",
    "sample": "ledger.sample",
}

_CODE = r"^[A-Za-z0-9._-]{1,64}$"


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file, the line and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Share = Annotated[float, Field(ge=0.0, le=1.0)]
Rate = Annotated[float, Field(ge=0.0)]


class Curve(_Model):
    """A value that changes over time: linear between dated points, flat outside them."""

    points: tuple[tuple[dt.date, float], ...]

    def at(self, day: dt.date) -> float:
        points = self.points
        if day <= points[0][0]:
            return points[0][1]
        for (d0, v0), (d1, v1) in itertools.pairwise(points):
            if day <= d1:
                return v0 + (v1 - v0) * (day - d0).days / (d1 - d0).days
        return points[-1][1]


def _curve(value: Any) -> Any:
    """A number, or a mapping of dates to numbers, as a ``Curve``."""
    if isinstance(value, Curve):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a number or a mapping of dates to numbers")
    if isinstance(value, int | float):
        return Curve(points=((dt.date(1970, 1, 1), float(value)),))
    if isinstance(value, Mapping) and set(value) == {"points"}:
        return Curve.model_validate(value)  # a dumped curve, read back
    if isinstance(value, Mapping) and value:
        points = []
        for key, item in value.items():
            day = key if isinstance(key, dt.date) else _date(key)
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise ValueError(f"the value at {day} is not a number")
            points.append((day, float(item)))
        points.sort()
        if len({d for d, _ in points}) != len(points):
            raise ValueError("a date appears twice")
        return Curve(points=tuple(points))
    raise ValueError("expected a number or a mapping of dates to numbers")


def _date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


class Period(_Model):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __iter__(self) -> Iterator[dt.date]:  # type: ignore[override]
        day = self.start
        while day <= self.end:
            yield day
            day += dt.timedelta(days=1)


class Connections(_Model):
    """Which roster, and when each body's LGSP joins the hub."""

    roster: str = "roster-2020"
    #: What-if: every body of the roster connected from the first day.
    all_from_start: bool = False
    #: Connection dates that replace the roster's, by node code.
    overrides: dict[str, dt.date] = Field(default_factory=dict)


class Tet(_Model):
    """Demand around the Lunar New Year, beyond the official holiday itself."""

    days_before: int = Field(default=0, ge=0, le=30)
    before: Rate = 1.0
    days_after: int = Field(default=0, ge=0, le=30)
    after: Rate = 1.0


class Profile(_Model):
    """When demand arrives: by hour of day, by weekday, and on holidays."""

    #: 24 weights, hour 0 (00:00-00:59 Vietnam time) to hour 23; any scale.
    hours: tuple[Rate, ...] = Field(min_length=24, max_length=24)
    #: 7 factors, Monday to Sunday.
    weekdays: tuple[Rate, ...] = Field(min_length=7, max_length=7)
    #: Factor on official public holidays (Tết included).
    holiday: Rate = 1.0
    tet: Tet = Tet()

    @field_validator("hours")
    @classmethod
    def _some_hours(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if sum(value) <= 0:
            raise ValueError("at least one hour must have a positive weight")
        return value

    @field_validator("weekdays")
    @classmethod
    def _some_days(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if sum(value) <= 0:
            raise ValueError("at least one weekday must have a positive factor")
        return value


class Demand(_Model):
    #: Growth of every rate, compounded daily from the period's start (0.25 = +25 % a year).
    growth_per_year: float = Field(default=0.0, gt=-1.0, le=100.0)


class Faults(_Model):
    """Shares of forwarded exchanges that end other than ``ok`` (the rest are ``ok``)."""

    client_error: Share = 0.0
    provider_error: Share = 0.0
    timeout: Share = 0.0
    unavailable: Share = 0.0

    @model_validator(mode="after")
    def _at_most_one(self) -> Faults:
        if self.client_error + self.provider_error + self.timeout + self.unavailable > 1.0:
            raise ValueError("the fault shares add up to more than 1")
        return self


class Latency(_Model):
    """The provider's answer time, log-normal."""

    median_ms: float = Field(default=80.0, gt=0.0)
    p99_ms: float = Field(default=800.0, gt=0.0)
    #: The hub's timeout: how long an exchange that times out took.
    timeout_ms: float = Field(default=10_000.0, gt=0.0)

    @model_validator(mode="after")
    def _p99_above_median(self) -> Latency:
        if self.p99_ms < self.median_ms:
            raise ValueError("p99_ms is below median_ms")
        return self


class Ledger(_Model):
    #: The share of exchanges written as ledger rows (dossiers are kept or left out whole).
    #: Rollups are always complete. 1.0 writes every row.
    sample: Share = 1.0
    #: Rows per database transaction.
    batch_rows: int = Field(default=50_000, ge=1)


class ProcedureDemand(_Model):
    """Demand for one procedure of the catalogue, in every province that offers it."""

    #: Dossiers a year per 1,000 inhabitants of the province (2019 census).
    per_1000_inhabitants_per_year: Rate
    #: The share of that demand done as level-4 dossiers through the platform.
    level4_share: Curve
    profile: str = "office"

    _curve = field_validator("level4_share", mode="before")(_curve)

    @field_validator("level4_share")
    @classmethod
    def _share(cls, value: Curve) -> Curve:
        for day, share in value.points:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"share {share} at {day} is not between 0 and 1")
        return value


class Lookup(_Model):
    """Background exchanges that no dossier asks for: one agency looking data up."""

    description: str = ""
    #: Who calls: a group (provinces, ministries, databases) or a list of node codes.
    consumers: Literal["provinces", "ministries", "databases"] | tuple[str, ...]
    #: Who is called: a node code, or ``provinces`` (one province other than the
    #: consumer, chosen by population, for each exchange).
    provider: str = Field(pattern=_CODE)
    service: str = Field(pattern=_CODE)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    #: Exchanges a day, averaged over a year, when every consumer is connected.
    per_day: Curve
    #: How ``per_day`` is shared among the consumers: by population (provinces) or evenly.
    split: Literal["population", "even"] = "even"
    profile: str = "office"

    _curve = field_validator("per_day", mode="before")(_curve)

    @field_validator("per_day")
    @classmethod
    def _rate(cls, value: Curve) -> Curve:
        for day, rate in value.points:
            if rate < 0:
                raise ValueError(f"rate {rate} at {day} is negative")
        return value


class Published(_Model):
    """The published figures the report sets the result beside (FACTS.md)."""

    source: str = ""
    #: The relative difference within which a figure counts as reproduced.
    tolerance: float = Field(default=0.02, gt=0.0)
    total_exchanges: float | None = Field(default=None, gt=0)
    average_per_day: float | None = Field(default=None, gt=0)
    connected_bodies: dict[dt.date, int] = Field(default_factory=dict)
    saving_per_procedure_vnd: float | None = Field(default=None, gt=0)


class Projection(_Model):
    """A figure published as a projection ("... a year"), reproduced by a what-if run.

    The run is counts only (no ledger), over ``days`` days ending on the scenario's last
    day, with ``set`` applied to the scenario; the figure is the VND saved by
    ``procedure`` over that time.
    """

    description: str = ""
    procedure: str
    days: int = Field(default=365, ge=1, le=3660)
    set: dict[str, Any] = Field(default_factory=dict)
    published_vnd: float = Field(gt=0)


class Scenario(_Model):
    """A validated scenario."""

    name: str = Field(pattern=_CODE)
    description: str = ""
    period: Period
    seed: int = 0
    connections: Connections = Connections()
    holidays: str = "holidays-vn"
    demand: Demand = Demand()
    faults: Faults = Faults()
    latency: Latency = Latency()
    ledger: Ledger = Ledger()
    profiles: dict[str, Profile] = Field(min_length=1)
    procedures: dict[str, ProcedureDemand] = Field(default_factory=dict)
    lookups: dict[str, Lookup] = Field(default_factory=dict)
    published: Published = Published()
    projections: dict[str, Projection] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for where, profile in (
            *((f"procedures.{k}", v.profile) for k, v in self.procedures.items()),
            *((f"lookups.{k}", v.profile) for k, v in self.lookups.items()),
        ):
            if profile not in self.profiles:
                raise ValueError(f"{where}.profile: no profile {profile!r} in profiles")
        for key, projection in self.projections.items():
            if projection.procedure not in self.procedures:
                raise ValueError(
                    f"projections.{key}.procedure: {projection.procedure!r} is not in procedures"
                )
        return self


# -- loading --------------------------------------------------------------------------------


def packaged_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package."""
    folder = resources.files(_PACKAGE).joinpath(_SCENARIO_DIR)
    return sorted(
        p.name.removesuffix(".yaml")
        for p in folder.iterdir()
        if p.name.endswith(".yaml") and not p.name.startswith("holidays-")
    )


def _is_name(name_or_path: str) -> bool:
    return "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml"))


def read_packaged(name: str) -> str:
    """The text of a packaged data file in ``data/scenarios`` (``name`` without .yaml)."""
    resource = resources.files(_PACKAGE).joinpath(_SCENARIO_DIR).joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise FileNotFoundError(name)
    return resource.read_text("utf-8")


def load_scenario(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load and validate a packaged scenario (``vn-2020``) or a YAML file, with overrides."""
    if isinstance(name_or_path, str) and _is_name(name_or_path):
        try:
            text = read_packaged(name_or_path)
        except FileNotFoundError:
            known = ", ".join(packaged_scenarios())
            raise ScenarioError(
                f"no packaged scenario {name_or_path!r} (packaged: {known}; or give a path)"
            ) from None
        source = f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
        source = str(path)
    return parse_scenario(text, source, overrides)


def parse_scenario(text: str, source: str, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Validate a scenario's YAML text; ``source`` names it in errors."""
    document, lines = _compose(text, source)
    if overrides:
        document = apply_overrides(document, overrides)
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, lines, source, bool(overrides))) from None


def _compose(text: str, source: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The document as plain values, and the line of every key path in it."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        raise ScenarioError(f"{source} line {line}: not valid YAML: {exc.problem}") from None
    if root is None:
        raise ScenarioError(f"{source}: the file is empty")
    if not isinstance(root, yaml.MappingNode):
        raise ScenarioError(f"{source} line 1: a scenario is a mapping (name:, period:, ...)")
    lines: dict[tuple[str, ...], int] = {}
    constructor = yaml.constructor.SafeConstructor()

    def plain(node: yaml.Node, path: tuple[str, ...]) -> Any:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | dt.date):
                    raise ScenarioError(
                        f"{source} line {key_node.start_mark.line + 1}: key {key_node.value!r} "
                        f"must be text; quote it ('{key_node.value}')"
                    )
                if key in out:
                    raise ScenarioError(
                        f"{source} line {key_node.start_mark.line + 1}: duplicate key {key!r}"
                    )
                sub = (*path, str(key))
                lines[sub] = key_node.start_mark.line + 1
                out[key] = plain(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [plain(item, (*path, str(i))) for i, item in enumerate(node.value)]
        try:
            return constructor.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError):
            return node.value  # an impossible date: the field's validation names it

    document = plain(root, ())
    assert isinstance(document, dict)
    return document, lines


def _describe(
    exc: ValidationError, lines: dict[tuple[str, ...], int], source: str, overridden: bool
) -> str:
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(str(p) for p in error["loc"])
    # Pydantic locates a curve's and a tuple's items below the field; the field's line
    # is the one to show, and tuple indexes mean nothing to an analyst.
    where = ".".join(loc) or "(top level)"
    line = None
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (misspelt?)"
    elif error["type"] == "missing":
        message = "missing field"
    elif "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    at = f" line {line}" if line is not None and not overridden else ""
    if overridden and line is not None:
        at = f" line {line} (after --set)"
    return f"{source}{at}: {where}: {message}"


# -- overrides ------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z0-9_.*-]+$")


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line; the value is read as YAML (1, true, 2020-01-01)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set {text!r}: expected KEY=VALUE")
    if not _KEY.match(key):
        raise ScenarioError(f"--set {text!r}: {key!r} is not a key path (a.b.c)")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return ALIASES.get(key, key), value


def apply_overrides(document: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the document with each ``a.b.c`` (``*`` for every key) set to its value.

    Keys of the document may themselves hold dots (procedure codes such as ``1.001022``):
    at each level the longest run of segments naming an existing key is taken.
    """
    import copy

    result = copy.deepcopy(document)
    for path, value in overrides.items():
        segments = path.split(".")
        _set(result, segments, value, path)
    return result


def _set(node: Any, segments: list[str], value: Any, path: str) -> None:
    if not isinstance(node, dict):
        raise ScenarioError(f"--set {path}: {'.'.join(segments)!r} is below a value, not a key")
    if segments[0] == "*":
        if len(segments) == 1:
            raise ScenarioError(f"--set {path}: '*' must be followed by a key")
        if not node:
            raise ScenarioError(f"--set {path}: '*' matches nothing")
        for child in node.values():
            _set(child, segments[1:], value, path)
        return
    for n in range(len(segments), 0, -1):
        key = ".".join(segments[:n])
        if key in node:
            if n == len(segments):
                node[key] = value
            else:
                if not isinstance(node[key], dict):
                    node[key] = {}
                _set(node[key], segments[n:], value, path)
            return
    # A key that does not exist yet: create the last one, refuse anything deeper, so a
    # misspelling is caught (by validation, naming the unknown field) rather than ignored.
    if len(segments) == 1:
        node[segments[0]] = value
        return
    head = segments[0]
    node[head] = {}
    _set(node[head], segments[1:], value, path)
