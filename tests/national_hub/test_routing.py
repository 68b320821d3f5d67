"""Routing decisions and path templates as plain functions on plain data: no server.

The refusals are checked by their stable ``code`` and ``status`` (the contract a consumer
sees), whatever class carries them.
"""

from __future__ import annotations

import dataclasses

import pytest

from common.errors import ProblemError
from national_hub.paths import PathTemplates, mask_path
from national_hub.registry import CredentialInfo, NodeInfo, ServiceInfo, Snapshot
from national_hub.routing import authorise, consumer_of, resolve
from national_hub.tokens import Claims


def node(code: str, *, connected: bool = True, enabled: bool = True) -> NodeInfo:
    return NodeInfo(
        code=code,
        name=f"Node {code}",
        kind="province",
        base_url=f"http://{code.lower()}.test",
        connected=connected,
        enabled=enabled,
    )


def service(sid: int, provider: str, code: str, *, enabled: bool = True) -> ServiceInfo:
    return ServiceInfo(
        id=sid,
        provider=provider,
        code=code,
        version="v1",
        description="",
        upstream=f"http://{provider.lower()}.test/{code}",
        enabled=enabled,
        has_openapi=False,
        templates=PathTemplates(()),
    )


def snapshot(
    nodes: list[NodeInfo] | None = None,
    services: list[ServiceInfo] | None = None,
    grants: set[tuple[str, int]] | None = None,
    credentials: list[CredentialInfo] | None = None,
) -> Snapshot:
    return Snapshot(
        nodes={n.code: n for n in nodes or []},
        services={(s.provider, s.code): s for s in services or []},
        grants=frozenset(grants or ()),
        credentials={c.client_id: c for c in credentials or []},
    )


def claims(node_code: str, client_id: str, generation: str = "g1") -> Claims:
    return Claims(
        node=node_code,
        client_id=client_id,
        expires_at=2e9,
        issued_at=1e9,
        generation=generation,
    )


def credential(
    client_id: str, node_code: str, *, generation: str = "g1", enabled: bool = True
) -> CredentialInfo:
    return CredentialInfo(
        client_id=client_id,
        node=node_code,
        secret_hash="sha256$x",
        generation=generation,
        enabled=enabled,
    )


#: DANCU provides ``population`` (granted to P01) and ``archive`` (disabled); P01 and
#: P79 hold credentials.
REGISTRY = snapshot(
    nodes=[node("DANCU"), node("P01"), node("P79")],
    services=[service(1, "DANCU", "population"), service(2, "DANCU", "archive", enabled=False)],
    grants={("P01", 1)},
    credentials=[
        credential("p01-a", "P01"),
        credential("p79-a", "P79"),
    ],
)


