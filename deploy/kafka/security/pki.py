"""A throw-away certificate authority for a local broker: CA, broker and client certificates.

Everything is PEM, which Kafka reads directly (`ssl.keystore.type=PEM`,
`ssl.truststore.type=PEM`) and Python's `ssl` module loads as it is, so no keytool or
PKCS#12 step is needed. Keys are EC P-256 (fast to generate, accepted by Java and OpenSSL).

For tests and local development only: a real cluster's certificates come from the
organisation's PKI (see docs/operations.md, "Rotate credentials").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Bundle", "Issued", "issue", "new_ca", "write_bundle"]

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class Issued:
    """A key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,  # Kafka's PEM key store wants PKCS#8
            serialization.NoEncryption(),
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Bundle:
    """Files written by `write_bundle` (all PEM)."""

    ca_cert: Path
    ca_key: Path
    broker_keystore: Path  # broker key + certificate chain, for ssl.keystore.location
    broker_cert: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DFIP local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def new_ca(common_name: str = "DFIP local CA") -> Issued:
    """A self-signed CA certificate that may sign end-entity certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue(
    ca: Issued,
    common_name: str,
    *,
    server: bool,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
) -> Issued:
    """An end-entity certificate signed by `ca`.

    `server=True`: a broker certificate valid for `hosts` (IP addresses and DNS names in the
    subject alternative name, which clients verify) and for both TLS roles (a broker is also a
    client of other brokers). `server=False`: a client certificate for mutual TLS; Kafka maps
    it to the principal `CN=<common_name>,O=DFIP local`.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def _write(path: Path, data: bytes, *, secret: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # secrets are created 0600 from the start, never world-readable for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def write_bundle(
    out: Path,
    *,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    client_name: str = "dfip-client",
    ca: Issued | None = None,
) -> Bundle:
    """Write a CA (new unless given), a broker key store and a client key pair into `out`."""
    ca = ca or new_ca()
    broker = issue(ca, "dfip-broker", server=True, hosts=hosts)
    client = issue(ca, client_name, server=False)
    return Bundle(
        ca_cert=_write(out / "ca.crt", ca.cert_pem(), secret=False),
        ca_key=_write(out / "ca.key", ca.key_pem(), secret=True),
        broker_keystore=_write(
            out / "broker-keystore.pem", broker.key_pem() + broker.cert_pem(), secret=True
        ),
        broker_cert=_write(out / "broker.crt", broker.cert_pem(), secret=False),
        client_cert=_write(out / "client.crt", client.cert_pem(), secret=False),
        client_key=_write(out / "client.key", client.key_pem(), secret=True),
    )
