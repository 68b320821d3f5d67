"""The wire contract between the hub, the nodes and the gateway.

Everything a node or the gateway needs to speak to the hub lives here or in the error
catalogue (``common.errors``): header names, the token's claims, the ledger's outcomes
and the error body's media type.

Errors travel as RFC 9457 problem details (``application/problem+json``) with one extra
member, ``code``: a stable, machine-readable identifier that clients branch on. The
human ``title`` and ``detail`` may change between releases; ``code`` does not. Every code,
with its status and ledger outcome, is in ``common.errors``' catalogue (``docs/errors.md``).
"""

from __future__ import annotations

import enum

__all__ = [
    "HEADER_CONSUMER",
    "HEADER_DOSSIER",
    "HEADER_PROCEDURE",
    "HEADER_REQUEST_ID",
    "HEADER_TRACEPARENT",
    "HEADER_TRACESTATE",
    "HEADER_TRANSACTION_ID",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPE_BASE",
    "TOKEN_AUDIENCE",
    "TOKEN_ISSUER",
    "TOKEN_SCOPE",
    "Outcome",
    "outcome_for_status",
]

#: Set by the hub on every exchange response (and forwarded to the provider).
HEADER_TRANSACTION_ID = "X-Transaction-Id"
#: Optional on an exchange request: the administrative procedure it serves.
HEADER_PROCEDURE = "X-Procedure"
#: Optional on an exchange request: the dossier it belongs to.
HEADER_DOSSIER = "X-Dossier"
#: Set by the hub on the forwarded request: the authenticated consumer node's code.
HEADER_CONSUMER = "X-Consumer"
#: Passed through unchanged in both directions.
HEADER_REQUEST_ID = "X-Request-Id"
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"

PROBLEM_CONTENT_TYPE = "application/problem+json"

#: Claims of the hub's access tokens.
TOKEN_ISSUER = "ngsp-hub"
TOKEN_AUDIENCE = "ngsp"
#: The scope WSO2 API Manager grants by default, which the real platform's clients use.
TOKEN_SCOPE = "am_application_scope default"

#: Problem type URIs are relative references under this prefix.
PROBLEM_TYPE_BASE = "https://ngsp-sim.dev/problems/"


class Outcome(enum.StrEnum):
    """How an exchange ended, as recorded in the ledger."""

    OK = "ok"
    #: The provider answered 4xx: it refused the consumer's request.
    CLIENT_ERROR = "client_error"
    #: The provider answered 5xx or an unusable response.
    PROVIDER_ERROR = "provider_error"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    #: The request itself was malformed (bad method, bad header, bad path).
    BAD_REQUEST = "bad_request"
    #: The provider's circuit is open after repeated failures: refused at once.
    CIRCUIT_OPEN = "circuit_open"
    #: Shed: the hub, or its share for this provider, was full.
    OVERLOADED = "overloaded"


def outcome_for_status(status: int) -> Outcome:
    """How the ledger records a provider's answer with this status."""
    if status >= 500:
        return Outcome.PROVIDER_ERROR
    if status >= 400:
        return Outcome.CLIENT_ERROR
    return Outcome.OK
