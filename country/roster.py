"""The national roster: ministry-level bodies, provinces and national databases, as data.

The roster files in ``country/data`` are the one home of node codes. Each is read
with PyYAML's node API so that every refusal names the line it is about: a roster is a
hand-kept file, and "line 214: duplicate code 'P01'" is what its editor needs to see.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError, SafeConstructor

__all__ = [
    "Census",
    "Ministry",
    "MinistryKind",
    "NationalDatabase",
    "Node",
    "Province",
    "Region",
    "Roster",
    "RosterError",
    "load_roster",
]

Region = Literal[
    "Trung du và miền núi phía Bắc",
    "Đồng bằng sông Hồng",
    "Bắc Trung Bộ và Duyên hải miền Trung",
    "Tây Nguyên",
    "Đông Nam Bộ",
    "Đồng bằng sông Cửu Long",
]
MinistryKind = Literal["ministry", "ministry_equivalent", "government_agency"]

_BODY_CODE = r"^[A-Z][A-Z0-9]{1,15}$"


class RosterError(ValueError):
    """A roster file that cannot be used; the message names the file, the line and why."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source} line {line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem

    def __reduce__(self) -> tuple[type[RosterError], tuple[str, int, str]]:
        # The default reduction passes only the message back to __init__ and fails.
        return (type(self), (self.source, self.line, self.problem))


class _Model(BaseModel):
    # extra="forbid" turns a misspelt key into an error instead of a silently absent field.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Census(_Model):
    """The census the provinces' populations come from."""

    reference_date: date
    national_total: int = Field(gt=0)
    tolerance: int = Field(default=0, ge=0)


class _NodeBase(_Model):
    code: str
    name: str = Field(min_length=1)
    lgsp_connected: date


class Ministry(_NodeBase):
    """A ministry, ministry-equivalent agency or government agency running an LGSP."""

    kind: Literal["ministry"]
    code: str = Field(pattern=_BODY_CODE)
    ministry_kind: MinistryKind
    name_en: str = Field(min_length=1)
    merged_from: tuple[str, ...] = ()
    functions_from: tuple[str, ...] = ()


class Province(_NodeBase):
    """A province or centrally-run city running an LGSP."""

    kind: Literal["province"]
    admin_code: str = Field(pattern=r"^[0-9]{2}$")
    cccd_code: str = Field(pattern=r"^0[0-9]{2}$")
    region: Region
    municipality: bool = False
    population_2019: int | None = Field(default=None, gt=0)
    seat: str | None = None
    merged_from: tuple[str, ...] = ()

    @property
    def short_name(self) -> str:
        """The name without its unit type ("Hà Nội" for "Thành phố Hà Nội")."""
        for prefix in ("Thành phố ", "Tỉnh "):
            if self.name.startswith(prefix):
                return self.name.removeprefix(prefix)
        return self.name


class NationalDatabase(_NodeBase):
    """A national database on the NGSP, run by a ministry-level body."""

    kind: Literal["national_database"]
    code: str = Field(pattern=_BODY_CODE)
    name_en: str = Field(min_length=1)
    owner: str


Node: TypeAlias = Ministry | Province | NationalDatabase
_NODE: TypeAdapter[Node] = TypeAdapter(Annotated[Node, Field(discriminator="kind")])

_N = TypeVar("_N", Ministry, Province, NationalDatabase)


