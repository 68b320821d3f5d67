"""The error catalogue: one entry per code, every error class and raise in it, the docs
page generated from it, and the one renderer's forms of an answer."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.contract import PROBLEM_TYPE_BASE, Outcome
from common.errors import (
    CATALOGUE,
    SECTIONS,
    InjectedFault,
    NotFound,
    ProblemError,
    SlowSender,
    http_answer,
    lookup,
    render_docs,
    send_problem,
)
from common.errors._docs import DOCS_PATH, REGENERATE

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (
    "common",
    "country",
    "national_hub",
    "provincial_nodes",
    "gateway",
    "simulation",
    "loadtest",
    "ngsp",
)


def _modules() -> Iterator[str]:
    for package in PACKAGES:
        yield package
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, f"{package}."):
            name = info.name
            # Migrations run under alembic, entry points run the program, and the locust
            # file patches the standard library for gevent: none defines an error.
            if ".migrations" in name or name.endswith(("__main__", "locustfile")):
                continue
            yield name


def _error_classes() -> list[type[ProblemError]]:
    for name in _modules():
        importlib.import_module(name)
    found: list[type[ProblemError]] = []
    todo = [ProblemError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ast.parse(path.read_text("utf-8"), str(path))


def test_the_docs_page_is_current() -> None:
    page = REPO / DOCS_PATH
    text = page.read_text("utf-8") if page.exists() else ""
    assert text == render_docs(), f"{DOCS_PATH} is not current: regenerate it with `{REGENERATE}`"


def test_every_code_is_in_the_catalogue_once() -> None:
    codes = Counter(p.code for section in SECTIONS for p in section.problems)
    assert [code for code, n in codes.items() if n > 1] == []
    assert set(codes) == set(CATALOGUE)
    for code, problem in CATALOGUE.items():
        assert code == problem.code
        assert 400 <= problem.status < 600, code
        assert problem.title, code
        assert problem.meaning, code


def test_every_error_class_takes_its_code_from_the_catalogue() -> None:
    classes = _error_classes()
    assert classes
    for cls in classes:
        problem = CATALOGUE.get(cls.code)
        assert problem is not None, f"{cls.__qualname__}: {cls.code!r} is not in the catalogue"
        assert cls.problem is problem, cls.__qualname__
        assert (cls.status, cls.title) == (problem.status, problem.title), cls.__qualname__
        if problem.outcome is not None:
            assert cls.outcome == problem.outcome, cls.__qualname__


def test_every_code_raised_is_in_the_catalogue() -> None:
    """Each ``SomeError(..., code="x", status=n)`` names a code of the catalogue, and one
    of that code's statuses."""
    classes = {cls.__name__: cls for cls in _error_classes()}
    classes["ProblemError"] = ProblemError
    wrong: list[str] = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in classes:
                continue
            args = {k.arg: k.value for k in node.keywords}
            if any(not isinstance(args[k], ast.Constant) for k in ("code", "status") if k in args):
                continue  # computed: looked up, and checked, when raised
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            code = getattr(args.get("code"), "value", getattr(classes[name], "code", None))
            status = getattr(args.get("status"), "value", None)
            if code not in CATALOGUE:
                wrong.append(f"{where}: {code!r} is not in the catalogue")
            elif status is not None and not CATALOGUE[code].allows(status):
                wrong.append(f"{where}: {code!r} is not answered with {status}")
    assert wrong == []


def test_every_code_in_the_catalogue_is_answered_somewhere() -> None:
    """A code no class names and no source mentions is a stale entry."""
    named = {cls.code for cls in _error_classes()}
    catalogue = REPO / "common" / "errors" / "_catalogue.py"
    for path, tree in _sources():
        if path != catalogue:
            named |= {
                node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
            }
    assert sorted(set(CATALOGUE) - named) == []


def test_a_code_or_status_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(LookupError, match="no_such_code"):
        NotFound("x", code="no_such_code")
    with pytest.raises(ValueError, match="card_exists"):
        ProblemError("x", code="card_exists", status=404)
    assert NotFound("x", code="unknown_procedure", status=422).status == 422


def test_an_error_reads_its_code_from_the_catalogue() -> None:
    err = NotFound("no card 1", code="card_not_found", extra={"field": "card_number"})
    problem = lookup("card_not_found")
    assert (err.code, err.status, err.title) == ("card_not_found", 404, problem.title)
    # Not refused by the hub itself: recorded like a provider's answer with its status.
    assert err.outcome == Outcome.CLIENT_ERROR
    assert orjson.loads(err.body("/cards/1")) == {
        "type": PROBLEM_TYPE_BASE + "card_not_found",
        "title": problem.title,
        "status": 404,
        "detail": "no card 1",
        "code": "card_not_found",
        "instance": "/cards/1",
        "field": "card_number",
    }
    fault = InjectedFault("down", status=503)
    assert (fault.status, fault.outcome) == (503, Outcome.PROVIDER_ERROR)


async def test_the_asgi_and_socket_forms_carry_the_same_answer() -> None:
    err = SlowSender("the body stalled")
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await send_problem(send, err, before=[(b"x-transaction-id", b"t1")])
    start, body = sent
    assert start["status"] == 408
    assert start["headers"] == [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(err.body())).encode()),
        (b"x-transaction-id", b"t1"),
        (b"connection", b"close"),
    ]
    assert body["body"] == err.body()
    assert http_answer(err) == (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(err.body())).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + err.body()
    )
