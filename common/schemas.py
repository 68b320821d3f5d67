"""Types every service's API bodies share."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["UtcDatetime"]


def _as_utc(moment: dt.datetime) -> dt.datetime:
    # SQLite hands back the UTC times it stored without their zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


#: A moment in time as the API shows it: always with its UTC offset.
UtcDatetime = Annotated[dt.datetime, AfterValidator(_as_utc)]
