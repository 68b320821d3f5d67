"""The traffic model and the daily profile: plain data, plain functions."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import yaml

from country.citizens import Population
from country.procedures import load_catalogue
from country.roster import Roster, load_roster
from loadtest.applicants import Identifiers
from loadtest.profile import Shape, load_profile
from loadtest.traffic import (
    ConsumerGroup,
    ExchangeGenerator,
    ModelError,
    TrafficModel,
    consumer_weights,
    implied_savings,
    load_model,
)
from provincial_nodes.services.business import check_digit
from provincial_nodes.world import build_population


@pytest.fixture(scope="module")
def roster() -> Roster:
    return load_roster("roster-2020")


@pytest.fixture(scope="module")
def population(roster: Roster) -> Population:
    return build_population(roster, size=20_000, seed=7, reference=dt.date(2026, 1, 1))


@pytest.fixture(scope="module")
def ids(roster: Roster, population: Population) -> Identifiers:
    return Identifiers.build(roster, population, seed=3, size=512)


def test_consumers_are_weighted_by_province_population(roster: Roster) -> None:
    model = load_model()
    consumers = consumer_weights(roster, model.consumers)
    weights = consumers.weights
    assert sum(weights.values()) == pytest.approx(1.0)
    provinces = sum(w for code, w in weights.items() if code in consumers.provinces)
    assert provinces == pytest.approx(0.85)
    # Thành phố Hồ Chí Minh (P79) and Hà Nội (P01) in the ratio of their 2019 census.
    assert weights["P79"] / weights["P01"] == pytest.approx(
        roster.population("P79") / roster.population("P01")
    )
    ministries = [w for code, w in weights.items() if code not in consumers.provinces]
    assert len(ministries) == 29
    assert max(ministries) == pytest.approx(min(ministries)) == pytest.approx(0.15 / 29)


def test_consumers_left_out_are_renormalised(roster: Roster) -> None:
    groups = {"provinces": ConsumerGroup(share=0.5, weight="population")}
    consumers = consumer_weights(roster, groups, available=["P01", "P79", "BCA"])  # type: ignore[arg-type]
    assert set(consumers.weights) == {"P01", "P79"}
    assert sum(consumers.weights.values()) == pytest.approx(1.0)


def test_the_mix_follows_the_weights(roster: Roster, ids: Identifiers) -> None:
    model = load_model()
    consumers = consumer_weights(roster, model.consumers)
    generator = ExchangeGenerator(model, consumers, ids, seed=11)
    draws = [generator.next() for _ in range(40_000)]
    kinds = Counter(ex.kind for ex in draws)
    for name, share in model.mix().items():
        assert kinds[name] / len(draws) == pytest.approx(share, abs=0.01), name
    by_consumer = Counter(ex.consumer for ex in draws)
    assert by_consumer["P79"] / len(draws) == pytest.approx(consumers.weights["P79"], rel=0.15)
    for ex in draws:
        if ex.kind == "residence-registration":
            # A province's own one-stop system, called by that province only.
            assert ex.provider == ex.consumer
            assert ex.consumer in consumers.provinces
        if ex.procedure is not None:
            assert model.kind(ex.kind).procedure == ex.procedure  # type: ignore[union-attr]


def test_identifiers_exist_in_the_world(
    roster: Roster, population: Population, ids: Identifiers
) -> None:
    today = dt.date.today()
    assert all(population.lookup(i) is not None for i in ids.citizens)
    for mother in ids.mothers:
        citizen = population.lookup(mother)
        assert citizen is not None
        assert citizen.gender == "female"
        assert 20 <= citizen.age(today) <= 40
    for card, citizen in zip(ids.cards, ids.citizens, strict=True):
        assert card[5:] == citizen[2:]  # the card leads back to its holder
    provinces = {p.admin_code for p in roster.provinces}
    assert all(p[:2] in provinces for p in ids.parcels)
    assert all(check_digit(t[:9]) == int(t[9]) for t in ids.tax_codes)


def test_the_packaged_model_matches_the_catalogue() -> None:
    load_model().check_catalogue(load_catalogue())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "/citizens/{nobody}"}, "unknown placeholders"),
        ({"procedure": "1.004222"}, "procedure and step go together"),
        ({"provider": "{consumer}"}, "needs consumers: provinces"),
    ],
)
def test_a_bad_model_is_refused(tmp_path: Path, change: dict[str, str], message: str) -> None:
    kind = {"name": "x", "provider": "DANCU", "service": "population", "path": "/c", "weight": 1}
    raw = {"consumers": {"provinces": {"share": 1}}, "exchanges": [kind | change]}
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelError, match=message):
        load_model(path)


def test_a_step_the_catalogue_lacks_is_refused() -> None:
    model = TrafficModel.model_validate(
        {
            "consumers": {"provinces": {"share": 1}},
            "exchanges": [
                {
                    "name": "x",
                    "provider": "DATDAI",
                    "service": "land",
                    "path": "/p",
                    "weight": 1,
                    "procedure": "1.003011",
                    "step": "nope",
                }
            ],
        }
    )
    with pytest.raises(ModelError, match="has no step nope"):
        model.check_catalogue(load_catalogue())


def test_savings_count_whole_dossiers_only() -> None:
    model = load_model()
    catalogue = load_catalogue()
    ok = {
        "residence-citizen": 10,  # 1.004222, step 1 of 2
        "residence-registration": 7,  # step 2 of 2: 7 whole dossiers
        "parcel": 5,  # 1.003011, one step: 5 dossiers
        "parcel-check": 100,  # no procedure: nothing
        "birth-mother": 4,  # 1.001193 without its birth step: no dossier
    }
    savings = implied_savings(model, catalogue, ok)
    assert savings.dossiers["1.004222"] == 7
    assert savings.dossiers["1.003011"] == 5
    assert savings.dossiers["1.001193"] == 0
    assert savings.vnd == (7 + 5) * 30_500


def test_the_profile_peaks_in_office_hours_and_rests_at_night() -> None:
    profile = load_profile()
    weekday = profile.cycle("weekday")
    assert max(profile.cycle("week")) == pytest.approx(1.0)
    assert max(weekday[8:11]) == pytest.approx(1.0)
    assert weekday[12] < weekday[10]
    assert weekday[12] < weekday[15]
    assert max(weekday[0:5]) < 0.1
    assert profile.mean("sunday") < profile.mean("saturday") < profile.mean("weekday") < 1
    assert profile.mean("flat") == 1


def test_a_day_compresses_into_minutes() -> None:
    profile = load_profile()
    shape = Shape("weekday", day_seconds=240)  # a day in four minutes: an hour is 10 s
    assert shape.factor(profile, 95.0) == pytest.approx(profile.days["weekday"][9])  # 09:30
    assert shape.factor(profile, 5.0) == pytest.approx(profile.days["weekday"][0])  # 00:30
    # Between two hours' middles the rate moves linearly.
    assert shape.factor(profile, 100.0) == pytest.approx(
        (profile.days["weekday"][9] + profile.days["weekday"][10]) / 2
    )
    assert shape.mean_factor(profile, 240.0) == pytest.approx(profile.mean("weekday"), rel=1e-3)
    week = Shape("week", day_seconds=24.0)
    sunday_noon = 6 * 24.0 + 12.5
    assert week.factor(profile, sunday_noon) == pytest.approx(profile.days["sunday"][12])
    assert Shape().factor(profile, 123.0) == 1.0
