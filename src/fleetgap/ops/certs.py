"""A private CA and a server certificate for the registry, made with `cryptography`.

The files are named for what reads them: `server.crt` for `EPR_TLS_CERT` (`--tls-cert`),
`server.key` for `EPR_TLS_KEY` (`--tls-key`), `ca.crt` for Kibana's `NODE_EXTRA_CA_CERTS`
and every `ssl.certificate_authorities`. A new CA's private key goes to a directory of its
own (mode 0700), never beside the server's files: whoever is given the server's key (the
service user) is not given the power to issue certificates. Keys are written 0600; nothing
is overwritten; the paths in `tls.env` are absolute, whatever directory it is read from.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetgap.errors import FleetgapError

CA_CERT = "ca.crt"  # NODE_EXTRA_CA_CERTS
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"  # EPR_TLS_CERT
SERVER_KEY = "server.key"  # EPR_TLS_KEY
ENV_FILE = "tls.env"
CA_DAYS = 3650
CA_DIR_SUFFIX = "-ca"  # the CA's own directory, beside OUT, unless --ca-dir says where
_MAX_COMMON_NAME = 64  # X.520 ub-common-name


@dataclass(frozen=True)
class Issued:
    """What `create_certificates` wrote; `ca_key` is None when an existing CA issued."""

    ca_cert: Path
    ca_key: Path | None
    cert: Path
    key: Path
    env_file: Path
    not_after: datetime.datetime

    def env(self) -> dict[str, str]:
        return {
            "EPR_TLS_CERT": str(self.cert),
            "EPR_TLS_KEY": str(self.key),
            "NODE_EXTRA_CA_CERTS": str(self.ca_cert),
        }


def create_certificates(
    hosts: Sequence[str],
    out: Path,
    *,
    ca: Sequence[Path] = (),
    ca_dir: Path | None = None,
    days: int = 397,
) -> Issued:
    """Write a server certificate for `hosts` (DNS names, international ones too, or IP
    addresses) into `out`, issued by the CA in `ca` (a directory with ca.crt and ca.key, or
    the two files) or by a new CA, whose key and certificate go to `ca_dir` (default: OUT-ca
    beside `out`) and whose certificate is also copied into `out` for the clients."""
    if not hosts:
        raise FleetgapError("give at least one --host (a DNS name or an IP address)")
    if days < 1:
        raise FleetgapError("--days must be at least 1")
    sans = [_san(host) for host in hosts]
    out = Path(os.path.abspath(out))
    existing_ca = _read_ca(ca) if ca else None
    targets = [out / SERVER_CERT, out / SERVER_KEY, out / ENV_FILE]
    if existing_ca is None:
        ca_dir = _apart_from(out, ca_dir)
        targets += [out / CA_CERT, ca_dir / CA_CERT, ca_dir / CA_KEY]
    clash = [str(path) for path in targets if path.exists()]
    if clash:
        raise FleetgapError(f"{', '.join(clash)} exist; refusing to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    if existing_ca is None:
        assert ca_dir is not None
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, now)
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca_key_path = ca_dir / CA_KEY
        _write(ca_key_path, _key_pem(ca_key), 0o600)
        _write(ca_dir / CA_CERT, ca_pem, 0o644)
        ca_cert_path = out / CA_CERT
        _write(ca_cert_path, ca_pem, 0o644)
    else:
        ca_cert, ca_key, ca_cert_path = existing_ca
        ca_cert_path = Path(os.path.abspath(ca_cert_path))
        ca_key_path = None
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(key, ca_cert, ca_key, _common_name(sans), sans, now, days)
    issued = Issued(
        ca_cert_path,
        ca_key_path,
        out / SERVER_CERT,
        out / SERVER_KEY,
        out / ENV_FILE,
        cert.not_valid_after_utc,
    )
    _write(issued.key, _key_pem(key), 0o600)
    _write(issued.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    env = "".join(f"{name}={value}\n" for name, value in issued.env().items())
    _write(issued.env_file, env.encode(), 0o644)
    return issued


def _apart_from(out: Path, ca_dir: Path | None) -> Path:
    """The new CA's directory: never `out` nor inside it (a `chown -R` of `out` for the
    service user must not reach the CA's key)."""
    where = (
        Path(os.path.abspath(ca_dir))
        if ca_dir is not None
        else out.with_name(out.name + CA_DIR_SUFFIX)
    )
    if where == out or out in where.parents:
        raise FleetgapError(f"--ca-dir {where} must be outside --out {out}: the CA key stays apart")
    return where


def _san(host: str) -> x509.GeneralName:
    host = host.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = _a_labels(host)
    labels = name.split(".")
    if not name or not all(label and len(label) <= 63 for label in labels) or " " in name:
        raise FleetgapError(f"--host {host!r} is neither a DNS name nor an IP address")
    return x509.DNSName(name)


def _a_labels(host: str) -> str:
    """A DNS name as certificates carry it: Unicode labels as IDNA A-labels (`xn--…`),
    mapped as browsers and Node (Kibana) map a URL's host (UTS 46, non-transitional)."""
    if host.isascii():
        return host
    wildcard = "*." if host.startswith("*.") else ""
    try:
        return wildcard + idna.encode(host[len(wildcard) :], uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise FleetgapError(f"--host {host!r} is not a valid international name: {exc}") from None


def _common_name(sans: Sequence[x509.GeneralName]) -> str:
    """The first name, as clients show it (they match the SANs); a fixed name when the first
    is longer than a common name may be."""
    first = str(sans[0].value)
    return first if len(first) <= _MAX_COMMON_NAME else "fleetgap registry"


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetgap private CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(key, ca_cert, ca_key, common_name, sans, now, days) -> x509.Certificate:  # noqa: E501
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _read_ca(paths: Sequence[Path]):  # type: ignore[no-untyped-def]
    """(certificate, key, certificate path) of an existing CA."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        paths = [paths[0] / CA_CERT, paths[0] / CA_KEY]
    if len(paths) != 2:
        raise FleetgapError("--ca takes a directory (with ca.crt and ca.key) or the two files")
    cert = key = cert_path = None
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FleetgapError(f"cannot read CA file {path}: {exc.strerror}") from None
        if b"CERTIFICATE-----" in data:
            cert, cert_path = x509.load_pem_x509_certificate(data), path
        else:
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError) as exc:
                raise FleetgapError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if cert is None or key is None or cert_path is None:
        raise FleetgapError("--ca needs the CA certificate and its private key")
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise FleetgapError(f"{cert_path}: the CA certificate does not match the CA key")
    return cert, key, cert_path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start (a key is never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
