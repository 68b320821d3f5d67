"""A deterministic synthetic population of Vietnamese citizens, computed rather than stored.

A ``Population`` is defined by a ``PopulationSpec`` (seed, size, province weights, age
pyramid, reference date). Any citizen can be computed from its index, found from its ID
number and grouped with its household, in memory proportional to the number of buckets
(provinces × 2 genders × 101 birth years), never to the number of citizens: with all 63
provinces, 100 thousand and 10 million citizens both take about 5 MB.

Buckets. Every citizen belongs to one bucket, (province of birth, gender, birth year), the
three things the first six digits of a 12-digit CCCD number encode. The size of every
bucket is fixed at construction: the population is split over the provinces in proportion
to their weights, then each province over (gender, age) cells in proportion to the age
pyramid and a sex ratio by age, both by the largest-remainder method, so shares are exact
to one citizen and need no randomness. Citizens are numbered bucket by bucket (provinces
in code order, then gender, then age), so ``index → bucket`` is a bisection over the
bucket start offsets and ``(bucket, seq) → index`` an addition.

ID numbers. The last six digits are ``perm(seq)``, where ``perm`` is a four-round Feistel
network on the two three-digit halves of a number below 10**6, keyed by the seed and the
bucket. It is a bijection on [0, 10**6), so digits never collide inside a bucket and look
random, and it inverts in a few integer operations: lookup parses the ID, finds the bucket,
inverts the permutation to get ``seq``, checks ``seq`` against the bucket size (an ID
whose ``seq`` is beyond it is well formed but unassigned) and regenerates the citizen. A
bucket therefore holds at most 10**6 citizens; that is the real format's capacity too,
and more than 10 times the largest real cohort (one gender, one birth year of TP. Hồ Chí
Minh is about 70,000 people), so a spec that would overflow a bucket is refused rather
than spread.

Attributes. Names, day of birth and the like come from keyed BLAKE2b digests of
(seed, bucket, seq) for a person and of (seed, province, household) for a household; no
per-citizen random generator is created.

Households. Inside each province (everyone in a household is born in the same province,
a simplification that keeps every household computable from one province's counts):

- Adults are men from 24 and women from 22. Adult men and adult women are each ranked
  youngest first; the k-th man and the k-th woman form couple k, the head and spouse of
  household k. Because women enter the ranking two years earlier, husbands come out about
  two years older than their wives.
- Younger people are dependants. Each couple has three child slots, for children born
  when the wife was 23, 27 and 31, shifted together by -3, 0 or +3 years by the wife's
  age modulo 3 (so first births spread over 20-26; siblings are four years apart). For a
  given child age and slot there is exactly one wife age, so the slots of one child age
  are a few ranges of couple numbers; the dependants of that age are placed on them by a
  keyed affine permutation ``(m·c + b) mod n``, which inverts, so a child finds its
  couple and a couple finds its children (an empty slot is a child not born, grown up or
  never had). The pyramid gives about 1.5 slots per dependant, so a couple has 0-3
  children living with it and older couples none.
- Adults left without a partner (the oldest of the larger group: mostly widowed women)
  are elders. Ranked oldest first, they are spread evenly over the couples whose wife is
  35 or older, ranked oldest wife first, at most one per couple: an elder lives with a
  couple 20-35 years younger.
- Anyone left without a slot (only in provinces of a few hundred people, where rounding
  leaves too few couples) goes to a collective household: such people are numbered per
  province and cut into consecutive groups of at most 6 (a province with one leftover
  person has a household of one).

So a household is 2-6 people (a couple, up to three children, up to one elder), children
carry the head's family name (and never his given name), wives and elders keep their own,
and every member computes the same household and the same member list. A household lives
where its head was born unless it moved: with ``migration_rate`` it lives in one of the
``migration_hubs`` in the spec instead (internal migration toward TP. Hồ Chí Minh, Hà Nội,
Bình Dương, Đà Nẵng). Ethnicity is drawn per household from national shares, whatever
the province: another simplification.

Gender is ``"male"``/``"female"``: language-neutral codes beside the other English field
names; display text ("Nam"/"Nữ") belongs to whoever renders it.
"""

from __future__ import annotations

import hashlib
import random
import struct
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cache
from math import gcd
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

__all__ = [
    "MAX_AGE",
    "PROVINCE_CODES",
    "VIETNAM_2019_AGE_PYRAMID",
    "Citizen",
    "Gender",
    "HouseholdRole",
    "NameSet",
    "NameTables",
    "Population",
    "PopulationSpec",
    "WeightedNames",
    "is_valid_id_number",
    "load_names",
]

Gender = Literal["male", "female"]
HouseholdRole = Literal["head", "spouse", "child", "parent", "other"]

