"""Routing decisions as plain functions on a registry snapshot.

The data plane, the API's authentication and the virtual-time scenarios all decide the
same way: who is calling (``consumer_of``), what they are calling (``resolve``), and
whether they may (``authorise``). Each raises the hub's error for a refusal.
"""

from __future__ import annotations

from common.errors import NotGranted, TokenInvalid, UnknownProvider, UnknownService
from national_hub.registry import NodeInfo, ServiceInfo, Snapshot
from national_hub.tokens import Claims

__all__ = ["authorise", "consumer_of", "resolve"]


def consumer_of(snapshot: Snapshot, claims: Claims) -> NodeInfo:
    """The node a verified token speaks for, if its credential and the node are still good."""
    credential = snapshot.credentials.get(claims.client_id)
    if (
        credential is None
        or credential.node != claims.node
        or credential.generation != claims.generation
        or not credential.enabled
    ):
        raise TokenInvalid("the credential behind this token was rotated, disabled or deleted")
    node = snapshot.nodes.get(claims.node)
    if node is None or not node.active:
        raise TokenInvalid(f"node {claims.node} is disabled or not connected")
    return node


def resolve(snapshot: Snapshot, provider_code: str, service_code: str) -> ServiceInfo:
    """The service a request names, if its provider is connected and it is enabled."""
    provider = snapshot.nodes.get(provider_code)
    if provider is None or not provider.active:
        raise UnknownProvider(f"no connected provider {provider_code!r}")
    service = snapshot.services.get((provider.code, service_code))
    if service is None or not service.enabled:
        raise UnknownService(f"provider {provider.code} has no service {service_code!r}")
    return service


def authorise(snapshot: Snapshot, consumer: str, service: ServiceInfo) -> None:
    """Refuse a consumer that holds no grant for the service."""
    if (consumer, service.id) not in snapshot.grants:
        raise NotGranted(f"{consumer} holds no grant for {service.provider}/{service.code}")
