"""The national insurance database (Vietnam Social Security): health-insurance cards.

A card number has 15 characters: the beneficiary group (``TE`` children under 6, ``HS``
pupils, ``GD`` household members, ``HT`` the elderly), the benefit level (1-5), the
two-digit province code and a 10-digit social insurance number. In the simulator the
social insurance number is the last ten digits of the holder's ID number, so a card
number leads back to its holder. Every synthetic citizen already holds a card; a child
registered at runtime gets one through ``POST /cards``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import FastAPI, Path, status
from pydantic import BaseModel, ConfigDict, Field

from common.errors import NotFound, RefusedError
from provincial_nodes.services.common import require_person, service_app
from provincial_nodes.state import Card, now_iso
from provincial_nodes.world import Person, World

__all__ = ["CardPublic", "card_number_for", "create_app", "kind_for_age"]

_KIND_NAMES = {
    "TE": "Trẻ em dưới 6 tuổi",
    "HS": "Học sinh",
    "GD": "Hộ gia đình",
    "HT": "Người cao tuổi",
}
_BENEFIT = {"TE": 1, "HS": 4, "GD": 4, "HT": 2}
CardNumber = Annotated[str, Path(pattern=r"^(TE|HS|GD|HT)[1-5][0-9]{12}$")]


def kind_for_age(age: int) -> str:
    if age < 6:
        return "TE"
    if age < 18:
        return "HS"
    if age < 60:
        return "GD"
    return "HT"


def card_number_for(person: Person, kind: str) -> str:
    """The card number of a person in a beneficiary group."""
    return f"{kind}{_BENEFIT[kind]}{person.place_of_birth}{person.id_number[2:]}"


def _id_from_card(number: str) -> str | None:
    province, ssn = number[3:5], number[5:]
    if ssn[0] != province[1]:
        return None
    return "0" + province[0] + ssn


def _sixth_birthday_eve(born: dt.date) -> dt.date:
    try:
        sixth = born.replace(year=born.year + 6)
    except ValueError:  # 29 February
        sixth = dt.date(born.year + 6, 3, 1)
    return sixth - dt.timedelta(days=1)


class CardIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    citizen_id_number: str = Field(pattern=r"^[0-9]{12}$")


class CardReissue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["lost", "damaged", "information_changed"]


class CardPublic(BaseModel):
    card_number: str
    holder_id_number: str
    holder_full_name: str
    date_of_birth: dt.date
    kind: str
    kind_name: str
    benefit_level: int
    valid_from: dt.date
    valid_to: dt.date
    initial_facility: str
    issued_at: str | None
    reissues: int


def _public(world: World, person: Person, card: Card) -> CardPublic:
    province = world.province(person.permanent_residence)
    facility = f"Trạm Y tế — {province.short_name if province else person.permanent_residence}"
    return CardPublic(
        card_number=card.card_number,
        holder_id_number=person.id_number,
        holder_full_name=person.full_name,
        date_of_birth=person.date_of_birth,
        kind=card.kind,
        kind_name=_KIND_NAMES[card.kind],
        benefit_level=_BENEFIT[card.kind],
        valid_from=dt.date.fromisoformat(card.valid_from),
        valid_to=dt.date.fromisoformat(card.valid_to),
        initial_facility=facility,
        issued_at=card.issued_at or None,
        reissues=card.reissues,
    )


def _standing_card(world: World, person: Person) -> Card:
    """The card a synthetic citizen holds without any request."""
    today = world.today()
    kind = kind_for_age(person.age(today))
    valid_to = (
        _sixth_birthday_eve(person.date_of_birth) if kind == "TE" else dt.date(today.year, 12, 31)
    )
    return Card(
        card_number=card_number_for(person, kind),
        citizen_id_number=person.id_number,
        kind=kind,
        valid_from=dt.date(today.year, 1, 1).isoformat(),
        valid_to=valid_to.isoformat(),
        issued_at="",
        reissues=0,
    )


def find_card(world: World, number: str) -> tuple[Person, Card] | None:
    """The card with this number and its holder, issued or standing."""
    card = world.state.cards.get(number)
    if card is not None:
        person = world.person(card.citizen_id_number)
        return (person, card) if person is not None else None
    id_number = _id_from_card(number)
    person = world.person(id_number) if id_number else None
    if person is None or person.registered:
        return None
    standing = _standing_card(world, person)
    return (person, standing) if standing.card_number == number else None


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Cơ sở dữ liệu quốc gia về bảo hiểm — health insurance",
        "Health-insurance cards: issue for a child under 6, lookup, reissue (simulated).",
    )

    @app.post("/cards", response_model=CardPublic, status_code=status.HTTP_201_CREATED)
    async def issue_card(data: CardIssue) -> CardPublic:
        """Issue a health-insurance card to a child under 6."""
        person = require_person(world, data.citizen_id_number, "citizen_id_number")
        today = world.today()
        if person.age(today) >= 6:
            raise RefusedError(
                "citizen_id_number: the citizen is 6 or older; this card is for children under 6",
                code="not_eligible",
            )
        existing = world.state.card_of.get(person.id_number)
        if existing is None and not person.registered:
            existing = _standing_card(world, person).card_number
        if existing is not None:
            raise RefusedError(
                f"the child already holds card {existing}",
                code="card_exists",
                extra={"card_number": existing},
            )
        card = Card(
            card_number=card_number_for(person, "TE"),
            citizen_id_number=person.id_number,
            kind="TE",
            valid_from=max(person.date_of_birth, today).isoformat(),
            valid_to=_sixth_birthday_eve(person.date_of_birth).isoformat(),
            issued_at=now_iso(),
            reissues=0,
        )
        async with world.state.lock:
            if person.id_number in world.state.card_of:
                raise RefusedError("the child already holds a card", code="card_exists")
            await world.state.save(card)
        return _public(world, person, card)

    @app.get("/cards/{card_number}", response_model=CardPublic)
    async def get_card(card_number: CardNumber) -> CardPublic:
        """A card by its number."""
        found = find_card(world, card_number)
        if found is None:
            raise NotFound(f"no card {card_number}", code="card_not_found")
        return _public(world, *found)

    @app.post("/cards/{card_number}/reissue", response_model=CardPublic)
    async def reissue_card(card_number: CardNumber, data: CardReissue) -> CardPublic:
        """Reissue a card (lost, damaged, or its information changed); the number stays."""
        found = find_card(world, card_number)
        if found is None:
            raise NotFound(f"no card {card_number}", code="card_not_found")
        person, card = found
        renewed = Card(
            card_number=card.card_number,
            citizen_id_number=card.citizen_id_number,
            kind=card.kind,
            valid_from=card.valid_from,
            valid_to=card.valid_to,
            issued_at=now_iso(),
            reissues=card.reissues + 1,
        )
        async with world.state.lock:
            await world.state.save(renewed, replace=True)
        return _public(world, person, renewed)

    return app
