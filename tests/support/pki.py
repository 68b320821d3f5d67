"""One network CA for the test session: nodes serve mutual TLS, hubs present their
client certificate, as under ``ngsp up``."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from common.pki import Pki

__all__ = ["hub_tls_settings", "network_pki"]


@functools.cache
def network_pki() -> Pki:
    root = Path(tempfile.mkdtemp(prefix="ngsp-pki-"))
    atexit.register(shutil.rmtree, root, True)
    pki = Pki(root / "pki")
    pki.ensure_hub()
    return pki


def hub_tls_settings() -> dict[str, Path]:
    """The hub's settings for mutual TLS to the test network's providers."""
    pki = network_pki()
    return {
        "provider_ca_file": pki.ca_cert,
        "provider_cert_file": pki.hub_cert,
        "provider_key_file": pki.hub_key,
    }
