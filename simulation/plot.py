"""``--plot FILE.png``: daily exchanges, connected bodies and cumulative savings over time.

matplotlib is imported here only, when a plot is asked for (``pip install matplotlib``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

__all__ = ["plot_report"]


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Draw the run's three time series, one above the other, into a PNG file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib") from None

    daily = report["daily"]
    days = [dt.date.fromisoformat(d["day"]) for d in daily]
    exchanges = [d["exchanges"] for d in daily]
    connected = [d["connected_bodies"] for d in daily]
    cumulative = []
    running = 0
    for d in daily:
        running += d["vnd_saved"]
        cumulative.append(running / 1e9)

    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    axes[0].plot(days, exchanges, linewidth=0.7)
    axes[0].set_ylabel("exchanges a day")
    axes[1].step(days, connected, where="post")
    axes[1].set_ylabel("connected bodies")
    for figure in report["comparison"]:
        if figure["figure"].startswith("connected bodies on ") and figure["published"]:
            day = dt.date.fromisoformat(figure["figure"].removeprefix("connected bodies on "))
            axes[1].plot([day], [figure["published"]], "o", color="tab:red")
    axes[2].plot(days, cumulative)
    axes[2].set_ylabel("VND saved (billion, cumulative)")
    sample = report["ledger_sample"]
    fig.suptitle(
        f"ngsp simulate {report['scenario']} (seed {report['seed']}"
        + ("" if sample >= 1 else f", ledger sampled at {sample:g}")
        + ")"
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