# The two-digit province codes of the national list of administrative units (63 provinces
# before the 2025 merger; the 34 merged provinces kept codes from this list). The CCCD
# province part is "0" + one of these.
_PROVINCE_NUMBERS = (
    1,
    2,
    4,
    6,
    8,
    10,
    11,
    12,
    14,
    15,
    17,
    19,
    20,
    22,
    24,
    25,
    26,
    27,
    30,
    31,
    33,
    34,
    35,
    36,
    37,
    38,
    40,
    42,
    44,
    45,
    46,
    48,
    49,
    51,
    52,
    54,
    56,
    58,
    60,
    62,
    64,
    66,
    67,
    68,
    70,
    72,
    74,
    75,
    77,
    79,
    80,
    82,
    83,
    84,
    86,
    87,
    89,
    91,
    92,
    93,
    94,
    95,
    96,
)
PROVINCE_CODES: frozenset[str] = frozenset(f"{n:02d}" for n in _PROVINCE_NUMBERS)

MAX_AGE = 100

# Percent of the population by 5-year age band, 0-4 through 80+, shaped on the 2019
# census (under 15: 24.3%, 15-64: 68.0%, 65 and over: 7.7%); the bands are approximate.
VIETNAM_2019_AGE_PYRAMID: tuple[float, ...] = (
    7.9,
    8.7,
    7.7,
    6.9,
    7.2,
    8.4,
    8.5,
    7.8,
    7.3,
    6.6,
    6.0,
    5.1,
    4.2,
    2.9,
    1.8,
    1.2,
    1.8,
)

# Share of men in each band: the sex ratio at birth has been about 111 boys per 100 girls
# for two decades, and women outlive men.
_MALE_SHARE = (
    0.526,
    0.525,
    0.521,
    0.516,
    0.508,
    0.503,
    0.502,
    0.501,
    0.500,
    0.497,
    0.490,
    0.478,
    0.467,
    0.450,
    0.430,
    0.400,
    0.340,
)

# Inside the open 80+ band, each year of age is this fraction of the one before, which
# leaves about four in 100,000 people aged 100, as in Vietnam.
_OLD_AGE_DECAY = 0.8

_GENDERS: tuple[Gender, Gender] = ("male", "female")
_MALE, _FEMALE = 0, 1
_AGES = MAX_AGE + 1
_ADULT_AGE = (24, 22)  # by gender; see "Households" above
_MOTHER_AGE_AT_BIRTH = (23, 27, 31)  # one child slot per entry, before the shift below
# Added to the mother's ages at birth by the wife's age modulo 3. Whole multiples of 3 keep
# "wife age → child age" one-to-one for each slot, so every child age still has exactly
# one wife age per slot, while first births spread over 20, 23 and 26.
_MOTHER_AGE_SHIFT = (0, 3, -3)
_ELDER_HOST_MIN_WIFE_AGE = 35  # see _Province.host_of
_CHILD_SLOTS = len(_MOTHER_AGE_AT_BIRTH)
_GROUP_SIZE = 6
_BUCKET_CAPACITY = 10**6
_FAMILY, _GROUP = 0, 1  # household kinds; the digit after the province in a household id

_DEFAULT_HUBS: Mapping[str, float] = MappingProxyType(
    {"79": 0.45, "01": 0.30, "74": 0.15, "48": 0.10}
)
_URBAN_SHARE = 0.30  # Vietnam 2019: 34% urban; a hub's residents are mostly urban
_HUB_URBAN_SHARE = 0.80
_SOUTH_FROM = 70  # provinces from Bình Phước southward call a hamlet "ấp", not "thôn"

_NAMES_FILE = Path(__file__).with_name("data") / "names.yaml"


@dataclass(frozen=True, slots=True)
class Citizen:
    """One synthetic citizen, as the population database would return it."""

    id_number: str
    full_name: str
    family_name: str
    middle_name: str
    given_name: str
    gender: Gender
    date_of_birth: date
    province_of_birth: str
    permanent_residence: str
    address: str
    household_id: str
    household_role: HouseholdRole
    ethnicity: str

    def age(self, on: date) -> int:
        """Age in completed years on the given day."""
        birth = self.date_of_birth
        return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass(frozen=True, kw_only=True)
class PopulationSpec:
    """What a population is computed from; equal specs give equal populations."""

    provinces: Mapping[str, int]  # two-digit province code -> weight, e.g. 2019 population
    size: int = 100_000
    seed: int = 20200731
    # Ages are counted to this day; birth years run from 101 years before its year to the
    # year before it (so a late reference date leaves its own year's births out).
    reference_date: date = date(2026, 1, 1)
    age_pyramid: tuple[float, ...] = VIETNAM_2019_AGE_PYRAMID
    migration_rate: float = 0.10  # share of households living in a hub, not at home
    migration_hubs: Mapping[str, float] = field(default_factory=lambda: _DEFAULT_HUBS)

    def __post_init__(self) -> None:
        if not self.provinces:
            raise ValueError("provinces: at least one province is needed")
        for code, weight in self.provinces.items():
            if code not in PROVINCE_CODES:
                raise ValueError(f"provinces: {code!r} is not a two-digit province code")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
                raise ValueError(f"provinces: weight of {code} must be a positive integer")
        for code, share in self.migration_hubs.items():
            if code not in PROVINCE_CODES or not share > 0:
                raise ValueError(f"migration_hubs: bad entry {code!r}: {share!r}")
        if self.size < 1:
            raise ValueError("size must be at least 1")
        if len(self.age_pyramid) != 17 or not all(s > 0 for s in self.age_pyramid):
            raise ValueError("age_pyramid: 17 positive shares, 0-4 through 80+")
        if not 0 <= self.migration_rate <= 1:
            raise ValueError("migration_rate must be between 0 and 1")
        # Birth years must be encodable: the CCCD century digit covers 1900-2399.
        if not 1901 + MAX_AGE <= self.reference_date.year <= 2400:
            raise ValueError("reference_date: birth years would fall outside 1900-2399")
        # Freeze the mappings: the spec is a value and a Population keeps it.
        object.__setattr__(
            self, "provinces", MappingProxyType(dict(sorted(self.provinces.items())))
        )
        object.__setattr__(self, "migration_hubs", MappingProxyType(dict(self.migration_hubs)))
        object.__setattr__(self, "age_pyramid", tuple(self.age_pyramid))

    def __hash__(self) -> int:
        # The generated hash would fail on the mappings; hash their items instead, so a
        # spec can key a cache of populations.
        return hash(
            (
                tuple(self.provinces.items()),
                self.size,
                self.seed,
                self.reference_date,
                self.age_pyramid,
                self.migration_rate,
                tuple(self.migration_hubs.items()),
            )
        )


