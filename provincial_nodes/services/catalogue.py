"""Which node offers which service, and the grants the simulated network starts with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI

from provincial_nodes.services import business, civil_status, insurance, land, one_stop, population
from provincial_nodes.world import World

__all__ = ["PROVINCE", "SERVICES", "ServiceSpec", "service_apps"]

#: In ``ServiceSpec.provider``: every connected province offers the service.
PROVINCE = "{province}"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    provider: str
    code: str
    description: str
    factory: Callable[[World], FastAPI]
    #: Who may call it at start: "provinces", "ministries", "databases", "self".
    consumers: tuple[str, ...]


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "DANCU",
        "population",
        "Citizens by ID number, households",
        population.create_app,
        ("provinces", "ministries", "databases"),
    ),
    ServiceSpec(
        "HOTICH",
        "civil-status",
        "Birth registration and birth records",
        civil_status.create_app,
        ("provinces", "ministries"),
    ),
    ServiceSpec(
        "BAOHIEM",
        "health-insurance",
        "Health-insurance cards: issue, lookup, reissue",
        insurance.create_app,
        ("provinces", "ministries"),
    ),
    ServiceSpec(
        "DATDAI",
        "land",
        "Land parcels by id",
        land.create_app,
        ("provinces", "ministries"),
    ),
    ServiceSpec(
        "DOANHNGHIEP",
        "business-registry",
        "Enterprises by tax code",
        business.create_app,
        ("provinces", "ministries"),
    ),
    ServiceSpec(
        PROVINCE,
        "one-stop",
        "Permanent residence registration, dossier status",
        one_stop.create_app,
        ("self",),
    ),
)


def service_apps(world: World) -> dict[str, FastAPI]:
    """One app per service code, shared by every node that offers it."""
    return {spec.code: spec.factory(world) for spec in SERVICES}
