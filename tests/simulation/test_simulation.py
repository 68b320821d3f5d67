"""Scenarios in virtual time: published figures, determinism, what-ifs, bad files."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer import Typer
from typer.testing import CliRunner

from common.db import Database
from country.procedures import load_catalogue
from country.roster import load_roster
from national_hub.ledger.row import FIELDS, Part
from national_hub.ledger.verify import verify_ledger
from national_hub.registry import Snapshot
from simulation.cli import simulate, simulate_report
from simulation.distributions import binomial, poisson
from simulation.engine import Batch, RunFacts, connection_dates, virtual_uuid7
from simulation.engine import simulate as run_engine
from simulation.profile import load_calendar
from simulation.report import build_report
from simulation.run import run_scenario
from simulation.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_override,
    read_packaged,
)
from simulation.store import CountingSink, prepare_database
from tests.support.hub import HubFactory, query

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

_SNAPSHOT: dict[str, Snapshot] = {}


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _snapshot(tmp: Path) -> Snapshot:
    """The 2020 registry as a snapshot (built once: it takes a database)."""
    if "roster-2020" not in _SNAPSHOT:
        scenario = load_scenario("vn-2020")
        roster = load_roster("roster-2020")
        _SNAPSHOT["roster-2020"] = await prepare_database(
            _url(tmp / "registry.db"),
            roster=roster,
            connections=connection_dates(scenario, roster),
            as_of=scenario.period.end,
        )
    return _SNAPSHOT["roster-2020"]


async def _counts(scenario: Scenario, tmp: Path) -> tuple[RunFacts, CountingSink]:
    """Run a scenario's counts only (no ledger), as projections do."""
    roster = load_roster(scenario.connections.roster)
    sink = CountingSink()

    async def flush(batch: Batch) -> None:
        await sink.write(batch)

    facts = await run_engine(
        scenario,
        roster=roster,
        catalogue=load_catalogue(),
        calendar=load_calendar(scenario.holidays),
        snapshot=await _snapshot(tmp),
        connections=connection_dates(scenario, roster),
        flush=flush,
        sample=0.0,
    )
    return facts, sink


def _week(**sets: Any) -> dict[str, Any]:
    """Overrides for a short vn-2020 window: the last day of the period."""
    return {"period.start": dt.date(2020, 7, 31), **sets}


# -- the shipped scenarios reproduce the published figures ------------------------------------