@dataclass(frozen=True)
class Roster:
    """A validated roster: its nodes in file order, with lookups by code."""

    name: str
    edition: int
    nodes: tuple[Node, ...]
    census: Census | None = None
    predecessor: Roster | None = None
    _by_code: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _successors: Mapping[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code = {node.code: node for node in self.nodes}
        successors = {
            old: node
            for node in self.nodes
            if not isinstance(node, NationalDatabase)
            for old in node.merged_from
        }
        # object.__setattr__ because the dataclass is frozen; the indexes are derived state.
        object.__setattr__(self, "_by_code", MappingProxyType(by_code))
        object.__setattr__(self, "_successors", MappingProxyType(successors))

    def __getitem__(self, code: str) -> Node:
        try:
            return self._by_code[code]
        except KeyError:
            raise KeyError(f"no node {code!r} in {self.name}") from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, code: str) -> Node | None:
        """The node with this code, or None."""
        return self._by_code.get(code)

    def _typed(self, code: str, kind: type[_N]) -> _N:
        node = self[code]
        if not isinstance(node, kind):
            raise KeyError(f"{code!r} in {self.name} is a {node.kind}, not a {kind.__name__}")
        return node

    def province(self, code: str) -> Province:
        """The province with this code."""
        return self._typed(code, Province)

    def ministry(self, code: str) -> Ministry:
        """The ministry-level body with this code."""
        return self._typed(code, Ministry)

    def national_database(self, code: str) -> NationalDatabase:
        """The national database with this code."""
        return self._typed(code, NationalDatabase)

    @property
    def provinces(self) -> tuple[Province, ...]:
        """The provinces and centrally-run cities, in file order."""
        return tuple(node for node in self.nodes if isinstance(node, Province))

    @property
    def ministries(self) -> tuple[Ministry, ...]:
        """The ministry-level bodies, in file order."""
        return tuple(node for node in self.nodes if isinstance(node, Ministry))

    @property
    def national_databases(self) -> tuple[NationalDatabase, ...]:
        """The national databases, in file order."""
        return tuple(node for node in self.nodes if isinstance(node, NationalDatabase))

    def connected(self, as_of: date, *, include_databases: bool = False) -> list[Node]:
        """The bodies whose LGSP was connected on or before `as_of`, in file order."""
        # The published counts (25, 76, 92) are of bodies, so databases are opt-in.
        return [
            node
            for node in self.nodes
            if node.lgsp_connected <= as_of
            and (include_databases or not isinstance(node, NationalDatabase))
        ]

    def population(self, code: str) -> int:
        """The province's 2019 census population, summed over `merged_from` if merged."""
        province = self.province(code)
        if province.population_2019 is not None:
            return province.population_2019
        # Validation guarantees a predecessor whenever a province has merged_from.
        assert self.predecessor is not None
        return sum(self.predecessor.population(old) for old in province.merged_from)

    def total_population(self) -> int:
        """The sum of all provinces' populations."""
        return sum(self.population(province.code) for province in self.provinces)

    def successor(self, old_code: str) -> Node:
        """The node that continues `old_code` of the predecessor roster."""
        try:
            return self._successors[old_code]
        except KeyError:
            raise KeyError(f"no node in {self.name} continues {old_code!r}") from None

    def province_by_cccd(self, cccd_code: str) -> Province:
        """The province whose citizen-ID prefix is `cccd_code` (e.g. "079")."""
        for province in self.provinces:
            if province.cccd_code == cccd_code:
                return province
        raise KeyError(f"no province with citizen-ID code {cccd_code!r} in {self.name}")


def load_roster(name_or_path: str | PathLike[str]) -> Roster:
    """Load and validate a packaged roster ("roster-2020", "roster-2025") or a YAML file."""
    if _is_packaged_name(name_or_path):
        return _load_packaged(str(name_or_path), ())
    return _load_path(Path(name_or_path), ())


# --- reading -------------------------------------------------------------------------------

_PACKAGE = "country"


def _is_packaged_name(name_or_path: str | PathLike[str]) -> bool:
    # A bare name ("roster-2020") means a packaged file; anything path-like is a path.
    return (
        isinstance(name_or_path, str)
        and "/" not in name_or_path
        and "\\" not in name_or_path
        and not name_or_path.endswith((".yaml", ".yml"))
    )


# Packaged rosters do not change while the process runs and a Roster is immutable, so each
# is parsed once. `chain` (the packaged rosters whose predecessor is being loaded, for cycle
# detection) is part of the key; a packaged roster can only name packaged predecessors, so
# the cache stays as small as the package's data directory.
@functools.cache
def _load_packaged(name: str, chain: tuple[str, ...]) -> Roster:
    resource = resources.files(_PACKAGE).joinpath("data").joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise FileNotFoundError(f"no packaged roster {name!r} in {_PACKAGE}/data")
    text = resource.read_text(encoding="utf-8")
    return _parse(text, f"{name}.yaml", name, None, (*chain, f"package:{name}"))


