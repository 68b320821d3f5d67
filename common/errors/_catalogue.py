"""The catalogue: every code the services answer with, and all that goes with it.

This table is the one definition of each code. The error classes take their code, status,
title and outcome from it; the renderer writes its members; ``docs/errors.md`` is
generated from it. To add a code, add a ``Problem`` to the section of the service that
answers with it, raise it (``SomeError(detail, code="new_code")`` or a class declared
with ``code="new_code"``), and regenerate the docs page (``python -m common.errors
docs/errors.md``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from common.contract import Outcome

__all__ = ["CATALOGUE", "SECTIONS", "Problem", "Section", "lookup"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One code: the machine-readable ``code`` clients branch on, and what goes with it."""

    code: str
    #: The HTTP status it is answered with.
    status: int
    #: The problem's ``title``: a short human summary, which may change between releases.
    title: str
    #: What it means, for the docs page.
    meaning: str
    #: How the hub's ledger records a refusal the hub makes with this code. ``None`` for a
    #: code the hub does not record itself: a provider's answer with it is recorded by its
    #: status (``client_error`` for 4xx, ``provider_error`` for 5xx).
    outcome: Outcome | None = None
    #: Further statuses a raise may name (``status=``), where the context decides.
    other_statuses: Collection[int] = ()

    def allows(self, status: int) -> bool:
        """Whether this code may be answered with ``status``."""
        return status == self.status or status in self.other_statuses


@dataclass(frozen=True, slots=True)
class Section:
    """The codes one part of the platform answers with."""

    title: str
    intro: str
    problems: tuple[Problem, ...]


_EVERY_SERVICE = Section(
    "Every service",
    "The edge limits and request handling the hub, the nodes and the gateway share.",
    (
        Problem(
            "invalid_request",
            400,
            "Invalid request",
            "A body, query, path parameter or header failed validation; `errors` lists "
            "each field with its message. At the hub's `POST /token`, a malformed token "
            "request (RFC 6749 §5.2).",
            Outcome.BAD_REQUEST,
        ),
        Problem(
            "json_too_deep",
            400,
            "JSON nested too deeply",
            "A JSON body nests deeper than the service's limit (32 levels by default).",
        ),
        Problem(
            "not_found",
            404,
            "Not found",
            "No such route, or no such resource at this path.",
        ),
        Problem(
            "method_not_allowed",
            405,
            "Method not allowed",
            "The route does not take this method; the hub forwards GET, POST, PUT, PATCH, "
            "DELETE, HEAD and OPTIONS only.",
            Outcome.BAD_REQUEST,
        ),
        Problem(
            "request_timeout",
            408,
            "Request too slow",
            "The request's headers, or the next part of its body, did not arrive in time; "
            "the connection is closed.",
            Outcome.BAD_REQUEST,
        ),
        Problem(
            "payload_too_large",
            413,
            "Request body too large",
            "The body, declared or as sent, is over the service's limit; the rest is not read.",
            Outcome.TOO_LARGE,
        ),
        Problem(
            "unsupported_media_type",
            415,
            "Unsupported media type",
            "The body's content type is not one the route reads.",
        ),
        Problem(
            "headers_too_large",
            431,
            "Request headers too large",
            "The request line's target and headers are over the service's limit in all.",
            Outcome.TOO_LARGE,
        ),
        Problem(
            "http_error",
            400,
            "HTTP error",
            "Any other HTTP error the web framework raises, with its own status.",
            other_statuses=range(400, 600),
        ),
        Problem(
            "invalid_admin_token",
            401,
            "Admin token required",
            "The admin API (the hub's, the nodes' control API, the gateway's) needs its "
            "admin token.",
            Outcome.UNAUTHORIZED,
        ),
        Problem(
            "not_ready",
            503,
            "Not ready",
            "`/readyz`: the database, the ledger writer or the rate-limit store does not answer.",
        ),
    ),
)

_TOKENS = Section(
    "The hub: `POST /token`",
    "Client credentials (RFC 6749 §4.4). Each refusal is also an RFC 6749 §5.2 error: the "
    "body carries `error` (equal to `code`) and `error_description`. A malformed request "
    "is `invalid_request`, above.",
    (
        Problem(
            "invalid_client",
            401,
            "Invalid client",
            "Client authentication failed: unknown client, wrong secret, malformed Basic "
            "credentials, or a node disabled or not connected.",
            Outcome.UNAUTHORIZED,
        ),
        Problem(
            "unsupported_grant_type",
            400,
            "Unsupported grant type",
            "Only `client_credentials` is granted.",
            Outcome.BAD_REQUEST,
        ),
        Problem(
            "invalid_scope",
            400,
            "Invalid scope",
            "The scope asks for more than the platform's default scope.",
            Outcome.BAD_REQUEST,
        ),
        Problem(
            "too_many_attempts",
            429,
            "Too many attempts",
            "Failed attempts locked the client id; retry after `Retry-After`.",
            Outcome.OVERLOADED,
        ),
    ),
)

