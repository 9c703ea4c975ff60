"""Dearmoring: base64 inside the first block, headers skipped, the CRC-24 line checked."""

from __future__ import annotations

import os

import pysequoia
import pytest

from fleetgap.pgp.armor import ArmorError, dearmor, first_armored_block


@pytest.mark.parametrize("size", [1, 2, 3, 57, 1000, 70000])
def test_what_sequoia_armors_comes_back_byte_for_byte(size: int) -> None:
    data = os.urandom(size)
    armored = pysequoia.armor(data, pysequoia.ArmorKind.Signature)
    assert dearmor(first_armored_block(armored)) == data


def test_armor_headers_are_skipped() -> None:
    armored = pysequoia.armor(b"payload", pysequoia.ArmorKind.Signature)
    begin, rest = armored.split("\n", 1)
    with_headers = f"{begin}\nVersion: GnuPG v2\nComment: signed\n{rest}"
    assert dearmor(first_armored_block(with_headers)) == b"payload"


def test_a_wrong_checksum_is_refused() -> None:
    lines = pysequoia.armor(b"payload!", pysequoia.ArmorKind.Signature).splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("=") and len(line) == 5)
    lines[index] = "=AAAA" if lines[index] != "=AAAA" else "=BBBB"
    with pytest.raises(ArmorError, match="checksum mismatch"):
        dearmor(first_armored_block("\n".join(lines)))


def test_broken_base64_is_refused() -> None:
    armored = "-----BEGIN PGP SIGNATURE-----\n\nnot*base64!\n-----END PGP SIGNATURE-----\n"
    with pytest.raises(ArmorError, match="invalid base64"):
        dearmor(first_armored_block(armored))