def _load_path(path: Path, chain: tuple[str, ...]) -> Roster:
    text = path.read_text(encoding="utf-8")
    return _parse(text, str(path), path.stem, path.parent, (*chain, str(path.resolve())))


@dataclass(frozen=True)
class _Located:
    """A YAML mapping as plain values, with the line of the mapping and of each key."""

    values: dict[str, Any]
    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str | None) -> int:
        return self.key_lines.get(key, self.line) if key is not None else self.line


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _plain(node: yaml.Node, constructor: SafeConstructor, source: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        values: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _plain(key_node, constructor, source)
            if not isinstance(key, str):
                raise RosterError(source, _line(key_node), f"key {key!r} is not a string")
            # PyYAML keeps the last of two equal keys silently; a roster must not.
            if key in values:
                raise RosterError(source, _line(key_node), f"duplicate key {key!r}")
            values[key] = _plain(value_node, constructor, source)
            key_lines[key] = _line(key_node)
        return _Located(values, _line(node), key_lines)
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, constructor, source) for item in node.value]
    try:
        return constructor.construct_object(node, deep=True)
    except ConstructorError as exc:
        raise RosterError(
            source, _line(node), f"cannot read {node.value!r}: {exc.problem}"
        ) from None
    except ValueError:
        # An impossible timestamp such as 2019-13-01: keep the text, and let the field's
        # validation say what is wrong with it, on its line.
        return node.value


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Located):
        return {key: _unwrap(item) for key, item in value.values.items()}
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value


def _validate(adapter: TypeAdapter[Any], entry: _Located, source: str, subject: str) -> Any:
    try:
        return adapter.validate_python(_unwrap(entry))
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key shows up twice, as a missing field and as an unknown one; the unknown
        # one names the line to fix.
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        line, problem = _describe(error, entry)
        raise RosterError(source, line, f"{subject}: {problem}") from None


def _describe(error: ErrorDetails, entry: _Located) -> tuple[int, str]:
    # Follow the error's location down the located values to the innermost key that exists,
    # so that the line is the key's own. Location items that are not keys (the tag of a
    # discriminated union) are skipped.
    container, key, path = entry, None, []
    current: Any = entry
    value: Any = None
    for item in error["loc"]:
        if isinstance(current, _Located) and isinstance(item, str) and item in current.values:
            container, key = current, item
            current = value = current.values[item]
            path.append(item)
        elif isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current):
            current = value = current[item]
    line = container.line_of(key)
    names = [item for item in error["loc"] if isinstance(item, str)]
    if error["type"] == "union_tag_not_found":
        return entry.line, "missing field 'kind'"
    if error["type"] == "union_tag_invalid":
        return entry.line_of("kind"), error["msg"]
    if error["type"] == "missing" and names:
        return line, f"missing field {'.'.join([*path, names[-1]])!r}"
    if error["type"] == "extra_forbidden" and path:
        return line, f"unknown field {'.'.join(path)!r}"
    if path:
        return line, f"field {'.'.join(path)!r}: {error['msg']} (got {_unwrap(value)!r})"
    return line, error["msg"]


class _Header(_Model):
    edition: int
    census: Census | None = None
    predecessor: str | None = Field(default=None, min_length=1)
    nodes: list[Any] = Field(min_length=1)


_HEADER: TypeAdapter[_Header] = TypeAdapter(_Header)


def _parse(
    text: str, source: str, name: str, directory: Path | None, chain: tuple[str, ...]
) -> Roster:
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        raise RosterError(source, line, f"not valid YAML: {exc.problem}") from None
    if document is None:
        raise RosterError(source, 1, "empty roster file")
    top = _plain(document, SafeConstructor(), source)
    if not isinstance(top, _Located):
        raise RosterError(source, _line(document), "a roster is a mapping with a 'nodes' list")
    header: _Header = _validate(_HEADER, top, source, "roster")
    predecessor = (
        None
        if header.predecessor is None
        else _load_predecessor(header.predecessor, directory, chain, top, source)
    )

    entries: list[_Located] = []
    nodes: list[Node] = []
    for item in top.values["nodes"]:
        if not isinstance(item, _Located):
            raise RosterError(source, top.line_of("nodes"), f"node {item!r} is not a mapping")
        code = item.values.get("code")
        subject = f"node {code!r}" if isinstance(code, str) else "node"
        nodes.append(_validate(_NODE, item, source, subject))
        entries.append(item)

    roster = Roster(name, header.edition, tuple(nodes), header.census, predecessor)
    _check(roster, entries, top, source)
    return roster