_HUB = Section(
    "The hub: callers, the exchange and the registry",
    "The data plane's refusals (`/exchange/...`), in the order the hub checks, then the "
    "admin and reporting API's.",
    (
        Problem(
            "missing_token",
            401,
            "Bearer token required",
            "No `Authorization: Bearer` header; get a token from `POST /token`.",
            Outcome.UNAUTHORIZED,
        ),
        Problem(
            "invalid_token",
            401,
            "Invalid bearer token",
            "The token is malformed, expired, not yet valid, or its credential was revoked "
            "or its node disabled; get a new one.",
            Outcome.UNAUTHORIZED,
        ),
        Problem(
            "forbidden",
            403,
            "Forbidden",
            "A node token used where the admin token is required, or on another node's dossier.",
            Outcome.FORBIDDEN,
        ),
        Problem(
            "unknown_provider",
            404,
            "Unknown provider",
            "No connected provider with this code.",
            Outcome.NOT_FOUND,
        ),
        Problem(
            "unknown_service",
            404,
            "Unknown service",
            "The provider has no service with this code (a node answers the same for a "
            "service it does not offer).",
            Outcome.NOT_FOUND,
        ),
        Problem(
            "not_granted",
            403,
            "No grant for this service",
            "The consumer holds no grant for the service.",
            Outcome.FORBIDDEN,
        ),
        Problem(
            "provider_circuit_open",
            503,
            "Provider failing: circuit open",
            "The provider failed repeatedly; refused at once until `Retry-After`.",
            Outcome.CIRCUIT_OPEN,
        ),
        Problem(
            "provider_busy",
            503,
            "Too many exchanges waiting on this provider",
            "The provider's share of the hub is full; retry after `Retry-After`.",
            Outcome.OVERLOADED,
        ),
        Problem(
            "hub_overloaded",
            503,
            "The hub is over capacity",
            "The hub sheds load; retry after `Retry-After`.",
            Outcome.OVERLOADED,
        ),
        Problem(
            "provider_bad_response",
            502,
            "Provider sent an unusable response",
            "The provider closed the connection, answered something that is not HTTP/1.x, "
            "or answered over the size limit.",
            Outcome.PROVIDER_ERROR,
        ),
        Problem(
            "provider_unavailable",
            503,
            "Provider unavailable",
            "The provider refused the connection.",
            Outcome.UNAVAILABLE,
        ),
        Problem(
            "provider_timeout",
            504,
            "Provider timed out",
            "No answer within the provider timeout.",
            Outcome.TIMEOUT,
        ),
        Problem(
            "ledger_unavailable",
            503,
            "Ledger unavailable",
            "The exchange, or the dossier report, could not be recorded, so it is not "
            "acknowledged: retry it.",
        ),
        Problem(
            "conflict",
            409,
            "Conflict",
            "The resource exists with other content (a node, service, client id or dossier "
            "report).",
        ),
        Problem(
            "reporting_not_granted",
            403,
            "Not allowed to report completions",
            "Only the public service portal (a node of kind `portal`) may report a "
            "completed dossier, and so count its saving.",
            Outcome.FORBIDDEN,
        ),
        Problem(
            "dossier_not_in_ledger",
            409,
            "The dossier's exchanges are not in the ledger",
            "A completion counts only for a dossier the ledger holds: one answered exchange "
            "per step of its procedure, each carrying the dossier's id, all by one node.",
            Outcome.BAD_REQUEST,
        ),
    ),
)

