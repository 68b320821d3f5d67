"""The national population database (Ministry of Public Security): citizens by ID number."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from pydantic import BaseModel, Field

from provincial_nodes.services.common import IdNumberPath, require_person, service_app
from provincial_nodes.world import Person, World

__all__ = ["CitizenPublic", "HouseholdPublic", "create_app"]


class Place(BaseModel):
    province_code: str = Field(description="Two-digit administrative code")
    province_name: str


class CitizenPublic(BaseModel):
    id_number: str
    full_name: str
    gender: str = Field(description="male or female")
    date_of_birth: dt.date
    place_of_birth: Place
    permanent_residence: Place
    address: str
    ethnicity: str
    nationality: str = "Việt Nam"
    household_id: str


class HouseholdPublic(BaseModel):
    household_id: str
    members: list[CitizenPublic]
    count: int


def _place(world: World, code: str) -> Place:
    province = world.province(code)
    return Place(province_code=code, province_name=province.name if province else code)


def citizen_public(world: World, person: Person) -> CitizenPublic:
    return CitizenPublic(
        id_number=person.id_number,
        full_name=person.full_name,
        gender=person.gender,
        date_of_birth=person.date_of_birth,
        place_of_birth=_place(world, person.place_of_birth),
        permanent_residence=_place(world, person.permanent_residence),
        address=person.address,
        ethnicity=person.ethnicity,
        household_id=person.household_id,
    )


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Cơ sở dữ liệu quốc gia về dân cư — population",
        "Citizens by 12-digit ID number, and their households (simulated).",
    )

    @app.get("/citizens/{id_number}", response_model=CitizenPublic)
    async def get_citizen(id_number: IdNumberPath) -> CitizenPublic:
        """A citizen by ID number."""
        return citizen_public(world, require_person(world, id_number, "id_number"))

    @app.get("/citizens/{id_number}/household", response_model=HouseholdPublic)
    async def get_household(id_number: IdNumberPath) -> HouseholdPublic:
        """The members of the citizen's household, head first."""
        person = require_person(world, id_number, "id_number")
        members = world.household(person.id_number)
        return HouseholdPublic(
            household_id=person.household_id,
            members=[citizen_public(world, m) for m in members],
            count=len(members),
        )

    return app
