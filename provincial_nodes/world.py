"""The simulated country the node services share: roster, population and what changed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from country.citizens import Citizen, Population, PopulationSpec
from country.roster import Province, Roster
from provincial_nodes.state import Birth, NodeState

__all__ = ["Person", "World", "build_population"]


@dataclass(frozen=True, slots=True)
class Person:
    """A citizen as the population database reports them."""

    id_number: str
    full_name: str
    gender: str
    date_of_birth: dt.date
    place_of_birth: str
    permanent_residence: str
    address: str
    ethnicity: str
    household_id: str
    #: Registered at runtime (a birth), not part of the synthetic population.
    registered: bool

    def age(self, on: dt.date) -> int:
        years = on.year - self.date_of_birth.year
        if (on.month, on.day) < (self.date_of_birth.month, self.date_of_birth.day):
            years -= 1
        return years


def build_population(roster: Roster, *, size: int, seed: int, reference: dt.date) -> Population:
    """The synthetic population, weighted by the roster's census populations."""
    weights = {p.admin_code: roster.population(p.code) for p in roster.provinces}
    return Population(
        PopulationSpec(provinces=weights, size=size, seed=seed, reference_date=reference)
    )


def _from_citizen(c: Citizen) -> Person:
    return Person(
        id_number=c.id_number,
        full_name=c.full_name,
        gender=c.gender,
        date_of_birth=c.date_of_birth,
        place_of_birth=c.province_of_birth,
        permanent_residence=c.permanent_residence,
        address=c.address,
        ethnicity=c.ethnicity,
        household_id=c.household_id,
        registered=False,
    )


@dataclass
class World:
    roster: Roster
    population: Population
    state: NodeState

    def today(self) -> dt.date:
        return dt.date.today()

    def province(self, admin_code: str) -> Province | None:
        node = self.roster.get(f"P{admin_code}")
        return node if isinstance(node, Province) else None

    def person(self, id_number: str) -> Person | None:
        """A citizen of the synthetic population or one registered since, with their address."""
        citizen = self.population.lookup(id_number)
        if citizen is not None:
            person = _from_citizen(citizen)
        else:
            birth = self.state.births_by_id.get(id_number)
            if birth is None:
                return None
            person = self._from_birth(birth)
        residence = self.state.residence.get(id_number)
        if residence is not None:
            person = replace(
                person, permanent_residence=residence.province, address=residence.address
            )
        return person

    def household(self, id_number: str) -> list[Person]:
        """The person's household: the synthetic one, plus children registered into it."""
        birth = self.state.births_by_id.get(id_number)
        if birth is not None:
            id_number = birth.mother_id_number
        members = [_from_citizen(c) for c in self.population.household_members(id_number)]
        if not members:
            mother = self.person(id_number)
            members = [mother] if mother is not None else []
        seen = {m.id_number for m in members}
        for parent in list(seen):
            for child_id in self.state.children_of.get(parent, ()):
                if child_id not in seen:
                    seen.add(child_id)
                    members.append(self._from_birth(self.state.births_by_id[child_id]))
        return [self.person(m.id_number) or m for m in members]

    def _from_birth(self, birth: Birth) -> Person:
        mother = self.person(birth.mother_id_number)
        return Person(
            id_number=birth.child_id_number,
            full_name=birth.full_name,
            gender=birth.gender,
            date_of_birth=dt.date.fromisoformat(birth.date_of_birth),
            place_of_birth=birth.place_of_birth,
            permanent_residence=mother.permanent_residence if mother else birth.place_of_birth,
            address=mother.address if mother else "",
            ethnicity=mother.ethnicity if mother else "Kinh",
            household_id=mother.household_id if mother else f"HB-{birth.record_number}",
            registered=True,
        )
