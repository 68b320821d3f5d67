"""The gateway's Prometheus metrics: dossiers, rate limits and the level-4 model.

Labels come from the catalogue (procedure), the roster (province, body) and the keys the
admin created (key id), never from request content.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.level4 import Level4Model

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter(
            "ngsp_gateway_dossiers_submitted",
            "Dossiers accepted by the gateway, by procedure and province.",
            ["procedure", "province"],
            registry=r,
        )
        self.finished = Counter(
            "ngsp_gateway_dossiers",
            "Dossiers that ended, by procedure, province and outcome (completed, failed).",
            ["procedure", "province", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "ngsp_gateway_dossier_duration_seconds",
            "From acceptance to the end of a dossier's last step.",
            ["procedure"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.rate_limited = Counter(
            "ngsp_gateway_rate_limited",
            "Requests refused with 429, by API key id and the limit that refused them.",
            ["key", "limit"],
            registry=r,
        )
        self.level4 = Gauge(
            "ngsp_gateway_level4_share",
            "Share of a body's procedures offered fully online (the published model).",
            ["body", "kind"],
            registry=r,
        )

        self.procedures = Gauge(
            "ngsp_gateway_procedures",
            "A body's administrative procedures, all and those offered at level 4 "
            "(sum both over bodies for the national share).",
            ["body", "kind", "level"],
            registry=r,
        )

    def set_level4(self, model: Level4Model, kinds: dict[str, str]) -> None:
        for code, offer in model.bodies.items():
            kind = kinds.get(code, "unknown")
            share = model.share(code)
            if share is not None:
                self.level4.labels(code, kind).set(share)
            self.procedures.labels(code, kind, "all").set(offer.procedures)
            self.procedures.labels(code, kind, "level4").set(offer.level4)