def _load_predecessor(
    reference: str, directory: Path | None, chain: tuple[str, ...], top: _Located, source: str
) -> Roster:
    line = top.line_of("predecessor")
    if _is_packaged_name(reference):
        if f"package:{reference}" in chain:
            raise RosterError(source, line, f"predecessor {reference!r} leads back to itself")
        # Only a packaged roster's chain can lead back to a packaged roster (see above).
        try:
            return _load_packaged(reference, chain if directory is None else ())
        except FileNotFoundError:
            raise RosterError(source, line, f"no packaged roster {reference!r}") from None
    if directory is None:
        raise RosterError(source, line, "a packaged roster names a packaged predecessor")
    path = directory / reference
    if str(path.resolve()) in chain:
        raise RosterError(source, line, f"predecessor {reference!r} leads back to itself")
    try:
        return _load_path(path, chain)
    except FileNotFoundError:
        raise RosterError(source, line, f"predecessor {reference!r} not found") from None


# --- validation across entries -------------------------------------------------------------


@dataclass(frozen=True)
class _Milestone:
    as_of: date
    total: int
    ministries: int | None = None
    provinces: int | None = None


@dataclass(frozen=True)
class _EditionRules:
    provinces: int
    municipalities: int
    ministries: int | None = None
    milestones: tuple[_Milestone, ...] = ()


# The published figures each edition must reproduce (FACTS.md): 63 provinces (5 of them
# centrally-run cities) and 29 ministry-level bodies in 2020, LGSPs at 25 bodies in
# February 2020 and at 76 = 21 + 55 in July, all 92 by the end of 2020; 34 provinces
# (6 centrally-run cities) since 1 July 2025.
_EDITIONS: Mapping[int, _EditionRules] = MappingProxyType(
    {
        2020: _EditionRules(
            provinces=63,
            municipalities=5,
            ministries=29,
            milestones=(
                _Milestone(date(2020, 2, 29), 25),
                _Milestone(date(2020, 7, 31), 76, ministries=21, provinces=55),
                _Milestone(date(2020, 12, 31), 92, ministries=29, provinces=63),
            ),
        ),
        2025: _EditionRules(provinces=34, municipalities=6),
    }
)


def _check(roster: Roster, entries: list[_Located], top: _Located, source: str) -> None:
    first_line: dict[str, int] = {}
    for node, entry in zip(roster.nodes, entries, strict=True):
        line = entry.line_of("code")
        if node.code in first_line:
            raise RosterError(
                source,
                line,
                f"duplicate code {node.code!r} (first at line {first_line[node.code]})",
            )
        first_line[node.code] = line
        _check_node(roster, node, entry, source)

    _check_census(roster, top, source)
    if roster.predecessor is not None:
        _check_mergers(roster, entries, top, source)
    rules = _EDITIONS.get(roster.edition)
    if rules is not None:
        _check_edition(roster, rules, top.line_of("edition"), source)


def _check_node(roster: Roster, node: Node, entry: _Located, source: str) -> None:
    def fail(key: str, problem: str) -> RosterError:
        return RosterError(source, entry.line_of(key), f"node {node.code!r}: {problem}")

    if isinstance(node, Province):
        if node.code != f"P{node.admin_code}":
            raise fail("code", f"a province's code is 'P' + admin_code ('P{node.admin_code}')")
        if node.cccd_code != f"0{node.admin_code}":
            raise fail("cccd_code", f"cccd_code is '0' + admin_code ('0{node.admin_code}')")
        if node.merged_from and node.population_2019 is not None:
            raise fail("population_2019", "a merged province's population is computed")
        if not node.merged_from and node.population_2019 is None:
            raise RosterError(
                source, entry.line, f"node {node.code!r}: missing field 'population_2019'"
            )
    elif isinstance(node, NationalDatabase):
        owner = roster.get(node.owner)
        if owner is None:
            raise fail("owner", f"unknown owner {node.owner!r}")
        if not isinstance(owner, Ministry):
            raise fail("owner", f"owner {node.owner!r} is a {owner.kind}, not a ministry")
    if not isinstance(node, NationalDatabase) and roster.predecessor is None:
        for key in ("merged_from", "functions_from"):
            if key in entry.values:
                raise fail(key, f"{key} needs a 'predecessor' roster")


