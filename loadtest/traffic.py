"""The traffic model: who calls which service, how often, and for which procedure.

A model file (``data/traffic-hub.yaml``) names the consumer groups and their shares and
lists the kinds of exchange with their weights, paths, bodies and the procedure step each
belongs to. From it and the simulated world (roster and synthetic population) come:

- ``consumer_weights``: each connected body's share of the exchanges it may make;
- ``PLACEHOLDERS``: what each placeholder of a path or body is, as an applicant field of
  the catalogue is (a kind and a sample hint), drawn the same way
  (``loadtest.applicants``) from pools of identifiers that exist;
- ``ExchangeGenerator``: a seeded stream of ``Exchange``\\ s, the same for the load runner
  and the Locust file;
- ``implied_savings``: the dossiers (and VND) that a set of successful exchanges adds up
  to, procedure by procedure.

Everything here is plain data and plain functions: no I/O except reading the model file.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from country.procedures import ApplicantField, Catalogue, Sample
from country.roster import Roster
from loadtest.applicants import Draw, Identifiers, field_draw

__all__ = [
    "CONSUMER",
    "PLACEHOLDERS",
    "ConsumerGroup",
    "ConsumerSet",
    "Exchange",
    "ExchangeGenerator",
    "ExchangeKind",
    "GroupName",
    "ModelError",
    "Savings",
    "TrafficModel",
    "consumer_weights",
    "implied_savings",
    "load_model",
]

#: In ``ExchangeKind.provider``: the calling province itself.
CONSUMER = "{consumer}"
#: The placeholders a path or body may use, each drawn per exchange as an applicant field
#: of its kind and hint would be (``{province_code}`` aside: the consumer's province).
#: Where an exchange is a procedure's step, ``TrafficModel.check_catalogue`` holds each to
#: the catalogue's definition of the field of that name (kind, choices, length bounds).
PLACEHOLDERS: Mapping[str, ApplicantField] = {
    "citizen_id": ApplicantField(kind="id_number"),
    "mother_id": ApplicantField(kind="id_number", sample=Sample("mothers")),
    "card_number": ApplicantField(kind="card_number"),
    "parcel_id": ApplicantField(kind="parcel_id"),
    "tax_code": ApplicantField(kind="tax_code"),
    "child_full_name": ApplicantField(kind="full_name"),
    "child_gender": ApplicantField(kind="gender"),
    "child_date_of_birth": ApplicantField(kind="date", sample=Sample("within_days", "365")),
    "address": ApplicantField(kind="text", min_length=5, sample=Sample("addresses")),
    "reason": ApplicantField(kind="choice", choices=("lost", "damaged", "information_changed")),
}
_PROVINCE_CODE = "province_code"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class ModelError(ValueError):
    """A traffic model that cannot be used, with the reason."""


GroupName = Literal["provinces", "ministries"]


class ConsumerGroup(BaseModel):
    """A group of consumers, its share of all exchanges and how it is split inside."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    share: float = Field(gt=0, le=1)
    #: ``population``: in proportion to each province's census population.
    weight: Literal["population", "equal"] = "equal"


