"""The hub's Prometheus metrics, with labels drawn only from the registry and the catalogue.

Cardinality is bounded by what the admin registers, never by request content: a consumer
that is not a registered node is ``none``, a provider or service not in the registry is
``unknown``, a procedure not in the catalogue is ``other``. ``docs/metrics.md`` lists
every metric.

With several worker processes (``ngsp hub --workers N``) each worker writes its values
to files in ``PROMETHEUS_MULTIPROC_DIR`` (the hub sets it to ``<data_dir>/metrics``) and
``/metrics`` merges them, so every worker's counts appear whichever worker answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.metrics import CONTENT_TYPE_LATEST, LATENCY_BUCKETS, render

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS", "HubMetrics", "render"]


@dataclass(frozen=True, slots=True)
class _Children:
    count: Any
    total: Any
    provider: Any
    hub: Any
    request_bytes: Any
    response_bytes: Any


class HubMetrics:
    """Every metric the hub exports, registered on the hub's own registry."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str, str], _Children] = {}
        self._refused: dict[tuple[str, str], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.exchanges = Counter(
            "ngsp_exchanges", "Exchanges by consumer, provider, service and outcome.",
            ["consumer", "provider", "service", "outcome"], registry=r,
        )  # fmt: skip
        self.exchange_seconds = Histogram(
            "ngsp_exchange_duration_seconds",
            "Whole exchange, from the request's arrival to its committed answer.",
            ["provider", "service"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.provider_seconds = Histogram(
            "ngsp_provider_duration_seconds",
            "The provider's part: from forwarding to the provider's full answer.",
            ["provider", "service"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.hub_seconds = Histogram(
            "ngsp_hub_added_duration_seconds",
            "The hub's own part: the whole exchange less the provider's part.",
            ["provider"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_bytes = Counter(
            "ngsp_exchange_request_bytes", "Request body bytes received from consumers.",
            ["consumer", "provider", "service"], registry=r,
        )  # fmt: skip
        self.response_bytes = Counter(
            "ngsp_exchange_response_bytes", "Response body bytes sent back to consumers.",
            ["consumer", "provider", "service"], registry=r,
        )  # fmt: skip
        self.procedures = Counter(
            "ngsp_procedures_completed", "Completed dossiers reported to the hub, by procedure.",
            ["procedure"], registry=r,
        )  # fmt: skip
        self.vnd_saved = Counter(
            "ngsp_vnd_saved", "Estimated VND saved by completed procedures, by procedure.",
            ["procedure"], registry=r,
        )  # fmt: skip
        self.dossiers = Counter(
            "ngsp_dossiers_reported", "Dossier reports taken by the hub, by procedure and outcome.",
            ["procedure", "outcome"], registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "ngsp_tokens_issued", "Access tokens issued, by node.", ["node"], registry=r
        )
        self.auth_failures = Counter(
            "ngsp_auth_failures", "Refused authentications and authorisations, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.ledger_queue = Gauge(
            "ngsp_ledger_queue_depth", "Ledger rows waiting for a group commit.",
            registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.ledger_group = Histogram(
            "ngsp_ledger_group_size", "Rows per ledger group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000), registry=r,
        )  # fmt: skip
        self.ledger_commit = Histogram(
            "ngsp_ledger_commit_duration_seconds", "Time to write and commit one ledger group.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ledger_failures = Counter(
            "ngsp_ledger_commit_failures", "Ledger group commits that failed.", registry=r
        )
        self.node_up = Gauge(
            "ngsp_node_up", "1 if the hub's last health probe of the node succeeded.",
            ["node"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.node_probe_seconds = Gauge(
            "ngsp_node_probe_duration_seconds", "Duration of the hub's last probe of the node.",
            ["node"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.circuit = Gauge(
            "ngsp_circuit_state", "A provider's circuit: 0 closed, 1 half-open, 2 open.",
            ["provider"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.shed = Counter(
            "ngsp_shed", "Exchanges refused to protect the hub or a provider, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.admission_limit = Gauge(
            "ngsp_admission_limit",
            "Exchanges the hub admits in flight at most (lowered while it sheds a flood).",
            registry=r, multiprocess_mode="min",
        )  # fmt: skip
        self.loop_lag = Gauge(
            "ngsp_event_loop_lag_seconds", "How far the hub's event loop runs behind (smoothed).",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.today = Gauge(
            "ngsp_stats_today", "Today's totals from the ledger's rollups (Vietnam time).",
            ["measure"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.all_time = Gauge(
            "ngsp_stats_total", "All-time totals from the ledger's rollups.",
            ["measure"], registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip

    def exchange(
        self,
        *,
        consumer: str,
        provider: str,
        service: str,
        outcome: str,
        total_seconds: float,
        provider_seconds: float | None,
        request_bytes: int,
        response_bytes: int,
        granted: bool = True,
    ) -> None:
        """Count one exchange.

        An exchange refused before its grant was checked, or for want of one, is counted
        by consumer and outcome alone (provider and service ``none``): what a caller asks
        for is request content, and only granted (consumer, provider, service) triples,
        which the admin decides, may become label sets.
        """
        if not granted:
            refused = self._refused.get((consumer, outcome))
            if refused is None:
                refused = self._refused[(consumer, outcome)] = self.exchanges.labels(
                    consumer, "none", "none", outcome
                )
            refused.inc()
            return
        key = (consumer, provider, service, outcome)
        children = self._children.get(key)
        if children is None:
            # Looking label sets up costs more than counting: keep the children per key
            # (bounded like the label sets themselves).
            children = self._children[key] = _Children(
                self.exchanges.labels(*key),
                self.exchange_seconds.labels(provider, service),
                self.provider_seconds.labels(provider, service),
                self.hub_seconds.labels(provider),
                self.request_bytes.labels(consumer, provider, service),
                self.response_bytes.labels(consumer, provider, service),
            )
        children.count.inc()
        children.total.observe(total_seconds)
        if provider_seconds is not None:
            children.provider.observe(provider_seconds)
            children.hub.observe(max(0.0, total_seconds - provider_seconds))
        if request_bytes:
            children.request_bytes.inc(request_bytes)
        children.response_bytes.inc(response_bytes)

    def ledger_group_committed(self, size: int, seconds: float, depth: int) -> None:
        self.ledger_group.observe(size)
        self.ledger_commit.observe(seconds)
