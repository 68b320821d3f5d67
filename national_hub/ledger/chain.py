"""The ledger's hash chain: every row is linked to the one before it.

Each ledger writer (one per hub process start) keeps its own chain: its rows carry the
chain's id, a sequence number from 1, and ``hash = SHA-256(previous hash, the row's
fields)``. The chain's head (last sequence number and hash) is stored in
``ledger_chains`` in the same transaction as the rows. So a row changed in the database
no longer matches its hash, a row deleted leaves a gap in the sequence (or a head that
points past the end), and a row inserted belongs to no chain or repeats a number; the
verifier (``ngsp ledger verify``) names the first such row.

How a row's fields become the bytes hashed is a *recipe*, and recipes have versions. A
writer uses one recipe for its whole chain, so the version is kept once per chain, in
``ledger_chains.hash_version``, and the verifier checks each chain with its own. A
version covers every field of the row but ``hash``, from the version its ``since`` names
(``row.py``): a field added later joins the next version, and chains written before keep
verifying with the fields they were written with.

- Version 1 (chains written before versions existed): the previous hash and the fields'
  text (``str``; ``\\x00`` for a missing value) joined with ``\\x1f``, the row's id first,
  then its place in the chain (``chain``, ``seq``), then the rest in the definition's
  order. A ``\\x1f`` inside a value can shift text from one field into the next, so two
  different rows can hash the same: kept only to verify what was written with it.
- Version 2: the canonical JSON text of the array ``[previous hash, field values...]``,
  the fields in the definition's order (the table's and the insert's): no whitespace,
  strings quoted with only the escapes JSON requires (RFC 8785's form for strings,
  integers and null), UTF-8. Each value is delimited, and ``null``, ``""`` and ``"null"``
  differ, so different rows give different bytes.
- Later versions: version 2's encoding over the fields whose ``since`` has come.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any

import orjson

from national_hub.ledger.row import FIELDS, LedgerRow, Part

__all__ = ["CURRENT", "GENESIS", "RECIPES", "Recipe"]

GENESIS = "0" * 64
#: Version 1's separator before each field, and its text for a missing value (None).
_SEPARATOR = "\x1f"
_MISSING = "\x00"
_sha256 = hashlib.sha256


def _separated(previous: str, values: Sequence[Any]) -> bytes:
    """Version 1: joined first and encoded in one call (UTF-8 of a concatenation is the
    concatenation of the UTF-8), at half the cost of feeding the fields one by one."""
    fields = [_MISSING if value is None else str(value) for value in values]
    return _SEPARATOR.join([previous, *fields]).encode()


def _canonical_json(previous: str, values: Sequence[Any]) -> bytes:
    """Version 2 on: orjson writes exactly the canonical text for these types (the tests
    hold it to the standard library's ``json``), in half the time of version 1."""
    return orjson.dumps((previous, *values))


@dataclasses.dataclass(frozen=True, slots=True)
class Recipe:
    """How one version of the chain hashes a row."""

    version: int
    #: The row's fields the hash covers, in the order it takes them.
    fields: tuple[str, ...]
    encode: Callable[[str, Sequence[Any]], bytes]
    _of_row: Callable[[LedgerRow], tuple[Any, ...]] = dataclasses.field(repr=False)
    _of_mapping: Callable[[Mapping[str, Any]], tuple[Any, ...]] = dataclasses.field(repr=False)

    def hash(self, previous: str, values: Sequence[Any]) -> str:
        """The hash of a row given as its values in ``fields`` order."""
        return _sha256(self.encode(previous, values)).hexdigest()

    def hash_row(self, previous: str, row: LedgerRow) -> str:
        """The hash of a ``LedgerRow`` linked to the previous row's hash."""
        return _sha256(self.encode(previous, self._of_row(row))).hexdigest()

    def hash_mapping(self, previous: str, row: Mapping[str, Any]) -> str:
        """The hash of a row given as a mapping (a database row) of its fields."""
        return _sha256(self.encode(previous, self._of_mapping(row))).hexdigest()


def _fields(version: int) -> tuple[str, ...]:
    covered = [f for f in FIELDS if f.part is not Part.HASH and f.stored.since <= version]
    if version == 1:  # the row's place in its chain came right after its id
        key = [f.name for f in covered if f.stored.primary_key]
        place = [f.name for f in covered if f.part is Part.PLACE]
        rest = [f.name for f in covered if f.part is Part.RECORD and not f.stored.primary_key]
        return (*key, *place, *rest)
    return tuple(f.name for f in covered)


def _recipe(version: int) -> Recipe:
    fields = _fields(version)
    encode = _separated if version == 1 else _canonical_json
    return Recipe(version, fields, encode, attrgetter(*fields), itemgetter(*fields))


#: Every version this code can verify; the newest is the one writers use.
RECIPES = {v: _recipe(v) for v in range(1, max(2, *(f.stored.since for f in FIELDS)) + 1)}
CURRENT = RECIPES[max(RECIPES)]
