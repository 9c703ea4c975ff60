"""The Elastic Defend manifest format (fleetgap.artifacts.defend): what is accepted, what is
refused with one line, and the manifest.sig check."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from defend_upstream import entry_for, manifest_zip
from fleetgap.artifacts import defend
from fleetgap.bundle.selection import SelectionError, parse_selection


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_parses_entries_and_manifest_version():
    entry, _ = entry_for("global-rules-v1", b"x" * 1000)
    parsed = defend.parse_manifest_zip(manifest_zip("1.0.7", {"global-rules-v1": entry}), "m")
    assert parsed.manifest_version == "1.0.7"
    (only,) = parsed.entries
    assert only.data_path == "downloads/endpoint/artifacts/global-rules-v1.zlib"
    assert (only.decoded_size, only.compression) == (1000, "zlib")


@pytest.mark.parametrize(
    "url",
    [
        "/api/fleet/artifacts/x",
        "https://evil.example/downloads/x",
        "/downloads/../etc/passwd",
        "/downloads/endpoint/%2e%2e/x",
        "/downloads/endpoint/a?b=c",
        "/downloads//x",
        "/downloads/endpoint/.hidden",
        "/downloads/endpoint/x.part",
        "/downloads/x",  # a folder is needed: nothing straight in downloads/
        "/downloads/endpoint/manifest/artifacts-9.1.0.zip",  # would overwrite a manifest
        "downloads/endpoint/x",
        "/downloads/endpoint/a\\b",
        None,
        "/downloads/endpoint/manifest",  # the manifests' folder itself
        "/downloads/endpoint/Manifest/x",  # the same folder on a case-insensitive disk
        # where agent binaries and their sidecars live (R4: a Defend entry there would be
        # served as a binary Elastic signed, or block the genuine one)
        "/downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz",
        "/downloads/fleet-server/fleet-server-9.1.0-linux-x86_64.tar.gz",
        "/downloads/endpoint/artifacts/x.sha512",
        "/downloads/endpoint/artifacts/x.asc",
    ],
)
def test_relative_url_not_a_plain_path_under_downloads_is_refused(url):
    entry, _ = entry_for("a-v1", b"y")
    entry["relative_url"] = url
    with pytest.raises(defend.DefendError) as caught:
        defend.parse_manifest_zip(manifest_zip("1.0.0", {"a-v1": entry}), "m")
    assert "\n" not in str(caught.value) and "relative_url" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("encoded_size", -1),
        ("encoded_size", True),
        ("decoded_size", 1 << 40),
        ("encoded_sha256", "ABC"),
        ("compression_algorithm", "lzma"),
        ("encryption_algorithm", "aes"),
    ],
)
def test_bad_entry_fields_are_refused(field, value):
    entry, _ = entry_for("a-v1", b"y")
    entry[field] = value
    with pytest.raises(defend.DefendError, match=field):
        defend.parse_manifest_zip(manifest_zip("1.0.0", {"a-v1": entry}), "m")


def test_not_a_zip_and_no_manifest_json_are_one_line_errors():
    with pytest.raises(defend.DefendError, match="not a readable zip"):
        defend.parse_manifest_zip(b"PK\x03\x04 broken", "m")
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("other.json", "{}")
    with pytest.raises(defend.DefendError, match="no manifest.json"):
        defend.parse_manifest_zip(out.getvalue(), "m")


def test_manifest_signature_checks_with_the_given_pem_key(rsa_key):
    entry, _ = entry_for("a-v1", b"y")
    signed = defend.parse_manifest_zip(manifest_zip("1.0.0", {"a-v1": entry}, rsa_key), "m")
    defend.verify_signature(signed, pem(rsa_key), "m")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(defend.DefendError, match="does not verify"):
        defend.verify_signature(signed, pem(other), "m")
    unsigned = defend.parse_manifest_zip(manifest_zip("1.0.0", {"a-v1": entry}), "m")
    with pytest.raises(defend.DefendError, match="no manifest.sig"):
        defend.verify_signature(unsigned, pem(rsa_key), "m")


def test_artifact_file_checks_encoded_and_decoded(tmp_path):
    payload = b"rules " * 5000
    fields, encoded = entry_for("a-v1", payload)
    entry = defend.parse_manifest_zip(manifest_zip("1", {"a-v1": fields}), "m").entries[0]
    good = tmp_path / "good"
    good.write_bytes(encoded)
    defend.check_artifact_file(good, entry, "a")
    # right encoded digest, but it decodes to more than decoded_size says: a bomb, stopped
    bomb = zlib.compress(b"\0" * (10 << 20))
    fields = {**fields, "encoded_size": len(bomb),
              "encoded_sha256": hashlib.sha256(bomb).hexdigest()}  # fmt: skip
    entry = defend.parse_manifest_zip(manifest_zip("1", {"a-v1": fields}), "m").entries[0]
    good.write_bytes(bomb)
    with pytest.raises(defend.DefendError, match="decodes to more than"):
        defend.check_artifact_file(good, entry, "a")


def test_selection_protection_artifacts(tmp_path):
    text = (
        "protection_artifacts:\n  versions: [9.1.0, 8.19.4]\n"
        "  source: http://127.0.0.1:1/\n  public_key: defend.pem\n"
    )
    chosen = parse_selection(text, tmp_path / "s.yaml").protection_artifacts
    assert chosen is not None
    assert chosen.versions == ("9.1.0", "8.19.4")
    assert chosen.source == "http://127.0.0.1:1"
    assert chosen.public_key == tmp_path / "defend.pem"
    default = parse_selection("protection_artifacts: {versions: 9.1.0}\n", tmp_path / "s.yaml")
    assert default.protection_artifacts.source == "https://artifacts.security.elastic.co"
    with pytest.raises(SelectionError, match=r"s.yaml:2: not an Endpoint version"):
        parse_selection("protection_artifacts:\n  versions: [9.1]\n", tmp_path / "s.yaml")
    with pytest.raises(SelectionError, match="unknown key 'version'"):
        parse_selection("protection_artifacts:\n  version: 9.1.0\n", tmp_path / "s.yaml")


def test_content_etag_for_every_listed_artifact_wherever_it_lives(tmp_path):
    import httpx

    from defend_upstream import write_manifest
    from fleetgap.artifacts.serving import downloads_app

    from serving import serve_asgi

    payload = b"outside endpoint/ " * 100
    entry, encoded = entry_for("odd-place-v1", payload)
    entry["relative_url"] = "/downloads/defend-rules/odd-place-v1.zlib"
    (tmp_path / "downloads/defend-rules").mkdir(parents=True)
    (tmp_path / "downloads/defend-rules/odd-place-v1.zlib").write_bytes(encoded)
    (tmp_path / "downloads/defend-rules/unlisted.bin").write_bytes(b"not Defend's")
    write_manifest(tmp_path, "9.1.0", manifest_zip("1.0.0", {"odd-place-v1": entry}))
    with serve_asgi(downloads_app(tmp_path / "downloads")) as url:
        listed = httpx.get(url + "/defend-rules/odd-place-v1.zlib")
        unlisted = httpx.get(url + "/defend-rules/unlisted.bin")
        etag = listed.headers["etag"]
        again = httpx.get(url + "/defend-rules/odd-place-v1.zlib", headers={"If-None-Match": etag})
    assert etag == f'"{hashlib.sha256(encoded).hexdigest()}"'
    unlisted_digest = hashlib.sha256(b"not Defend's").hexdigest()
    assert unlisted.headers["etag"] != f'"{unlisted_digest}"'
    assert again.status_code == 304 and again.headers["etag"] == etag and again.content == b""
