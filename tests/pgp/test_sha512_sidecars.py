"""`.sha512` sidecars follow the agent's rules (spec: agent-artifacts §6.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fleetgap.pgp.sha512 import (
    ChecksumError,
    check_sha512,
    expected_sha512,
    file_sha512,
    sidecar_line,
)

ARTIFACT = "elastic-agent-8.0.0-darwin-x86_64.tar.gz"


def test_every_derived_sidecar_case_gets_the_agents_outcome(
    sha512_case: dict, drop: Path, tmp_path: Path
) -> None:
    artifact = tmp_path / ARTIFACT
    artifact.write_bytes((drop / ARTIFACT).read_bytes())
    expected = sha512_case["expected"]
    if expected == "ok":
        assert check_sha512(artifact, sha512_case["sha512_file_content"]) == file_sha512(artifact)
        return
    with pytest.raises(ChecksumError) as caught:
        check_sha512(artifact, sha512_case["sha512_file_content"])
    kinds = {"checksum_mismatch": "mismatch", "not_found": "not_found"}
    assert caught.value.kind == kinds[expected]


def test_not_found_message_names_the_file_and_the_sidecar(tmp_path: Path) -> None:
    artifact = tmp_path / ARTIFACT
    artifact.write_bytes(b"x")
    with pytest.raises(ChecksumError, match=f'checksum for "{ARTIFACT}" was not found in'):
        check_sha512(artifact, "")


def test_mismatch_message_gives_expected_and_computed(tmp_path: Path) -> None:
    artifact = tmp_path / ARTIFACT
    artifact.write_bytes(b"x")
    with pytest.raises(ChecksumError, match="checksum mismatch for .*expected abc, computed "):
        check_sha512(artifact, f"abc  {ARTIFACT}\n")


def test_last_matching_line_wins() -> None:
    text = f"aaa  {ARTIFACT}\nbbb  other\nccc  *{ARTIFACT}\n"
    assert expected_sha512(text, ARTIFACT) == "ccc"


def test_file_sha512_is_lowercase_hex_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"sample")
    assert file_sha512(path) == hashlib.sha512(b"sample").hexdigest()


def test_sidecar_line_is_elastics_canonical_format_and_checks(tmp_path: Path) -> None:
    path = tmp_path / ARTIFACT
    path.write_bytes(b"content")
    line = sidecar_line(path)
    assert line == f"{hashlib.sha512(b'content').hexdigest()}  {ARTIFACT}\n"
    assert check_sha512(path, line)
