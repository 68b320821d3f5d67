"""The synthetic population: determinism, ID numbers, lookup, names, shape and households."""

from __future__ import annotations

import random
import tracemalloc
import unicodedata
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from country.citizens import (
    MAX_AGE,
    VIETNAM_2019_AGE_PYRAMID,
    Citizen,
    Population,
    PopulationSpec,
    is_valid_id_number,
    load_names,
)

# 2019 census populations of a few provinces: two hubs, two mid-size, two smaller ones.
WEIGHTS = {
    "01": 8_053_663,  # Hà Nội
    "79": 8_993_082,  # TP. Hồ Chí Minh
    "74": 2_426_561,  # Bình Dương
    "48": 1_134_310,  # Đà Nẵng
    "94": 1_199_653,  # Sóc Trăng
    "02": 854_679,  # Hà Giang
}
REFERENCE = date(2026, 1, 1)
NAMES_FILE = Path(__file__).parents[2] / "country" / "data" / "names.yaml"


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(PopulationSpec(provinces=WEIGHTS, reference_date=REFERENCE))


@pytest.fixture(scope="module")
def citizens(population: Population) -> list[Citizen]:
    return list(population.iter_citizens())


def _sample_indices(n: int, size: int, seed: int = 7) -> list[int]:
    return random.Random(seed).sample(range(size), n)


# -- determinism ---------------------------------------------------------------------


def test_the_same_spec_gives_the_same_citizens(population: Population) -> None:
    again = Population(PopulationSpec(provinces=WEIGHTS, reference_date=REFERENCE))
    for index in [*range(200), *_sample_indices(500, len(population))]:
        assert again.citizen(index) == population.citizen(index)


def test_another_seed_gives_other_citizens(population: Population) -> None:
    other = Population(PopulationSpec(provinces=WEIGHTS, seed=1, reference_date=REFERENCE))
    indices = _sample_indices(1000, len(population))
    ours = [population.citizen(i) for i in indices]
    theirs = [other.citizen(i) for i in indices]
    assert sum(a.id_number != b.id_number for a, b in zip(ours, theirs, strict=True)) > 990
    assert sum(a.full_name != b.full_name for a, b in zip(ours, theirs, strict=True)) > 800


# -- ID numbers ----------------------------------------------------------------------


def test_every_id_number_is_valid_and_unique(citizens: list[Citizen]) -> None:
    ids = [c.id_number for c in citizens]
    assert len(ids) == 100_000
    assert len(set(ids)) == len(ids)
    assert all(is_valid_id_number(i, on=REFERENCE) for i in ids)


def test_id_number_encodes_province_gender_century_and_year(citizens: list[Citizen]) -> None:
    for c in citizens[::97]:
        year = c.date_of_birth.year
        century = (year - 1900) // 100
        assert c.id_number[:3] == "0" + c.province_of_birth
        assert int(c.id_number[3]) == 2 * century + (c.gender == "female")
        assert c.id_number[4:6] == f"{year % 100:02d}"
    # Both centuries occur, with their own digits.
    assert {c.id_number[3] for c in citizens} == {"0", "1", "2", "3"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00109512345",  # 11 digits
        "0010951234567",  # 13 digits
        "00109512345a",
        "00109512345 ",
        " 00109512345",
        "101095123456",  # the province part starts with 0
        "099095123456",  # no province 99
        "003095123456",  # no province 03
        "٠٠١٠٩٥١٢٣٤٥٦",  # Arabic-Indic digits are digits to str.isdigit, not to a CCCD
        "００１０９５１２３４５６",  # full-width digits
    ],
)
def test_malformed_id_numbers_are_refused(population: Population, value: str) -> None:
    assert not is_valid_id_number(value)
    assert population.lookup(value) is None
    assert population.household_members(value) == []


def test_a_birth_year_in_the_future_is_refused_given_a_date() -> None:
    assert is_valid_id_number("001430123456")  # male, born 2130: well formed
    assert not is_valid_id_number("001430123456", on=REFERENCE)
    assert is_valid_id_number("001326123456", on=REFERENCE)  # female, born 2026
    assert not is_valid_id_number("001327123456", on=REFERENCE)


# -- lookup --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(index=st.integers(min_value=0, max_value=99_999))
def test_lookup_finds_the_citizen_of_every_id_number(population: Population, index: int) -> None:
    c = population.citizen(index)
    assert population.lookup(c.id_number) == c


def test_a_well_formed_but_unassigned_id_number_finds_no_one(
    population: Population, citizens: list[Citizen]
) -> None:
    prefix = citizens[12_345].id_number[:6]
    unassigned = [
        f"{prefix}{digits:06d}"
        for digits in range(0, 10**6, 9973)
        if population.lookup(f"{prefix}{digits:06d}") is None
    ]
    # A bucket of this population holds a few hundred people among 10**6 numbers.
    assert len(unassigned) > 90
    assert all(is_valid_id_number(i, on=REFERENCE) for i in unassigned)
    assert population.household_members(unassigned[0]) == []


