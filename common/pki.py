"""The network's certificates: a certificate authority, and mutual TLS between the hub
and the providers.

Only the hub reaches a provider. Every node holds a server certificate that names its code
(``<code>.node.ngsp``), and the hub a client certificate (``hub.ngsp``), all issued by the
network's CA. A provider's listener asks every client for a certificate and accepts only
the hub's: anything else fails at the handshake, before a byte of HTTP. The hub checks
that the provider's certificate names the node it means to call, whatever address the
registry gives for it.

``ngsp up`` makes a CA in ``<data dir>/pki`` (keys 0600 in a 0700 folder); a production
deployment brings its own CA and hands each service only its own key and the CA's
certificate.

Layout of a PKI folder::

    ca.pem  ca.key            the network's CA (its key only where certificates are issued)
    hub.pem hub.key           the hub's client certificate
    nodes/<CODE>.pem .key     each node's server certificate
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.files import private_dir, write_private

__all__ = [
    "HUB_NAME",
    "CertificateAuthority",
    "Pki",
    "client_context",
    "node_name",
    "server_context",
]

#: The name in the hub's client certificate; providers accept no other.
HUB_NAME = "hub.ngsp"
_NODE_SUFFIX = ".node.ngsp"
_VALIDITY = dt.timedelta(days=825)


def node_name(code: str) -> str:
    """The DNS name a node's certificate carries, and the hub checks: ``p01.node.ngsp``."""
    return code.lower() + _NODE_SUFFIX


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """The network's CA: issues the hub's and the nodes' certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "ngsp-sim network CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + 4 * _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self, name: str, *, server: bool, extra_ips: tuple[str, ...] = ()
    ) -> tuple[bytes, bytes]:
        """A certificate for ``name`` (a server's or a client's), and its key, as PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        alt: list[x509.GeneralName] = [x509.DNSName(name)]
        alt.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


@dataclass(frozen=True, slots=True)
class Pki:
    """A PKI folder (see the module's description)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def hub_cert(self) -> Path:
        return self.root / "hub.pem"

    @property
    def hub_key(self) -> Path:
        return self.root / "hub.key"

    def node_cert(self, code: str) -> Path:
        return self.root / "nodes" / f"{code}.pem"

    def node_key(self, code: str) -> Path:
        return self.root / "nodes" / f"{code}.key"

    def authority(self) -> CertificateAuthority:
        """The CA, made on first use; its key never leaves this folder."""
        key_path = self.root / "ca.key"
        if key_path.exists() and self.ca_cert.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: not an EC private key")
            return CertificateAuthority(
                key, x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            )
        private_dir(self.root)
        ca = CertificateAuthority.create()
        write_private(key_path, _key_pem(ca.key))
        self.ca_cert.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def ensure_hub(self) -> None:
        """The hub's client certificate, issued if missing."""
        if not (self.hub_cert.exists() and self.hub_key.exists()):
            cert, key = self.authority().issue(HUB_NAME, server=False)
            write_private(self.hub_key, key)
            self.hub_cert.write_bytes(cert)

    def ensure_nodes(self, codes: list[str] | tuple[str, ...]) -> None:
        """A server certificate for every node that lacks one (issued as it registers)."""
        missing = [
            c for c in codes if not (self.node_cert(c).exists() and self.node_key(c).exists())
        ]
        if not missing:
            return
        ca = self.authority()
        private_dir(self.root / "nodes")
        for code in missing:
            cert, key = ca.issue(node_name(code), server=True)
            write_private(self.node_key(code), key)
            self.node_cert(code).write_bytes(cert)


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """A provider's TLS: its own certificate, and a client certificate from the CA required.

    Which client is accepted (the hub's name only) is checked once the handshake is done;
    a client without a certificate of the CA fails the handshake itself.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """The hub's TLS to providers: its client certificate; providers verified by the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
