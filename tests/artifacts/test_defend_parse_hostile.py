"""A hostile manifest zip is one DefendError line, never a traceback (bundle create, bundle
load, the server's listing of Defend paths and doctor all catch DefendError only)."""

from __future__ import annotations

import io
import zipfile

import pytest

from fleetgap.artifacts import defend


def _zip(document: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", document)
    return out.getvalue()


def _encrypted() -> bytes:
    data = bytearray(_zip(b'{"manifest_version": "1", "artifacts": {}}'))
    central = data.find(b"PK\x01\x02")
    data[6] |= 1  # the local header's "encrypted" flag
    data[central + 8] |= 1  # and the central directory's
    return bytes(data)


HUGE_NUMBER = (
    b'{"manifest_version": "1", "artifacts": {"a": {"relative_url": "/downloads/a/b", '
    b'"compression_algorithm": "none", "encoded_size": ' + b"9" * 5000 + b"}}}"
)


@pytest.mark.parametrize(
    "body, expected",
    [(_encrypted(), "not a readable zip"), (_zip(HUGE_NUMBER), "is not JSON")],
    ids=["encrypted member", "5000-digit number"],
)
def test_hostile_manifest_zip_is_one_defend_error(body, expected):
    with pytest.raises(defend.DefendError, match=expected):
        defend.parse_manifest_zip(body, "Defend manifest for Endpoint 9.1.0")


def test_a_key_twice_in_manifest_json_is_refused():
    entry = (
        b'{"relative_url": "/downloads/endpoint/artifacts/a", "compression_algorithm": "none", '
        b'"encoded_size": 1, "decoded_size": 1, "encoded_sha256": "' + b"a" * 64 + b'", '
        b'"decoded_sha256": "' + b"a" * 64 + b'"}'
    )
    document = b'{"manifest_version": "1", "artifacts": {"a": ' + entry + b', "a": ' + entry + b"}}"
    with pytest.raises(defend.DefendError, match="appears twice"):
        defend.parse_manifest_zip(_zip(document), "Defend manifest for Endpoint 9.1.0")


def test_manifest_json_twice_in_the_zip_is_refused():
    out = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", b'{"manifest_version": "1", "artifacts": {}}')
        archive.writestr("manifest.json", b'{"manifest_version": "2", "artifacts": {}}')
    with pytest.raises(defend.DefendError, match="more than once"):
        defend.parse_manifest_zip(out.getvalue(), "Defend manifest for Endpoint 9.1.0")