@pytest.fixture(scope="module")
def vn_2020(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """vn-2020 once for the module, its ledger sampled (the figures do not depend on it)."""
    data = tmp_path_factory.mktemp("vn-2020")
    return asyncio.run(simulate_report("vn-2020", sample=0.002, data_dir=data))


def test_vn_2020_reproduces_the_published_figures(vn_2020: dict[str, Any]) -> None:
    figures = {c["figure"]: c for c in vn_2020["comparison"]}
    assert set(figures) == {
        "total exchanges",
        "exchanges per day (average)",
        "connected bodies on 2020-02-29",
        "connected bodies on 2020-07-31",
        "VND saved per procedure",
        "1.001022: VND saved in 365 days (projection)",
    }
    for figure in figures.values():
        assert abs(figure["relative_difference"]) <= 0.02, figure
    assert figures["connected bodies on 2020-02-29"]["simulated"] == 25
    assert figures["connected bodies on 2020-07-31"]["simulated"] == 76
    assert 4_312_000 <= vn_2020["totals"]["exchanges"] <= 4_488_000


def test_vn_2020_report_is_the_hubs_statistics(vn_2020: dict[str, Any]) -> None:
    monthly = vn_2020["monthly"]
    assert [m["month"] for m in monthly][:2] == ["2019-01", "2019-02"]
    assert len(monthly) == 19
    assert sum(m["exchanges"] for m in monthly) == vn_2020["totals"]["exchanges"]
    # Traffic grows as bodies connect; nobody but the national databases before May 2019.
    assert monthly[0]["connected_bodies"] == 0
    assert monthly[-1]["exchanges"] > 10 * monthly[0]["exchanges"]
    assert vn_2020["ledger_sample"] == 0.002
    assert any("Sampled ledger" in note for note in vn_2020["notes"])
    assert vn_2020["totals"]["refused"] > 0


@pytest.mark.parametrize(
    ("name", "per_day", "total"),
    [("vn-2022", 1_600_000, None), ("vn-2024", 2_500_000, 533_000_000)],
)
async def test_large_scenarios_reproduce_their_daily_rate(
    name: str, per_day: int, total: int | None, tmp_path: Path
) -> None:
    scenario = load_scenario(name)
    assert scenario.ledger.sample <= 0.001  # rows sampled, rollups complete
    facts, sink = await _counts(scenario, tmp_path)
    exchanges = sum(c[0] for c in sink.daily.values())
    assert exchanges == facts.exchanges
    assert abs(exchanges / scenario.period.days / per_day - 1) <= 0.02
    if total is not None:
        assert abs(exchanges / total - 1) <= 0.02


# -- determinism and the ledger ----------------------------------------------------------------


async def _table(url: str, sql: str) -> list[Any]:
    return [tuple(r) for r in await query(url, sql)]


#: What a row records (its hash chain apart).
_LEDGER = ", ".join(f.name for f in FIELDS if f.part is Part.RECORD)
_TABLES = {
    "ledger": f"SELECT {_LEDGER} FROM ledger ORDER BY id",
    "chains": "SELECT * FROM ledger_chains ORDER BY chain",
    "hashes": "SELECT id, chain, seq, hash FROM ledger ORDER BY id",
    "dossiers": "SELECT * FROM dossiers ORDER BY id",
    "stats_daily": "SELECT * FROM stats_daily ORDER BY day",
    "stats_node_daily": "SELECT * FROM stats_node_daily ORDER BY day, node, role",
    "stats_procedure_daily": "SELECT * FROM stats_procedure_daily ORDER BY day, procedure",
}


async def _dump(url: str, tables: tuple[str, ...] = tuple(_TABLES)) -> dict[str, list[Any]]:
    """The tables' contents (the hash chain included: a run's chain is deterministic)."""
    return {name: await _table(url, _TABLES[name]) for name in tables}


async def test_same_scenario_and_seed_give_the_same_report_and_ledger(tmp_path: Path) -> None:
    scenario = load_scenario("vn-2020", _week())
    a = await run_scenario(scenario, database_url=_url(tmp_path / "a.db"), projections=False)
    b = await run_scenario(scenario, database_url=_url(tmp_path / "b.db"), projections=False)
    report_a, report_b = await build_report(a), await build_report(b)
    for report in (report_a, report_b):
        for key in ("seconds", "engine_seconds", "exchanges_per_second", "database_url"):
            report.pop(key)
    assert report_a == report_b
    assert report_a["ledger_rows"] == report_a["totals"]["exchanges"] > 15_000
    assert await _dump(a.database_url) == await _dump(b.database_url)

    other = load_scenario("vn-2020", _week(seed=7))
    c = await run_scenario(other, database_url=_url(tmp_path / "c.db"), projections=False)
    assert (await build_report(c))["totals"] != report_a["totals"]


async def test_bulk_writer_and_the_hubs_ledger_writer_write_the_same(tmp_path: Path) -> None:
    """The fast path writes what the hub's own LedgerWriter and report_dossier write."""
    for sample in (1.0, 0.05):
        scenario = load_scenario("vn-2020", _week())
        bulk = await run_scenario(
            scenario, database_url=_url(tmp_path / f"bulk-{sample}.db"), sample=sample,
            projections=False,
        )  # fmt: skip
        hub = await run_scenario(
            scenario, database_url=_url(tmp_path / f"hub-{sample}.db"), sample=sample,
            writer="hub", projections=False,
        )  # fmt: skip
        # Everything but the hash chain, which the hub's writer names and starts by the
        # wall clock; both chains verify.
        compared = ("ledger", "dossiers", "stats_daily", "stats_node_daily",
                    "stats_procedure_daily")  # fmt: skip
        assert await _dump(bulk.database_url, compared) == await _dump(hub.database_url, compared)
        # The bulk writer leaves the hub's schema (the ledger's indexes too) in a sound file.
        schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        assert await _table(bulk.database_url, schema) == await _table(hub.database_url, schema)
        assert await _table(bulk.database_url, "PRAGMA integrity_check") == [("ok",)]
        for run in (bulk, hub):
            db = Database.connect(run.database_url)
            try:
                verified = await verify_ledger(db, rollups=sample >= 1.0)
            finally:
                await db.dispose()
            assert verified.ok, verified  # a sampled ledger's rows are not its rollups


async def test_the_sample_changes_the_rows_stored_not_the_figures(tmp_path: Path) -> None:
    scenario = load_scenario("vn-2020", _week())
    full = await run_scenario(scenario, database_url=_url(tmp_path / "f.db"), projections=False)
    some = await run_scenario(
        scenario, database_url=_url(tmp_path / "s.db"), sample=0.01, projections=False
    )
    stats = ("stats_daily", "stats_node_daily", "stats_procedure_daily")
    assert await _dump(full.database_url, stats) == await _dump(some.database_url, stats)
    rows = (await _table(some.database_url, "SELECT count(*) FROM ledger"))[0][0]
    assert 0 < rows < full.facts.exchanges * 0.03
    # A dossier is stored whole: every stored dossier has all its steps' rows.
    orphans = await _table(
        some.database_url,
        "SELECT count(*) FROM ledger WHERE dossier IS NOT NULL "
        "AND dossier NOT IN (SELECT id FROM dossiers)",
    )
    assert orphans[0][0] == 0


async def test_refusals_are_recorded_as_the_hub_records_them(tmp_path: Path) -> None:
    # In March 2020 some provinces are connected and some not yet: asking another
    # province's one-stop shop is forbidden (no grant) or not found (not connected).
    scenario = load_scenario(
        "vn-2020", {"period.start": dt.date(2020, 3, 2), "period.end": dt.date(2020, 3, 6)}
    )
    run = await run_scenario(scenario, database_url=_url(tmp_path / "r.db"), projections=False)
    refused = await _table(
        run.database_url,
        "SELECT outcome, status, service IS NULL, forwarded_at IS NULL, count(*) FROM ledger "
        "WHERE outcome NOT IN ('ok', 'client_error', 'provider_error', 'timeout', "
        "'unavailable') GROUP BY outcome, status, service IS NULL, forwarded_at IS NULL",
    )
    kinds = {(o, s, no_service, not_forwarded) for o, s, no_service, not_forwarded, _ in refused}
    assert kinds == {("forbidden", 403, 0, 1), ("not_found", 404, 1, 1)}
    # Their rows (no service, no times at the provider) are in the hash chain as the hub's.
    db = Database.connect(run.database_url)
    try:
        verified = await verify_ledger(db, rollups=True)
    finally:
        await db.dispose()
    assert verified.ok, verified
    # Nobody sends before connecting: every consumer in the ledger was connected that day.
    roster = load_roster("roster-2020")
    consumers = await _table(run.database_url, "SELECT DISTINCT consumer FROM ledger")
    for (code,) in consumers:
        assert roster[code].lgsp_connected <= scenario.period.end


async def test_the_hub_serves_the_runs_statistics(
    tmp_path: Path, sqlite_hub_factory: HubFactory
) -> None:
    scenario = load_scenario("vn-2020", _week())
    url = _url(tmp_path / "hub.db")  # the file sqlite_hub_factory's hubs use
    run = await run_scenario(scenario, database_url=url, sample=0.05, projections=False)
    report = await build_report(run)
    hub = sqlite_hub_factory()
    async with httpx.AsyncClient(base_url=hub.url, headers=hub.admin, timeout=30) as client:
        daily = (await client.get("/stats/daily")).json()
        assert daily["totals"]["transactions"] == report["totals"]["exchanges"]
        assert daily["totals"]["vnd_saved"] == report["totals"]["vnd_saved"]
        procedures = (await client.get("/stats/procedures")).json()
        assert {p["procedure"] for p in procedures["items"]} == {
            p["procedure"] for p in report["procedures"]
        }
        page = (await client.get("/transactions", params={"limit": 5})).json()
        assert len(page["items"]) == 5
        nodes = (await client.get("/nodes")).json()
        assert len(nodes) >= 92 or len(nodes.get("items", [])) >= 92


def test_virtual_ids_are_time_ordered_uuid7() -> None:
    ids = [virtual_uuid7(1_580_000_000_000_000 + i * 37, i) for i in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_counts_have_the_right_means() -> None:
    rng = random.Random(1)
    for lam in (0.3, 4.0, 45.0, 12_345.0):
        mean = sum(poisson(rng, lam) for _ in range(4000)) / 4000
        assert abs(mean - lam) < 4 * (lam / 4000) ** 0.5 + 1e-9
    for n, p in ((10, 0.3), (1000, 0.002), (100_000, 0.37), (50, 0.9)):
        mean = sum(binomial(rng, n, p) for _ in range(4000)) / 4000
        assert abs(mean - n * p) < 4 * (n * p * (1 - p) / 4000) ** 0.5 + 1e-9


# -- what-ifs move the result the expected way -------------------------------------------------


async def test_what_ifs_move_the_result_the_expected_way(tmp_path: Path) -> None:
    window = {"period.start": dt.date(2019, 9, 1), "period.end": dt.date(2019, 11, 30)}
    base_facts, base = await _counts(load_scenario("vn-2020", window), tmp_path)

    def totals(sink: CountingSink) -> tuple[int, int]:
        return sum(c[0] for c in sink.daily.values()), sum(c[5] for c in sink.daily.values())

    base_exchanges, base_completed = totals(base)
    results = {}
    for what_if in ("connect_all=true", "level4_share=1", "growth=1.0"):
        key, value = parse_override(what_if)
        facts, sink = await _counts(load_scenario("vn-2020", {**window, key: value}), tmp_path)
        results[what_if] = (facts, *totals(sink))
    facts, exchanges, completed = results["connect_all=true"]
    assert exchanges > 2 * base_exchanges
    assert completed > 2 * base_completed
    assert set(facts.connected_bodies.values()) == {92}
    assert max(base_facts.connected_bodies.values()) < 92
    _, exchanges, completed = results["level4_share=1"]
    assert completed > 5 * base_completed
    assert exchanges > base_exchanges
    _, exchanges, completed = results["growth=1.0"]
    assert base_exchanges < exchanges < 1.3 * base_exchanges


def test_the_cli_reports_compares_and_writes_json(tmp_path: Path) -> None:
    app = Typer()
    app.command()(simulate)
    report = tmp_path / "report.json"
    # A scenario file of its own: the last two days of vn-2020.
    short = tmp_path / "short.yaml"
    short.write_text(_edited("  start: 2019-01-01", "  start: 2020-07-30"), "utf-8")
    result = CliRunner().invoke(
        app,
        [str(short), "--data-dir", str(tmp_path), "--set", "connect_all=true", "--json",
         str(report), "--compare", str(short), "--sample", "0.01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Beside the published figures" in result.output
    assert f"this run against {short} (base)" in result.output
    data = json.loads(report.read_text("utf-8"))
    assert data["set"] == ["connections.all_from_start=True"]
    figures = {f["figure"]: f for f in data["compared_with"]["figures"]}
    assert figures["connected bodies at the end"]["difference"] == 92 - 76
    assert figures["total exchanges"]["difference"] > 0
    assert (tmp_path / "sim-vn-2020.db").exists()
    assert (tmp_path / "sim-vn-2020-baseline.db").exists()


def test_the_cli_draws_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    app = Typer()
    app.command()(simulate)
    plot = tmp_path / "run.png"
    result = CliRunner().invoke(
        app,
        ["vn-2020", "--set", "period.start=2020-07-20", "--sample", "0", "--data-dir",
         str(tmp_path), "--plot", str(plot)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- bad scenario files are refused with a message naming the problem ---------------------------


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "bad.yaml"
    path.write_text(text, "utf-8")
    return path


def _edited(old: str, new: str) -> str:
    text = read_packaged("vn-2020")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  end: 2020-07-31", "  end: 2020-13-31", "line 30: period.end: "),
        ("  end: 2020-07-31", "  end: 2018-07-31", "period: end 2018-07-31 is before start"),
        ("  growth_per_year: 0.0", "  growth_rate: 0.0", "demand.growth_rate: unknown field"),
        ("level4_share: {2019-01-01: 0.0, 2019-06-01: 0.01, 2020-07-31: 0.10}",
         "level4_share: 1.5", "procedures.1.001022.level4_share: share 1.5"),
        ('  "1.001022":\n', "  1.001022:\n", "key '1.001022' must be text; quote it"),
        ("    profile: machine\n", "    profile: nightly\n",
         "lookups.databases-citizens.profile: no profile 'nightly'"),
        ("  client_error: 0.002", "  client_error: 0.9\n  timeout_share: 0",
         "faults.timeout_share"),
        ("  client_error: 0.002", "  client_error: 0.999",
         "the fault shares add up to more than 1"),
        ("hours: [0.02, 0.01,", "hours: [0.01,", "profiles.office.hours: "),
        ("name: vn-2020\n", "", "name: missing field"),
        ("published:\n", "published: [\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_scenario_files_are_refused(old: str, new: str, message: str, tmp_path: Path) -> None:
    path = _write(tmp_path, _edited(old, new))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(str(path))
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


async def test_problems_found_at_run_time_name_the_field(tmp_path: Path) -> None:
    url = _url(tmp_path / "x.db")
    cases = [
        ({"lookups.provinces-land.provider": "NOWHERE"},
         "lookups.provinces-land.provider: 'NOWHERE' is not in roster-2020"),
        ({"connections.roster": "roster-1999"}, "connections.roster: "),
        ({"period.end": dt.date(2031, 1, 1)}, "holidays 'holidays-vn' has no year 2026"),
    ]  # fmt: skip
    bad_code = _write(tmp_path, _edited('"1.001193":', '"9.999999":'))
    with pytest.raises(ScenarioError, match=r"procedures\.9\.999999: not in the procedure cat"):
        await run_scenario(load_scenario(str(bad_code)), database_url=url)
    for overrides, message in cases:
        with pytest.raises(ScenarioError) as raised:
            await run_scenario(load_scenario("vn-2020", overrides), database_url=url)
        assert message in str(raised.value)


def test_overrides_are_checked_like_the_file() -> None:
    with pytest.raises(ScenarioError, match=r"procedures\.1\.001022\.level4_sharee: unknown field"):
        load_scenario("vn-2020", dict([parse_override("procedures.*.level4_sharee=1")]))
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        parse_override("connect_all")
    with pytest.raises(ScenarioError, match=r"after --set\): ledger.sample"):
        load_scenario("vn-2020", dict([parse_override("sample=2")]))
    with pytest.raises(ScenarioError, match="no packaged scenario 'vn-1999'"):
        load_scenario("vn-1999")
