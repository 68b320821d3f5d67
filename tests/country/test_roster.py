import pickle
import re
from collections import Counter
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from country.roster import (
    Ministry,
    Province,
    Roster,
    RosterError,
    load_roster,
)

LEADER_MINISTRIES = ("BTC", "BCT", "BTTTT", "BYT", "NHNN")
LEADER_PROVINCES = ("P46", "P48", "P74", "P22", "P79")  # Huế, Đà Nẵng, Bình Dương, QN, HCMC
DATABASE_OWNERS_2020 = {
    "DANCU": "BCA",
    "HOTICH": "BTP",
    "BAOHIEM": "BHXH",
    "DATDAI": "BTNMT",
    "DOANHNGHIEP": "BKHDT",
}


@pytest.fixture(scope="module")
def roster_2020() -> Roster:
    return load_roster("roster-2020")


@pytest.fixture(scope="module")
def roster_2025() -> Roster:
    return load_roster("roster-2025")


# --- roster-2020 ---------------------------------------------------------------------------


def test_2020_has_63_provinces_and_29_ministry_level_bodies(roster_2020: Roster) -> None:
    assert roster_2020.edition == 2020
    assert len(roster_2020.provinces) == 63
    assert len(roster_2020.ministries) == 29
    assert len(roster_2020.provinces) + len(roster_2020.ministries) == 92
    assert Counter(m.ministry_kind for m in roster_2020.ministries) == {
        "ministry": 18,
        "ministry_equivalent": 4,
        "government_agency": 7,
    }
    assert {p.code for p in roster_2020.provinces if p.municipality} == {
        "P01",
        "P31",
        "P48",
        "P79",
        "P92",
    }


@pytest.mark.parametrize(
    ("as_of", "total", "ministries", "provinces"),
    [
        (date(2019, 4, 30), 0, 0, 0),
        (date(2020, 2, 29), 25, None, None),  # the split is not published
        (date(2020, 7, 31), 76, 21, 55),
        (date(2020, 12, 31), 92, 29, 63),
    ],
)
def test_2020_connections_match_the_published_counts(
    roster_2020: Roster, as_of: date, total: int, ministries: int | None, provinces: int | None
) -> None:
    connected = roster_2020.connected(as_of)
    assert len(connected) == total
    if ministries is not None:
        assert sum(isinstance(node, Ministry) for node in connected) == ministries
        assert sum(isinstance(node, Province) for node in connected) == provinces


def test_published_percentages_follow_from_the_counts(roster_2020: Roster) -> None:
    bodies = len(roster_2020.provinces) + len(roster_2020.ministries)
    assert round(100 * len(roster_2020.connected(date(2020, 7, 31))) / bodies, 2) == 82.61
    assert round(100 * len(roster_2020.connected(date(2020, 2, 29))) / bodies) == 27


def test_2019_leaders_are_connected_first(roster_2020: Roster) -> None:
    early = {node.code for node in roster_2020.connected(date(2020, 2, 29))}
    assert set(LEADER_MINISTRIES) | set(LEADER_PROVINCES) <= early
    by_date = sorted(roster_2020.ministries, key=lambda m: m.lgsp_connected)
    assert {m.code for m in by_date[:5]} == set(LEADER_MINISTRIES)
    by_date_p = sorted(roster_2020.provinces, key=lambda p: p.lgsp_connected)
    assert {p.code for p in by_date_p[:5]} == set(LEADER_PROVINCES)


def test_connection_dates_are_working_days_from_may_2019(roster_2020: Roster) -> None:
    for node in (*roster_2020.ministries, *roster_2020.provinces):
        assert date(2019, 5, 1) <= node.lgsp_connected <= date(2020, 12, 31)
        assert node.lgsp_connected.weekday() < 5, node.code