class ExchangeKind(BaseModel):
    """One kind of exchange: a service call, its weight in the mix, its procedure step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,47}$")
    provider: str = Field(min_length=1, max_length=64)
    service: str = Field(min_length=1, max_length=64)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    body: dict[str, str] | None = None
    weight: float = Field(gt=0)
    consumers: Literal["all", "provinces", "ministries"] = "all"
    procedure: str | None = Field(default=None, pattern=r"^\d\.\d{6}$")
    step: str | None = None

    @field_validator("path")
    @classmethod
    def _path_placeholders(cls, value: str) -> str:
        _check_placeholders(value, "path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExchangeKind:
        for key, template in (self.body or {}).items():
            _check_placeholders(template, f"body.{key}")
        if (self.procedure is None) != (self.step is None):
            raise ValueError("procedure and step go together")
        if self.provider == CONSUMER and self.consumers != "provinces":
            raise ValueError("provider '{consumer}' needs consumers: provinces")
        return self


def _check_placeholders(text: str, where: str) -> None:
    unknown = set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS.keys() - {_PROVINCE_CODE}
    if unknown:
        raise ValueError(f"{where}: unknown placeholders {sorted(unknown)}")


class TrafficModel(BaseModel):
    """A validated traffic model file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    consumers: dict[GroupName, ConsumerGroup]
    exchanges: tuple[ExchangeKind, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> TrafficModel:
        names = [k.name for k in self.exchanges]
        if len(set(names)) != len(names):
            raise ValueError("exchange names must be unique")
        return self

    def kind(self, name: str) -> ExchangeKind | None:
        return next((k for k in self.exchanges if k.name == name), None)

    def mix(self) -> dict[str, float]:
        """Each kind's share of all exchanges."""
        total = sum(k.weight for k in self.exchanges)
        return {k.name: k.weight / total for k in self.exchanges}

    def check_catalogue(self, catalogue: Catalogue) -> None:
        """Refuse a model whose procedure steps the catalogue does not have."""
        for kind in self.exchanges:
            if kind.procedure is None:
                continue
            procedure = catalogue.get(kind.procedure)
            if procedure is None:
                raise ModelError(f"{kind.name}: procedure {kind.procedure} is not in the catalogue")
            if kind.step not in {s.id for s in procedure.steps}:
                raise ModelError(f"{kind.name}: procedure {kind.procedure} has no step {kind.step}")
            texts = [kind.path, *(kind.body or {}).values()]
            for name in sorted({n for t in texts for n in _PLACEHOLDER.findall(t)}):
                field = procedure.applicant.get(name)
                if field is not None and _validity(field) != _validity(PLACEHOLDERS[name]):
                    raise ModelError(
                        f"{kind.name}: {{{name}}} is not drawn as procedure {kind.procedure} "
                        f"defines applicant.{name} ({_validity(field)})"
                    )


def _validity(spec: ApplicantField) -> tuple[Any, ...]:
    # What makes a value valid (the gateway's checks); the sample hint may differ: the
    # hub model's exchanges are independent, a dossier's are not.
    return (spec.kind, spec.choices, spec.min_length, spec.max_length)


def load_model(path: Path | None = None) -> TrafficModel:
    """Load and validate a traffic model (the packaged hub-direct one by default)."""
    if path is None:
        text = resources.files("loadtest").joinpath("data/traffic-hub.yaml").read_text("utf-8")
        name = "traffic-hub.yaml"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
        name = str(path)
    try:
        return TrafficModel.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ModelError(f"{name}: {exc}") from None


# --- consumers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerSet:
    """The consumers a run uses, with their weights (summing to 1)."""

    weights: Mapping[str, float]
    #: Node code → two-digit province code, for the provinces among the consumers.
    provinces: Mapping[str, str]
    #: Every province of the roster by two-digit code → census population (for draws of a
    #: province by population that are not about a consumer).
    province_population: Mapping[str, int]

    def eligible(self, who: str) -> dict[str, float]:
        if who == "all":
            return dict(self.weights)
        if who == "provinces":
            return {c: w for c, w in self.weights.items() if c in self.provinces}
        return {c: w for c, w in self.weights.items() if c not in self.provinces}


def consumer_weights(
    roster: Roster,
    groups: Mapping[GroupName, ConsumerGroup],
    available: Sequence[str] | None = None,
) -> ConsumerSet:
    """Each available body's share of all exchanges, from the model's groups.

    A group's share is split among its available members (by census population or
    equally); the shares of the groups present are then scaled to sum to 1.
    """
    allowed = set(available) if available is not None else None
    members: dict[GroupName, list[tuple[str, float]]] = {"provinces": [], "ministries": []}
    for province in roster.provinces:
        if allowed is None or province.code in allowed:
            members["provinces"].append((province.code, float(roster.population(province.code))))
    for ministry in roster.ministries:
        if allowed is None or ministry.code in allowed:
            members["ministries"].append((ministry.code, 1.0))
    weights: dict[str, float] = {}
    present = {g: group for g, group in groups.items() if members.get(g)}
    if not present:
        raise ModelError("no consumer of the model's groups is available")
    total_share = sum(g.share for g in present.values())
    for name, group in present.items():
        people = members[name]
        if group.weight == "equal":
            people = [(code, 1.0) for code, _ in people]
        mass = sum(w for _, w in people)
        for code, w in people:
            weights[code] = group.share / total_share * w / mass
    provinces = {p.code: p.admin_code for p in roster.provinces if p.code in weights}
    population = {p.admin_code: roster.population(p.code) for p in roster.provinces}
    return ConsumerSet(weights=weights, provinces=provinces, province_population=population)


# --- exchanges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange to make: who calls what, with which body, for which procedure."""

    consumer: str
    kind: str
    provider: str
    service: str
    method: str
    path: str
    body: bytes | None = None
    procedure: str | None = None


_Template = tuple[tuple[str, str | None], ...]


def _compile(text: str) -> _Template:
    """``"/a/{x}/b"`` → ``(("/a/", "x"), ("/b", None))``."""
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append((text[pos : m.start()], m.group(1)))
        pos = m.end()
    parts.append((text[pos:], None))
    return tuple(parts)


@dataclass(frozen=True)
class _Compiled:
    kind: ExchangeKind
    path: _Template
    body: tuple[tuple[str, _Template], ...] | None
    consumers: tuple[str, ...]
    cumulative: tuple[float, ...]


@dataclass
class ExchangeGenerator:
    """A seeded stream of exchanges drawn from a model, its consumers and identifiers."""

    model: TrafficModel
    consumers: ConsumerSet
    ids: Identifiers
    seed: int = 0
    today: dt.date = field(default_factory=dt.date.today)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        compiled: list[_Compiled] = []
        for kind in self.model.exchanges:
            eligible = self.consumers.eligible(kind.consumers)
            if not eligible:
                continue  # no consumer may make it (no province connected yet, say)
            codes = tuple(sorted(eligible))
            body = tuple((k, _compile(v)) for k, v in kind.body.items()) if kind.body else None
            compiled.append(
                _Compiled(
                    kind=kind,
                    path=_compile(kind.path),
                    body=body,
                    consumers=codes,
                    cumulative=tuple(accumulate(eligible[c] for c in codes)),
                )
            )
        if not compiled:
            raise ModelError("no exchange of the model has a consumer")
        self._kinds = tuple(compiled)
        self._kind_cumulative = tuple(accumulate(c.kind.weight for c in compiled))
        provinces = sorted(self.consumers.province_population)
        self._province_codes = tuple(provinces)
        self._province_cumulative = tuple(
            accumulate(self.consumers.province_population[c] for c in provinces)
        )
        self._draw: dict[str, Draw] = {
            name: field_draw(name, spec, self.ids, self.rng, today=self.today)
            for name, spec in PLACEHOLDERS.items()
        }
        self._count = 0

    @property
    def kinds(self) -> tuple[ExchangeKind, ...]:
        """The kinds this generator draws (those with at least one consumer)."""
        return tuple(c.kind for c in self._kinds)

    def _pick(self, cumulative: Sequence[float]) -> int:
        return bisect_right(cumulative, self.rng.random() * cumulative[-1])

    def _province_of(self, consumer: str) -> str:
        code = self.consumers.provinces.get(consumer)
        if code is not None:
            return code
        return self._province_codes[self._pick(self._province_cumulative)]

    def next(self) -> Exchange:
        """The next exchange of the stream."""
        c = self._kinds[self._pick(self._kind_cumulative)]
        consumer = c.consumers[self._pick(c.cumulative)]
        values: dict[str, str] = {}
        count = self._count = self._count + 1
        picks: dict[str, int] = {}

        def fill(template: _Template) -> str:
            out = []
            for literal, name in template:
                out.append(literal)
                if name is not None:
                    value = values.get(name)
                    if value is None:
                        value = (
                            self._province_of(consumer)
                            if name == _PROVINCE_CODE
                            else self._draw[name](count, picks)
                        )
                        values[name] = value
                    out.append(value)
            return "".join(out)

        path = fill(c.path)
        body = None
        if c.body is not None:
            body = json.dumps({k: fill(t) for k, t in c.body}, ensure_ascii=False).encode()
        kind = c.kind
        return Exchange(
            consumer=consumer,
            kind=kind.name,
            provider=consumer if kind.provider == CONSUMER else kind.provider,
            service=kind.service,
            method=kind.method,
            path=path,
            body=body,
            procedure=kind.procedure,
        )


# --- savings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Savings:
    """What a set of exchanges saves, and how that was worked out."""

    vnd: int
    #: Procedure code → the whole dossiers the exchanges add up to.
    dossiers: Mapping[str, int]
    basis: str


IMPLIED_BASIS = (
    "implied by the exchanges' procedures: a dossier needs every step of its procedure, "
    "so each procedure counts as many dossiers as its least-run step had successful "
    "exchanges, times its saving from the catalogue; exchanges outside a procedure save "
    "nothing. The hub itself counts savings only for dossiers reported complete "
    "(the gateway target)"
)


def implied_savings(
    model: TrafficModel, catalogue: Catalogue, ok_by_kind: Mapping[str, int]
) -> Savings:
    """The dossiers and VND that successful exchanges add up to, procedure by procedure."""
    per_step: dict[tuple[str, str], int] = {}
    for kind in model.exchanges:
        if kind.procedure is not None and kind.step is not None:
            key = (kind.procedure, kind.step)
            per_step[key] = per_step.get(key, 0) + ok_by_kind.get(kind.name, 0)
    dossiers: dict[str, int] = {}
    vnd = 0
    for code in sorted({p for p, _ in per_step}):
        procedure = catalogue.get(code)
        if procedure is None:
            continue
        complete = min(per_step.get((code, s.id), 0) for s in procedure.steps)
        dossiers[code] = complete
        vnd += complete * procedure.saving_vnd
    return Savings(vnd=vnd, dossiers=dossiers, basis=IMPLIED_BASIS)
