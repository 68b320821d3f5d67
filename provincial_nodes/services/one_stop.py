"""A province's one-stop system (Hệ thống thông tin giải quyết thủ tục hành chính).

One app serves every province: the node that received the request (set in the ASGI
scope by the node's listener) is the province whose system answers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from common.errors import NotFound
from provincial_nodes.services.common import require_person, service_app
from provincial_nodes.state import OneStopDossier, Residence, now_iso
from provincial_nodes.world import World

__all__ = ["NODE_SCOPE_KEY", "create_app"]

#: The ASGI scope key under which a node's listener names the node.
NODE_SCOPE_KEY = "ngsp.node"


class ResidenceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    citizen_id_number: str = Field(pattern=r"^[0-9]{12}$")
    address: str = Field(min_length=5, max_length=200, description="House, street, ward")


class DossierPublic(BaseModel):
    dossier_id: str
    province: str
    kind: str
    citizen_id_number: str
    status: str
    created_at: str


class RegistrationPublic(DossierPublic):
    address: str


def _province(request: Request) -> str:
    node: str = request.scope.get(NODE_SCOPE_KEY, "")
    if not (len(node) == 3 and node.startswith("P")):
        raise NotFound("this node has no one-stop system", code="not_a_province")
    return node[1:]


ProvinceDep = Annotated[str, Depends(_province)]


def create_app(world: World) -> FastAPI:
    app = service_app(
        "Hệ thống một cửa điện tử cấp tỉnh — one-stop",
        "A province's dossier system: permanent residence registration, dossier status "
        "(simulated).",
    )

    @app.post(
        "/residence-registrations",
        response_model=RegistrationPublic,
        status_code=status.HTTP_201_CREATED,
    )
    async def register_residence(
        data: ResidenceRegistration, province: ProvinceDep
    ) -> RegistrationPublic:
        """Register a citizen's permanent residence in this province."""
        person = require_person(world, data.citizen_id_number, "citizen_id_number")
        year = world.today().year
        async with world.state.lock:
            seq = world.state.dossier_seq[(province, year)] + 1
            created = now_iso()
            dossier = OneStopDossier(
                dossier_id=f"HS-{province}-{year}-{seq:06d}",
                province=province,
                kind="residence_registration",
                citizen_id_number=person.id_number,
                status="completed",
                created_at=created,
            )
            await world.state.save_all(
                dossier,
                Residence(
                    citizen_id_number=person.id_number,
                    province=province,
                    address=data.address,
                    dossier_id=dossier.dossier_id,
                    registered_at=created,
                ),
            )
        return RegistrationPublic(**_fields(dossier), address=data.address)

    @app.get("/dossiers/{dossier_id}", response_model=DossierPublic)
    async def get_dossier(
        dossier_id: Annotated[str, Path(pattern=r"^HS-[0-9]{2}-[0-9]{4}-[0-9]{6}$")],
        province: ProvinceDep,
    ) -> DossierPublic:
        """A dossier of this province's one-stop system."""
        dossier = world.state.dossiers.get(dossier_id)
        if dossier is None or dossier.province != province:
            raise NotFound(f"no dossier {dossier_id} in this province", code="dossier_not_found")
        return DossierPublic(**_fields(dossier))

    return app


def _fields(dossier: OneStopDossier) -> dict[str, str]:
    return {
        "dossier_id": dossier.dossier_id,
        "province": dossier.province,
        "kind": dossier.kind,
        "citizen_id_number": dossier.citizen_id_number,
        "status": dossier.status,
        "created_at": dossier.created_at,
    }