def test_2020_population_is_the_2019_census(roster_2020: Roster) -> None:
    assert roster_2020.census is not None
    assert roster_2020.census.reference_date == date(2019, 4, 1)
    assert roster_2020.census.national_total == 96_208_984
    assert roster_2020.total_population() == 96_208_984
    assert roster_2020.population("P01") == 8_053_663
    assert roster_2020.population("P79") == 8_993_082


def test_province_codes_follow_the_administrative_code(roster_2020: Roster) -> None:
    for province in roster_2020.provinces:
        assert province.code == f"P{province.admin_code}"
        assert province.cccd_code == f"0{province.admin_code}"
    assert roster_2020.province("P46").name == "Tỉnh Thừa Thiên Huế"
    assert roster_2020.province("P48").short_name == "Đà Nẵng"
    assert roster_2020.province_by_cccd("079").code == "P79"
    assert Counter(p.region for p in roster_2020.provinces) == {
        "Trung du và miền núi phía Bắc": 14,
        "Đồng bằng sông Hồng": 11,
        "Bắc Trung Bộ và Duyên hải miền Trung": 14,
        "Tây Nguyên": 5,
        "Đông Nam Bộ": 6,
        "Đồng bằng sông Cửu Long": 13,
    }


def test_codes_other_parts_rely_on(roster_2020: Roster) -> None:
    for code in ("BCA", "BTP", "BHXH", "BTNMT", "BKHDT", "BYT", "BTC", "BCT", "BTTTT", "NHNN"):
        assert isinstance(roster_2020[code], Ministry)
    assert roster_2020.ministry("BHXH").name == "Bảo hiểm xã hội Việt Nam"
    assert roster_2020.ministry("BHXH").ministry_kind == "government_agency"
    owners = {db.code: db.owner for db in roster_2020.national_databases}
    assert owners == DATABASE_OWNERS_2020


def test_national_databases_are_on_from_the_start_and_not_counted(roster_2020: Roster) -> None:
    for database in roster_2020.national_databases:
        assert database.lgsp_connected < date(2019, 4, 1)
    assert roster_2020.connected(date(2019, 4, 1)) == []
    start = roster_2020.connected(date(2019, 4, 1), include_databases=True)
    assert {node.code for node in start} == set(DATABASE_OWNERS_2020)


def test_lookups(roster_2020: Roster) -> None:
    assert "P01" in roster_2020
    assert roster_2020.get("P00") is None
    with pytest.raises(KeyError, match="P00"):
        roster_2020["P00"]
    with pytest.raises(KeyError, match="not a Ministry"):
        roster_2020.ministry("P01")
    with pytest.raises(KeyError, match="not a Province"):
        roster_2020.population("BTC")
    assert len(roster_2020) == 92 + 5
    assert list(roster_2020) == list(roster_2020.nodes)


def test_load_by_path_gives_the_same_roster(roster_2020: Roster) -> None:
    path = resources.files("country").joinpath("data").joinpath("roster-2020.yaml")
    assert load_roster(Path(str(path))) == roster_2020
    assert load_roster("roster-2020") is roster_2020


def test_unknown_packaged_name() -> None:
    with pytest.raises(FileNotFoundError, match="roster-1990"):
        load_roster("roster-1990")


# --- roster-2025 ---------------------------------------------------------------------------


def test_2025_has_34_provinces(roster_2025: Roster) -> None:
    assert roster_2025.edition == 2025
    assert len(roster_2025.provinces) == 34
    assert {p.code for p in roster_2025.provinces if p.municipality} == {
        "P01",
        "P31",
        "P46",
        "P48",
        "P79",
        "P92",
    }
    assert all(p.seat for p in roster_2025.provinces)


def test_2025_merger_is_complete_and_disjoint(roster_2020: Roster, roster_2025: Roster) -> None:
    merged = Counter(code for p in roster_2025.provinces for code in p.merged_from)
    assert set(merged) == {p.code for p in roster_2020.provinces}
    assert set(merged.values()) == {1}
    unchanged = [p for p in roster_2025.provinces if p.merged_from == (p.code,)]
    assert len(unchanged) == 11
    assert roster_2025.province("P79").merged_from == ("P74", "P77", "P79")
    assert roster_2025.successor("P15").code == "P15"  # Lào Cai took Yên Bái's code
    assert roster_2025.successor("P10").code == "P15"


