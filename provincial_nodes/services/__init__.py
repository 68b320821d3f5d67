"""The services the simulated nodes offer, one FastAPI app each.

Each app's OpenAPI document is what the node registers with the hub for that service;
its paths are relative to the service's root (``/exchange/{node}/{service}/...``).
"""

from provincial_nodes.services.catalogue import SERVICES, ServiceSpec, service_apps

__all__ = ["SERVICES", "ServiceSpec", "service_apps"]
