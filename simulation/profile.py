"""The virtual clock's calendar: holidays, Tết, and how demand spreads over days and hours.

A rate in a scenario is an average over a year ("16.8 births a year per 1,000
inhabitants", "3,000 lookups a day"). A ``DayProfile`` spreads it over the year's days in
proportion to each day's factor (weekday × holiday × the weeks around Tết), normalised
over the calendar year, so that holidays move demand to other days without changing the
year's total. Within a day, demand follows the profile's 24 hourly weights.

Days are Vietnam's (UTC+7): the hub's statistics days (``ledger.stats_day`` with
``stats_utc_offset_minutes=420``) are the same days.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

import yaml

from simulation.scenario import Profile, ScenarioError, read_packaged

__all__ = [
    "VIETNAM_OFFSET_US",
    "Calendar",
    "DayProfile",
    "HourSampler",
    "day_start_us",
    "load_calendar",
]

VIETNAM_OFFSET_US = 7 * 3_600_000_000
_EPOCH = dt.date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000


def day_start_us(day: dt.date) -> int:
    """Midnight of a Vietnam day, in microseconds since the Unix epoch (UTC)."""
    return (day.toordinal() - _EPOCH) * _DAY_US - VIETNAM_OFFSET_US


@dataclass(frozen=True)
class Calendar:
    """Public holidays and the Tết break of each year the calendar covers."""

    name: str
    holidays: frozenset[dt.date]
    tet: dict[int, tuple[dt.date, dt.date]]

    def check_covers(self, start: dt.date, end: dt.date) -> None:
        """Refuse a period with a year the calendar does not know (normalisation needs it)."""
        missing = [y for y in range(start.year, end.year + 1) if y not in self.tet]
        if missing:
            covered = f"{min(self.tet)}-{max(self.tet)}" if self.tet else "no years"
            raise ScenarioError(
                f"holidays {self.name!r} has no year {missing[0]} (it covers {covered})"
            )


def load_calendar(name: str) -> Calendar:
    """A packaged holiday calendar (``holidays-vn``)."""
    try:
        raw = yaml.safe_load(read_packaged(name))
    except FileNotFoundError:
        raise ScenarioError(f"holidays: no packaged calendar {name!r}") from None
    holidays: set[dt.date] = set()
    tet: dict[int, tuple[dt.date, dt.date]] = {}
    try:
        for year, entry in raw["years"].items():
            first, last = entry["tet"]
            tet[int(year)] = (first, last)
            for a, b in [entry["tet"], *entry.get("other", [])]:
                day = a
                while day <= b:
                    holidays.add(day)
                    day += dt.timedelta(days=1)
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{name}.yaml: malformed calendar ({exc})") from None
    return Calendar(name=name, holidays=frozenset(holidays), tet=tet)


@dataclass
class DayProfile:
    """One profile's daily weights: a day's share of a year's demand, times days a year."""

    profile: Profile
    calendar: Calendar
    _norm: dict[int, float] = field(default_factory=dict, repr=False)

    def factor(self, day: dt.date) -> float:
        """The day's relative demand before normalisation."""
        p = self.profile
        if day in self.calendar.holidays:
            return p.weekdays[day.weekday()] * p.holiday
        value = p.weekdays[day.weekday()]
        for year in (day.year, day.year + 1):
            window = self.calendar.tet.get(year)
            if window is None:
                continue
            first, last = window
            if p.tet.days_before and 0 < (first - day).days <= p.tet.days_before:
                value *= p.tet.before
            if p.tet.days_after and 0 < (day - last).days <= p.tet.days_after:
                value *= p.tet.after
        return value

    def weight(self, day: dt.date) -> float:
        """The factor normalised so that it averages 1 over the day's calendar year."""
        norm = self._norm.get(day.year)
        if norm is None:
            first = dt.date(day.year, 1, 1)
            days = (dt.date(day.year + 1, 1, 1) - first).days
            total = sum(self.factor(first + dt.timedelta(days=i)) for i in range(days))
            norm = days / total if total > 0 else 0.0
            self._norm[day.year] = norm
        return self.factor(day) * norm


class HourSampler:
    """Draws a time of day from 24 hourly weights with one uniform number."""

    __slots__ = ("tables",)

    def __init__(self, hours: tuple[float, ...]) -> None:
        cum: list[float] = []
        running = 0.0
        for w in hours:
            running += w
            cum.append(running)
        belows = [0.0, *cum[:-1]]
        starts = [h * 3_600_000_000 for h in range(24)]
        # An hour of weight 0 is never drawn: bisect skips it.
        scales = [3_600_000_000 / w if w > 0 else 0.0 for w in hours]
        #: Cumulative weights, hour starts (µs), the cumulative weight below each hour,
        #: µs per unit of weight in each hour, and the total: for inlined hot loops.
        self.tables = (cum, starts, belows, scales, running)

    def offset_us(self, u: float) -> int:
        """Microseconds after midnight for ``u`` in [0, 1)."""
        cum, starts, belows, scales, total = self.tables
        x = u * total
        h = bisect.bisect_right(cum, x)
        return min(starts[h] + int((x - belows[h]) * scales[h]), 86_399_999_999)