def test_2025_population_sums_the_merged_provinces(roster_2025: Roster) -> None:
    assert roster_2025.population("P79") == 8_993_082 + 2_426_561 + 1_148_313
    assert roster_2025.population("P01") == 8_053_663
    assert roster_2025.total_population() == 96_208_984


def test_2025_ministries_continue_every_2020_body_once(
    roster_2020: Roster, roster_2025: Roster
) -> None:
    assert Counter(m.ministry_kind for m in roster_2025.ministries) == {
        "ministry": 14,
        "ministry_equivalent": 3,
        "government_agency": 5,
    }
    merged = Counter(code for m in roster_2025.ministries for code in m.merged_from)
    assert set(merged) == {m.code for m in roster_2020.ministries}
    assert set(merged.values()) == {1}
    assert set(roster_2025.ministry("BTC").merged_from) >= {"BTC", "BKHDT", "BHXH"}
    assert set(roster_2025.ministry("BNNMT").merged_from) == {"BNNPTNT", "BTNMT"}
    assert set(roster_2025.ministry("BKHCN").merged_from) == {"BKHCN", "BTTTT"}
    assert "BLDTBXH" in roster_2025.ministry("BNV").merged_from
    assert roster_2025.ministry("BDTTG").merged_from == ("UBDT",)


def test_2025_databases_have_2025_owners(roster_2025: Roster) -> None:
    owners = {db.code: db.owner for db in roster_2025.national_databases}
    assert owners == {
        "DANCU": "BCA",
        "HOTICH": "BTP",
        "BAOHIEM": "BTC",
        "DATDAI": "BNNMT",
        "DOANHNGHIEP": "BTC",
    }


def test_2025_bodies_keep_the_earliest_connection(roster_2025: Roster) -> None:
    old = roster_2025.predecessor
    assert old is not None
    bodies: list[Province | Ministry] = [*roster_2025.provinces, *roster_2025.ministries]
    for body in bodies:
        assert body.lgsp_connected == min(old[c].lgsp_connected for c in body.merged_from)


# --- bad files -----------------------------------------------------------------------------

HEADER = """\
edition: 2019
census:
  reference_date: 2019-04-01
  national_total: 300
nodes:
"""


def province(code: str, *, population: int = 100, connected: str = "2019-06-03") -> str:
    return f"""\
  - code: P{code}
    kind: province
    admin_code: "{code}"
    cccd_code: "0{code}"
    name: Tỉnh Thử {code}
    region: Tây Nguyên
    population_2019: {population}
    lgsp_connected: {connected}
"""


MINISTRY = """\
  - code: BTC
    kind: ministry
    ministry_kind: ministry
    name: Bộ Tài chính
    name_en: Ministry of Finance
    lgsp_connected: 2019-05-06
"""


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, line: int, problem: str) -> RosterError:
    with pytest.raises(RosterError, match=re.escape(f"line {line}: ") + problem) as caught:
        load_roster(path)
    assert caught.value.source == str(path)
    assert caught.value.line == line
    return caught.value


def test_a_small_good_file_loads(tmp_path: Path) -> None:
    text = HEADER + MINISTRY + province("01") + province("02") + province("04")
    roster = load_roster(write(tmp_path, text, "small.yaml"))
    assert roster.name == "small"
    assert roster.total_population() == 300


def test_duplicate_code(tmp_path: Path) -> None:
    text = HEADER + province("01") + province("02") + province("01")
    # Lines 6-13, 14-21, then the third entry's code on line 22.
    refused(write(tmp_path, text), 22, re.escape("duplicate code 'P01' (first at line 6)"))