def _check_census(roster: Roster, top: _Located, source: str) -> None:
    counted = [p.population_2019 for p in roster.provinces if p.population_2019 is not None]
    if not counted:
        return
    if roster.census is None:
        raise RosterError(source, top.line_of("nodes"), "provinces carry populations: add 'census'")
    census = top.values["census"]
    assert isinstance(census, _Located)
    total, expected = sum(counted), roster.census.national_total
    if abs(total - expected) > roster.census.tolerance:
        raise RosterError(
            source,
            census.line_of("national_total"),
            f"provinces sum to {total}, not national_total {expected} "
            f"(tolerance {roster.census.tolerance})",
        )


def _check_mergers(roster: Roster, entries: list[_Located], top: _Located, source: str) -> None:
    old = roster.predecessor
    assert old is not None
    taken: dict[str, str] = {}
    for node, entry in zip(roster.nodes, entries, strict=True):
        if isinstance(node, NationalDatabase):
            continue
        line = entry.line_of("merged_from")
        if not node.merged_from:
            raise RosterError(source, entry.line, f"node {node.code!r}: missing 'merged_from'")
        for code in node.merged_from:
            previous = old.get(code)
            if previous is None:
                raise RosterError(
                    source, line, f"node {node.code!r}: {code!r} is not in {old.name}"
                )
            if previous.kind != node.kind:
                raise RosterError(
                    source,
                    line,
                    f"node {node.code!r}: {code!r} is a {previous.kind} in {old.name}, "
                    f"not a {node.kind}",
                )
            if code in taken:
                raise RosterError(
                    source,
                    line,
                    f"node {node.code!r}: {code!r} is already merged into {taken[code]!r}",
                )
            taken[code] = node.code
        if isinstance(node, Ministry):
            for code in node.functions_from:
                if not isinstance(old.get(code), Ministry):
                    raise RosterError(
                        source,
                        entry.line_of("functions_from"),
                        f"node {node.code!r}: {code!r} is not a ministry-level body in {old.name}",
                    )
    bodies: list[Province | Ministry] = [*old.provinces, *old.ministries]
    for predecessor_node in bodies:
        if predecessor_node.code not in taken:
            raise RosterError(
                source,
                top.line_of("predecessor"),
                f"{old.name} {predecessor_node.kind} {predecessor_node.code!r} "
                "is not in any node's merged_from",
            )


def _check_edition(roster: Roster, rules: _EditionRules, line: int, source: str) -> None:
    edition = roster.edition

    def expect(what: str, wanted: int, found: int) -> None:
        if wanted != found:
            raise RosterError(
                source, line, f"edition {edition} needs {wanted} {what}, found {found}"
            )

    expect("provinces", rules.provinces, len(roster.provinces))
    expect(
        "centrally-run cities", rules.municipalities, sum(p.municipality for p in roster.provinces)
    )
    if rules.ministries is not None:
        expect("ministry-level bodies", rules.ministries, len(roster.ministries))
    for milestone in rules.milestones:
        bodies = roster.connected(milestone.as_of)
        when = f"bodies connected by {milestone.as_of}"
        expect(when, milestone.total, len(bodies))
        if milestone.ministries is not None:
            found = sum(isinstance(node, Ministry) for node in bodies)
            expect(f"ministry-level {when}", milestone.ministries, found)
        if milestone.provinces is not None:
            found = sum(isinstance(node, Province) for node in bodies)
            expect(f"provinces among the {when}", milestone.provinces, found)