def refused(exc: pytest.ExceptionInfo[ProblemError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


# -- consumer_of ----------------------------------------------------------------------


def test_a_token_speaks_for_its_node() -> None:
    assert consumer_of(REGISTRY, claims("P01", "p01-a")) is REGISTRY.nodes["P01"]


@pytest.mark.parametrize(
    ("registry", "token"),
    [
        pytest.param(REGISTRY, claims("P01", "p01-gone"), id="credential revoked"),
        pytest.param(REGISTRY, claims("P01", "p79-a"), id="another node's credential"),
        pytest.param(REGISTRY, claims("P01", "p01-a", "g0"), id="credential rotated"),
        pytest.param(
            snapshot(nodes=[node("P01")], credentials=[credential("p01-a", "P01", enabled=False)]),
            claims("P01", "p01-a"),
            id="credential disabled",
        ),
        pytest.param(
            snapshot(
                nodes=[node("P01", enabled=False)],
                credentials=[credential("p01-a", "P01")],
            ),
            claims("P01", "p01-a"),
            id="node disabled",
        ),
        pytest.param(
            snapshot(
                nodes=[node("P01", connected=False)],
                credentials=[credential("p01-a", "P01")],
            ),
            claims("P01", "p01-a"),
            id="node not connected",
        ),
        pytest.param(
            snapshot(credentials=[credential("p01-a", "P01")]),
            claims("P01", "p01-a"),
            id="node deleted",
        ),
    ],
)
def test_a_token_whose_credential_or_node_is_gone_is_refused(
    registry: Snapshot, token: Claims
) -> None:
    with pytest.raises(ProblemError) as exc:
        consumer_of(registry, token)
    assert refused(exc) == (401, "invalid_token")


# -- resolve --------------------------------------------------------------------------


def test_resolve_finds_the_named_service() -> None:
    assert resolve(REGISTRY, "DANCU", "population") is REGISTRY.services[("DANCU", "population")]


@pytest.mark.parametrize(
    ("registry", "provider", "service_code", "expected"),
    [
        pytest.param(REGISTRY, "NOPE", "population", "unknown_provider", id="no such provider"),
        pytest.param(
            snapshot(
                nodes=[node("DANCU", connected=False)],
                services=[service(1, "DANCU", "population")],
            ),
            "DANCU",
            "population",
            "unknown_provider",
            id="provider not connected",
        ),
        pytest.param(
            snapshot(
                nodes=[node("DANCU", enabled=False)], services=[service(1, "DANCU", "population")]
            ),
            "DANCU",
            "population",
            "unknown_provider",
            id="provider disabled",
        ),
        pytest.param(REGISTRY, "DANCU", "nope", "unknown_service", id="no such service"),
        pytest.param(REGISTRY, "DANCU", "archive", "unknown_service", id="service disabled"),
        pytest.param(REGISTRY, "P01", "population", "unknown_service", id="another provider's"),
    ],
)
def test_resolve_refuses_what_cannot_be_called(
    registry: Snapshot, provider: str, service_code: str, expected: str
) -> None:
    with pytest.raises(ProblemError) as exc:
        resolve(registry, provider, service_code)
    assert refused(exc) == (404, expected)


# -- authorise ------------------------------------------------------------------------


def test_a_granted_consumer_is_authorised() -> None:
    authorise(REGISTRY, "P01", REGISTRY.services[("DANCU", "population")])  # no refusal


@pytest.mark.parametrize(
    ("consumer", "provider", "service_code"),
    [
        pytest.param("P79", "DANCU", "population", id="no grant"),
        pytest.param("P01", "DANCU", "archive", id="grant for another service"),
        pytest.param("DANCU", "DANCU", "population", id="the provider itself"),
    ],
)
def test_a_consumer_without_a_grant_is_refused(
    consumer: str, provider: str, service_code: str
) -> None:
    with pytest.raises(ProblemError) as exc:
        authorise(REGISTRY, consumer, REGISTRY.services[(provider, service_code)])
    assert refused(exc) == (403, "not_granted")
    assert f"{provider}/{service_code}" in exc.value.detail


def test_a_grant_follows_the_service_id_not_its_name() -> None:
    """A service deleted and created again under the same name is a new service: the
    old grant does not carry over."""
    recreated = dataclasses.replace(REGISTRY.services[("DANCU", "population")], id=3)
    registry = snapshot(
        nodes=list(REGISTRY.nodes.values()), services=[recreated], grants={("P01", 1)}
    )
    with pytest.raises(ProblemError) as exc:
        authorise(registry, "P01", recreated)
    assert refused(exc) == (403, "not_granted")


# -- path templates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/citizens/001203004567", "/citizens/{id}"),
        ("/citizens/search", "/citizens/search"),  # the exact path wins over {id}
        ("citizens/search", "/citizens/search"),  # a path without its slash
        ("/households/77/members", "/households/{hid}/members"),
        ("/households/77/members/001203004567", "/households/{hid}/members/{id}"),
        ("/households/77", "/households/{param}"),  # no template: masked
        ("/citizens/001203004567/extra", "/citizens/{param}/extra"),
        ("/citizens/", "/citizens/"),  # an empty segment is no parameter
        ("/x/y", "/x/y"),
    ],
)
def test_a_path_is_recorded_as_its_template(path: str, expected: str) -> None:
    templates = PathTemplates(
        [
            "/citizens/{id}",
            "citizens/search",  # a template without its slash is taken as rooted
            "/households/{hid}/members",
            "/households/{hid}/members/{id}",
            "/x/y",
        ]
    )
    assert templates.template_for(path) == expected


def test_fewer_parameters_win_whatever_the_order() -> None:
    templates = PathTemplates(["/a/{x}/{y}", "/a/{x}/b"])
    assert templates.template_for("/a/1/b") == "/a/{x}/b"
    assert templates.template_for("/a/1/c") == "/a/{x}/{y}"


def test_a_parameter_matches_one_segment_only() -> None:
    templates = PathTemplates(["/citizens/{id}"])
    assert templates.template_for("/citizens/0012/03004567") == "/citizens/{param}/{param}"


def test_template_text_is_matched_literally() -> None:
    """Characters that mean something in a regular expression are plain text in a
    template: ``.`` matches a dot, not any character."""
    templates = PathTemplates(["/files/{name}.json"])
    assert templates.template_for("/files/a.json") == "/files/{name}.json"
    assert templates.template_for("/files/axjson") == "/files/axjson"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/citizens/001203004567", "/citizens/{param}"),
        ("/a/nguyen.van.an@example.vn/b", "/a/{param}/b"),
        ("/" + "z" * 24, "/" + "z" * 24),  # at most 24 plain characters: kept
        ("/" + "z" * 25, "/{param}"),
        ("/v2/status", "/{param}/status"),  # any digit may be part of an identifier
        ("/plain/words", "/plain/words"),
    ],
)
def test_segments_that_may_identify_a_person_are_masked(path: str, expected: str) -> None:
    assert mask_path(path) == expected


def test_a_masked_path_is_bounded() -> None:
    masked = mask_path("/word" * 200)
    assert len(masked) == 500
    assert masked == "/word" * 100


@pytest.mark.parametrize(
    "document",
    [None, {}, {"paths": None}, {"paths": ["/citizens/{id}"]}, {"openapi": "3.1.0"}],
)
def test_no_usable_openapi_document_masks_every_path(document: object) -> None:
    templates = PathTemplates.from_openapi(document)  # type: ignore[arg-type]
    assert templates.template_for("/citizens/001203004567") == "/citizens/{param}"


def test_templates_from_an_openapi_document() -> None:
    document = {"paths": {"/citizens/{id}": {"get": {}}, "/citizens/search": {"get": {}}}}
    templates = PathTemplates.from_openapi(document)
    assert templates.template_for("/citizens/search") == "/citizens/search"
    assert templates.template_for("/citizens/001203004567") == "/citizens/{id}"