@pytest.mark.parametrize(
    "value",
    [
        "096095123456",  # Cà Mau: a real province, not in this population
        "001000123456",  # born 1900: older than anyone in it
        "001330123456",  # born 2030: after the reference date
    ],
)
def test_well_formed_id_numbers_outside_the_population_find_no_one(
    population: Population, value: str
) -> None:
    assert is_valid_id_number(value)
    assert population.lookup(value) is None


def test_citizen_index_out_of_range_is_an_index_error(population: Population) -> None:
    with pytest.raises(IndexError):
        population.citizen(len(population))
    with pytest.raises(IndexError):
        population.citizen(-1)


# -- names ---------------------------------------------------------------------------


def _names_in_file() -> tuple[set[str], set[str], set[str]]:
    raw = yaml.safe_load(NAMES_FILE.read_text(encoding="utf-8"))
    families, middles, givens = set(raw["family_names"]), set(), set()
    sections = [raw, *raw["ethnic_groups"]]
    for section in sections:
        families |= set(section.get("family_names", {}))
        for gender in ("male", "female"):
            middles |= set(section.get("middle_names", {}).get(gender, {}))
            givens |= set(section.get("given_names", {}).get(gender, {}))
    return families, middles, givens


def test_names_come_from_the_names_file_with_diacritics(citizens: list[Citizen]) -> None:
    families, middles, givens = _names_in_file()
    sample = citizens[::20]
    for c in sample:
        assert c.family_name in families
        assert c.middle_name in middles
        assert c.given_name in givens
        assert c.full_name == f"{c.family_name} {c.middle_name} {c.given_name}"
        assert unicodedata.is_normalized("NFC", c.full_name)
        assert c.given_name != c.middle_name
    with_diacritics = sum(not c.full_name.isascii() for c in sample)
    assert with_diacritics / len(sample) > 0.9


def test_family_names_follow_their_frequencies(citizens: list[Citizen]) -> None:
    shares = Counter(c.family_name for c in citizens)
    total = len(citizens)
    # Nguyễn ≈ 38% of the Kinh majority; minorities draw from their own names.
    assert 0.30 < shares["Nguyễn"] / total < 0.42
    assert 0.08 < shares["Trần"] / total < 0.13
    assert [name for name, _ in shares.most_common(4)] == ["Nguyễn", "Trần", "Lê", "Phạm"]


def test_most_citizens_are_kinh_and_minorities_exist(citizens: list[Citizen]) -> None:
    groups = Counter(c.ethnicity for c in citizens)
    assert 0.82 < groups["Kinh"] / len(citizens) < 0.89
    assert {"Tày", "Thái", "Mường", "Khmer", "Hoa", "Nùng", "H'Mông"} <= set(groups)


def test_load_names_refuses_a_bad_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(NAMES_FILE.read_text(encoding="utf-8"))
    raw["family_names"]["Nguyễn"] = 0
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="weight of 'Nguyễn'"):
        load_names(path)
    del raw["places"]
    raw["family_names"]["Nguyễn"] = 38.4
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="places"):
        load_names(path)


# -- shape of the population ---------------------------------------------------------