def test_missing_field(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300).replace("    region: Tây Nguyên\n", "")
    refused(write(tmp_path, text), 6, re.escape("node 'P01': missing field 'region'"))


def test_unknown_field(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300).replace("region:", "regoin:")
    refused(write(tmp_path, text), 11, re.escape("node 'P01': unknown field 'regoin'"))


def test_missing_kind(tmp_path: Path) -> None:
    text = HEADER + MINISTRY.replace("    kind: ministry\n", "")
    refused(write(tmp_path, text), 6, re.escape("node 'BTC': missing field 'kind'"))


def test_bad_header_value_names_its_own_line(tmp_path: Path) -> None:
    text = HEADER.replace("national_total: 300", "national_total: -300") + MINISTRY
    refused(write(tmp_path, text), 4, re.escape("roster: field 'census.national_total'"))


def test_unknown_kind(tmp_path: Path) -> None:
    text = HEADER + MINISTRY.replace("kind: ministry\n", "kind: agency\n")
    refused(write(tmp_path, text), 7, "node 'BTC': .*'agency'")


def test_unknown_owner(tmp_path: Path) -> None:
    text = (
        HEADER
        + MINISTRY
        + province("01", population=300)
        + """\
  - code: DANCU
    kind: national_database
    name: Cơ sở dữ liệu quốc gia về dân cư
    name_en: National Population Database
    owner: BCA
    lgsp_connected: 2019-01-02
"""
    )
    refused(write(tmp_path, text), 24, re.escape("node 'DANCU': unknown owner 'BCA'"))


def test_owner_must_be_a_ministry(tmp_path: Path) -> None:
    text = (
        HEADER
        + province("01", population=300)
        + """\
  - code: DANCU
    kind: national_database
    name: Cơ sở dữ liệu quốc gia về dân cư
    name_en: National Population Database
    owner: P01
    lgsp_connected: 2019-01-02
"""
    )
    refused(write(tmp_path, text), 18, "node 'DANCU': owner 'P01' is a province")


@pytest.mark.parametrize("bad", ["2019-13-01", "'2019-02-30'", "next week"])
def test_bad_date(tmp_path: Path, bad: str) -> None:
    text = HEADER + province("01", population=300, connected=bad)
    refused(write(tmp_path, text), 13, "node 'P01': field 'lgsp_connected': .*date")


def test_code_must_match_the_administrative_code(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300).replace("code: P01", "code: P10")
    refused(
        write(tmp_path, text), 6, re.escape("node 'P10': a province's code is 'P' + admin_code")
    )


def test_admin_code_must_be_quoted_two_digits(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300).replace('admin_code: "01"', "admin_code: 01")
    refused(write(tmp_path, text), 8, "node 'P01': field 'admin_code'")


def test_census_total_must_match(tmp_path: Path) -> None:
    text = HEADER + province("01") + province("02")
    refused(write(tmp_path, text), 4, re.escape("provinces sum to 200, not national_total 300"))


def test_duplicate_key(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300).replace(
        "    kind: province\n", "    kind: province\n    kind: ministry\n"
    )
    refused(write(tmp_path, text), 8, re.escape("duplicate key 'kind'"))


def test_invalid_yaml(tmp_path: Path) -> None:
    text = HEADER + province("01", population=300) + "  - code: [P02\n"
    refused(write(tmp_path, text), 15, "not valid YAML")


def test_wrong_count_for_edition_2020(tmp_path: Path) -> None:
    text = HEADER.replace("edition: 2019", "edition: 2020") + province("01", population=300)
    refused(write(tmp_path, text), 1, re.escape("edition 2020 needs 63 provinces, found 1"))


