"""The sandbox's certificates: a local CA and a server certificate signed by it.

``callcenter pbx up`` calls ``ensure_server_cert`` when the settings name no certificate of the
site's own (``sip.tls_cert``/``sip.tls_key``). The CA's key never leaves ``<state_dir>/tls``
(0600); the server certificate is remade when the names it must hold change or it is near its
end. Written with ``cryptography`` (a well-kept library) rather than by shelling out to openssl.
Blocking code, for the CLI and the test session, never the engine's loop.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

#: a server certificate is remade when fewer days than this remain
RENEW_DAYS = 30
SERVER_DAYS = 397
CA_DAYS = 3650
#: listen-on-everything addresses: not names a certificate can hold
_WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104


@dataclass(frozen=True)
class ServerCert:
    """Where the PEM files are: the CA (to import in browsers or phones), cert and key."""

    ca: Path
    cert: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(n for n in names if n and n not in _WILDCARDS):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _ensure_ca(folder: Path, now: dt.datetime) -> tuple[x509.Certificate,
                                                        ec.EllipticCurvePrivateKey]:
    ca_pem, key_pem = folder / "ca.pem", folder / "ca.key"
    if ca_pem.is_file() and key_pem.is_file():
        cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        key = serialization.load_pem_private_key(key_pem.read_bytes(), None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > now \
                and _has(cert, x509.SubjectKeyIdentifier):
            return cert, key
        log.warning("the local CA in %s is expired or has no key identifier: a new one is made;"
                    " phones and browsers that trusted the old ca.pem must import the new one",
                    folder)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callcenter sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "callcenter local CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            # key identifiers: strict verifiers (Python 3.13+'s VERIFY_X509_STRICT) want them
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_pem, _key_pem(key), 0o600)
    _write(ca_pem, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _current(path: Path, ca: x509.Certificate, wanted: list[x509.GeneralName],
             now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (cert.issuer == ca.subject and set(names) == set(wanted)
            and _has(cert, x509.AuthorityKeyIdentifier)
            and cert.not_valid_after_utc - now > dt.timedelta(days=RENEW_DAYS))


def _has(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    try:
        cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return False
    return True


def ensure_server_cert(folder: Path, names: Iterable[str]) -> ServerCert:
    """The local CA and a server certificate for ``names`` (IPs and DNS names), made or reused."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = dt.datetime.now(dt.UTC)
    ca, ca_key = _ensure_ca(folder, now)
    wanted = _san(names)
    out = ServerCert(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    if _current(out.cert, ca, wanted, now) and out.key.is_file():
        return out
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callcenter sandbox PBX")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(out.key, _key_pem(key), 0o600)
    _write(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return out
