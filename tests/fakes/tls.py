"""A throwaway TLS identity for loopback fakes whose real counterparts only speak TLS (Gemini Live).

The certificate is made at test time for 127.0.0.1 and trusted by the client context alone, so nothing
touches the system trust store and no key material lives in the repository.
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
from cryptography.x509.oid import NameOID

__all__ = ["LoopbackTls", "make_loopback_tls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopbackTls:
    """The server side's context and a client context that trusts exactly that server."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def make_loopback_tls(directory: Path) -> LoopbackTls:
    """Create a self-signed certificate for 127.0.0.1 in `directory` (blocking: call it from a sync fixture)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path = directory / "loopback-cert.pem"
    key_path = directory / "loopback-key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return LoopbackTls(server=server, client=client)
