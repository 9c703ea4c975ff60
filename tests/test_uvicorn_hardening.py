"""uvicorn (`--server uvicorn`, and TLS 1.0/1.1) as a real subprocess on 127.0.0.1: it trusts
no X-Forwarded-* header, closes connections whose request head is too slow, and offers no
TLS suite without authentication or encryption, nor PSK or SRP suites."""

from __future__ import annotations

import json
import socket
import ssl
import time
import warnings
from pathlib import Path

import httpx
import pysequoia
import pytest
import trustme

from fleetgap.config import Settings
from fleetgap.pgp.keys import SecretKey
from fleetgap.serving.header_deadline import HEADER_TIMEOUT
from fleetgap.serving.server import _ssl_context

from serving import Server, fleetgap_serve

KEY_ROUTE = "/api/agents/upgrades/9.1.0/pgp-public-key"
FORGED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "attacker.example",
    "Forwarded": "for=203.0.113.9;proto=https",
}
# Suites that authenticate nobody, encrypt nothing, or are keyed by a shared secret.
BAD_SUITES = ("aNULL", "eNULL", "PSK", "SRP")


@pytest.fixture
def data_with_key(tmp_path: Path) -> Path:
    tsk = pysequoia.Tsk.generate(
        "agent key <k@example.org>", cipher_suite=pysequoia.CipherSuite.RSA2k
    )
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "GPG-KEY-elastic-agent").write_text(SecretKey(tsk).public_key.armored)
    return data


def request_records(server: Server) -> list[dict]:
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    return [r for r in lines if r.get("log.logger") == "http"]


def test_forwarded_headers_neither_make_http_https_nor_change_the_source_ip(
    data_with_key: Path, tmp_path: Path
) -> None:
    args = ("--server", "uvicorn", "--data", str(data_with_key))
    with fleetgap_serve(*args, log_dir=tmp_path) as server:
        answer = httpx.get(server.url + KEY_ROUTE, headers=FORGED)
        health = httpx.get(server.url + "/search", headers=FORGED)
        time.sleep(0.5)  # the request lines are written at the end of the event loop's turn
        logged = request_records(server)
    # spec: fleet-server-pgp §2 — a plain listener answers 501, whatever a proxy header says
    assert answer.status_code == 501 and answer.json()["error"] == "ErrTLSRequired"
    assert health.status_code == 200
    assert [r["source.ip"] for r in logged] == ["127.0.0.1", "127.0.0.1"]
    assert all(r["url.domain"] == "127.0.0.1" for r in logged)


def test_a_request_head_that_is_too_slow_closes_the_connection(tmp_path: Path) -> None:
    with fleetgap_serve("--server", "uvicorn", log_dir=tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        idle = socket.create_connection(("127.0.0.1", port))
        drip = socket.create_connection(("127.0.0.1", port))
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: y\r\n" * 1000
        closed: dict[str, bool] = {"idle": False, "drip": False}
        deadline = time.monotonic() + HEADER_TIMEOUT + 30  # guards against a hang only
        sent = 0
        while not all(closed.values()) and time.monotonic() < deadline:
            if not closed["drip"]:
                try:
                    drip.send(head[sent : sent + 1])  # one byte of the head every 0.2 s
                    sent += 1
                except OSError:
                    closed["drip"] = True
            for name, sock in (("idle", idle), ("drip", drip)):
                closed[name] = closed[name] or _closed_by_server(sock, 0.1)
        still_serving = httpx.get(server.url + "/health").status_code
        idle.close()
        drip.close()
    assert closed == {"idle": True, "drip": True}
    assert 0 < sent < len(head)  # the head never completed: it was the deadline that closed it
    assert still_serving == 200


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:  # reset
        return True


# --- TLS 1.0/1.1 suites -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()  # ECDSA: the suites below include ECDSA and RSA ones
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


def test_legacy_tls_context_offers_no_unauthenticated_null_psk_or_srp_suite(
    tls_files: tuple[trustme.CA, Path, Path],
) -> None:
    _, cert, key = tls_files
    for minimum in ("1.0", "1.1"):
        settings = Settings(tls_cert=str(cert), tls_key=str(key), tls_min_version=minimum)
        offered = {suite["name"] for suite in _ssl_context(settings, None, None).get_ciphers()}
        assert offered and not offered & _suites(":".join(BAD_SUITES)), minimum


def test_tls_1_0_server_accepts_only_good_suites(
    tls_files: tuple[trustme.CA, Path, Path], tmp_path: Path
) -> None:
    ca, cert, key = tls_files
    args = ("--tls-cert", str(cert), "--tls-key", str(key), "--tls-min-version", "1.0")
    with fleetgap_serve(*args, log_dir=tmp_path, scheme="https") as server:
        port = int(server.url.rsplit(":", 1)[1])
        accepted = {
            (version.name, suite): _handshake(ca, port, version, suite)
            for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2)
            for suite in sorted(_suites("ALL:COMPLEMENTOFALL"))
        }
        log = server.log_text()
    accepted = {pair: cipher for pair, cipher in accepted.items() if cipher}
    assert accepted.get(("TLSv1", "ECDHE-ECDSA-AES128-SHA")) == "ECDHE-ECDSA-AES128-SHA"
    assert {pair[0] for pair in accepted} == {"TLSv1", "TLSv1_2"}
    assert not {cipher for cipher in accepted.values()} & _suites(":".join(BAD_SUITES))
    assert "Traceback" not in log


def _suites(spec: str) -> set[str]:
    """The TLS 1.2-and-older suite names an OpenSSL cipher string names (at level 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(f"{spec}:@SECLEVEL=0")
    return {s["name"] for s in context.get_ciphers() if s["protocol"] != "TLSv1.3"}


def _handshake(ca: trustme.CA, port: int, version: ssl.TLSVersion, suite: str) -> str | None:
    """The suite the server chose when a client pinned to `version` offers only `suite`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    context.set_ciphers(f"{suite}:@SECLEVEL=0")
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            return tls.cipher()[0]
    except (ssl.SSLError, OSError):
        return None
