"""Plain functions: tokens, path templates, the catalogue and settings."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest

from common.errors import TokenInvalid
from country.procedures import CatalogueError, load_catalogue
from national_hub.ledger.writer import stats_day
from national_hub.paths import PathTemplates, mask_path
from national_hub.settings import HubSettings
from national_hub.tokens import TokenService, hash_secret, parse_basic_auth, verify_secret

KEY = "k" * 40


def test_token_round_trip_and_cache() -> None:
    service = TokenService(KEY, 60)
    token = service.issue(node="P01", client_id="p01-abc", generation="g1")
    claims = service.verify(token)
    assert (claims.node, claims.client_id) == ("P01", "p01-abc")
    assert service.verify(token) is claims  # the second check is a cache hit


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda p: jwt.encode(p, "another-key-" * 4, algorithm="HS256"), id="other key"
        ),
        pytest.param(
            lambda p: (
                base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
                + "."
                + base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode()
                + "."
            ),
            id="alg none",
        ),
        pytest.param(lambda p: jwt.encode({**p, "exp": int(time.time()) - 60}, KEY), id="expired"),
        pytest.param(
            lambda p: jwt.encode({**p, "nbf": int(time.time()) + 600}, KEY), id="not yet valid"
        ),
        pytest.param(lambda p: jwt.encode({**p, "aud": "other"}, KEY), id="wrong audience"),
        pytest.param(lambda p: jwt.encode({**p, "iss": "evil"}, KEY), id="wrong issuer"),
        pytest.param(
            lambda p: jwt.encode({k: v for k, v in p.items() if k != "exp"}, KEY), id="no expiry"
        ),
    ],
)
def test_token_forgeries_refused(forge: object) -> None:
    service = TokenService(KEY, 60)
    good = jwt.decode(
        service.issue(node="P01", client_id="c", generation="g1"),
        options={"verify_signature": False},
    )
    with pytest.raises(TokenInvalid):
        service.verify(forge(good))  # type: ignore[operator]


def test_secret_hashing_and_basic_auth() -> None:
    stored = hash_secret("s3cret")
    assert verify_secret("s3cret", stored)
    assert not verify_secret("s3cret!", stored)
    header = "Basic " + base64.b64encode(b"client%3A1:pa%20ss").decode()
    assert parse_basic_auth(header) == ("client:1", "pa ss")
    assert parse_basic_auth("Basic !!!") is None
    assert parse_basic_auth("Bearer abc") is None
    assert parse_basic_auth("Basic " + base64.b64encode(b"no-colon").decode()) is None


def test_path_templates() -> None:
    t = PathTemplates(["/citizens/{id}", "/citizens/search", "/households/{id}/members", "/x"])
    assert t.template_for("/citizens/001203004567") == "/citizens/{id}"
    assert t.template_for("/citizens/search") == "/citizens/search"
    assert t.template_for("households/77/members") == "/households/{id}/members"
    assert t.template_for("/citizens/001203004567/extra") == "/citizens/{param}/extra"
    assert mask_path("/a/nguyen.van.an@example.vn/b") == "/a/{param}/b"
    assert mask_path("/" + "z" * 40) == "/{param}"
    assert PathTemplates.from_openapi(None).template_for("/p/12") == "/p/{param}"


def test_stats_day_is_vietnam_time() -> None:
    # 2020-07-31 17:30 UTC is already 1 August in Hà Nội.
    moment = int(1596216600 * 1e6)
    assert stats_day(moment, 420).isoformat() == "2020-08-01"
    assert stats_day(moment, 0).isoformat() == "2020-07-31"


def test_catalogue_loads_and_refuses_bad_files(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    assert len(catalogue.procedures) >= 6
    assert all(p.saving_vnd == 30_500 for p in catalogue.procedures)
    combined = catalogue.get("1.001022")
    assert combined is not None
    assert combined.exchanges == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("procedures:\n  - code: '1.1'\n    name: x\n    steps: []\n")
    with pytest.raises(CatalogueError, match=r"procedures\.0\.code"):
        load_catalogue(bad)
    bad.write_text("procedures: [")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(bad)
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")


def test_settings_refuse_placeholders_outside_development(tmp_path: Path) -> None:
    strong = "x" * 20 + "a1b2c3d4e5f6g7h8i9j0"
    with pytest.raises(ValueError, match="ADMIN_TOKEN must be set"):
        HubSettings(environment="production", signing_key=strong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="placeholder"):
        HubSettings(  # type: ignore[arg-type]
            environment="production", admin_token="change-me-please-" * 3, signing_key=strong
        )
    with pytest.raises(ValueError, match="placeholder"):
        HubSettings(environment="production", admin_token=strong, signing_key="short")  # type: ignore[arg-type]
    ok = HubSettings(environment="production", admin_token=strong, signing_key=strong[::-1])  # type: ignore[arg-type]
    assert ok.admin_token_value() == strong


def test_development_secrets_generated_once(tmp_path: Path) -> None:
    first = HubSettings(data_dir=tmp_path).resolved()
    second = HubSettings(data_dir=tmp_path).resolved()
    assert first.admin_token_value() == second.admin_token_value()
    assert len(first.signing_key_value()) >= 32
    assert (tmp_path / "hub-secrets.json").stat().st_mode & 0o777 == 0o600
