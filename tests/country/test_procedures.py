"""The procedure catalogue's applicant fields: kinds, constraints and sample hints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from country.procedures import CatalogueError, Sample, load_catalogue
from tests.support.catalogue import SYNTHETIC, SYNTHETIC_CODE, catalogue_with


def test_the_packaged_catalogue_declares_its_populations_as_data() -> None:
    catalogue = load_catalogue()
    birth = catalogue.get("1.001022")
    reissue = catalogue.get("1.002617")
    assert birth is not None
    assert reissue is not None
    assert birth.applicant["mother_id"].sample == Sample("mothers")
    assert birth.applicant["child_full_name"].sample == Sample("unique")
    assert birth.applicant["child_date_of_birth"].sample == Sample("within_days", "60")
    assert birth.applicant["address"].min_length == 5
    assert birth.applicant["father_id"].sample_rate == 0.8
    assert reissue.applicant["card_number"].sample == Sample("card_of", "citizen_id")
    assert str(reissue.applicant["card_number"].sample) == "card_of(citizen_id)"


def test_sample_hints_stay_out_of_the_public_view() -> None:
    birth = load_catalogue().get("1.001022")
    assert birth is not None
    shown = birth.applicant["address"].model_dump(exclude_defaults=True)
    assert shown == {
        "kind": "text",
        "min_length": 5,
        "description": "The child's permanent residence in the province",
    }
    assert "sample_rate" not in birth.applicant["father_id"].model_dump()


def test_a_new_procedure_loads_from_data_alone(tmp_path: Path) -> None:
    catalogue = load_catalogue(catalogue_with(tmp_path / "c.yaml", SYNTHETIC))
    procedure = catalogue.get(SYNTHETIC_CODE)
    assert procedure is not None
    assert procedure.applicant["holder_card"].sample == Sample("card_of", "holder_id")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"a": {"kind": "id_number", "sample": "children"}}, "not a hint of kind 'id_number'"),
        ({"a": {"kind": "gender", "sample": "names"}}, r"allowed: none"),
        ({"a": {"kind": "date", "sample": "within_days"}}, "takes a days argument"),
        ({"a": {"kind": "date", "sample": "within_days(x)"}}, "a number of days"),
        ({"a": {"kind": "date", "sample": "within_days(0)"}}, "at least one day"),
        ({"a": {"kind": "id_number", "sample": "mothers(2)"}}, "takes no argument"),
        ({"a": {"kind": "id_number", "sample": "Mothers!"}}, "not a name or name"),
        ({"a": {"kind": "id_number", "sample_rate": 0.5}}, "sample_rate is for optional"),
        ({"a": {"kind": "id_number", "min_length": 3}}, "are for kind 'text'"),
        ({"a": {"kind": "text", "min_length": 9, "max_length": 3}}, "above max_length"),
        ({"a": {"kind": "card_number", "sample": "card_of(b)"}}, "names no required id_number"),
        (
            {
                "b": {"kind": "id_number", "required": False},
                "a": {"kind": "card_number", "sample": "card_of(b)"},
            },
            "names no required id_number",
        ),
        (
            {
                "b": {"kind": "id_number", "sample": "mothers"},
                "a": {"kind": "card_number", "sample": "card_of(b)"},
            },
            "needs b drawn from citizens",
        ),
    ],
)
def test_bad_field_definitions_are_refused_at_load(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    procedure = {**SYNTHETIC, "applicant": fields, "steps": [SYNTHETIC["steps"][0]]}
    procedure["steps"] = [{**procedure["steps"][0], "path": "/citizens/x"}]
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(catalogue_with(tmp_path / "c.yaml", procedure))
