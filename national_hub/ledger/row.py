"""A ledger row: the one definition of the fields every exchange's row records.

``LedgerRow`` below is the definition. Each field's annotation carries, beside its Python
type, how it is stored (``Stored``): the SQL type, whether it is a moment (microseconds
since the Unix epoch, shown by the API as a UTC date-time), which part of the row it is,
and the hash recipe version from which the chain covers it. Everything else is derived
from it: the ``ledger`` table's columns (``models.py``), the hash recipes (``chain.py``),
the writer's and the simulation's multi-row inserts, the API's ``TransactionPublic``,
the CSV export. docs/architecture.md tells how to add a field.

The order of the fields is the table's column order and the order the hash recipes take
them in: add a field at the end (where a migration's ``ADD COLUMN`` puts it), with the
next recipe version as its ``since``, and never reorder, rename or retype one.
"""

# No ``from __future__ import annotations``: the annotations are read at run time, and
# evaluating them once, when the class is made, keeps one ``Stored`` for each field.

import dataclasses
import enum
import types
import typing
from operator import attrgetter
from typing import Annotated, Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.types import TypeEngine

__all__ = [
    "FIELDS",
    "MOMENTS",
    "NAMES",
    "LedgerRow",
    "Part",
    "RowField",
    "Stored",
]


class Part(enum.Enum):
    """Which part of a row a field belongs to."""

    #: What the exchange records: shown by the API, and hashed.
    RECORD = "record"
    #: The row's place in its writer's hash chain (set by the writer): hashed.
    PLACE = "place"
    #: The row's hash (set by the writer): the only field the hash does not cover.
    HASH = "hash"


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    """How a field of ``LedgerRow`` is stored, shown and hashed."""

    sql: TypeEngine[Any]
    part: Part = Part.RECORD
    primary_key: bool = False
    #: Microseconds since the Unix epoch (UTC); the API shows a date-time.
    moment: bool = False
    #: The first hash recipe version that covers the field (``chain.py``). A field added
    #: later takes the next version, so that chains written before still verify.
    since: int = 1


def _text(length: int, **kwargs: Any) -> Stored:
    return Stored(String(length), **kwargs)


_MOMENT = Stored(BigInteger(), moment=True)
_COUNT = Stored(BigInteger())


@dataclasses.dataclass(slots=True, kw_only=True)
class LedgerRow:
    """One exchange, refused ones included, as the ledger records it."""

    #: UUIDv7 text: sorts by the time the request arrived.
    id: Annotated[str, _text(36, primary_key=True)]
    consumer: Annotated[str | None, _text(64)]
    provider: Annotated[str | None, _text(64)]
    service: Annotated[str | None, _text(64)]
    procedure: Annotated[str | None, _text(64)]
    dossier: Annotated[str | None, _text(128)]
    method: Annotated[str, _text(16)]
    #: The path as a template (``/citizens/{id}``), never as sent and never with a query.
    path: Annotated[str, _text(512)]
    status: Annotated[int, Stored(Integer())]
    outcome: Annotated[str, _text(32)]
    requested_at: Annotated[int, _MOMENT]
    forwarded_at: Annotated[int | None, _MOMENT]
    provider_responded_at: Annotated[int | None, _MOMENT]
    responded_at: Annotated[int, _MOMENT]
    request_bytes: Annotated[int, _COUNT]
    response_bytes: Annotated[int, _COUNT]
    request_sha256: Annotated[str | None, _text(64)]
    #: The hash chain (``chain.py``): which writer wrote the row, its place, its hash.
    chain: Annotated[str | None, _text(36, part=Part.PLACE)] = None
    seq: Annotated[int | None, Stored(BigInteger(), part=Part.PLACE)] = None
    hash: Annotated[str | None, _text(64, part=Part.HASH)] = None

    def as_params(self) -> dict[str, Any]:
        """The row as insert parameters, by column name."""
        return dict(zip(NAMES, _values(self), strict=True))


@dataclasses.dataclass(frozen=True, slots=True)
class RowField:
    """One field of ``LedgerRow``, with what its annotation says."""

    name: str
    #: The Python type of a value, ``None`` apart (``str`` or ``int``).
    type: type[Any]
    nullable: bool
    stored: Stored
    #: The value a row takes when it is not given one (``dataclasses.MISSING`` if none).
    default: Any

    @property
    def part(self) -> Part:
        return self.stored.part


def _read_fields() -> tuple[RowField, ...]:
    hints = typing.get_type_hints(LedgerRow, include_extras=True)
    fields = []
    for field in dataclasses.fields(LedgerRow):
        annotated = hints[field.name]
        value_type, *extras = typing.get_args(annotated)
        (stored,) = [e for e in extras if isinstance(e, Stored)]
        members = typing.get_args(value_type) if isinstance(value_type, types.UnionType) else ()
        nullable = type(None) in members
        if nullable:
            (value_type,) = [m for m in members if m is not type(None)]
        fields.append(RowField(field.name, value_type, nullable, stored, field.default))
    return tuple(fields)


#: The fields of a row, in order.
FIELDS = _read_fields()
NAMES = tuple(f.name for f in FIELDS)
#: The fields that hold a moment (microseconds since the epoch).
MOMENTS = tuple(f.name for f in FIELDS if f.stored.moment)
_values = attrgetter(*NAMES)
