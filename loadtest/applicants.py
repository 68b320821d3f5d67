"""Applicant data that succeeds in the simulated world, drawn by the catalogue's field kinds.

The procedure catalogue says what each applicant field is (its ``kind``) and, where a
dossier needs values from a particular population to succeed, which one (its ``sample``
hint: a mother's ID number, the card of the citizen another field names, a name unique
to the run). From the catalogue and the world come:

- ``Identifiers``: pools of ID numbers, cards, parcels, tax codes, names and addresses
  that exist, drawn once per generator;
- ``field_draw``: one field's draw, compiled once, for the hot path;
- ``ApplicantGenerator``: a whole procedure's applicant data (the gateway target).

The traffic model's placeholders are drawn by ``field_draw`` too. Every hint the
catalogue accepts (``country.procedures.SAMPLES``) is drawn here; the tests keep it so.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from country.citizens import Population
from country.procedures import ApplicantField, Procedure, Sample
from country.roster import Roster
from provincial_nodes.services.business import sample_tax_codes
from provincial_nodes.services.insurance import card_number_for, kind_for_age
from provincial_nodes.services.land import sample_parcel_ids
from provincial_nodes.state import NodeState
from provincial_nodes.world import World

__all__ = [
    "ApplicantGenerator",
    "Draw",
    "Identifiers",
    "SampleError",
    "field_draw",
]

#: One field's draw: ``(i, picks) -> value``. ``i`` numbers the request in its stream (for
#: values unique to the run); ``picks`` carries pool positions between the fields of one
#: applicant that are drawn together (a citizen and that citizen's card).
Draw = Callable[[int, dict[str, int]], str]

_GENDERS = ("male", "female")
#: The kinds' defaults where the catalogue gives no hint.
_DEFAULTS: Mapping[str, Sample] = {
    "id_number": Sample("citizens"),
    "full_name": Sample("names"),
    "date": Sample("within_days", "365"),
    "card_number": Sample("cards"),
}
#: Words of a plain phrase, for a text field without a hint.
_PHRASE = "Hồ sơ nộp trực tuyến qua Cổng Dịch vụ công quốc gia"
#: Vietnamese letters only (a name must be letters): the suffix of a unique name.
_ALPHABET = "ABCDEGHIKLMNOPQRSTUVXY"


class SampleError(ValueError):
    """The world has no value that a field's kind and hint ask for."""


