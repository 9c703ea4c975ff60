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
