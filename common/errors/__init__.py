"""The platform's errors: one catalogue of codes, the error classes, one renderer.

Every answer a service makes itself is ``application/problem+json`` (RFC 9457) with a
stable ``code``. Every code, with its HTTP status, title and ledger outcome, is defined
once, in the catalogue (``_catalogue.py``); ``docs/errors.md`` is generated from it
(``python -m common.errors docs/errors.md``).

The classes are for raising and catching by kind; each takes its code and all that goes
with it from the catalogue::

    ProblemError                  raise with code="..." for a code without a class
    ├── InvalidRequest, JsonTooDeep, NotFound, MethodNotAllowed, SlowSender,
    │   PayloadTooLarge, HeadersTooLarge, AdminTokenInvalid, NotReady     (every service)
    ├── TokenMissing, TokenInvalid, Forbidden, UnknownProvider, UnknownService,
    │   NotGranted, ProviderCircuitOpen, ProviderBusy, HubOverloaded,
    │   ProviderBadResponse, ProviderUnavailable, ProviderTimeout,
    │   LedgerUnavailableError, Conflict                                  (the hub)
    ├── InvalidApiKey, RateLimited, InvalidApplicant, UnprocessableDossier (the gateway)
    └── InvalidInput, RefusedError, InjectedFault                         (the nodes)

One renderer writes them, in whichever form a service answers: a Starlette response
(``problem_response``, and ``install_error_handlers`` for a FastAPI app), ASGI messages
(``send_problem``), or bytes prepared once or written to a socket (``problem_headers``,
``status_line``, ``header_block``, ``http_answer``).
"""

from __future__ import annotations

from common.errors._catalogue import CATALOGUE, SECTIONS, Problem, Section, lookup
from common.errors._docs import render_docs
from common.errors._errors import (
    AdminTokenInvalid,
    Conflict,
    Forbidden,
    HeadersTooLarge,
    HubOverloaded,
    InjectedFault,
    InvalidApiKey,
    InvalidApplicant,
    InvalidInput,
    InvalidRequest,
    JsonTooDeep,
    LedgerUnavailableError,
    MethodNotAllowed,
    NotFound,
    NotGranted,
    NotReady,
    PayloadTooLarge,
    ProblemError,
    ProviderBadResponse,
    ProviderBusy,
    ProviderCircuitOpen,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RefusedError,
    SlowSender,
    TokenInvalid,
    TokenMissing,
    UnknownProvider,
    UnknownService,
    UnprocessableDossier,
)
from common.errors._handlers import ProblemDetails, install_error_handlers, problem_responses
from common.errors._render import (
    header_block,
    http_answer,
    problem_body,
    problem_headers,
    problem_response,
    send_problem,
    status_line,
)

__all__ = [
    "CATALOGUE",
    "SECTIONS",
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
    "Problem",
    "ProblemDetails",
    "ProblemError",
    "ProviderBadResponse",
    "ProviderBusy",
    "ProviderCircuitOpen",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "RefusedError",
    "Section",
    "SlowSender",
    "TokenInvalid",
    "TokenMissing",
    "UnknownProvider",
    "UnknownService",
    "UnprocessableDossier",
    "header_block",
    "http_answer",
    "install_error_handlers",
    "lookup",
    "problem_body",
    "problem_headers",
    "problem_response",
    "problem_responses",
    "render_docs",
    "send_problem",
    "status_line",
]
