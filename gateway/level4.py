"""Level-4 statistics, as the ministry publishes them every month.

For each province and ministry-level body: the share of its procedures offered fully
online (level 4, from the published model in ``data/level4-2020.yaml``) and the share of
the dossiers submitted to it through the gateway that completed fully online; the
national average; and the provinces ranked.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Level4Model", "Level4Row", "load_level4", "rank"]


class BodyOffer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    procedures: int = Field(ge=0)
    level4: int = Field(ge=0)


class Level4Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: dt.date
    national_average: float = Field(ge=0, le=1)
    bodies: dict[str, BodyOffer]

    def share(self, code: str) -> float | None:
        offer = self.bodies.get(code)
        if offer is None or offer.procedures == 0:
            return None
        return offer.level4 / offer.procedures

    def national_share(self) -> float:
        total = sum(b.procedures for b in self.bodies.values())
        return sum(b.level4 for b in self.bodies.values()) / total if total else 0.0


def load_level4(path: Path | None = None) -> Level4Model:
    """Load and check the level-4 model (the packaged one by default)."""
    if path is None:
        text = resources.files("gateway").joinpath("data/level4-2020.yaml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    try:
        model = Level4Model.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(
            f"level-4 file: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from None
    for code, offer in model.bodies.items():
        if offer.level4 > offer.procedures:
            raise ValueError(f"level-4 file: {code}: more level-4 procedures than procedures")
    return model


class Level4Row(BaseModel):
    code: str
    name: str
    kind: str
    procedures: int
    level4_procedures: int
    level4_share: float
    dossiers_submitted: int
    dossiers_completed_online: int
    online_completion_share: float | None
    rank: int | None = None


def rank(rows: list[Level4Row]) -> list[Level4Row]:
    """Provinces ranked by level-4 share, then by the share completed online."""
    provinces = [r for r in rows if r.kind == "province"]
    provinces.sort(key=lambda r: (-r.level4_share, -(r.online_completion_share or 0.0), r.code))
    for position, row in enumerate(provinces, start=1):
        row.rank = position
    return provinces
