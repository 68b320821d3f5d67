"""The procedure catalogue: what each administrative procedure saves and which exchanges it runs.

The catalogue is a data file (``data/procedures.yaml`` by default). The hub reads it for
the saving per procedure; the gateway reads the same file for the steps it runs and to
check each applicant field by its kind; the load tool reads it to draw applicant data
that succeeds in the simulated world, by each field's kind and ``sample`` hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "PLACEHOLDER",
    "SAMPLES",
    "ApplicantField",
    "Catalogue",
    "CatalogueError",
    "FieldKind",
    "Procedure",
    "Sample",
    "Step",
    "load_catalogue",
]

PROCEDURE_CODE = re.compile(r"\d\.\d{6}\Z")
#: ``{name}`` or ``{step.field}`` in a step's path or body.
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")
DEFAULT_SAVING_VND = 30_500


class CatalogueError(ValueError):
    """A catalogue file that cannot be used, with the reason."""


FieldKind = Literal[
    "id_number",
    "full_name",
    "date",
    "gender",
    "text",
    "tax_code",
    "parcel_id",
    "card_number",
    "choice",
]


#: The ``sample`` hints each kind accepts, and the argument each takes: ``None`` (none),
#: ``"days"`` (a whole number of days, at least 1) or ``"field"`` (another applicant field
#: of the procedure, an ``id_number`` drawn from ``citizens`` and required). A hint names
#: the population a value must come from for a dossier to succeed in the simulated world:
#:
#: - ``citizens``: any citizen (the default for ``id_number``); ``mothers``: a woman aged
#:   20 to 40; ``fathers``: a man aged 20 to 60;
#: - ``names``: a citizen's full name (the default for ``full_name``); ``unique``: a
#:   citizen's full name with a suffix of letters no other dossier of the run carries;
#: - ``within_days(n)``: a day 1 to n days before today (``within_days(365)`` is the
#:   default for ``date``);
#: - ``addresses``: a citizen's address (the default for ``text`` is a plain phrase);
#: - ``cards``: any citizen's health-insurance card (the default for ``card_number``);
#:   ``card_of(field)``: the card of the citizen the other field names.
#:
#: Kinds without an entry take no hint (``gender`` and ``choice`` draw uniformly; tax
#: codes and parcels come from those that exist). The load tool draws every hint here.
SAMPLES: Mapping[FieldKind, Mapping[str, Literal["days", "field"] | None]] = {
    "id_number": {"citizens": None, "mothers": None, "fathers": None},
    "full_name": {"names": None, "unique": None},
    "date": {"within_days": "days"},
    "text": {"addresses": None},
    "card_number": {"cards": None, "card_of": "field"},
}
_SAMPLE = re.compile(r"([a-z_]+)(?:\(([a-z0-9_]+)\))?\Z")


class Sample(NamedTuple):
    """A parsed ``sample`` hint: ``mothers`` or ``card_of(citizen_id)``."""

    name: str
    arg: str | None = None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}({self.arg})"


class ApplicantField(BaseModel):
    """One field of the applicant data a procedure asks for.

    ``kind`` and what goes with it (``choices``, the length bounds of ``text``) say what
    is valid: the gateway refuses anything else. ``sample`` and ``sample_rate`` say what
    succeeds in the simulated world: hints for generators of applicant data (the load
    tool), left out of the public view of the procedure.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FieldKind
    required: bool = True
    description: str = ""
    #: The allowed values, for ``kind: choice``.
    choices: tuple[str, ...] = ()
    #: The length bounds after trimming, for ``kind: text``.
    min_length: int = Field(default=1, ge=1)
    max_length: int = Field(default=200, ge=1)
    #: Which population a value comes from (``SAMPLES``); None: the kind's default.
    sample: Sample | None = Field(default=None, exclude=True)
    #: For an optional field, the share of generated applicants that include it (an
    #: optional field is left out of them unless this says otherwise).
    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0, exclude=True)

    @field_validator("sample", mode="before")
    @classmethod
    def _parse_sample(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        m = _SAMPLE.match(value.strip())
        if m is None:
            raise ValueError(f"sample {value!r} is not a name or name(argument)")
        return Sample(m.group(1), m.group(2))

    @model_validator(mode="after")
    def _consistent(self) -> ApplicantField:
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("choices are given exactly for kind 'choice'")
        if self.kind != "text" and (self.min_length, self.max_length) != (1, 200):
            raise ValueError("min_length and max_length are for kind 'text'")
        if self.min_length > self.max_length:
            raise ValueError("min_length is above max_length")
        if self.sample_rate and self.required:
            raise ValueError("sample_rate is for optional fields (a required one is always sent)")
        if self.sample is not None:
            hints = SAMPLES.get(self.kind, {})
            if self.sample.name not in hints:
                allowed = ", ".join(hints) or "none"
                raise ValueError(
                    f"sample {self.sample.name!r} is not a hint of kind {self.kind!r} "
                    f"(allowed: {allowed})"
                )
            takes = hints[self.sample.name]
            if (takes is None) != (self.sample.arg is None):
                raise ValueError(
                    f"sample {self.sample.name!r} "
                    + ("takes no argument" if takes is None else f"takes a {takes} argument")
                )
            if takes == "days" and not (self.sample.arg or "").isdigit():
                raise ValueError(f"sample {self.sample}: the argument is a number of days")
            if takes == "days" and int(self.sample.arg or 0) < 1:
                raise ValueError(f"sample {self.sample}: at least one day")
        return self


class Step(BaseModel):
    """One exchange of a procedure.

    ``path`` and the string values of ``body`` may name applicant fields (``{mother_id}``),
    the dossier's province (``{province}`` the node code, ``{province_code}`` its two
    digits) or a field of an earlier step's JSON answer (``{birth.child_id_number}``).
    A body value that is one placeholder alone takes the value as it is (and a missing
    optional field drops the key).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    provider: str = Field(min_length=1, max_length=64)
    service: str = Field(min_length=1, max_length=64)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    body: dict[str, Any] | None = None


class Procedure(BaseModel):
    """An administrative procedure of the catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name: str = Field(min_length=1)
    name_en: str = ""
    sector: str = ""
    authority: str = ""
    saving_vnd: int = Field(default=DEFAULT_SAVING_VND, ge=0)
    level4: Literal["all", "none"] | tuple[str, ...] = "all"
    applicant: dict[str, ApplicantField] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("code")
    @classmethod
    def _code_format(cls, value: str) -> str:
        if not PROCEDURE_CODE.match(value):
            raise ValueError(f"procedure code {value!r} is not in the form n.nnnnnn")
        return value

    @model_validator(mode="after")
    def _steps_consistent(self) -> Procedure:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"procedure {self.code} repeats a step id")
        known = set(self.applicant) | {"province", "province_code"}
        for position, step in enumerate(self.steps):
            earlier = set(ids[:position])
            texts = [step.path, *(v for v in (step.body or {}).values() if isinstance(v, str))]
            for text in texts:
                for name in PLACEHOLDER.findall(text):
                    head = name.split(".", 1)[0]
                    if name not in known and not ("." in name and head in earlier):
                        raise ValueError(
                            f"procedure {self.code} step {step.id}: unknown placeholder {{{name}}}"
                        )
        return self

    @model_validator(mode="after")
    def _samples_consistent(self) -> Procedure:
        for name, spec in self.applicant.items():
            if spec.sample is not None and SAMPLES[spec.kind][spec.sample.name] == "field":
                source = self.applicant.get(spec.sample.arg or "")
                if source is None or source.kind != "id_number" or not source.required:
                    raise ValueError(
                        f"procedure {self.code} applicant.{name}: sample {spec.sample} names "
                        "no required id_number field of the procedure"
                    )
                if source.sample not in (None, Sample("citizens")):
                    raise ValueError(
                        f"procedure {self.code} applicant.{name}: sample {spec.sample} needs "
                        f"{spec.sample.arg} drawn from citizens"
                    )
        return self

    @property
    def exchanges(self) -> int:
        """How many exchanges one dossier of this procedure runs."""
        return len(self.steps)

    def offered_in(self, province: str) -> bool:
        """Whether the procedure is offered at level 4 in ``province``."""
        if self.level4 == "all":
            return True
        if self.level4 == "none":
            return False
        return province in self.level4


class Catalogue(BaseModel):
    """The whole catalogue, indexed by code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    default_saving_vnd: int = Field(default=DEFAULT_SAVING_VND, ge=0)
    procedures: tuple[Procedure, ...]

    @model_validator(mode="after")
    def _unique_codes(self) -> Catalogue:
        seen: set[str] = set()
        for p in self.procedures:
            if p.code in seen:
                raise ValueError(f"duplicate procedure code {p.code}")
            seen.add(p.code)
        return self

    def get(self, code: str) -> Procedure | None:
        for procedure in self.procedures:
            if procedure.code == code:
                return procedure
        return None

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.procedures)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load and validate a catalogue file (the packaged one by default)."""
    if path is None:
        text = resources.files("country").joinpath("data/procedures.yaml").read_text("utf-8")
        name = "procedures.yaml"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise CatalogueError(f"{path}: cannot read: {exc.strerror}") from None
        name = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{name}: not valid YAML: {exc}") from None
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CatalogueError(f"{name}: {where}: {first['msg']}") from None
