"""``cim up --tls``: a private certificate authority and a server certificate, made once.

In ``DATA/tls``: ``ca.pem`` (the CA's certificate: what clients trust, given
as ``CIM_TLS_CA``), ``ca-key.pem``, ``server.pem`` and ``server-key.pem`` (one
certificate for 127.0.0.1 and localhost, used by the route, every node and
NATS). Keys are mode 0600, the folder 0700. Files that exist are kept, so a
client that trusted ``ca.pem`` once keeps trusting the cluster after a
restart; a server certificate within 30 days of expiry is made again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cim_cli.ops.data_folder import check_private, private_dir, write_private

__all__ = ["TlsFiles", "ensure_tls_files"]

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA and the server's certificate and key are."""

    ca: Path
    cert: Path
    key: Path

    @property
    def pair(self) -> tuple[Path, Path]:
        return self.cert, self.key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int):
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("cim up local CA")
    cert = (
        _builder(name, name, key, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    write_private(folder / "ca-key.pem", _pem_key(key))
    write_private(folder / "ca.pem", _pem_cert(cert))
    return cert, key


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if not (cert_path.exists() and key_path.exists()):
        return None
    check_private(key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate(cert_path.read_bytes()), key


def _server_is_fresh(cert_path: Path, key_path: Path, ca: x509.Certificate) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    check_private(key_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.issuer == ca.subject and cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


def _make_server(folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        _builder(_name("localhost"), ca.subject, key, SERVER_DAYS)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(folder / "server-key.pem", _pem_key(key))
    write_private(folder / "server.pem", _pem_cert(cert))


def ensure_tls_files(data_dir: Path) -> TlsFiles:
    """The CA and server certificate in ``data_dir/tls``, made if missing or near expiry."""
    folder = private_dir(data_dir / "tls")
    ca, ca_key = _load_ca(folder) or _make_ca(folder)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    if not _server_is_fresh(files.cert, files.key, ca):
        _make_server(folder, ca, ca_key)
    return files
