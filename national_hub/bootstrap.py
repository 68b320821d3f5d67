"""Bootstrap the registry from a YAML file (``ngsp hub --registry FILE``)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from national_hub import registry_service
from national_hub.runtime import Runtime
from national_hub.schemas import RegistryApplied, RegistryDocument

__all__ = ["RegistryFileError", "apply_registry_file", "load_registry_file"]


class RegistryFileError(ValueError):
    """A registry file that cannot be applied, with the reason."""


def load_registry_file(path: Path) -> RegistryDocument:
    """Read and validate a registry document."""
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise RegistryFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"{path}: not valid YAML: {exc}") from None
    try:
        return RegistryDocument.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RegistryFileError(f"{path}: {where}: {first['msg']}") from None


async def apply_registry_file(runtime: Runtime, path: Path) -> RegistryApplied:
    """Apply a registry file idempotently; new credentials go to ``credentials.json``."""
    document = load_registry_file(path)
    async with runtime.db.write_session() as session:
        nodes, services, grants, created = await registry_service.apply_document(
            session, document=document
        )
        await registry_service.bump_version(session)
        await session.commit()
    await runtime.registry.changed()
    if runtime.credentials is not None:
        for credential in created:
            runtime.credentials.set_node(
                credential.node,
                client_id=credential.client_id,
                client_secret=credential.client_secret,
            )
    return RegistryApplied(nodes=nodes, services=services, grants=grants, credentials=created)
