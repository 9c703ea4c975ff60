"""Bundle manifest signatures (fleetgap's own, where no Elastic component sets the rules):
SHA-256 or stronger only; an expired signature or an expired key is refused (issue 17,
item 8). Keys and signatures are crafted packet by packet (craft.py), as only that can make
the weak and expired ones; the control case uses the same key."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import craft
import pytest
from click.testing import CliRunner

from fleetgap.bundle.holding import read_holding
from fleetgap.bundle.manifest import SIGNATURE_NAME, Manifest, encode_manifest
from fleetgap.bundle.parts import writing
from fleetgap.bundle.receipt import _signed_bytes, make_receipt
from fleetgap.cli import main
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import SecretKey, read_public_key
from fleetgap.pgp.signatures import parse_detached_signature
from fleetgap.store import DataDir

NOW = int(time.time())


@pytest.fixture(scope="module")
def signer() -> craft.RsaKey:
    return craft.RsaKey.generate()


MANIFEST = Manifest(bundle_id="cd" * 16, created="2026-01-01T00:00:00Z", sequence=1,
                    fleetgap_version="0", selection={}, files=())  # fmt: skip


def _bundle(path: Path, signature: bytes) -> Path:
    """A bundle of no files: the manifest and its signature."""
    manifest, body = MANIFEST, encode_manifest(MANIFEST)
    with writing(path, manifest.bundle_id, None) as stream:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, data in (("manifest.json", body), (SIGNATURE_NAME, signature)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        stream.finish()
    return path


def _signature(key: craft.RsaKey, data: bytes, *, hash_algo: int = 10, hashed=()) -> bytes:
    subpackets = [craft.sp_created(NOW - 3600), craft.sp_issuer_fingerprint(key), *hashed]
    body = craft.detached_with(key, data, subpackets, [craft.sp_issuer(key)], hash_algo=hash_algo)
    return craft.armor(craft.packet(craft.TAG_SIGNATURE, body), "PGP SIGNATURE").encode()


def _verify(tmp_path: Path, cert: bytes, make_signature) -> tuple[int, str]:
    bundle = _bundle(tmp_path / "signed.bundle", make_signature(encode_manifest(MANIFEST)))
    trust = tmp_path / "signer.asc"
    trust.write_text(craft.armor_public(cert))
    result = CliRunner().invoke(main, ["bundle", "verify", str(bundle), "--trust-key", str(trust)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()[-1]


def test_a_sha512_signature_by_a_valid_key_verifies(tmp_path, signer):
    code, line = _verify(tmp_path, craft.build_cert(signer), lambda d: _signature(signer, d))
    assert code == 0, line


@pytest.mark.parametrize(("algo", "name"), [(1, "MD5"), (2, "SHA-1"), (11, "SHA-224")])
def test_a_weak_hash_is_refused(tmp_path, signer, algo, name):
    code, line = _verify(
        tmp_path, craft.build_cert(signer), lambda d: _signature(signer, d, hash_algo=algo)
    )
    assert code == 1
    assert f"a {name} signature is refused: SHA-256 or stronger only" in line


def test_an_expired_signature_is_refused(tmp_path, signer):
    expiring = [craft.sp_signature_expires(60)]  # made an hour ago, valid for a minute
    code, line = _verify(
        tmp_path, craft.build_cert(signer), lambda d: _signature(signer, d, hashed=expiring)
    )
    assert code == 1 and "the signature expired at" in line


def test_an_expired_key_is_refused(tmp_path, signer):
    cert = craft.build_cert(signer, primary_expires=60)  # expired a minute after 2023-11-14
    code, line = _verify(tmp_path, cert, lambda d: _signature(signer, d))
    assert code == 1 and f"key {signer.key_id} expired at" in line


def test_receipts_are_signed_so_that_the_same_rules_accept_them(tmp_path, other_key: SecretKey):
    receipt = make_receipt(DataDir(tmp_path / "data").ensure(), other_key)
    signature = receipt["signature"].encode()
    assert parse_detached_signature(signature).candidates[0].hash_algo in (8, 9, 10)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    public = tmp_path / "receipt-signer.asc"
    public.write_text(other_key.public_key.armored)
    assert read_holding(path, [read_public_key(public)]).document["signer"] == other_key.fingerprint


@pytest.mark.parametrize(
    ("cert", "hash_algo", "hashed", "expected"),
    [
        ({}, 2, (), "a SHA-1 signature is refused"),
        ({}, 1, (), "a MD5 signature is refused"),
        ({}, 10, (craft.sp_signature_expires(60),), "the signature expired at"),
        ({"primary_expires": 60}, 10, (), "expired at"),
    ],
)
def test_a_receipt_signed_against_the_rules_is_refused(
    tmp_path, signer, cert, hash_algo, hashed, expected
):
    receipt = make_receipt(DataDir(tmp_path / "data").ensure())
    receipt["signer"] = signer.fingerprint
    receipt["signature"] = _signature(
        signer, _signed_bytes(receipt), hash_algo=hash_algo, hashed=hashed
    ).decode()
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    public = tmp_path / "receipt-signer.asc"
    public.write_text(craft.armor_public(craft.build_cert(signer, **cert)))
    with pytest.raises(FleetgapError, match=expected):
        read_holding(path, [read_public_key(public)])


def test_bundle_create_checks_the_receipt_before_anything(tmp_path, signer):
    receipt = make_receipt(DataDir(tmp_path / "data").ensure())  # unsigned
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    public = tmp_path / "receipt-signer.asc"
    public.write_text(craft.armor_public(craft.build_cert(signer)))
    selection = tmp_path / "sel.yaml"
    selection.write_text("packages: []\n")
    result = CliRunner().invoke(main, ["bundle", "create", str(selection), "--out",
                                       str(tmp_path / "b.bundle"), "--since", str(path),
                                       "--receipt-key", str(public)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "the receipt is not signed" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "b.bundle").exists()
