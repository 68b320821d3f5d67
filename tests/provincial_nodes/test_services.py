"""Every node service's contract and its answers to bad input (each app on its own)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from provincial_nodes.services import service_apps
from provincial_nodes.services.business import check_digit, sample_tax_codes
from provincial_nodes.services.land import sample_parcel_ids
from provincial_nodes.services.one_stop import NODE_SCOPE_KEY
from provincial_nodes.world import World
from tests.provincial_nodes.conftest import adult_man, adult_woman


@pytest.fixture
async def services(world: World) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {}
    for code, app in service_apps(world).items():

        async def as_province(scope: dict, receive: object, send: object, app=app) -> None:  # type: ignore[no-untyped-def]
            scope[NODE_SCOPE_KEY] = "P01"
            await app(scope, receive, send)

        clients[code] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=as_province), base_url="http://node"
        )
    yield clients
    for c in clients.values():
        await c.aclose()


def problem(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["code"] == code
    return body


async def test_population(services: dict[str, httpx.AsyncClient], world: World) -> None:
    api = services["population"]
    person = next(world.population.iter_citizens(100, 101))
    resp = await api.get(f"/citizens/{person.id_number}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["full_name"] == person.full_name
    assert body["place_of_birth"]["province_code"] == person.province_of_birth
    assert body["place_of_birth"]["province_name"].startswith(("Tỉnh", "Thành phố"))
    household = (await api.get(f"/citizens/{person.id_number}/household")).json()
    assert person.id_number in [m["id_number"] for m in household["members"]]
    assert household["count"] == len(household["members"]) >= 1
    body = problem(await api.get("/citizens/12345"), 400, "invalid_request")
    assert body["errors"][0]["field"] == "id_number"
    problem(await api.get("/citizens/003203000001"), 400, "invalid_id_number")
    unassigned = person.id_number[:6] + "999999"
    if world.population.lookup(unassigned) is None:
        problem(await api.get(f"/citizens/{unassigned}"), 404, "citizen_not_found")


async def test_birth_then_card_then_residence(
    services: dict[str, httpx.AsyncClient], world: World
) -> None:
    mother = adult_woman(world)
    father = adult_man(world)
    born = dt.date.today() - dt.timedelta(days=20)
    registration = {
        "child_full_name": "Nguyễn Minh Khôi",
        "child_gender": "male",
        "date_of_birth": born.isoformat(),
        "place_of_birth": "01",
        "mother_id_number": mother.id_number,
        "father_id_number": father.id_number,
    }
    resp = await services["civil-status"].post(
        "/births", json=registration, headers={"X-Consumer": "P79"}
    )
    assert resp.status_code == 201, resp.text
    birth = resp.json()
    child = birth["child_id_number"]
    assert child.startswith("0012")  # born in Hà Nội, male, 21st century
    assert child[4:6] == f"{born.year % 100:02d}"
    assert birth["registered_in"] == "79"
    again = await services["civil-status"].post("/births", json=registration)
    problem(again, 409, "already_registered")
    record = await services["civil-status"].get(f"/births/{birth['record_number']}")
    assert record.json()["child_id_number"] == child
    # The population database finds the child, in the mother's household.
    found = (await services["population"].get(f"/citizens/{child}")).json()
    assert found["full_name"] == "Nguyễn Minh Khôi"
    members = (await services["population"].get(f"/citizens/{mother.id_number}/household")).json()
    assert child in [m["id_number"] for m in members["members"]]
    # A card for the child under 6, once.
    card = await services["health-insurance"].post("/cards", json={"citizen_id_number": child})
    assert card.status_code == 201, card.text
    number = card.json()["card_number"]
    assert number.startswith("TE101")
    assert card.json()["valid_to"] < (born + dt.timedelta(days=6 * 366)).isoformat()
    problem(
        await services["health-insurance"].post("/cards", json={"citizen_id_number": child}),
        409,
        "card_exists",
    )
    assert (await services["health-insurance"].get(f"/cards/{number}")).json()[
        "holder_id_number"
    ] == child
    reissued = await services["health-insurance"].post(
        f"/cards/{number}/reissue", json={"reason": "lost"}
    )
    assert reissued.json()["reissues"] == 1
    # Permanent residence in the province whose one-stop system takes the dossier.
    reg = await services["one-stop"].post(
        "/residence-registrations",
        json={"citizen_id_number": child, "address": "Số 1 Tràng Tiền, phường Hoàn Kiếm"},
    )
    assert reg.status_code == 201, reg.text
    assert reg.json()["province"] == "01"
    dossier = await services["one-stop"].get(f"/dossiers/{reg.json()['dossier_id']}")
    assert dossier.json()["status"] == "completed"
    moved = (await services["population"].get(f"/citizens/{child}")).json()
    assert moved["permanent_residence"]["province_code"] == "01"
    assert moved["address"] == "Số 1 Tràng Tiền, phường Hoàn Kiếm"


async def test_civil_status_bad_input(services: dict[str, httpx.AsyncClient], world: World) -> None:
    api = services["civil-status"]
    mother = adult_woman(world)
    good = {
        "child_full_name": "Trần Thu Hà",
        "child_gender": "female",
        "date_of_birth": "2026-01-05",
        "place_of_birth": "01",
        "mother_id_number": mother.id_number,
    }
    for field, value, code in (
        ("child_full_name", "X", "invalid_request"),
        ("child_full_name", "Trần 123", "invalid_request"),
        ("child_gender", "other", "invalid_request"),
        ("date_of_birth", "not-a-date", "invalid_request"),
        ("place_of_birth", "1", "invalid_request"),
        ("mother_id_number", "abc", "invalid_request"),
    ):
        body = problem(await api.post("/births", json={**good, field: value}), 400, code)
        assert body["errors"][0]["field"] == field
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    problem(await api.post("/births", json={**good, "date_of_birth": future}), 400, "invalid_input")
    problem(await api.post("/births", json={**good, "place_of_birth": "03"}), 400, "invalid_input")
    problem(
        await api.post("/births", json={**good, "mother_id_number": adult_man(world).id_number}),
        409,
        "invalid_parent",
    )
    problem(await api.post("/births", json={**good, "extra": 1}), 400, "invalid_request")
    problem(await api.get("/births/KS-01-2026-999999"), 404, "record_not_found")


async def test_cards_for_synthetic_citizens(
    services: dict[str, httpx.AsyncClient], world: World
) -> None:
    api = services["health-insurance"]
    adult = adult_woman(world)
    problem(
        await api.post("/cards", json={"citizen_id_number": adult.id_number}), 409, "not_eligible"
    )
    number = f"GD4{adult.province_of_birth}{adult.id_number[2:]}"
    card = await api.get(f"/cards/{number}")
    assert card.status_code == 200, card.text
    assert card.json()["kind"] == "GD"
    problem(
        await api.get(f"/cards/HT2{adult.province_of_birth}{adult.id_number[2:]}"),
        404,
        "card_not_found",
    )
    problem(await api.get("/cards/XX1011226232743"), 400, "invalid_request")
    problem(
        await api.post(f"/cards/{number}/reissue", json={"reason": "stolen"}),
        400,
        "invalid_request",
    )


async def test_land_and_business(services: dict[str, httpx.AsyncClient], world: World) -> None:
    rng = random.Random(3)
    for parcel_id in sample_parcel_ids(rng, "79", 5):
        resp = await services["land"].get(f"/parcels/{parcel_id}")
        assert resp.status_code == 200
        body = resp.json()
        assert body["province_code"] == "79"
        assert world.population.lookup(body["owner_id_number"]) is not None
        assert body["area_m2"] > 0
    same = await services["land"].get("/parcels/01-001-0001")
    assert same.json() == (await services["land"].get("/parcels/01-001-0001")).json()
    problem(await services["land"].get("/parcels/01-999-0001"), 404, "parcel_not_found")
    problem(await services["land"].get("/parcels/03-001-0001"), 404, "parcel_not_found")
    problem(await services["land"].get("/parcels/01-1-1"), 400, "invalid_request")
    for code in sample_tax_codes(rng, world, "01", 5):
        resp = await services["business-registry"].get(f"/enterprises/{code}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["name"].isupper()
    first = "010000001"
    digit = check_digit(first)
    assert digit is not None
    wrong = first + str((digit + 1) % 10)
    problem(
        await services["business-registry"].get(f"/enterprises/{wrong}"), 400, "invalid_tax_code"
    )
    far = "019999999"
    if (d := check_digit(far)) is not None:
        problem(
            await services["business-registry"].get(f"/enterprises/{far}{d}"),
            404,
            "enterprise_not_found",
        )


async def test_openapi_documents_paths(world: World) -> None:
    apps = service_apps(world)
    paths = {code: set(app.openapi()["paths"]) for code, app in apps.items()}
    assert paths["population"] == {"/citizens/{id_number}", "/citizens/{id_number}/household"}
    assert "/births" in paths["civil-status"]
    assert "/cards/{card_number}/reissue" in paths["health-insurance"]
    assert paths["one-stop"] == {"/residence-registrations", "/dossiers/{dossier_id}"}
