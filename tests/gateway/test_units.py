"""Plain functions of the gateway: applicant checks, step rendering, the level-4 model."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import InvalidApplicant
from country.procedures import load_catalogue
from country.roster import load_roster
from gateway.applicant import validate_applicant
from gateway.level4 import load_level4
from gateway.steps import MissingValue, render_step

TODAY = dt.date(2026, 11, 23)
CATALOGUE = load_catalogue()
BIRTH = CATALOGUE.get("1.001022")
assert BIRTH is not None
GOOD = {
    "mother_id": "001190012345",
    "child_full_name": "Nguyễn Minh Khôi",
    "child_gender": "male",
    "child_date_of_birth": "2026-11-01",
    "address": "Số 1 Tràng Tiền",
}


def test_applicant_accepted_and_cleaned() -> None:
    clean = validate_applicant(BIRTH, {**GOOD, "address": "  Số 1 Tràng Tiền "}, today=TODAY)
    assert clean["address"] == "Số 1 Tràng Tiền"
    assert "father_id" not in clean


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mother_id", "12345"),
        ("mother_id", "001990012345x"),
        ("mother_id", "000190012345"),  # no province 00
        ("child_full_name", "Khôi"),
        ("child_full_name", "Nguyễn 2"),
        ("child_gender", "boy"),
        ("child_date_of_birth", "2026-13-01"),
        ("child_date_of_birth", "2027-01-01"),  # in the future
        ("address", ""),
        ("address", " Số 1 "),  # shorter than the catalogue's min_length (5) once trimmed
        ("address", 42),
        ("unexpected", "x"),
    ],
)
def test_applicant_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidApplicant) as caught:
        validate_applicant(BIRTH, {**GOOD, field: value}, today=TODAY)
    assert caught.value.extra["field"] == f"applicant.{field}"


def test_missing_required_field() -> None:
    data = dict(GOOD)
    del data["mother_id"]
    with pytest.raises(InvalidApplicant, match="mother_id: required"):
        validate_applicant(BIRTH, data, today=TODAY)


def test_render_steps_with_placeholders() -> None:
    steps = {s.id: s for s in BIRTH.steps}
    values = validate_applicant(BIRTH, GOOD, today=TODAY)
    mother = render_step(steps["mother"], values=values, outputs={}, province="P01")
    assert mother.path == "/citizens/001190012345"
    birth = render_step(steps["birth"], values=values, outputs={}, province="P01")
    assert birth.body is not None
    assert birth.body["place_of_birth"] == "01"
    assert "father_id_number" not in birth.body  # optional and not given
    residence = render_step(
        steps["residence"],
        values=values,
        outputs={"birth": {"child_id_number": "001226000001"}},
        province="P01",
    )
    assert residence.provider == "P01"
    assert residence.body == {"citizen_id_number": "001226000001", "address": "Số 1 Tràng Tiền"}
    with pytest.raises(MissingValue):
        render_step(steps["card"], values=values, outputs={"birth": {}}, province="P01")


def test_level4_model_reproduces_the_published_figures() -> None:
    model = load_level4()
    roster = load_roster("roster-2020")
    assert set(model.bodies) == {n.code for n in roster if n.kind != "national_database"}
    assert model.national_share() == pytest.approx(0.1591, abs=0.0001)
    shares = {code: model.share(code) or 0.0 for code in model.bodies}
    ministries = {m.code for m in roster.ministries}
    provinces = {p.code for p in roster.provinces}
    assert sum(shares[c] > 0.30 for c in ministries) == 9
    assert sum(shares[c] > 0.30 for c in provinces) == 11
    assert sum(shares[c] < 0.10 for c in ministries) == 8
    assert sum(shares[c] < 0.10 for c in provinces) == 25
    assert shares["BYT"] == shares["BTTTT"] == 1.0