def test_wrong_connection_count_in_the_real_file(tmp_path: Path) -> None:
    text = resources.files("country").joinpath("data/roster-2020.yaml").read_text("utf-8")
    # Thừa Thiên Huế connecting in March instead leaves 24 bodies by the end of February.
    moved = text.replace("lgsp_connected: 2019-05-08", "lgsp_connected: 2020-03-10", 1)
    assert moved != text
    line = text.splitlines().index("edition: 2020") + 1
    refused(
        write(tmp_path, moved),
        line,
        re.escape("edition 2020 needs 25 bodies connected by 2020-02-29, found 24"),
    )


MERGED_HEADER = """\
edition: 2024
predecessor: roster-2020
nodes:
"""


def merged(code: str, merged_from: str) -> str:
    return f"""\
  - code: P{code}
    kind: province
    admin_code: "{code}"
    cccd_code: "0{code}"
    name: Tỉnh Thử {code}
    region: Tây Nguyên
    merged_from: [{merged_from}]
    lgsp_connected: 2019-06-03
"""


def test_province_merged_twice(tmp_path: Path) -> None:
    text = MERGED_HEADER + merged("01", "P01, P02") + merged("04", "P04, P02")
    refused(write(tmp_path, text), 18, re.escape("node 'P04': 'P02' is already merged into 'P01'"))


def test_merged_from_must_exist_in_the_predecessor(tmp_path: Path) -> None:
    text = MERGED_HEADER + merged("01", "P01, P03")
    refused(write(tmp_path, text), 10, re.escape("node 'P01': 'P03' is not in roster-2020"))


def test_merged_from_must_be_of_the_same_kind(tmp_path: Path) -> None:
    text = MERGED_HEADER + merged("01", "P01, BTC")
    refused(write(tmp_path, text), 10, re.escape("node 'P01': 'BTC' is a ministry in roster-2020"))


def test_every_2020_province_must_be_merged(tmp_path: Path) -> None:
    text = MERGED_HEADER + merged("01", "P01")
    refused(write(tmp_path, text), 2, re.escape("roster-2020 province 'P02' is not in any"))


def test_merged_province_has_no_stored_population(tmp_path: Path) -> None:
    text = MERGED_HEADER + merged("01", "P01").replace(
        "    lgsp_connected", "    population_2019: 300\n    lgsp_connected"
    )
    refused(
        write(tmp_path, text),
        11,
        re.escape("node 'P01': a merged province's population is computed"),
    )


def test_merged_from_needs_a_predecessor(tmp_path: Path) -> None:
    text = HEADER + MINISTRY + "    merged_from: [BTC]\n" + province("01", population=300)
    refused(
        write(tmp_path, text), 12, re.escape("node 'BTC': merged_from needs a 'predecessor' roster")
    )


def test_wrong_count_for_edition_2025(tmp_path: Path) -> None:
    text = resources.files("country").joinpath("data/roster-2025.yaml").read_text("utf-8")
    # Fold Điện Biên (P11) into Lai Châu (P12): still a complete merger, but 33 provinces.
    start = text.index("  - code: P11\n")
    end = text.index("  - code: P12\n")
    folded = (text[:start] + text[end:]).replace("merged_from: [P12]", "merged_from: [P11, P12]")
    line = text.splitlines().index("edition: 2025") + 1
    refused(write(tmp_path, folded), line, re.escape("edition 2025 needs 34 provinces, found 33"))


def test_predecessor_cycle(tmp_path: Path) -> None:
    write(tmp_path, "edition: 1\npredecessor: b.yaml\nnodes:\n" + MINISTRY, "a.yaml")
    write(tmp_path, "edition: 1\npredecessor: a.yaml\nnodes:\n" + MINISTRY, "b.yaml")
    with pytest.raises(RosterError, match="leads back to itself"):
        load_roster(tmp_path / "b.yaml")


def test_roster_error_is_a_value_error_and_pickles() -> None:
    error = RosterError("x.yaml", 3, "duplicate code 'P01'")
    assert isinstance(error, ValueError)
    assert str(error) == "x.yaml line 3: duplicate code 'P01'"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.line, copy.problem) == ("x.yaml", 3, "duplicate code 'P01'")
