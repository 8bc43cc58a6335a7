"""A self-signed certificate made at start, so clients can exercise their https/wss path.

An EC P-256 key keeps the TLS handshake cheap (an RSA server key would dominate a
handshake-rate benchmark). The certificate names ``localhost``, ``127.0.0.1`` and the
bind host; clients either trust the written ``cert.pem`` or skip verification.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SelfSigned:
    """A certificate and its key written for this process; ``temporary``: in a folder made for them."""

    cert: Path
    key: Path
    temporary: bool

    def forget_key(self) -> None:
        """Delete the private key once every server context has loaded it (a temporary one only):
        nothing should be left to read, even if the process is later killed."""
        if self.temporary:
            with contextlib.suppress(OSError):
                self.key.unlink()

    def remove(self) -> None:
        """At exit: the temporary folder goes with the certificate (a --tls-dir one stays)."""
        if self.temporary:
            shutil.rmtree(self.cert.parent, ignore_errors=True)


def self_signed(host: str, directory: str | Path | None = None) -> SelfSigned:
    """:func:`make_self_signed`, remembering whether the folder is ours to remove."""
    cert, key = make_self_signed(host, directory)
    return SelfSigned(cert, key, temporary=not directory)


def make_self_signed(host: str, directory: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (0600) to ``directory`` (a new temp dir by default)."""
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="lp-emulator-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lp-harness emulator")])
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(host)
        if str(ip) != "127.0.0.1":
            alt_names.append(x509.IPAddress(ip))
    except ValueError:
        if host and host != "localhost":
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context
