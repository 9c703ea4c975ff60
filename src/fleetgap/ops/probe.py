"""The doctor's eyes: one-shot HTTP requests and TLS handshakes with a hard timeout.

No retries here (a doctor measures, an agent retries): every failure is a `ProbeError`
whose message says what happened in one line — refused, timed out, not trusted, a status.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509

from fleetgap.errors import FleetgapError, without_userinfo
from fleetgap.net import NetOptions, make_client


class ProbeError(FleetgapError):
    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        url, reason = without_userinfo(url), without_userinfo(reason)
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class PeerCertificate:
    subject: str
    not_after: datetime.datetime
    trusted: bool
    problem: str | None  # why it does not verify against the CA, if it does not


class Probe:
    """A thread-safe client trusting `ca_cert` (or the system roots)."""

    def __init__(self, ca_cert: Path | None, timeout: float) -> None:
        self.ca_cert = ca_cert
        self.timeout = timeout
        self.net = NetOptions(ca_cert=ca_cert, timeout=timeout, attempts=1, retry_for=timeout)
        self.client = make_client(self.net)

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, limit: int = 64 << 20) -> httpx.Response:
        """GET, the body read (at most `limit` bytes); a status >= 400 raises."""
        return self._request("GET", url, limit)

    def download(self, url: str, path: Path) -> int:
        """GET `url` into `path`, streamed; the number of bytes written."""
        try:
            with (
                self.client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as r,
                open(path, "wb") as out,
            ):
                if r.status_code >= 400:
                    raise ProbeError(url, f"HTTP {r.status_code}", r.status_code)
                for chunk in r.iter_bytes(1 << 20):
                    out.write(chunk)
                return out.tell()
        except httpx.HTTPError as exc:
            raise self._error(url, exc) from None

    def exists(self, url: str) -> int | None:
        """HEAD: the size when the file is there; raises ProbeError otherwise."""
        response = self._request("HEAD", url, 0)
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    def _request(self, method: str, url: str, limit: int) -> httpx.Response:
        try:
            with self.client.stream(method, url, headers={"Accept-Encoding": "identity"}) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise ProbeError(url, f"larger than {limit} bytes")
                response = httpx.Response(r.status_code, headers=r.headers, content=bytes(body))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._error(url, exc) from None
        if response.status_code >= 400:
            raise ProbeError(url, f"HTTP {response.status_code}", response.status_code)
        return response

    def _error(self, url: str, exc: Exception) -> ProbeError:
        if isinstance(exc, httpx.TimeoutException):
            return ProbeError(url, f"no answer within {self.timeout:g} s")
        if isinstance(exc, httpx.ConnectError):
            return ProbeError(url, _connect_reason(exc))
        return ProbeError(url, str(exc) or type(exc).__name__)

    def peer_certificate(self, host: str, port: int) -> PeerCertificate:
        """The certificate `host:port` presents, and whether it chains to the trusted CA."""
        try:
            with socket.create_connection((host, port), timeout=self.timeout) as sock:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(sock, server_hostname=host) as tls:
                    der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            raise ProbeError(f"{host}:{port}", _socket_reason(exc, self.timeout)) from None
        if der is None:
            raise ProbeError(f"{host}:{port}", "no certificate presented")
        cert = x509.load_der_x509_certificate(der)
        problem = self._verify(host, port)
        return PeerCertificate(
            cert.subject.rfc4514_string(), cert.not_valid_after_utc, problem is None, problem
        )

    def _verify(self, host: str, port: int) -> str | None:
        context = ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)
        try:
            with (
                socket.create_connection((host, port), timeout=self.timeout) as sock,
                context.wrap_socket(sock, server_hostname=host),
            ):
                return None
        except ssl.SSLCertVerificationError as exc:
            return exc.verify_message or str(exc)
        except (OSError, ssl.SSLError) as exc:
            return _socket_reason(exc, self.timeout)


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, None for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.scheme, parts.hostname, port


def _connect_reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        detail = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip()
        return f"TLS certificate not trusted ({detail or 'verify failed'})"
    if "refused" in text.lower():
        return "connection refused (nothing listens there)"
    return f"cannot connect: {text or type(exc).__name__}"


def _socket_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    return str(exc) or type(exc).__name__