def test_ages_follow_the_pyramid(citizens: list[Citizen]) -> None:
    ages = [c.age(REFERENCE) for c in citizens]
    assert min(ages) == 0
    assert max(ages) <= MAX_AGE + 1
    assert all(c.date_of_birth < REFERENCE for c in citizens)
    bands = Counter(min(age // 5, 16) for age in ages)
    total = sum(VIETNAM_2019_AGE_PYRAMID)
    for band, share in enumerate(VIETNAM_2019_AGE_PYRAMID):
        assert bands[band] / len(ages) == pytest.approx(share / total, abs=0.002)
    # Children under 6 are the birth-registration and health-insurance-card services' users.
    under_six = sum(age < 6 for age in ages) / len(ages)
    assert 0.08 < under_six < 0.11


def test_more_boys_than_girls_among_children(citizens: list[Citizen]) -> None:
    young = Counter(c.gender for c in citizens if c.age(REFERENCE) < 5)
    assert 1.05 < young["male"] / young["female"] < 1.16


def test_provinces_of_birth_follow_the_weights(citizens: list[Citizen]) -> None:
    counts = Counter(c.province_of_birth for c in citizens)
    total = sum(WEIGHTS.values())
    for code, weight in WEIGHTS.items():
        assert counts[code] / len(citizens) == pytest.approx(weight / total, abs=0.001)


def test_households_migrate_only_to_hubs_in_the_population() -> None:
    weights = {k: v for k, v in WEIGHTS.items() if k != "48"}
    spec = PopulationSpec(provinces=weights, size=20_000, reference_date=REFERENCE)
    people = list(Population(spec).iter_citizens())
    assert {c.permanent_residence for c in people} <= set(weights)
    born_outside_hubs = [c for c in people if c.province_of_birth in ("94", "02")]
    moved = [c for c in born_outside_hubs if c.permanent_residence != c.province_of_birth]
    assert {c.permanent_residence for c in moved} <= {"79", "01", "74"}
    assert 0.05 < len(moved) / len(born_outside_hubs) < 0.15


# -- households ----------------------------------------------------------------------


def test_every_household_is_whole_and_agreed_on_by_its_members(
    population: Population, citizens: list[Citizen]
) -> None:
    by_household: defaultdict[str, list[str]] = defaultdict(list)
    for c in citizens:
        by_household[c.household_id].append(c.id_number)
    sizes = Counter(len(ids) for ids in by_household.values())
    assert set(sizes) <= {2, 3, 4, 5, 6}
    for household_id, ids in by_household.items():
        members = population.household_members(ids[0])
        assert sorted(m.id_number for m in members) == sorted(ids), household_id


def test_households_are_plausible_families(population: Population) -> None:
    for index in _sample_indices(400, len(population), seed=3):
        c = population.citizen(index)
        members = population.household_members(c.id_number)
        assert c in members
        assert 2 <= len(members) <= 6
        for m in members:
            assert population.household_members(m.id_number) == members
        assert len({(m.household_id, m.permanent_residence, m.address) for m in members}) == 1
        head, spouse, *others = members
        assert (head.household_role, head.gender) == ("head", "male")
        assert (spouse.household_role, spouse.gender) == ("spouse", "female")
        for child in (m for m in others if m.household_role == "child"):
            assert child.family_name == head.family_name
            assert child.given_name != head.given_name
            assert child.age(REFERENCE) + 19 <= spouse.age(REFERENCE) < child.age(REFERENCE) + 36
            assert child.age(REFERENCE) + 19 <= head.age(REFERENCE)
        for elder in (m for m in others if m.household_role == "parent"):
            assert elder.age(REFERENCE) >= spouse.age(REFERENCE) + 15


def test_a_tiny_population_still_puts_everyone_in_one_household() -> None:
    spec = PopulationSpec(provinces={"01": 3, "79": 2, "02": 1}, size=60, reference_date=REFERENCE)
    population = Population(spec)
    seen: dict[str, list[str]] = {}
    for c in population.iter_citizens():
        ids = [m.id_number for m in population.household_members(c.id_number)]
        assert c.id_number in ids
        assert 1 <= len(ids) <= 6
        assert seen.setdefault(c.household_id, ids) == ids
    assert sum(len(ids) for ids in seen.values()) == 60


# -- sampling ------------------------------------------------------------------------


def test_sample_draws_distinct_citizens_matching_the_filters(population: Population) -> None:
    children = population.sample(1, 300, province="79", max_age=5)
    assert len({c.id_number for c in children}) == 300
    assert all(c.province_of_birth == "79" and c.age(REFERENCE) <= 5 for c in children)
    assert population.sample(1, 300, province="79", max_age=5) == children
    assert population.sample(random.Random(2), 50) != population.sample(random.Random(3), 50)
    for c in population.sample(4, 100):
        assert population.lookup(c.id_number) == c


def test_sample_refuses_more_than_there_are(population: Population) -> None:
    with pytest.raises(ValueError, match="only"):
        population.sample(1, 10**6)
    with pytest.raises(ValueError, match="only"):
        population.sample(1, 1, province="96")


# -- scale and limits ----------------------------------------------------------------


def test_ten_million_citizens_are_computed_not_stored() -> None:
    tracemalloc.start()
    try:
        population = Population(
            PopulationSpec(provinces=WEIGHTS, size=10_000_000, reference_date=REFERENCE)
        )
        assert len(population) == 10_000_000
        for index in (0, 1, 4_999_999, 9_999_999, *_sample_indices(200, 10_000_000)):
            c = population.citizen(index)
            assert population.lookup(c.id_number) == c
            assert c in population.household_members(c.id_number)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_a_bucket_beyond_the_id_number_capacity_is_refused() -> None:
    # One province of 200 million: a single birth year of one gender passes 10**6.
    spec = PopulationSpec(provinces={"01": 1}, size=200_000_000, reference_date=REFERENCE)
    with pytest.raises(ValueError, match="at most 1000000"):
        Population(spec)


@pytest.mark.parametrize(
    "changes",
    [
        {"provinces": {}},
        {"provinces": {"99": 10}},
        {"provinces": {"01": 0}},
        {"provinces": {"01": 1.5}},
        {"size": 0},
        {"age_pyramid": (1.0, 2.0)},
        {"migration_rate": 1.5},
        {"migration_hubs": {"79": 0}},
        {"reference_date": date(1990, 1, 1)},
    ],
)
def test_a_bad_spec_is_refused(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {"provinces": WEIGHTS, **changes}
    with pytest.raises(ValueError, match=r"\w"):
        PopulationSpec(**arguments)  # type: ignore[arg-type]