@dataclass(frozen=True)
class Identifiers:
    """Pools of identifiers that exist in the simulated world, drawn once per generator.

    ``cards[k]`` is the health-insurance card of ``citizens[k]``.
    """

    citizens: tuple[str, ...]
    mothers: tuple[str, ...]
    fathers: tuple[str, ...]
    cards: tuple[str, ...]
    parcels: tuple[str, ...]
    tax_codes: tuple[str, ...]
    names: tuple[str, ...]
    addresses: tuple[str, ...]

    @classmethod
    def build(
        cls, roster: Roster, population: Population, *, seed: int, size: int = 2048
    ) -> Identifiers:
        """Draw the pools; the same world and seed give the same pools."""
        rng = random.Random(seed)
        world = _offline_world(roster, population)
        today = dt.date.today()
        n = min(size, len(population))
        citizens = population.sample(rng, n)
        adults = population.sample(rng, min(len(population), 20 * max(1, n // 4)))
        women = [c for c in adults if c.gender == "female" and 20 <= c.age(today) <= 40]
        men = [c for c in adults if c.gender == "male" and 20 <= c.age(today) <= 60]
        if not women or not men:
            raise SampleError("the population has no woman aged 20-40 or man aged 20-60")
        cards = []
        for c in citizens:
            person = world.person(c.id_number)
            assert person is not None
            cards.append(card_number_for(person, kind_for_age(c.age(today))))
        codes = [p.admin_code for p in roster.provinces]
        weights = list(accumulate(roster.population(p.code) for p in roster.provinces))

        def province() -> str:
            return codes[bisect_right(weights, rng.random() * weights[-1])]

        parcels = [sample_parcel_ids(rng, province(), 1)[0] for _ in range(size)]
        tax_codes = [sample_tax_codes(rng, world, province(), 1)[0] for _ in range(size)]
        return cls(
            citizens=tuple(c.id_number for c in citizens),
            mothers=tuple(c.id_number for c in women[: max(1, n // 4)]),
            fathers=tuple(c.id_number for c in men[: max(1, n // 4)]),
            cards=tuple(cards),
            parcels=tuple(parcels),
            tax_codes=tuple(tax_codes),
            names=tuple(c.full_name for c in citizens),
            addresses=tuple(c.address for c in citizens if c.address.strip()),
        )


def _offline_world(roster: Roster, population: Population) -> World:
    # The services' sample helpers take a World but read only its roster and population;
    # the node state is never opened (no births, residences or cards of its own).
    return World(roster=roster, population=population, state=NodeState(Path(os.devnull)))


def field_draw(
    name: str,
    spec: ApplicantField,
    ids: Identifiers,
    rng: random.Random,
    *,
    today: dt.date,
    worker: int = 0,
    workers: int = 1,
    keep_pick: bool = False,
) -> Draw:
    """The draw of one field by its kind and hint, with everything it needs precomputed.

    ``worker`` of ``workers`` makes ``unique`` names distinct across the run's generators;
    ``keep_pick`` records the citizen drawn, for a ``card_of`` field of the same applicant.
    """
    choice = rng.choice
    sample = spec.sample or _DEFAULTS.get(spec.kind)
    hint = sample.name if sample is not None else None
    kind = spec.kind
    if kind == "id_number" and hint == "citizens" and keep_pick:
        citizens, randrange, size = ids.citizens, rng.randrange, len(ids.citizens)

        def citizen(i: int, picks: dict[str, int]) -> str:
            k = picks[name] = randrange(size)
            return citizens[k]

        return citizen
    if kind == "id_number":
        pools = {"citizens": ids.citizens, "mothers": ids.mothers, "fathers": ids.fathers}
        return _from(pools[str(hint)], choice)
    if kind == "full_name" and hint == "unique":
        names = ids.names

        def unique(i: int, picks: dict[str, int]) -> str:
            return f"{choice(names)} {_letters(i * workers + worker)}"

        return unique
    if kind == "full_name":
        return _from(ids.names, choice)
    if kind == "date":
        days = int(sample.arg or 1) if sample is not None else 1
        return _from(
            tuple((today - dt.timedelta(days=d)).isoformat() for d in range(1, days + 1)), choice
        )
    if kind == "gender":
        return _from(_GENDERS, choice)
    if kind == "choice":
        return _from(spec.choices, choice)
    if kind == "text" and hint == "addresses":
        fits = tuple(
            a for a in ids.addresses if spec.min_length <= len(a.strip()) <= spec.max_length
        )
        if not fits:
            raise SampleError(f"{name}: no address of the world has {_bounds(spec)} characters")
        return _from(fits, choice)
    if kind == "text":
        phrase = _phrase(spec.min_length, spec.max_length)
        return lambda i, picks: phrase
    if kind == "tax_code":
        return _from(ids.tax_codes, choice)
    if kind == "parcel_id":
        return _from(ids.parcels, choice)
    if kind == "card_number" and hint == "card_of" and sample is not None:
        cards, source = ids.cards, str(sample.arg)
        return lambda i, picks: cards[picks[source]]
    if kind == "card_number":
        return _from(ids.cards, choice)
    raise SampleError(f"{name}: no draw for kind {kind!r} with sample {sample}")


def _from(pool: tuple[str, ...], choice: Callable[[tuple[str, ...]], str]) -> Draw:
    if not pool:
        raise SampleError("an empty pool")
    return lambda i, picks: choice(pool)


def _bounds(spec: ApplicantField) -> str:
    return f"{spec.min_length} to {spec.max_length}"


def _phrase(low: int, high: int) -> str:
    # The plain phrase repeated or cut to fit; no blank at either end (the gateway trims).
    size = max(low, min(high, len(_PHRASE)))
    text = (f"{_PHRASE} " * (size // len(_PHRASE) + 1))[:size]
    return text[:-1] + "x" if text.endswith(" ") else text


def _letters(n: int) -> str:
    """``n`` written in Vietnamese capital letters: distinct for each n, letters only."""
    out = []
    while True:
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
        if not n:
            return "".join(reversed(out)).capitalize()


class ApplicantGenerator:
    """Applicant data for one procedure, by its fields' kinds and hints in the catalogue.

    Everything is worked out at construction; ``draw(i)`` costs one draw a field. A
    required field is always there; an optional one in the share ``sample_rate`` says.
    """

    def __init__(
        self,
        procedure: Procedure,
        ids: Identifiers,
        rng: random.Random,
        *,
        today: dt.date,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        fields = procedure.applicant
        sources = {
            f.sample.arg
            for f in fields.values()
            if f.sample is not None and f.sample.name == "card_of"
        }
        # A field drawn with another (card_of) comes after the one it follows.
        order = sorted(fields, key=lambda n: n not in sources)
        compiled: list[tuple[str, Draw, float]] = []
        for name in order:
            spec = fields[name]
            rate = 1.0 if spec.required else spec.sample_rate
            if rate > 0.0:
                draw = field_draw(
                    name,
                    spec,
                    ids,
                    rng,
                    today=today,
                    worker=worker,
                    workers=workers,
                    keep_pick=name in sources,
                )
                compiled.append((name, draw, rate))
        self._fields = tuple(compiled)
        self._random = rng.random

    def draw(self, i: int) -> dict[str, str]:
        """The applicant data of the stream's i-th dossier."""
        picks: dict[str, int] = {}
        data: dict[str, str] = {}
        for name, draw, rate in self._fields:
            if rate < 1.0 and self._random() >= rate:
                continue
            data[name] = draw(i, picks)
        return data
