"""A copy of the packaged procedure catalogue with a procedure of the tests' own added."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: A procedure the code has never heard of: fields of every existing kind, with sample
#: hints, and steps that existing services answer (a citizen's record and card).
SYNTHETIC_CODE = "2.000999"
SYNTHETIC: dict[str, Any] = {
    "code": SYNTHETIC_CODE,
    "name": "Xác nhận thông tin thẻ bảo hiểm y tế",
    "name_en": "Health-insurance card confirmation (a procedure of the tests)",
    "authority": "BHXH",
    "saving_vnd": 12_000,
    "level4": "all",
    "applicant": {
        "holder_id": {"kind": "id_number"},
        "holder_card": {"kind": "card_number", "sample": "card_of(holder_id)"},
        "guardian_id": {
            "kind": "id_number",
            "required": False,
            "sample": "mothers",
            "sample_rate": 0.5,
        },
        "requester_name": {"kind": "full_name", "sample": "unique"},
        "requester_gender": {"kind": "gender"},
        "requested_on": {"kind": "date", "sample": "within_days(7)"},
        "purpose": {"kind": "choice", "choices": ["employment", "school", "travel"]},
        "contact_address": {
            "kind": "text",
            "min_length": 10,
            "max_length": 80,
            "sample": "addresses",
        },
        "note": {"kind": "text", "required": False, "max_length": 30, "sample_rate": 0.5},
        "employer_tax_code": {"kind": "tax_code", "required": False, "sample_rate": 0.3},
        "land_parcel": {"kind": "parcel_id", "required": False},
    },
    "steps": [
        {
            "id": "holder",
            "provider": "DANCU",
            "service": "population",
            "path": "/citizens/{holder_id}",
        },
        {
            "id": "card",
            "provider": "BAOHIEM",
            "service": "health-insurance",
            "path": "/cards/{holder_card}",
        },
    ],
}


def packaged_catalogue() -> dict[str, Any]:
    """The packaged catalogue as plain data (its YAML anchors resolved)."""
    text = resources.files("country").joinpath("data/procedures.yaml").read_text("utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    return raw


def catalogue_with(path: Path, *procedures: dict[str, Any]) -> Path:
    """Write the packaged catalogue plus ``procedures`` to ``path``."""
    raw = packaged_catalogue()
    raw["procedures"] = [*raw["procedures"], *procedures]
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "utf-8")
    return path
