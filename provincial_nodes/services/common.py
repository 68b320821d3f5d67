"""What every node service shares: the app factory and ID number checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path

from common.errors import InvalidInput, NotFound, install_error_handlers, problem_responses
from country.citizens import is_valid_id_number
from provincial_nodes.world import Person, World

__all__ = [
    "IdNumberPath",
    "require_id_number",
    "require_person",
    "service_app",
]

#: An ID number in a path: twelve digits (the full check comes after).
IdNumberPath = Annotated[
    str, Path(pattern=r"^[0-9]{12}$", description="12-digit citizen ID number (CCCD)")
]


def service_app(title: str, description: str) -> FastAPI:
    """A service app with the platform's problem+json errors."""
    app = FastAPI(
        title=title, description=description, version="1.0.0", responses=problem_responses()
    )
    install_error_handlers(app)
    return app


def require_id_number(value: str, field: str) -> str:
    """Refuse a string that is not a well-formed ID number, naming the field."""
    if not is_valid_id_number(value):
        raise InvalidInput(
            f"{field}: {value!r} is not a valid 12-digit ID number "
            "(province code, gender-and-century digit, birth year, six digits)",
            code="invalid_id_number",
            extra={"field": field},
        )
    return value


def require_person(world: World, id_number: str, field: str) -> Person:
    """The person with this ID number, or a 404 naming the field."""
    require_id_number(id_number, field)
    person = world.person(id_number)
    if person is None:
        raise NotFound(
            f"{field}: no citizen with ID number {id_number}",
            code="citizen_not_found",
            extra={"field": field},
        )
    return person
