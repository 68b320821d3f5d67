"""The procedure catalogue: what each administrative procedure saves and which exchanges it runs.

The catalogue is a data file (``data/procedures.yaml`` by default). The hub reads it for
the saving per procedure; the gateway reads the same file for the steps it runs.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "PLACEHOLDER",
    "ApplicantField",
    "Catalogue",
    "CatalogueError",
    "Procedure",
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


class ApplicantField(BaseModel):
    """One field of the applicant data a procedure asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FieldKind
    required: bool = True
    description: str = ""
    #: The allowed values, for ``kind: choice``.
    choices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _choices(self) -> ApplicantField:
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("choices are given exactly for kind 'choice'")
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