@dataclass(frozen=True, slots=True)
class WeightedNames:
    """Names with integer weights, picked by a uniform 32-bit number."""

    names: tuple[str, ...]
    cumulative: tuple[int, ...]

    @classmethod
    def from_weights(cls, weights: Mapping[str, int]) -> WeightedNames:
        """Names in the mapping's order, each with its positive integer weight."""
        cumulative, total = [], 0
        for weight in weights.values():
            total += weight
            cumulative.append(total)
        return cls(tuple(weights), tuple(cumulative))

    def pick(self, u32: int) -> str:
        """The name whose share of the weight contains u32 / 2**32."""
        return self.names[bisect_right(self.cumulative, (u32 * self.cumulative[-1]) >> 32)]


@dataclass(frozen=True, slots=True)
class NameSet:
    """The names one ethnic group draws from."""

    family: WeightedNames
    middle: tuple[WeightedNames, WeightedNames]  # by gender
    given: tuple[WeightedNames, WeightedNames]


@dataclass(frozen=True, slots=True)
class NameTables:
    """The names file, validated: name lists per ethnic group and address words."""

    ethnic_groups: WeightedNames
    by_group: Mapping[str, NameSet]
    streets: tuple[str, ...]
    wards: tuple[str, ...]


def load_names(path: Path | None = None) -> NameTables:
    """Read and validate a names file (the packaged ``data/names.yaml`` by default)."""
    if path is None:
        return _packaged_names()
    return _parse_names(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


@cache
def _packaged_names() -> NameTables:
    # Read once per process, on first use, never at import.
    return _parse_names(yaml.safe_load(_NAMES_FILE.read_text(encoding="utf-8")), "names.yaml")


def _parse_names(raw: Any, source: str) -> NameTables:
    def fail(problem: str) -> ValueError:
        return ValueError(f"{source}: {problem}")

    def text(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise fail(f"{where}: {value!r} is not a name")
        return unicodedata.normalize("NFC", value.strip())

    def weighted(value: Any, where: str) -> WeightedNames:
        if not isinstance(value, dict) or not value:
            raise fail(f"{where}: expected a non-empty mapping of name to weight")
        scaled: dict[str, int] = {}
        for name, weight in value.items():
            # Weights are rounded to integers so that picks are exact and platform-free.
            milli = round(weight * 1000) if isinstance(weight, int | float) else 0
            if isinstance(weight, bool) or milli <= 0:
                raise fail(f"{where}: weight of {name!r} must be a positive number")
            key = text(name, where)
            if key in scaled:
                raise fail(f"{where}: {key} is listed twice")
            scaled[key] = milli
        return WeightedNames.from_weights(scaled)

    def by_gender(value: Any, where: str) -> tuple[WeightedNames, WeightedNames]:
        if not isinstance(value, dict) or set(value) != set(_GENDERS):
            raise fail(f"{where}: expected the keys 'male' and 'female'")
        male = weighted(value["male"], f"{where}.male")
        return male, weighted(value["female"], f"{where}.female")

    def words(value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise fail(f"{where}: expected a non-empty list")
        return tuple(text(v, where) for v in value)

    if not isinstance(raw, dict):
        raise fail("expected a mapping at the top level")
    general = NameSet(
        family=weighted(raw.get("family_names"), "family_names"),
        middle=by_gender(raw.get("middle_names"), "middle_names"),
        given=by_gender(raw.get("given_names"), "given_names"),
    )
    groups = raw.get("ethnic_groups")
    if not isinstance(groups, list) or not groups:
        raise fail("ethnic_groups: expected a non-empty list")
    group_weights: dict[str, float] = {}
    by_group: dict[str, NameSet] = {}
    for i, entry in enumerate(groups):
        where = f"ethnic_groups[{i}]"
        if not isinstance(entry, dict):
            raise fail(f"{where}: expected a mapping")
        unknown = set(entry) - {"name", "weight", "family_names", "middle_names", "given_names"}
        if unknown:
            raise fail(f"{where}: unknown keys {sorted(unknown)}")
        name = text(entry.get("name"), where)
        if name in group_weights:
            raise fail(f"{where}: {name} is listed twice")
        group_weights[name] = entry.get("weight", 0)
        family = entry.get("family_names")
        middle = entry.get("middle_names")
        given = entry.get("given_names")
        by_group[name] = NameSet(
            family=general.family if family is None else weighted(family, f"{where}.family_names"),
            middle=general.middle if middle is None else by_gender(middle, f"{where}.middle_names"),
            given=general.given if given is None else by_gender(given, f"{where}.given_names"),
        )
    places = raw.get("places")
    if not isinstance(places, dict):
        raise fail("places: expected a mapping")
    return NameTables(
        ethnic_groups=weighted(group_weights, "ethnic_groups"),
        by_group=MappingProxyType(by_group),
        streets=words(places.get("streets"), "places.streets"),
        wards=words(places.get("wards"), "places.wards"),
    )


def is_valid_id_number(value: str, *, on: date | None = None) -> bool:
    """Whether value is a well-formed 12-digit CCCD number, born no later than ``on``."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return False
    if value[0] != "0" or value[1:3] not in PROVINCE_CODES:
        return False
    # Every digit 0-9 is a defined gender-and-century code (0/1 for 1900-1999 up to 8/9
    # for 2300-2399), so consistency can only mean a birth year that is not in the future.
    return on is None or _birth_year(value) <= on.year


def _birth_year(id_number: str) -> int:
    return 1900 + 100 * (int(id_number[3]) // 2) + int(id_number[4:6])


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split total into parts proportional to weights (largest remainder, ties by position)."""
    weight_sum = sum(weights)
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    short = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:short]:
        parts[i] += 1
    return parts


def _cell_weights(pyramid: Sequence[float]) -> list[int]:
    """Integer weights of the (gender, age) cells, gender-major, from band shares."""
    old = [_OLD_AGE_DECAY**k for k in range(_AGES - 80)]
    by_age = []
    for age in range(_AGES):
        band = min(age // 5, 16)
        within = 1 / 5 if band < 16 else old[age - 80] / sum(old)
        by_age.append((pyramid[band] * within, _MALE_SHARE[band]))
    # Integers keep the apportionment exact; 2**40 keeps every ratio to 12 digits.
    male = [round(share * m * 2**40) for share, m in by_age]
    female = [round(share * (1 - m) * 2**40) for share, m in by_age]
    return male + female


@dataclass(frozen=True, slots=True)
class _Slots:
    """People of one age placed on couple slots by an invertible affine permutation."""

    people: int
    capacity: int
    ranges: tuple[tuple[int, int], ...]  # couple number ranges [lo, hi), one per slot kind
    modulus: int
    mul: int
    add: int
    inv: int

    def slot_of(self, person: int) -> int:
        return (self.mul * person + self.add) % self.modulus

    def person_at(self, slot: int) -> int:
        return (self.inv * (slot - self.add)) % self.modulus

    def couple_at(self, slot: int) -> int:
        for lo, hi in self.ranges:
            if slot < hi - lo:
                return lo + slot
            slot -= hi - lo
        raise AssertionError("slot beyond capacity")

    def slot_for(self, kind: int, couple: int) -> int:
        return sum(hi - lo for lo, hi in self.ranges[:kind]) + couple - self.ranges[kind][0]


def _make_slots(people: int, ranges: tuple[tuple[int, int], ...], key: int) -> _Slots | None:
    if people == 0:
        return None
    capacity = sum(hi - lo for lo, hi in ranges)
    modulus = max(people, capacity)
    mul = key % modulus or 1
    while gcd(mul, modulus) != 1:
        mul += 1
    add = (key >> 64) % modulus
    return _Slots(people, capacity, ranges, modulus, mul, add, pow(mul, -1, modulus))


@dataclass(frozen=True, slots=True)
class _Province:
    code: str
    code_int: int
    number: int  # position in code order
    counts: tuple[tuple[int, ...], tuple[int, ...]]  # [gender][age]
    adult_rank: tuple[tuple[int, ...], tuple[int, ...]]  # [gender][age]: first adult's rank
    couples: int
    surplus_from: tuple[tuple[int, ...], tuple[int, ...]]  # [gender][age]: first elder's seq
    elder_from: tuple[int, ...]  # [MAX_AGE - age]: elders older than age, oldest first
    hosts: int  # couples that can take an elder: the last ones, wife 35 or older
    hubs: WeightedNames | None  # where a migrating household goes
    child_slots: tuple[_Slots | None, ...] = ()  # by age
    leftover_start: tuple[int, ...] = (0,)  # children without a slot, by age

    @property
    def placed_elders(self) -> int:
        return min(self.elder_from[-1], self.hosts)

    @property
    def leftovers(self) -> int:
        return self.leftover_start[-1] + self.elder_from[-1] - self.placed_elders

    @property
    def groups(self) -> int:
        return -(-self.leftovers // _GROUP_SIZE)

    def wives(self, age: int) -> tuple[int, int]:
        """The couple numbers whose wife has this age."""
        if not _ADULT_AGE[_FEMALE] <= age <= MAX_AGE:
            return (0, 0)
        lo = self.adult_rank[_FEMALE][age]
        return (min(lo, self.couples), min(lo + self.counts[_FEMALE][age], self.couples))

    def dependants(self, age: int) -> tuple[int, int]:
        """How many boys and girls of this age live with their parents."""
        return (
            self.counts[_MALE][age] if age < _ADULT_AGE[_MALE] else 0,
            self.counts[_FEMALE][age] if age < _ADULT_AGE[_FEMALE] else 0,
        )

    def dependant(self, age: int, person: int) -> tuple[int, int, int]:
        """(gender, age, seq) of the person-th dependant of an age: boys first, then girls."""
        boys = self.dependants(age)[_MALE]
        return (_MALE, age, person) if person < boys else (_FEMALE, age, person - boys)

    def elder_number(self, gender: int, age: int, seq: int) -> int:
        """An elder's place among all elders, oldest first, men before women of an age."""
        number = self.elder_from[MAX_AGE - age] + seq - self.surplus_from[gender][age]
        if gender == _FEMALE:
            number += self.counts[_MALE][age] - self.surplus_from[_MALE][age]
        return number

    def elder(self, number: int) -> tuple[int, int, int]:
        """(gender, age, seq) of an elder from its place."""
        age = MAX_AGE - (bisect_right(self.elder_from, number) - 1)
        person = number - self.elder_from[MAX_AGE - age]
        men = self.counts[_MALE][age] - self.surplus_from[_MALE][age]
        if person < men:
            return _MALE, age, self.surplus_from[_MALE][age] + person
        return _FEMALE, age, self.surplus_from[_FEMALE][age] + person - men

    # Elders, oldest first, are spread evenly over the hosts, oldest wife first: the oldest
    # elder joins the oldest couple and the youngest elder a couple with a wife of 35, so
    # an elder is 20-35 years older than the wife; no couple gets two.

    def host_of(self, elder: int) -> int:
        return self.couples - 1 - elder * self.hosts // self.placed_elders

    def elder_of(self, couple: int) -> int | None:
        host, placed = self.couples - 1 - couple, self.placed_elders
        if host >= self.hosts or placed == 0:
            return None
        elder = -(-host * placed // self.hosts)
        return elder if elder < placed and elder * self.hosts // placed == host else None

    def group_start(self, group: int) -> int:
        return group * self.leftovers // self.groups


def _mother_age(kind: int, child_age: int) -> int:
    """The age of the wife whose slot of this kind holds a child of this age."""
    base = child_age + _MOTHER_AGE_AT_BIRTH[kind]
    return base + _MOTHER_AGE_SHIFT[base % 3]


def _keyed_int(key: bytes, tag: bytes, *numbers: int) -> int:
    data = tag + b"".join(n.to_bytes(8, "little", signed=True) for n in numbers)
    return int.from_bytes(hashlib.blake2b(data, key=key, digest_size=32).digest(), "little")


def _build_province(
    code: str, number: int, cells: Sequence[int], key: bytes, hubs: WeightedNames | None
) -> _Province:
    counts = (tuple(cells[:_AGES]), tuple(cells[_AGES:]))
    ranks: list[tuple[int, ...]] = []
    for gender in (_MALE, _FEMALE):
        running = [0]
        for age in range(_AGES):
            adult = age >= _ADULT_AGE[gender]
            running.append(running[-1] + (counts[gender][age] if adult else 0))
        ranks.append(tuple(running))
    adult_rank = (ranks[_MALE], ranks[_FEMALE])
    couples = min(adult_rank[_MALE][-1], adult_rank[_FEMALE][-1])
    surplus_from = tuple(
        tuple(
            max(0, min(couples - adult_rank[g][age], counts[g][age]))
            if age >= _ADULT_AGE[g]
            else counts[g][age]
            for age in range(_AGES)
        )
        for g in (_MALE, _FEMALE)
    )
    elder_from = [0]
    for age in reversed(range(_AGES)):
        elders = sum(counts[g][age] - surplus_from[g][age] for g in (_MALE, _FEMALE))
        elder_from.append(elder_from[-1] + elders)
    hosts = couples - min(adult_rank[_FEMALE][_ELDER_HOST_MIN_WIFE_AGE], couples)
    province = _Province(
        code,
        int(code),
        number,
        counts,
        adult_rank,
        couples,
        (surplus_from[0], surplus_from[1]),
        tuple(elder_from),
        hosts,
        hubs,
    )
    child_slots = tuple(
        _make_slots(
            sum(province.dependants(age)),
            tuple(province.wives(_mother_age(kind, age)) for kind in range(_CHILD_SLOTS)),
            _keyed_int(key, b"child-slots", province.code_int, age),
        )
        for age in range(_AGES)
    )
    leftover_start = [0]
    for slots in child_slots:
        overflow = 0 if slots is None else max(0, slots.people - slots.capacity)
        leftover_start.append(leftover_start[-1] + overflow)
    return replace(province, child_slots=child_slots, leftover_start=tuple(leftover_start))


# A household seen from one member: (kind, number, role).
_Membership = tuple[int, int, HouseholdRole]
# A citizen's coordinates: (province, gender, age, seq).
_Coords = tuple[_Province, int, int, int]


class Population:
    """A synthetic population computed on demand from a ``PopulationSpec``."""

    def __init__(self, spec: PopulationSpec, *, names: NameTables | None = None) -> None:
        self.spec = spec
        self._names = names if names is not None else load_names()
        self._key = hashlib.blake2b(str(spec.seed).encode(), digest_size=32).digest()
        self._year0 = spec.reference_date.year - 1  # birth year of age 0
        # Day-of-birth tables by age: first ordinal of the birth year and its length.
        self._year_start = tuple(date(self._year0 - a, 1, 1).toordinal() for a in range(_AGES))
        self._year_days = tuple(
            date(self._year0 - a + 1, 1, 1).toordinal() - self._year_start[a] for a in range(_AGES)
        )
        self._person_hash = hashlib.blake2b(key=self._key, digest_size=32, person=b"citizen")
        self._household_hash = hashlib.blake2b(key=self._key, digest_size=32, person=b"household")
        # Thresholds on uniform 32-bit numbers, for draws made once per household.
        self._migrate_below = round(spec.migration_rate * 2**32)
        self._urban_below = {hub: round(_HUB_URBAN_SHARE * 2**32) for hub in spec.migration_hubs}
        self._rural_urban_below = round(_URBAN_SHARE * 2**32)

        codes = list(spec.provinces)
        per_province = _apportion(spec.size, list(spec.provinces.values()))
        weights = _cell_weights(spec.age_pyramid)
        self._provinces: list[_Province] = []
        self._starts = [0]  # index of the first citizen of each bucket, and the size at the end
        for number, (code, count) in enumerate(zip(codes, per_province, strict=True)):
            cells = _apportion(count, weights)
            if max(cells) > _BUCKET_CAPACITY:
                raise ValueError(
                    f"province {code}: {max(cells)} citizens of one gender and birth year; "
                    f"a CCCD number holds at most {_BUCKET_CAPACITY} (lower size or add provinces)"
                )
            hub_weights = {
                hub: max(1, round(share * 1000))
                for hub, share in spec.migration_hubs.items()
                if hub in spec.provinces and hub != code
            }
            hubs = (
                WeightedNames.from_weights(hub_weights)
                if hub_weights and spec.migration_rate > 0
                else None
            )
            self._provinces.append(_build_province(code, number, cells, self._key, hubs))
            for n in cells:
                self._starts.append(self._starts[-1] + n)
        self._by_code = {p.code: p for p in self._provinces}
        # Feistel round table and per-bucket round keys for the six random digits.
        rng = random.Random(_keyed_int(self._key, b"feistel"))
        self._round_table = tuple(rng.randrange(1000) for _ in range(1000))
        self._round_keys = tuple(
            tuple((bits >> shift) % 1000 for shift in (0, 16, 32, 48))
            for bits in (rng.getrandbits(64) for _ in range(len(self._starts) - 1))
        )

    def __len__(self) -> int:
        return self.spec.size

    def citizen(self, index: int) -> Citizen:
        """The citizen with this index, 0 <= index < len(self)."""
        if not 0 <= index < self.spec.size:
            raise IndexError(f"citizen index {index} out of range 0..{self.spec.size - 1}")
        bucket = bisect_right(self._starts, index) - 1
        number, rest = divmod(bucket, 2 * _AGES)
        gender, age = divmod(rest, _AGES)
        return self._citizen(self._provinces[number], gender, age, index - self._starts[bucket])

    def lookup(self, id_number: str) -> Citizen | None:
        """The citizen with this ID number, or None if it is malformed or unassigned."""
        coords = self._coords(id_number)
        return None if coords is None else self._citizen(*coords)

    def household_members(self, id_number: str) -> list[Citizen]:
        """The household of this ID number's citizen, head first; empty if the ID is unknown."""
        coords = self._coords(id_number)
        if coords is None:
            return []
        province = coords[0]
        kind, number, _ = self._membership(*coords)
        members = (
            self._family(province, number) if kind == _FAMILY else self._group(province, number)
        )
        return [self._citizen(province, *m) for m in members]

    def iter_citizens(self, start: int = 0, stop: int | None = None) -> Iterator[Citizen]:
        """The citizens with indices in [start, stop), in index order."""
        stop = self.spec.size if stop is None else min(stop, self.spec.size)
        for index in range(max(start, 0), stop):
            yield self.citizen(index)

    def sample(
        self,
        rng: random.Random | int,
        n: int,
        *,
        province: str | None = None,
        max_age: int | None = None,
    ) -> list[Citizen]:
        """n distinct citizens drawn uniformly, optionally born in a province or at most max_age."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        ranges = []  # (first index, count) of every eligible bucket
        for number, p in enumerate(self._provinces):
            if province is not None and p.code != province:
                continue
            for gender in (_MALE, _FEMALE):
                for age in range(_AGES if max_age is None else max(0, min(max_age + 1, _AGES))):
                    bucket = (number * 2 + gender) * _AGES + age
                    first, end = self._starts[bucket], self._starts[bucket + 1]
                    if end > first:
                        ranges.append((first, end - first))
        offsets = [0]
        for _, count in ranges:
            offsets.append(offsets[-1] + count)
        total = offsets[-1]
        if n > total:
            raise ValueError(f"asked for {n} citizens, only {total} match")
        chosen: list[Citizen] = []
        seen: set[int] = set()
        # Bucket ages are nominal (reference year minus birth year minus one); a citizen
        # whose birthday is on or before the reference date's day of the year is one year
        # older, so the oldest eligible bucket is filtered citizen by citizen.
        while len(chosen) < n and len(seen) < total:
            position = rng.randrange(total)
            if position in seen:
                continue
            seen.add(position)
            i = bisect_right(offsets, position) - 1
            c = self.citizen(ranges[i][0] + position - offsets[i])
            if max_age is None or c.age(self.spec.reference_date) <= max_age:
                chosen.append(c)
        if len(chosen) < n:
            raise ValueError(f"asked for {n} citizens, only {len(chosen)} match")
        return chosen

    def registered_id_number(
        self, province: str, gender: Gender, birth_year: int, ordinal: int
    ) -> str:
        """The ID number of the ``ordinal``-th person registered after the synthetic ones.

        Births registered at runtime need ID numbers that no synthetic citizen holds: in a
        bucket the population fills, they take the sequence numbers after its last member
        (``lookup`` never finds them: the nodes keep those people in their own state); in a
        bucket it does not have (a birth year after the reference date's, a province outside
        the spec) the permutation is keyed by the bucket's own coordinates.
        """
        if ordinal < 0:
            raise ValueError(f"ordinal {ordinal} is negative")
        if province not in PROVINCE_CODES:
            raise ValueError(f"unknown province code {province!r}")
        g = _MALE if gender == "male" else _FEMALE
        century = (birth_year // 100) - 19
        if not 0 <= century <= 4:
            raise ValueError(f"birth year {birth_year} outside 1900-2399")
        prefix = f"0{province}{century * 2 + g}{birth_year % 100:02d}"
        p = self._by_code.get(province)
        age = self._year0 - birth_year
        if p is not None and 0 <= age <= MAX_AGE:
            bucket = (p.number * 2 + g) * _AGES + age
            seq = p.counts[g][age] + ordinal
            if seq >= _BUCKET_CAPACITY:
                raise ValueError(f"bucket {prefix} is full")
            return prefix + f"{self._permute(bucket, seq):06d}"
        if ordinal >= _BUCKET_CAPACITY:
            raise ValueError(f"bucket {prefix} is full")
        keys = tuple(
            _keyed_int(self._key, b"registered", int(province), g, birth_year, shift) % 1000
            for shift in range(4)
        )
        table = self._round_table
        left, right = divmod(ordinal, 1000)
        for k in keys:
            left, right = right, (left + table[(right + k) % 1000]) % 1000
        return prefix + f"{left * 1000 + right:06d}"

    # -- coordinates ------------------------------------------------------------------

    def _coords(self, id_number: str) -> _Coords | None:
        if not is_valid_id_number(id_number):
            return None
        province = self._by_code.get(id_number[1:3])
        if province is None:
            return None
        gender = int(id_number[3]) % 2
        age = self._year0 - _birth_year(id_number)
        if not 0 <= age <= MAX_AGE:
            return None
        bucket = (province.number * 2 + gender) * _AGES + age
        seq = self._unpermute(bucket, int(id_number[6:]))
        if seq >= province.counts[gender][age]:
            return None
        return province, gender, age, seq

    def _permute(self, bucket: int, seq: int) -> int:
        table = self._round_table
        left, right = divmod(seq, 1000)
        for k in self._round_keys[bucket]:
            left, right = right, (left + table[(right + k) % 1000]) % 1000
        return left * 1000 + right

    def _unpermute(self, bucket: int, digits: int) -> int:
        table = self._round_table
        left, right = divmod(digits, 1000)
        for k in reversed(self._round_keys[bucket]):
            left, right = (right - table[(left + k) % 1000]) % 1000, left
        return left * 1000 + right

    # -- households -------------------------------------------------------------------

    def _membership(self, p: _Province, gender: int, age: int, seq: int) -> _Membership:
        if age < _ADULT_AGE[gender]:
            slots = p.child_slots[age]
            assert slots is not None  # a dependant of this age exists, so slots were made
            slot = slots.slot_of(seq + (p.dependants(age)[_MALE] if gender == _FEMALE else 0))
            if slot < slots.capacity:
                return _FAMILY, slots.couple_at(slot), "child"
            leftover = p.leftover_start[age] + slot - slots.capacity
        else:
            rank = p.adult_rank[gender][age] + seq
            if rank < p.couples:
                return _FAMILY, rank, "head" if gender == _MALE else "spouse"
            elder = p.elder_number(gender, age, seq)
            if elder < p.placed_elders:
                return _FAMILY, p.host_of(elder), "parent"
            leftover = p.leftover_start[-1] + elder - p.placed_elders
        group = leftover * p.groups // p.leftovers
        while p.group_start(group + 1) <= leftover:
            group += 1
        return _GROUP, group, "head" if leftover == p.group_start(group) else "other"

    def _family(self, p: _Province, couple: int) -> list[tuple[int, int, int]]:
        """(gender, age, seq) of a couple, their children (eldest first) and their elder."""
        members = []
        for gender in (_MALE, _FEMALE):
            ranks = p.adult_rank[gender]
            age = bisect_right(ranks, couple) - 1
            members.append((gender, age, couple - ranks[age]))
        wife_age = members[1][1]
        for kind in range(_CHILD_SLOTS):
            age = wife_age - _MOTHER_AGE_AT_BIRTH[kind] - _MOTHER_AGE_SHIFT[wife_age % 3]
            slots = p.child_slots[age] if age >= 0 else None
            if slots is not None:
                person = slots.person_at(slots.slot_for(kind, couple))
                if person < slots.people:
                    members.append(p.dependant(age, person))
        elder = p.elder_of(couple)
        if elder is not None:
            members.append(p.elder(elder))
        return members

    def _group(self, p: _Province, group: int) -> list[tuple[int, int, int]]:
        """(gender, age, seq) of the members of a collective household, in order."""
        members = []
        for leftover in range(p.group_start(group), p.group_start(group + 1)):
            if leftover >= p.leftover_start[-1]:
                members.append(p.elder(p.placed_elders + leftover - p.leftover_start[-1]))
                continue
            age = bisect_right(p.leftover_start, leftover) - 1
            slots = p.child_slots[age]
            assert slots is not None
            slot = slots.capacity + leftover - p.leftover_start[age]
            members.append(p.dependant(age, slots.person_at(slot)))
        return members

    # -- attributes -------------------------------------------------------------------

    def _citizen(self, p: _Province, gender: int, age: int, seq: int) -> Citizen:
        kind, number, role = self._membership(p, gender, age, seq)
        h = self._household_hash.copy()
        h.update(struct.pack("<BBI", p.code_int, kind, number))
        home = struct.unpack("<8I", h.digest())
        tables = self._names
        ethnicity = tables.ethnic_groups.pick(home[0])
        names = tables.by_group[ethnicity]
        own = self._own_bits(p, gender, age, seq)
        father = None
        if role == "child":
            # Custom forbids giving a child the father's given name, so it is avoided.
            head_age = bisect_right(p.adult_rank[_MALE], number) - 1
            head_seq = number - p.adult_rank[_MALE][head_age]
            father = self._given_name(names, _MALE, self._own_bits(p, _MALE, head_age, head_seq))
        middle, given = self._given_name(names, gender, own, father)
        # Children take the head's family name; a spouse, an elder or a member of a
        # collective household has a name of their own.
        shares_name = kind == _FAMILY and role in ("head", "child")
        family = names.family.pick(home[1] if shares_name else own[1])

        residence = p.code
        if p.hubs is not None and home[2] < self._migrate_below:
            residence = p.hubs.pick(home[3])
        ward = tables.wards[home[4] % len(tables.wards)]
        if home[5] < self._urban_below.get(residence, self._rural_urban_below):
            street = tables.streets[home[6] % len(tables.streets)]
            address = f"Số {1 + home[7] % 199} đường {street}, phường {ward}"
        else:
            hamlet = "Ấp" if int(residence) >= _SOUTH_FROM else "Thôn"
            address = f"{hamlet} {1 + home[7] % 12}, xã {ward}"

        year = self._year0 - age
        century_digit = 2 * ((year - 1900) // 100) + gender
        digits = self._permute((p.number * 2 + gender) * _AGES + age, seq)
        return Citizen(
            id_number=f"0{p.code}{century_digit}{year % 100:02d}{digits:06d}",
            full_name=f"{family} {middle} {given}",
            family_name=family,
            middle_name=middle,
            given_name=given,
            gender=_GENDERS[gender],
            date_of_birth=date.fromordinal(
                self._year_start[age] + ((own[0] * self._year_days[age]) >> 32)
            ),
            province_of_birth=p.code,
            permanent_residence=residence,
            address=address,
            household_id=f"{p.code}{kind}{number:09d}",
            household_role=role,
            ethnicity=ethnicity,
        )

    def _own_bits(self, p: _Province, gender: int, age: int, seq: int) -> tuple[int, ...]:
        """Eight uniform 32-bit numbers that are this citizen's own draws."""
        h = self._person_hash.copy()
        h.update(struct.pack("<BBHI", p.code_int, gender, self._year0 - age, seq))
        return struct.unpack("<8I", h.digest())

    @staticmethod
    def _given_name(
        names: NameSet, gender: int, own: tuple[int, ...], father: tuple[str, str] | None = None
    ) -> tuple[str, str]:
        """(middle, given): the first candidate that repeats neither the middle name
        ("Minh Minh" is not a name) nor the father's given name."""
        middle = names.middle[gender].pick(own[2])
        given = ""
        for u in own[3:7]:
            given = names.given[gender].pick(u)
            if given != middle and (father is None or given != father[1]):
                break
        return middle, given
