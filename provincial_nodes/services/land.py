"""The national land database (natural resources and environment): land parcels.

A parcel id is ``PP-SSS-NNNN``: the two-digit province code, the cadastral map sheet
(001-300) and the parcel's number on it (0001-4000). Every such parcel of a province on
the roster exists; its attributes are computed from the seed and the id, and its owner is
an adult of the synthetic population.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Annotated

from fastapi import FastAPI, Path
from pydantic import BaseModel

from common.errors import NotFound
from provincial_nodes.services.common import service_app
from provincial_nodes.world import World

__all__ = ["ParcelPublic", "create_app", "parcel", "sample_parcel_ids"]

SHEETS = 300
PARCELS_PER_SHEET = 4000
_USES = (
    ("ODT", "Đất ở tại đô thị", 18, (40, 250)),
    ("ONT", "Đất ở tại nông thôn", 30, (80, 600)),
    ("LUC", "Đất chuyên trồng lúa nước", 22, (300, 3000)),
    ("CLN", "Đất trồng cây lâu năm", 14, (500, 8000)),
    ("BHK", "Đất bằng trồng cây hàng năm khác", 8, (300, 4000)),
    ("NTS", "Đất nuôi trồng thủy sản", 4, (500, 10000)),
    ("RSX", "Đất rừng sản xuất", 4, (2000, 50000)),
)
_USE_TOTAL = sum(u[2] for u in _USES)
ParcelId = Annotated[str, Path(pattern=r"^[0-9]{2}-[0-9]{3}-[0-9]{4}$")]


class ParcelPublic(BaseModel):
    parcel_id: str
    province_code: str
    province_name: str
    map_sheet: int
    parcel_number: int
    area_m2: float
    land_use_code: str
    land_use: str
    owner_id_number: str
    owner_full_name: str
    certificate_number: str
    certificate_issued: dt.date
    address: str


def _digest(seed: int, parcel_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{parcel_id}".encode(), digest_size=32).digest()


def _land_use(pick: int) -> tuple[str, str, int, int]:
    for code, name, weight, (low, high) in _USES:
        if pick < weight:
            return code, name, low, high
        pick -= weight
    code, name, _, (low, high) = _USES[-1]
    return code, name, low, high


def parcel(world: World, parcel_id: str) -> ParcelPublic | None:
    """The parcel with this id, or None if no such parcel exists."""
    code, sheet_text, number_text = parcel_id.split("-")
    sheet, number = int(sheet_text), int(number_text)
    province = world.province(code)
    if province is None or not 1 <= sheet <= SHEETS or not 1 <= number <= PARCELS_PER_SHEET:
        return None
    d = _digest(world.population.spec.seed, parcel_id)
    use_code, use_name, low, high = _land_use(int.from_bytes(d[0:4], "little") % _USE_TOTAL)
    fraction = int.from_bytes(d[4:8], "little") / 2**32
    area = round(low * (high / low) ** fraction, 1)
    n = len(world.population)
    start = int.from_bytes(d[8:16], "little")
    today = world.today()
    owner = world.population.citizen(start % n)
    for step in range(1, 64):  # owners are adults; a few steps always find one
        if owner.age(today) >= 18:
            break
        owner = world.population.citizen((start + step * 7919) % n)
    letters = "ABCDEFGHIKLMNOPQRSTUVXY"
    serial = int.from_bytes(d[16:20], "little") % 1_000_000
    cert = f"{letters[d[20] % len(letters)]}{letters[d[21] % len(letters)]} {serial:06d}"
    issued = dt.date(1995, 1, 1) + dt.timedelta(days=int.from_bytes(d[22:24], "little") % 10_900)
    return ParcelPublic(
        parcel_id=parcel_id,
        province_code=code,
        province_name=province.name,
        map_sheet=sheet,
        parcel_number=number,
        area_m2=area,
        land_use_code=use_code,
        land_use=use_name,
        owner_id_number=owner.id_number,
        owner_full_name=owner.full_name,
        certificate_number=cert,
        certificate_issued=issued,
        address=f"Thửa {number}, tờ bản đồ {sheet}, {province.short_name}",
    )


def sample_parcel_ids(rng: random.Random, province_code: str, n: int) -> list[str]:
    """n parcel ids that exist in a province."""
    return [
        f"{province_code}-{rng.randint(1, SHEETS):03d}-{rng.randint(1, PARCELS_PER_SHEET):04d}"
        for _ in range(n)
    ]


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Cơ sở dữ liệu quốc gia về đất đai — land",
        "Land parcels by id: use, area, owner and certificate (simulated).",
    )

    @app.get("/parcels/{parcel_id}", response_model=ParcelPublic)
    async def get_parcel(parcel_id: ParcelId) -> ParcelPublic:
        """A land parcel by its id (province-sheet-number)."""
        found = parcel(world, parcel_id)
        if found is None:
            raise NotFound(f"no parcel {parcel_id}", code="parcel_not_found")
        return found

    return app