_GATEWAY = Section(
    "The gateway",
    "The public portal's API: API keys, procedures and dossiers.",
    (
        Problem(
            "invalid_api_key",
            401,
            "API key required",
            "No API key, or an unknown or revoked one; send it as `X-API-Key`.",
        ),
        Problem(
            "rate_limited",
            429,
            "Too many requests",
            "Over the key's requests a minute; retry after `Retry-After`.",
        ),
        Problem(
            "quota_exceeded",
            429,
            "Too many requests",
            "The key's daily quota is used; retry after `Retry-After`.",
        ),
        Problem(
            "invalid_applicant",
            400,
            "Invalid applicant data",
            "An applicant field is missing or malformed; `field` names it.",
        ),
        Problem(
            "unprocessable",
            422,
            "The dossier cannot be accepted",
            "The dossier cannot be accepted; the codes below say why.",
        ),
        Problem(
            "unknown_procedure",
            404,
            "Unknown procedure",
            "No procedure with this code in the catalogue: 404 at `GET /procedures/{code}`, "
            "422 in a dossier submitted to the gateway, 400 in a dossier report to the hub.",
            other_statuses=(400, 422),
        ),
        Problem(
            "unknown_province",
            422,
            "The dossier cannot be accepted",
            "No province with this code.",
        ),
        Problem(
            "procedure_not_offered",
            422,
            "The dossier cannot be accepted",
            "The procedure is not offered at level 4 in this province.",
        ),
        Problem(
            "province_not_connected",
            422,
            "The dossier cannot be accepted",
            "The province is not connected to the platform.",
        ),
        Problem(
            "idempotency_key_reused",
            422,
            "The dossier cannot be accepted",
            "This `Idempotency-Key` was used for a different dossier.",
        ),
        Problem(
            "dossier_not_found",
            404,
            "Not found",
            "No such dossier for this key (a province's one-stop system answers the same).",
        ),
    ),
)

_NODES = Section(
    "The nodes",
    "The provincial and ministry systems behind the hub. The hub passes their answers on "
    "unchanged and records them by status.",
    (
        Problem(
            "invalid_input",
            400,
            "Invalid input",
            "A field the service checks itself is wrong; `field` names it.",
        ),
        Problem(
            "invalid_id_number",
            400,
            "Invalid input",
            "Not a valid 12-digit citizen ID number; `field` names it.",
        ),
        Problem(
            "invalid_tax_code",
            400,
            "Invalid input",
            "A tax code whose check digit fails.",
        ),
        Problem(
            "citizen_not_found",
            404,
            "Not found",
            "No citizen with this ID number; `field` names where it was given.",
        ),
        Problem("record_not_found", 404, "Not found", "No birth record with this number."),
        Problem("card_not_found", 404, "Not found", "No health-insurance card with this number."),
        Problem("parcel_not_found", 404, "Not found", "No land parcel with this id."),
        Problem("enterprise_not_found", 404, "Not found", "No enterprise with this tax code."),
        Problem(
            "not_a_province",
            404,
            "Not found",
            "This node is not a province, so it has no one-stop system.",
        ),
        Problem(
            "refused",
            409,
            "Refused",
            "Well formed, but the service's rules refuse it; the codes below say which rule.",
        ),
        Problem(
            "invalid_parent",
            409,
            "Refused",
            "The mother is not female or was under 12 at the birth, or the father is not male.",
        ),
        Problem(
            "already_registered",
            409,
            "Refused",
            "This birth is registered already; `record_number` names the record.",
        ),
        Problem(
            "not_eligible",
            409,
            "Refused",
            "The citizen is not eligible (the children's card is for children under 6).",
        ),
        Problem(
            "card_exists",
            409,
            "Refused",
            "The child already holds a card; `card_number` names it.",
        ),
        Problem(
            "injected_fault",
            500,
            "Injected fault",
            "A fault injected by the control API, with its configured 5xx status.",
            other_statuses=range(500, 600),
        ),
    ),
)

#: The catalogue's sections, in the order the docs page lists them.
SECTIONS: tuple[Section, ...] = (_EVERY_SERVICE, _TOKENS, _HUB, _GATEWAY, _NODES)


def _index(sections: tuple[Section, ...]) -> Mapping[str, Problem]:
    index: dict[str, Problem] = {}
    for problem in _problems(sections):
        if problem.code in index:
            raise ValueError(f"error code {problem.code!r} is in the catalogue twice")
        index[problem.code] = problem
    return index


def _problems(sections: tuple[Section, ...]) -> Iterator[Problem]:
    for section in sections:
        yield from section.problems


#: Every code, by code.
CATALOGUE: Mapping[str, Problem] = _index(SECTIONS)


def lookup(code: str) -> Problem:
    """The catalogue's entry for ``code``."""
    try:
        return CATALOGUE[code]
    except KeyError:
        raise LookupError(f"error code {code!r} is not in the catalogue") from None
