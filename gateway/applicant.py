"""Checking applicant data against what a procedure asks for, before any exchange runs.

Every field is checked by its kind and what the catalogue declares with it (the choices,
a text's length bounds): a procedure added to the catalogue needs no code here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from common.errors import InvalidApplicant
from country.citizens import is_valid_id_number
from country.procedures import ApplicantField, Procedure

__all__ = ["validate_applicant"]

_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)+$")
_PATTERNS = {
    "tax_code": (re.compile(r"^[0-9]{10}$"), "a 10-digit tax code"),
    "parcel_id": (re.compile(r"^[0-9]{2}-[0-9]{3}-[0-9]{4}$"), "a parcel id like 01-012-0345"),
    "card_number": (
        re.compile(r"^(TE|HS|GD|HT)[1-5][0-9]{12}$"),
        "a 15-character health-insurance card number",
    ),
}


def _fail(field: str, message: str) -> InvalidApplicant:
    return InvalidApplicant(f"applicant.{field}: {message}", extra={"field": f"applicant.{field}"})


def _check(name: str, spec: ApplicantField, value: Any, today: dt.date) -> str:
    if not isinstance(value, str):
        raise _fail(name, "must be a string")
    text: str = value.strip()
    if spec.kind == "id_number":
        if not is_valid_id_number(text):
            raise _fail(
                name,
                "not a valid 12-digit ID number (province code, gender-and-century digit, "
                "birth year, six digits)",
            )
    elif spec.kind == "full_name":
        if not 2 <= len(text) <= 100 or not _NAME.match(text):
            raise _fail(name, "a full name: family name and given name, letters only")
    elif spec.kind == "date":
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise _fail(name, "a date as YYYY-MM-DD") from None
        if day > today:
            raise _fail(name, "in the future")
    elif spec.kind == "gender":
        if text not in ("male", "female"):
            raise _fail(name, "male or female")
    elif spec.kind == "choice":
        if text not in spec.choices:
            raise _fail(name, "one of " + ", ".join(spec.choices))
    elif spec.kind == "text":
        if not spec.min_length <= len(text) <= spec.max_length:
            raise _fail(name, f"between {spec.min_length} and {spec.max_length} characters")
    else:
        pattern, description = _PATTERNS[spec.kind]
        if not pattern.match(text):
            raise _fail(name, description)
    return text


def validate_applicant(
    procedure: Procedure, data: Mapping[str, Any], *, today: dt.date
) -> dict[str, str]:
    """The applicant data, cleaned, or ``InvalidApplicant`` naming the first bad field."""
    unknown = sorted(set(data) - set(procedure.applicant))
    if unknown:
        raise _fail(unknown[0], f"not a field of procedure {procedure.code}")
    clean: dict[str, str] = {}
    for name, spec in procedure.applicant.items():
        value = data.get(name)
        if value is None:
            if spec.required:
                raise _fail(name, "required")
            continue
        clean[name] = _check(name, spec, value, today)
    return clean
