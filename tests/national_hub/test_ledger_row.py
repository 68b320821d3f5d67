"""A ledger row's fields are defined once (``LedgerRow``); everything else derives from it."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite

from national_hub.ledger import row as row_module
from national_hub.ledger.chain import CURRENT
from national_hub.ledger.row import FIELDS, MOMENTS, NAMES, LedgerRow, Part
from national_hub.ledger.writer import _SqliteStore
from national_hub.models import ledger_table
from national_hub.reports import _COLUMNS as CSV_COLUMNS
from national_hub.schemas import TransactionPublic
from simulation.engine import ROW_COLUMNS
from simulation.store import LEDGER_INSERT, LEDGER_SQL

ROOT = Path(__file__).resolve().parents[2]
RECORD = [f for f in FIELDS if f.part is Part.RECORD]


def test_the_table_s_columns_are_the_row_s_fields() -> None:
    columns = list(ledger_table.columns)
    assert [c.name for c in columns] == list(NAMES)
    for column, field in zip(columns, FIELDS, strict=True):
        assert column.nullable == field.nullable, field.name
        assert column.primary_key == field.stored.primary_key, field.name
        assert column.type.compile(sqlite.dialect()) == field.stored.sql.compile(sqlite.dialect())
        assert column.type.python_type is field.type, field.name


def test_the_api_shows_the_row_s_record_with_moments_as_date_times() -> None:
    shown = TransactionPublic.model_fields
    assert list(shown) == [f.name for f in RECORD]
    for field in RECORD:
        value_type = dt.datetime if field.name in MOMENTS else field.type
        expected: Any = value_type | None if field.nullable else value_type
        assert shown[field.name].annotation == expected, field.name
        assert shown[field.name].is_required(), field.name
    assert list(NAMES) == CSV_COLUMNS


def test_every_insert_takes_the_row_s_fields() -> None:
    store = _SqliteStore(Path("unused.db"), synchronous="OFF", offset_minutes=0)
    assert store._ledger_sql[1] == NAMES
    assert LEDGER_INSERT == NAMES
    assert LEDGER_SQL.startswith(f"INSERT INTO ledger ({', '.join(NAMES)}) VALUES")
    assert set(CURRENT.fields) == set(NAMES) - {"hash"}


def test_the_simulation_fills_every_field_a_row_must_be_given() -> None:
    required = [f.name for f in FIELDS if f.default is dataclasses.MISSING]
    assert ("seq", *required[1:]) == ROW_COLUMNS  # the id is made from the seq
    simulated = ROW_COLUMNS[1:]
    assert {f.name for f in FIELDS if f.name not in simulated} == {"id", "chain", "seq", "hash"}


def _literals(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """The names each literal collection, class body or text in a module holds. Calls
    are left out: ``LedgerRow(id=..., ...)`` gives a row its values, it copies nothing."""
    found = []
    for node in ast.walk(tree):
        names: set[str] = set()
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
        elif isinstance(node, ast.Dict):
            names = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.ClassDef):
            names = {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = set(re.findall(r"\w+", node.value))
        if names:
            found.append((getattr(node, "lineno", 0), names))
    return found


def test_no_second_copy_of_the_field_list() -> None:
    """A tuple, dict, class or SQL text naming most of a row's fields is a second
    definition: derive it from ``LedgerRow`` instead (``FIELDS``, ``NAMES``, ...)."""
    record = {f.name for f in RECORD}
    definition = Path(row_module.__file__).resolve()
    copies = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == definition or any(p.startswith(".") for p in path.relative_to(ROOT).parts):
            continue
        for line, names in _literals(ast.parse(path.read_text(), str(path))):
            if len(names & record) * 4 >= len(record) * 3:
                copies.append(f"{path.relative_to(ROOT)}:{line}")
    assert copies == []


def test_a_row_s_parameters_are_its_fields() -> None:
    row = LedgerRow(
        **{f.name: (1 if f.type is int else f.name) for f in FIELDS if f.part is Part.RECORD}
    )
    assert list(row.as_params()) == list(NAMES)
    assert row.as_params()["chain"] is None
