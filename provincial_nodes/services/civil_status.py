"""The civil status database (Ministry of Justice): birth registration and birth records."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Path, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.errors import InvalidInput, NotFound, RefusedError
from provincial_nodes.services.common import require_person, service_app
from provincial_nodes.state import Birth, now_iso
from provincial_nodes.world import World

__all__ = ["BirthPublic", "BirthRegistration", "create_app"]

#: Letters (any script, with diacritics), spaces, apostrophes and hyphens.
_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)*$")


class BirthRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    child_full_name: str = Field(min_length=2, max_length=100)
    child_gender: Literal["male", "female"]
    date_of_birth: dt.date
    place_of_birth: str = Field(pattern=r"^[0-9]{2}$", description="Province code of birth")
    mother_id_number: str = Field(pattern=r"^[0-9]{12}$")
    father_id_number: str | None = Field(default=None, pattern=r"^[0-9]{12}$")

    @field_validator("child_full_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value) or len(value.split()) < 2:
            raise ValueError("a full name: family name and given name, letters only")
        return value


class BirthPublic(BaseModel):
    record_number: str
    child_id_number: str
    child_full_name: str
    child_gender: str
    date_of_birth: dt.date
    place_of_birth: str
    mother_id_number: str
    father_id_number: str | None
    registered_in: str
    registered_at: str


def _public(birth: Birth) -> BirthPublic:
    return BirthPublic(
        record_number=birth.record_number,
        child_id_number=birth.child_id_number,
        child_full_name=birth.full_name,
        child_gender=birth.gender,
        date_of_birth=dt.date.fromisoformat(birth.date_of_birth),
        place_of_birth=birth.place_of_birth,
        mother_id_number=birth.mother_id_number,
        father_id_number=birth.father_id_number,
        registered_in=birth.registered_in,
        registered_at=birth.registered_at,
    )


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Cơ sở dữ liệu hộ tịch điện tử — civil status",
        "Birth registration, which gives the child an ID number, and birth records (simulated).",
    )

    @app.post("/births", response_model=BirthPublic, status_code=status.HTTP_201_CREATED)
    async def register_birth(
        data: BirthRegistration,
        x_consumer: Annotated[str | None, Header()] = None,
    ) -> BirthPublic:
        """Register a birth; the child gets a new ID number from the population database."""
        today = world.today()
        if data.date_of_birth > today:
            raise InvalidInput("date_of_birth: in the future", extra={"field": "date_of_birth"})
        if world.province(data.place_of_birth) is None:
            raise InvalidInput(
                f"place_of_birth: no province with code {data.place_of_birth}",
                extra={"field": "place_of_birth"},
            )
        mother = require_person(world, data.mother_id_number, "mother_id_number")
        if mother.gender != "female":
            raise RefusedError("mother_id_number: the citizen is not female", code="invalid_parent")
        if mother.age(data.date_of_birth) < 12:
            raise RefusedError(
                "mother_id_number: the mother was under 12 at the birth", code="invalid_parent"
            )
        if data.father_id_number is not None:
            father = require_person(world, data.father_id_number, "father_id_number")
            if father.gender != "male":
                raise RefusedError(
                    "father_id_number: the citizen is not male", code="invalid_parent"
                )
        for child_id in world.state.children_of.get(mother.id_number, ()):
            child = world.state.births_by_id[child_id]
            same = (child.full_name, child.date_of_birth) == (
                data.child_full_name,
                data.date_of_birth.isoformat(),
            )
            if same:
                raise RefusedError(
                    f"this birth is registered already as {child.record_number}",
                    code="already_registered",
                    extra={"record_number": child.record_number},
                )
        registrar = data.place_of_birth
        if x_consumer and re.fullmatch(r"P[0-9]{2}", x_consumer):
            registrar = x_consumer[1:]
        async with world.state.lock:
            key = (data.place_of_birth, data.child_gender, data.date_of_birth.year)
            child_id = world.population.registered_id_number(
                data.place_of_birth,
                data.child_gender,
                data.date_of_birth.year,
                world.state.id_ordinals[key],
            )
            seq = world.state.birth_seq[(registrar, today.year)] + 1
            birth = Birth(
                record_number=f"KS-{registrar}-{today.year}-{seq:06d}",
                child_id_number=child_id,
                full_name=data.child_full_name,
                gender=data.child_gender,
                date_of_birth=data.date_of_birth.isoformat(),
                place_of_birth=data.place_of_birth,
                mother_id_number=mother.id_number,
                father_id_number=data.father_id_number,
                registered_in=registrar,
                registered_at=now_iso(),
            )
            await world.state.save(birth)
        return _public(birth)

    @app.get("/births/{record_number}", response_model=BirthPublic)
    async def get_birth(
        record_number: Annotated[str, Path(pattern=r"^KS-[0-9]{2}-[0-9]{4}-[0-9]{6}$")],
    ) -> BirthPublic:
        """A birth record by its number."""
        birth = world.state.births_by_record.get(record_number)
        if birth is None:
            raise NotFound(f"no birth record {record_number}", code="record_not_found")
        return _public(birth)

    return app
