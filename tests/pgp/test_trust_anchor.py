"""A trusted key is one certificate (issue 17, item 1): Elastic's key followed by a key made
here, in one armored block, is what the agent (Go) would use to accept the second key's
signatures; every command that trusts or serves a key file refuses such a file."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import craft
import httpx
import pytest
import test_pgp_interop
from click.testing import CliRunner
from starlette.applications import Starlette
from tests.bundle.conftest import entries, listing

from fleetgap.artifacts.agent_upgrade import UpgradeCheck, verify_upgrade
from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.net import NetOptions
from fleetgap.ops.status_page import StatusPage
from fleetgap.packages.index import LoadOptions, load_index
from fleetgap.pgp.armor import dearmor, first_armored_block
from fleetgap.pgp.key_routes import key_routes
from fleetgap.pgp.keys import (
    ELASTIC_FINGERPRINT,
    KeyFileError,
    SecretKey,
    parse_public_key,
    read_key_ring,
)
from fleetgap.pgp.package_signatures import sign_package
from fleetgap.pgp.packet_stream import read_packets
from fleetgap.pgp.sha512 import sidecar_line
from fleetgap.pgp.signatures import sign_file
from fleetgap.registry.holder import IndexHolder
from fleetgap.store import DataDir

from pgp_servers import TLS, run_app

goverify = test_pgp_interop.goverify
ARTIFACT = "downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
PATH = "/api/agents/upgrades/9.1.0/pgp-public-key"


def _binary(armored: bytes | str) -> bytes:
    return dearmor(first_armored_block(armored))


@pytest.fixture(scope="module")
def two_in_one(elastic_key_file: Path, other_key: SecretKey) -> bytes:
    """Elastic's certificate, then the key made in the test: one armored block."""
    binary = _binary(elastic_key_file.read_bytes()) + _binary(other_key.public_key.armored)
    return craft.armor_public(binary).encode()


@pytest.fixture
def hostile_data(tmp_path: Path, other_key: SecretKey, two_in_one: bytes) -> DataDir:
    """A data directory as an unsigned bundle would have left it on today's main: the
    two-certificate file as the agent key, an artifact and a package signed by the key."""
    data = DataDir(tmp_path / "data").ensure()
    _signed_files(data, other_key)
    (data.keys / "GPG-KEY-elastic-agent").write_bytes(two_in_one)
    return data


