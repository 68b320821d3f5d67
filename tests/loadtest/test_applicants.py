"""Applicant data drawn from the catalogue: valid for the gateway, right for the world."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from country.citizens import Population
from country.procedures import SAMPLES, FieldKind, Procedure, load_catalogue
from country.roster import Roster, load_roster
from gateway.applicant import validate_applicant
from loadtest.applicants import ApplicantGenerator, Identifiers
from loadtest.targets import GATEWAY_MIX_DEFAULT, GatewayTargetSpec, WorldSpec
from loadtest.traffic import PLACEHOLDERS, ModelError, load_model
from provincial_nodes.world import build_population
from tests.support.catalogue import SYNTHETIC, SYNTHETIC_CODE, catalogue_with, packaged_catalogue

TODAY = dt.date.today()
REFERENCE = dt.date(2026, 1, 1)
STEP = {"id": "s", "provider": "DANCU", "service": "population", "path": "/x"}


@pytest.fixture(scope="module")
def roster() -> Roster:
    return load_roster("roster-2020")


@pytest.fixture(scope="module")
def population(roster: Roster) -> Population:
    return build_population(roster, size=5000, seed=7, reference=REFERENCE)


@pytest.fixture(scope="module")
def ids(roster: Roster, population: Population) -> Identifiers:
    return Identifiers.build(roster, population, seed=3, size=512)


def _draws(procedure: Procedure, ids: Identifiers, n: int, **kw: Any) -> list[dict[str, str]]:
    generator = ApplicantGenerator(procedure, ids, random.Random(1), today=TODAY, **kw)
    drawn = [generator.draw(i) for i in range(n)]
    for data in drawn:
        validate_applicant(procedure, data, today=TODAY)  # raises on the first bad field
    return drawn


def _hints(kind: str) -> list[str | None]:
    hints: list[str | None] = [None]
    for name, takes in SAMPLES.get(kind, {}).items():
        hints.append({None: name, "days": f"{name}(3)", "field": f"{name}(source)"}[takes])
    return hints


@pytest.mark.parametrize(("kind", "hint"), [(k, h) for k in get_args(FieldKind) for h in _hints(k)])
def test_every_kind_and_hint_draws_values_the_gateway_accepts(
    kind: str, hint: str | None, ids: Identifiers
) -> None:
    field: dict[str, Any] = {"kind": kind}
    if hint is not None:
        field["sample"] = hint
    if kind == "choice":
        field["choices"] = ["one", "two"]
    applicant = {"source": {"kind": "id_number"}, "value": field}
    procedure = Procedure.model_validate(
        {"code": "9.000001", "name": "x", "applicant": applicant, "steps": [STEP]}
    )
    drawn = _draws(procedure, ids, 200)
    assert all(set(d) == {"source", "value"} for d in drawn)


def test_every_packaged_procedure_gets_valid_applicants(
    ids: Identifiers, population: Population
) -> None:
    for procedure in load_catalogue().procedures:
        drawn = _draws(procedure, ids, 1000)
        required = {n for n, f in procedure.applicant.items() if f.required}
        assert all(required <= set(d) for d in drawn), procedure.code
        # What each field's hint asks of the world.
        for data in drawn:
            if "mother_id" in data:
                mother = population.lookup(data["mother_id"])
                assert mother is not None
                assert mother.gender == "female"
                assert 20 <= mother.age(TODAY) <= 40
            if "father_id" in data:
                father = population.lookup(data["father_id"])
                assert father is not None
                assert father.gender == "male"
            if "card_number" in data:
                assert data["card_number"][5:] == data["citizen_id"][2:]  # the holder's card
            if "child_date_of_birth" in data:
                born = dt.date.fromisoformat(data["child_date_of_birth"])
                assert 1 <= (TODAY - born).days <= 60
            if "address" in data:
                assert len(data["address"]) >= 5
        if "father_id" in procedure.applicant:
            share = sum("father_id" in d for d in drawn) / len(drawn)
            assert share == pytest.approx(procedure.applicant["father_id"].sample_rate, abs=0.05)


def test_unique_names_never_repeat_across_workers(ids: Identifiers) -> None:
    birth = load_catalogue().get("1.001193")
    assert birth is not None
    names = [
        d["child_full_name"]
        for worker in range(3)
        for d in _draws(birth, ids, 3000, worker=worker, workers=3)
    ]
    assert len(set(names)) == len(names)


def test_a_new_procedure_in_the_catalogue_is_load_tested_with_no_code(tmp_path: Path) -> None:
    path = catalogue_with(tmp_path / "procedures.yaml", SYNTHETIC)
    catalogue = load_catalogue(path)
    world = WorldSpec(
        roster="roster-2020",
        as_of=dt.date(2026, 1, 1),
        population_size=5000,
        seed=7,
        reference_date=REFERENCE,
    )
    spec = GatewayTargetSpec(
        gateway_url="http://127.0.0.1:9",
        hub_url="http://127.0.0.1:9",
        api_key="k",
        world=world,
        baseline={},
        catalogue_path=path,
    )
    assert spec.describe()["mix"][SYNTHETIC_CODE] == GATEWAY_MIX_DEFAULT
    target = spec.open(worker=0, workers=1, seed=5)
    seen: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    for i in range(1500):
        request = target.request(i)
        assert request.body is not None
        body = json.loads(request.body)
        procedure = catalogue.get(body["procedure"])
        assert procedure is not None
        assert request.label == procedure.code
        assert procedure.offered_in(body["province"])
        validate_applicant(procedure, body["applicant"], today=TODAY)
        seen[procedure.code] += 1
        if procedure.code == SYNTHETIC_CODE:
            fields.update(body["applicant"].keys())
    assert set(seen) == catalogue.codes
    new = seen[SYNTHETIC_CODE]
    assert new > 50
    assert fields["holder_id"] == fields["holder_card"] == new
    assert 0 < fields["guardian_id"] < new
    assert 0 < fields["employer_tax_code"] < new
    assert fields["land_parcel"] == 0  # optional, no sample_rate: left out


def test_the_hub_model_placeholders_draw_valid_values(ids: Identifiers) -> None:
    procedure = Procedure.model_validate(
        {"code": "9.000002", "name": "x", "applicant": dict(PLACEHOLDERS), "steps": [STEP]}
    )
    _draws(procedure, ids, 500)


def test_a_hub_model_placeholder_unlike_the_catalogue_is_refused(tmp_path: Path) -> None:
    raw = packaged_catalogue()
    for procedure in raw["procedures"]:
        if procedure["code"] == "1.002617":
            procedure["applicant"]["reason"]["choices"] = ["lost", "stolen"]
    path = tmp_path / "procedures.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    with pytest.raises(ModelError, match=r"card-reissue: \{reason\} is not drawn as"):
        load_model().check_catalogue(load_catalogue(path))
