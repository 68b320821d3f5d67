"""The error classes: each names its code, and the catalogue gives the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.contract import Outcome, outcome_for_status
from common.errors._catalogue import Problem, lookup
from common.errors._render import problem_body

__all__ = [
    "AdminTokenInvalid",
    "Conflict",
    "Forbidden",
    "HeadersTooLarge",
    "HubOverloaded",
    "InjectedFault",
    "InvalidApiKey",
    "InvalidApplicant",
    "InvalidInput",
    "InvalidRequest",
    "JsonTooDeep",
    "LedgerUnavailableError",
    "MethodNotAllowed",
    "NotFound",
    "NotGranted",
    "NotReady",
    "PayloadTooLarge",
    "ProblemError",
    "ProviderBadResponse",
    "ProviderBusy",
    "ProviderCircuitOpen",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "RefusedError",
    "SlowSender",
    "TokenInvalid",
    "TokenMissing",
    "UnknownProvider",
    "UnknownService",
    "UnprocessableDossier",
]


class ProblemError(Exception):
    """An error that is answered to the caller as a problem+json body.

    A subclass names its code, ``class NotReady(ProblemError, code="not_ready")``, and
    takes its status, title and ledger outcome from the catalogue. Raise it with a
    ``detail``; ``code=`` answers with another code of the catalogue instead (a more
    specific one: ``NotFound(..., code="card_not_found")``), ``status=`` with one of the
    code's other statuses.
    """

    #: The catalogue's entry this error answers with.
    problem: Problem
    code: str
    status: int
    title: str
    #: How the hub's ledger records this refusal.
    outcome: Outcome

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            problem = lookup(code)
            cls.problem = problem
            cls.code = problem.code
            cls.status = problem.status
            cls.title = problem.title
            cls.outcome = problem.outcome or outcome_for_status(problem.status)

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        if code is not None or status is not None:
            problem = self.problem if code is None else lookup(code)
            if status is None:
                status = problem.status
            elif not problem.allows(status):
                raise ValueError(f"error code {problem.code!r} is not answered with {status}")
            self.problem = problem
            self.code = problem.code
            self.status = status
            self.title = problem.title
            self.outcome = problem.outcome or outcome_for_status(status)
        detail = detail or self.title
        super().__init__(detail)
        self.detail = detail
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


# -- every service ---------------------------------------------------------------------


class InvalidRequest(ProblemError, code="invalid_request"):
    pass


class JsonTooDeep(ProblemError, code="json_too_deep"):
    pass


class NotFound(ProblemError, code="not_found"):
    pass


class MethodNotAllowed(ProblemError, code="method_not_allowed"):
    pass


class SlowSender(ProblemError, code="request_timeout"):
    """The rest of a stalled request may never come: the connection is closed."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class PayloadTooLarge(ProblemError, code="payload_too_large"):
    pass


class HeadersTooLarge(ProblemError, code="headers_too_large"):
    pass


class AdminTokenInvalid(ProblemError, code="invalid_admin_token"):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="ngsp-admin"'})


class NotReady(ProblemError, code="not_ready"):
    pass


# -- the hub ---------------------------------------------------------------------------


class TokenMissing(ProblemError, code="missing_token"):
    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="ngsp"'})


class TokenInvalid(ProblemError, code="invalid_token"):
    def __init__(self, detail: str | None = None) -> None:
        desc = (detail or self.title).replace('"', "'")
        super().__init__(
            detail,
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="ngsp", error="invalid_token", error_description="{desc}"'
                )
            },
        )


class Forbidden(ProblemError, code="forbidden"):
    pass


class UnknownProvider(ProblemError, code="unknown_provider"):
    pass


class UnknownService(ProblemError, code="unknown_service"):
    pass


class NotGranted(ProblemError, code="not_granted"):
    pass


class ProviderCircuitOpen(ProblemError, code="provider_circuit_open"):
    pass


class ProviderBusy(ProblemError, code="provider_busy"):
    pass


class HubOverloaded(ProblemError, code="hub_overloaded"):
    pass


class ProviderBadResponse(ProblemError, code="provider_bad_response"):
    pass


class ProviderUnavailable(ProblemError, code="provider_unavailable"):
    pass


class ProviderTimeout(ProblemError, code="provider_timeout"):
    pass


class LedgerUnavailableError(ProblemError, code="ledger_unavailable"):
    pass


class Conflict(ProblemError, code="conflict"):
    pass


# -- the gateway -----------------------------------------------------------------------


class InvalidApiKey(ProblemError, code="invalid_api_key"):
    pass


class RateLimited(ProblemError, code="rate_limited"):
    pass


class InvalidApplicant(ProblemError, code="invalid_applicant"):
    pass


class UnprocessableDossier(ProblemError, code="unprocessable"):
    pass


# -- the nodes -------------------------------------------------------------------------


class InvalidInput(ProblemError, code="invalid_input"):
    pass


class RefusedError(ProblemError, code="refused"):
    """The request is well formed but the service's rules refuse it."""


class InjectedFault(ProblemError, code="injected_fault"):
    pass