def _signed_files(data: DataDir, key: SecretKey) -> None:
    artifact = data.root / ARTIFACT
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(os.urandom(200_000))
    artifact.with_name(artifact.name + ".sha512").write_text(sidecar_line(artifact))
    sign_file(artifact, key)
    package = data.packages / "nginx-1.2.0.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    sign_package(package, key)


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_error_line(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()[-1]


def test_go_accepts_the_second_certificate_so_fleetgap_refuses_the_file(
    goverify: Path, tmp_path: Path, two_in_one: bytes, other_key: SecretKey, elastic_key_file
) -> None:
    data = tmp_path / "agent.tar.gz"
    data.write_bytes(os.urandom(10_000))
    signature = sign_file(data, other_key)
    ring = tmp_path / "two-in-one.asc"
    ring.write_bytes(two_in_one)
    assert read_key_ring(two_in_one).fingerprint == ELASTIC_FINGERPRINT  # the pinned check
    went = subprocess.run(
        [goverify, data, signature, ring], capture_output=True, text=True, check=False
    )
    assert went.returncode == 0 and other_key.fingerprint in went.stdout  # the hazard
    with pytest.raises(KeyFileError, match="holds 2 certificates"):
        parse_public_key(two_in_one)
    # what fleetgap trusts instead (Elastic's key alone): the agent refuses the binary
    alone = subprocess.run(
        [goverify, data, signature, elastic_key_file], capture_output=True, text=True, check=False
    )
    assert alone.returncode == 1 and "unknown entity" in alone.stdout


@pytest.mark.parametrize("form", ["two armored blocks", "binary"])
def test_two_certificates_in_any_form_are_refused(
    form: str, elastic_key_file: Path, other_key: SecretKey
) -> None:
    elastic = elastic_key_file.read_bytes()
    if form == "binary":
        body = _binary(elastic) + _binary(other_key.public_key.armored)
    else:
        body = elastic + other_key.public_key.armored.encode()
    with pytest.raises(KeyFileError):
        parse_public_key(body)


def test_an_unsigned_bundle_carrying_the_file_is_refused_and_nothing_published(
    tmp_path: Path, hostile_data: DataDir, other_key: SecretKey
) -> None:
    cache = hostile_data
    carried = [
        replace(e, key_fingerprint=ELASTIC_FINGERPRINT) if e.path.startswith("keys/") else e
        for e in entries(cache, other_key)
    ]
    out = tmp_path / "hostile.bundle"
    write_bundle(cache, carried, out, selection={}, sequence=1)
    verified = run("bundle", "verify", out, "--allow-unsigned")
    assert "holds 2 certificates" in _one_error_line(verified)
    target = tmp_path / "closed"
    (target / "keys").mkdir(parents=True)
    before = listing(target)
    loaded = run("bundle", "load", out, "--data", target, "--allow-unsigned")
    assert "holds 2 certificates" in _one_error_line(loaded)
    assert listing(target) == before


def test_commands_that_trust_a_key_file_refuse_it(
    hostile_data: DataDir, tmp_path: Path, two_in_one: bytes
) -> None:
    ring = tmp_path / "two-in-one.asc"
    ring.write_bytes(two_in_one)
    root = hostile_data.root
    artifact = root / ARTIFACT
    (hostile_data.keys / "GPG-KEY-elasticsearch").write_bytes(two_in_one)
    assert "certificates" in _one_error_line(run("artifacts", "verify", "--data", root))
    assert "certificates" in _one_error_line(
        run("artifacts", "verify", "--data", root, "--key", ring)
    )
    assert "certificates" in _one_error_line(run("verify", "artifact", artifact, "--key", ring))
    assert "certificates" in _one_error_line(run("verify", "artifact", artifact, "--data", root))
    package = run("packages", "verify", root / "packages" / "nginx-1.2.0.zip", "--key", ring)
    assert package.exit_code != 0 and "verified" not in package.output.split(":")[0]
    assert "certificates" in _one_error_line(run("keys", "show", ring))
    assert "certificates" in _one_error_line(run("keys", "publish", ring, "--data", tmp_path))
    assert not (tmp_path / "keys").exists()


def test_the_file_is_not_served_to_agents_or_fleet_server(
    hostile_data: DataDir, tls: TLS, two_in_one: bytes, elastic_key_file: Path
) -> None:
    default = hostile_data.keys / "default.pgp"
    default.write_bytes(two_in_one)
    os.chmod(default, 0o600)
    app = Starlette(routes=key_routes(hostile_data.root))
    verify = ssl.create_default_context(cafile=str(tls.ca_pem))
    with run_app(app, tls) as running, httpx.Client(verify=verify) as client:
        agent_key = client.get(f"{running.base}/GPG-KEY-elastic-agent")
        fleet = client.get(running.base + PATH)
        default.unlink()  # no default.pgp: the agent key plays the upstream
        fallback = client.get(running.base + PATH)
        (hostile_data.keys / "GPG-KEY-elastic-agent").write_bytes(elastic_key_file.read_bytes())
        served = client.get(f"{running.base}/GPG-KEY-elastic-agent")
    assert agent_key.status_code == 500 and two_in_one not in agent_key.content
    assert fleet.status_code == 500 and two_in_one not in fleet.content
    assert fallback.status_code == 500 and two_in_one not in fallback.content
    assert served.status_code == 200 and served.content == elastic_key_file.read_bytes()


def test_agent_verify_upgrade_refuses_the_file_as_its_key(
    https_files,
    tls: TLS,
    other_key: SecretKey,
    two_in_one: bytes,
    tmp_path: Path,
    elastic_key_file: Path,
) -> None:
    name = "elastic-agent-9.1.0-linux-x86_64.tar.gz"
    body = os.urandom(100_000)
    (tmp_path / name).write_bytes(body)
    asc = sign_file(tmp_path / name, other_key).read_bytes()
    folder = "/downloads/beats/elastic-agent/"
    files: dict[str, bytes | int] = {
        folder + name: body,
        folder + name + ".sha512": f"{hashlib.sha512(body).hexdigest()}  {name}\n".encode(),
        folder + name + ".asc": asc,
        "/keys/two": two_in_one,
        "/keys/one": other_key.public_key.armored.encode(),
    }
    net = NetOptions(ca_cert=tls.ca_pem, attempts=1)
    with https_files(files) as running:
        check = UpgradeCheck(
            version="9.1.0",
            source_uri=f"{running.base}/downloads/",
            embedded_key=elastic_key_file.read_bytes(),
            net=net,
        )
        two = verify_upgrade(replace(check, remote_key_url=f"{running.base}/keys/two"))
        one = verify_upgrade(replace(check, remote_key_url=f"{running.base}/keys/one"))
    assert not two.passed and "certificates" in (two.error or "")
    # the same binary with the key alone: "verified by" names that key's primary fingerprint
    assert one.passed and one.verified_by and one.verified_by.endswith(other_key.fingerprint)


def test_doctor_and_the_status_page_report_the_file_as_refused(
    https_files, tls: TLS, hostile_data: DataDir, two_in_one: bytes
) -> None:
    with https_files({"/GPG-KEY-elastic-agent": two_in_one}) as running:
        result = run("doctor", "--stack-version", "9.1.0", "--key-url",
                     f"{running.base}/GPG-KEY-elastic-agent", "--ca-cert", tls.ca_pem,
                     "--json")  # fmt: skip
    assert result.exit_code == 1, result.output
    (check,) = [c for c in json.loads(result.output)["checks"] if c["id"] == "key url"]
    assert check["status"] == "fail" and "holds 2 certificates" in check["detail"]
    index = load_index(LoadOptions(paths=(hostile_data.packages,)))
    html = StatusPage(IndexHolder(index), hostile_data.root).render()
    assert "holds 2 certificates" in html
    # Elastic's fingerprint appears only in the refusal, never as a key the page shows
    assert html.count(ELASTIC_FINGERPRINT) == html.count(f"(the first is {ELASTIC_FINGERPRINT})")


def _length_forms(tag: int, size: int) -> list[bytes]:
    """Every header OpenPGP allows for a packet of this size (new and old formats)."""
    forms = [bytes([0xC0 | tag, 0xFF]) + size.to_bytes(4, "big")]
    if size < 192:
        forms.append(bytes([0xC0 | tag, size]))
    elif size < 8384:
        forms.append(bytes([0xC0 | tag, ((size - 192) >> 8) + 192, (size - 192) & 0xFF]))
    if size < 256:
        forms.append(bytes([0x80 | tag << 2, size]))
    if size < 65536:
        forms.append(bytes([0x80 | tag << 2 | 1]) + size.to_bytes(2, "big"))
    forms.append(bytes([0x80 | tag << 2 | 2]) + size.to_bytes(4, "big"))
    return forms


def _armor_lines(*chunks: bytes) -> bytes:
    """One armored block whose base64 lines break exactly between `chunks`."""
    lines: list[str] = []
    for chunk in chunks:
        text = base64.b64encode(chunk).decode()
        lines += [text[i : i + 64] for i in range(0, len(text), 64)]
    crc = craft.armor_public(b"".join(chunks)).splitlines()[-2]  # the "=XXXX" line
    head, tail = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n", "-----END PGP PUBLIC KEY BLOCK-----\n"
    return (head + "\n".join(lines) + f"\n{crc}\n" + tail).encode()


@pytest.fixture(scope="module")
def hidden_in_one(elastic_key_file: Path, other_key: SecretKey) -> bytes:
    """Elastic's certificate alone, as Sequoia and fleetgap's packet reader see it; Go also
    reads the key made in the test, hidden after the fields of a certification signature.

    Go's signature parser stops after its MPI and leaves the rest of the packet in the
    stream; its bufio read-ahead takes only what the current armor line holds, so the
    signature's fields fill one base64 line and the hidden certificate starts the next.
    """
    elastic = read_packets(_binary(elastic_key_file.read_bytes()))
    primary, rest = elastic[0], elastic[1:]
    # the user ID (and its self-signature) last, so Go keeps Elastic's certificate too
    uid = next(i for i, p in enumerate(rest) if p.tag == 13)
    ordered = [primary, *rest[:uid], *rest[uid + 2 :], *rest[uid : uid + 2]]
    hidden = _binary(other_key.public_key.armored)
    hashed = craft.subpacket(2, int(time.time()).to_bytes(4, "big"))
    unhashed = craft.subpacket(16, bytes.fromhex(other_key.fingerprint[-16:]))
    for size in range(1, 4):  # the fields end on a 3-byte (base64 quantum) boundary
        fields = (
            bytes([4, 0x10, 1, 8]) + len(hashed).to_bytes(2, "big") + hashed
            + len(unhashed).to_bytes(2, "big") + unhashed + b"\x12\x34"
            + (size * 8).to_bytes(2, "big") + b"\xff" * size
        )  # fmt: skip
        header = _length_forms(2, len(fields) + len(hidden))[-1]
        if (len(header) + len(fields)) % 3 == 0:
            break
    head = b"".join(_length_forms(p.tag, len(p.body))[0] + p.body for p in ordered[:-2])
    for one, two in itertools.product(*(_length_forms(p.tag, len(p.body)) for p in ordered[-2:])):
        before = head + one + ordered[-2].body + two + ordered[-1].body
        if len(before) % 3 == 0:
            return _armor_lines(before, header + fields, hidden)
    raise AssertionError("no header lengths put the signature on a line of its own")


def test_a_certificate_hidden_inside_a_packet_is_refused(
    goverify: Path, tmp_path: Path, hidden_in_one: bytes, other_key: SecretKey
) -> None:
    data = tmp_path / "agent.tar.gz"
    data.write_bytes(os.urandom(10_000))
    signature = sign_file(data, other_key)
    ring = tmp_path / "hidden.asc"
    ring.write_bytes(hidden_in_one)
    went = subprocess.run(
        [goverify, data, signature, ring], capture_output=True, text=True, check=False
    )
    assert went.returncode == 0 and other_key.fingerprint in went.stdout  # the hazard
    assert read_key_ring(hidden_in_one).fingerprint == ELASTIC_FINGERPRINT
    with pytest.raises(KeyFileError, match="bytes after the fields of a packet"):
        parse_public_key(hidden_in_one)
    assert "bytes after the fields" in _one_error_line(run("keys", "show", ring))


def test_an_unsigned_bundle_carrying_a_hidden_certificate_publishes_nothing(
    tmp_path: Path, other_key: SecretKey, hidden_in_one: bytes, tls: TLS
) -> None:
    cache = DataDir(tmp_path / "cache").ensure()  # the key alone: it is all it needs
    (cache.keys / "GPG-KEY-elastic-agent").write_bytes(hidden_in_one)
    carried = [
        replace(e, key_fingerprint=ELASTIC_FINGERPRINT) if e.path.startswith("keys/") else e
        for e in entries(cache, other_key)
    ]
    out = tmp_path / "hostile.bundle"
    write_bundle(cache, carried, out, selection={}, sequence=1)
    target = tmp_path / "closed"
    (target / "keys").mkdir(parents=True)
    before = listing(target)
    loaded = run("bundle", "load", out, "--data", target, "--allow-unsigned")
    assert "bytes after the fields" in _one_error_line(loaded)
    assert listing(target) == before
    # a file put in DATA by hand is not served either
    (target / "keys" / "GPG-KEY-elastic-agent").write_bytes(hidden_in_one)
    app = Starlette(routes=key_routes(target))
    verify = ssl.create_default_context(cafile=str(tls.ca_pem))
    with run_app(app, tls) as running, httpx.Client(verify=verify) as client:
        agent_key = client.get(f"{running.base}/GPG-KEY-elastic-agent")
        fleet = client.get(running.base + PATH)
    assert agent_key.status_code == 500 and hidden_in_one not in agent_key.content
    assert fleet.status_code == 500 and hidden_in_one not in fleet.content


def _unreadable_ring(form: str, elastic: bytes, other: bytes) -> bytes:
    """Elastic's certificate and the test's key in a block fleetgap cannot read, while Go
    reads the test's key from it."""
    if form == "a byte that starts no packet":  # Go drops Elastic's, skips the byte, reads on
        return craft.armor_public(elastic + b"\x00" + other).encode()
    if form == "a compressed packet":  # Go parses its header only, then reads its body on
        return craft.armor_public(elastic + craft.packet(8, b"\x01" + other)).encode()
    text = base64.b64encode(elastic + other).decode()  # Go needs no END line, nor a checksum
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{lines}\n".encode()


@pytest.mark.parametrize("form", ["a byte that starts no packet", "a compressed packet", "no END"])
def test_a_key_block_fleetgap_cannot_read_is_not_served(
    form: str,
    goverify: Path,
    tmp_path: Path,
    tls: TLS,
    other_key: SecretKey,
    elastic_key_file: Path,
) -> None:
    elastic = _binary(elastic_key_file.read_bytes())
    ring = _unreadable_ring(form, elastic, _binary(other_key.public_key.armored))
    data = tmp_path / "agent.tar.gz"
    data.write_bytes(os.urandom(10_000))
    signature = sign_file(data, other_key)
    (tmp_path / "ring.asc").write_bytes(ring)
    went = subprocess.run(
        [goverify, data, signature, tmp_path / "ring.asc"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert went.returncode == 0 and other_key.fingerprint in went.stdout  # the hazard
    keys = DataDir(tmp_path / "data").ensure().keys
    (keys / "GPG-KEY-elastic-agent").write_bytes(ring)
    app = Starlette(routes=key_routes(keys.parent))
    verify = ssl.create_default_context(cafile=str(tls.ca_pem))
    with run_app(app, tls) as running, httpx.Client(verify=verify) as client:
        agent_key = client.get(f"{running.base}/GPG-KEY-elastic-agent")
        fleet = client.get(running.base + PATH)  # no default.pgp: the agent key is used
    assert agent_key.status_code == 500 and ring not in agent_key.content
    assert fleet.status_code == 500 and ring not in fleet.content


@pytest.fixture(scope="module")
def two_readings(elastic_key_file: Path, other_key: SecretKey) -> bytes:
    """One armored block read two ways: Sequoia's armor reader takes every line (Elastic's
    certificate, whose last packet, a user ID, swallows the rest); fleetgap's took only the
    lines after the first blank one as data (the key made in the test)."""
    elastic = read_packets(_binary(elastic_key_file.read_bytes()))
    other = _binary(other_key.public_key.armored)
    head = b"".join(_length_forms(p.tag, len(p.body))[0] + p.body for p in elastic[:-1])
    last = elastic[-1]
    for one, two in itertools.product(
        _length_forms(last.tag, len(last.body)), _length_forms(13, len(other))
    ):
        before = head + one + last.body + two
        if len(before) % 3 == 0:  # no base64 padding: the two parts read on as one
            break
    lines = [base64.b64encode(before).decode(), "", base64.b64encode(other).decode()]
    lines = [line[i : i + 64] or "" for line in lines for i in range(0, max(len(line), 1), 64)]
    text = "\n".join(
        ["-----BEGIN PGP PUBLIC KEY BLOCK-----", *lines, "-----END PGP PUBLIC KEY BLOCK-----"]
    )
    return (text + "\n").encode()


def test_a_block_read_two_ways_is_refused(two_readings: bytes, other_key: SecretKey) -> None:
    with pytest.raises(KeyFileError, match="not a header"):
        parse_public_key(two_readings)


def test_an_unsigned_bundle_with_a_block_read_two_ways_publishes_nothing(
    tmp_path: Path, other_key: SecretKey, two_readings: bytes
) -> None:
    """On main the key read as Elastic's pinned certificate while its packets were the test
    key's: a binary and a package signed by the test key were published 'verified by'
    Elastic's fingerprint."""
    cache = DataDir(tmp_path / "cache").ensure()
    _signed_files(cache, other_key)
    (cache.keys / "GPG-KEY-lab").write_bytes(two_readings)
    carried = [
        replace(e, key_fingerprint=ELASTIC_FINGERPRINT) if e.path.startswith("keys/") else e
        for e in entries(cache, other_key)
    ]
    out = tmp_path / "hostile.bundle"
    write_bundle(cache, carried, out, selection={}, sequence=1)
    target = tmp_path / "closed"
    (target / "keys").mkdir(parents=True)
    before = listing(target)
    loaded = run("bundle", "load", out, "--data", target, "--allow-unsigned")
    assert "not a header" in _one_error_line(loaded)
    assert listing(target) == before
