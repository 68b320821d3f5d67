"""The nodes process's Prometheus metrics: requests each node served, and injected faults.

Labels come from the roster and the service catalogue only (a request for a service the
node does not offer counts under service ``unknown``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.metrics import LATENCY_BUCKETS

__all__ = ["NodesMetrics"]


class NodesMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ngsp_node_requests",
            "Requests a simulated node answered, by node, service and status code.",
            ["node", "service", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "ngsp_node_request_duration_seconds",
            "Time a simulated node took to answer, injected latency included.",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.faults = Counter(
            "ngsp_node_faults_injected",
            "Answers changed by fault injection, by node and kind (latency, error).",
            ["node", "kind"],
            registry=r,
        )
        self.listening = Gauge(
            "ngsp_node_listening",
            "1 if the node accepts connections (0 during an injected outage).",
            ["node"],
            registry=r,
        )
