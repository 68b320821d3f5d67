"""The wire contract between the hub, the nodes and the gateway.

Everything a node or the gateway needs to speak to the hub lives here and nowhere else:
header names, the token's claims, the ledger's outcomes and the error body.

Errors travel as RFC 9457 problem details (``application/problem+json``) with one extra
member, ``code``: a stable, machine-readable identifier that clients branch on. The
human ``title`` and ``detail`` may change between releases; ``code`` does not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "HEADER_CONSUMER",
    "HEADER_DOSSIER",
    "HEADER_PROCEDURE",
    "HEADER_REQUEST_ID",
    "HEADER_TRACEPARENT",
    "HEADER_TRACESTATE",
    "HEADER_TRANSACTION_ID",
    "PROBLEM_CONTENT_TYPE",
    "TOKEN_AUDIENCE",
    "TOKEN_ISSUER",
    "TOKEN_SCOPE",
    "Outcome",
    "ProblemError",
    "problem_body",
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


class ProblemError(Exception):
    """An error that is answered to the caller as a problem+json body.

    Subclasses set ``status``, ``code`` and ``title``; raise them with a ``detail``.
    """

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, instance: str | None = None) -> bytes:
        """Render this error as a problem+json body."""
        return problem_body(
            status=self.status,
            code=self.code,
            title=self.title,
            detail=self.detail,
            instance=instance,
            extra=self.extra,
        )


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise an RFC 9457 problem details object with our ``code`` member."""
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        doc["instance"] = instance
    if extra:
        for key, value in extra.items():
            doc.setdefault(key, value)
    return orjson.dumps(doc)
