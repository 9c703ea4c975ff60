"""Damaged key files and signatures: a verdict or one FleetgapError, never anything else.

The bytes inside the armor of Elastic's key and of the agent's signed test vector are
damaged at random (seeded: the same cases every run) and armored again with a correct
checksum, so the damage reaches the packet readers rather than the armor check.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path

import craft
import pytest

from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import parse_public_key
from fleetgap.pgp.signatures import verify_bytes

DROP_FILE = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"
MUTATIONS = 400


def _mutants(binary: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    found = []
    for _ in range(MUTATIONS):
        data = bytearray(binary)
        for _ in range(rng.choice((1, 2, 4))):
            position = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.6:
                data[position] = rng.randrange(256)
            elif kind < 0.8:
                del data[position : position + rng.randrange(1, 16)]
            else:
                data[position:position] = bytes(rng.randrange(256) for _ in range(4))
        found.append(bytes(data))
    return found


def _binary(armored: bytes) -> bytes:
    """The base64 body of the first armored block (after the blank line, before '=')."""
    lines = armored.decode().splitlines()
    start = lines.index("", next(i for i, line in enumerate(lines) if "BEGIN" in line)) + 1
    body = []
    for line in lines[start:]:
        if line.startswith(("=", "-----END")):
            break
        body.append(line.strip())
    return base64.b64decode("".join(body))


@pytest.fixture(scope="module")
def vector(drop: Path) -> tuple[bytes, bytes, bytes]:
    return (
        (drop / DROP_FILE).read_bytes(),
        (drop / f"{DROP_FILE}.asc").read_bytes(),
        (drop / "public-key.pgp").read_bytes(),
    )


def test_damaged_key_files_give_a_key_or_one_error(elastic_key_file: Path, vector) -> None:
    data, signature, test_key = vector
    for source, seed in ((elastic_key_file.read_bytes(), 1), (test_key, 2)):
        for mutant in _mutants(_binary(source), seed):
            armored = craft.armor(mutant, "PGP PUBLIC KEY BLOCK")
            try:
                key = parse_public_key(armored)
            except FleetgapError:
                continue
            try:
                verify_bytes(data, signature, [key])
            except FleetgapError:
                continue


def test_damaged_signatures_give_a_verdict_or_one_error(vector) -> None:
    data, signature, test_key = vector
    key = parse_public_key(test_key)
    verified = 0
    for mutant in _mutants(_binary(signature), 3):
        try:
            verify_bytes(data, craft.armor(mutant, "PGP SIGNATURE").encode(), [key])
            verified += 1
        except FleetgapError:
            continue
    assert verified < MUTATIONS // 10  # damage that still verifies can only be in unhashed bytes
