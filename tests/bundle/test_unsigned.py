"""An unsigned bundle cannot change what is trusted (issue 17, item 2): the keys it carries
are published only when they are Elastic's pinned key or given with --key, and what verifies
a file is tied to its path, whatever the manifest says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.bundle.conftest import ARTIFACT, entries, listing, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.store import DataDir

KEY = "keys/GPG-KEY-elastic-agent"


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def cache(tmp_path_factory, file_signer) -> DataDir:
    return make_cache(tmp_path_factory.mktemp("cache"), file_signer)


def _refused(bundle: Path, data: Path, *extra: object) -> str:
    before = listing(data)
    result = run("bundle", "load", bundle, "--data", data, "--allow-unsigned", *extra)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert listing(data) == before
    assert not list((data / "state" / "incoming").glob("*/*"))
    return result.output.strip().splitlines()[-1]


def test_an_unsigned_bundle_does_not_publish_a_key_nobody_trusts(
    cache, file_signer, tmp_path, trust_files
):
    out = tmp_path / "unsigned.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=1)
    data = tmp_path / "data"
    data.mkdir()
    line = _refused(out, data)
    assert f"{KEY}: key {file_signer.fingerprint} is not trusted" in line
    verified = run("bundle", "verify", out, "--allow-unsigned")
    assert verified.exit_code == 1 and "is not trusted" in verified.output
    # given by the operator, the same key is trusted and published
    ok = run("bundle", "load", out, "--data", data, "--allow-unsigned", "--key",
             trust_files["files"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert (data / KEY).read_bytes() == (cache.root / KEY).read_bytes()


def test_an_unsigned_bundle_cannot_carry_a_key_given_for_another(
    cache, file_signer, tmp_path, trust_files
):
    """--key names the stranger; the carried key is still not trusted."""
    out = tmp_path / "unsigned.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=1)
    data = tmp_path / "data"
    data.mkdir()
    line = _refused(out, data, "--key", trust_files["stranger"])
    assert "is not trusted" in line


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (ARTIFACT, "sidecar"),  # a 900 KB binary held as if it were a sidecar
        (ARTIFACT, "none"),
        (ARTIFACT, "openpgp-detached"),  # an artifact needs its .sha512 too
        (KEY, "none"),
        (KEY, "sidecar"),
        ("downloads/beats/elastic-agent/extra.bin", "none"),
    ],
)
def test_what_verifies_a_file_is_tied_to_its_path(file_signer, tmp_path, trust_files, path, kind):
    cache = make_cache(tmp_path / "cache", file_signer)
    (cache.root / path).write_bytes(b"\x7fELF" + bytes(900_000))
    files = [
        replace(e, verified_by=kind) if e.path == path else e for e in entries(cache, file_signer)
    ]
    out = tmp_path / "lying.bundle"
    write_bundle(cache, files, out, selection={}, sequence=1)
    data = tmp_path / "data"
    data.mkdir()
    line = _refused(out, data, "--key", trust_files["files"])
    assert f"{path}: the manifest says it is verified by {kind!r}; refused there" in line


def test_a_signed_bundle_vouches_for_the_keys_it_carries(
    cache, file_signer, bundle_signer, tmp_path, trust_files
):
    out = tmp_path / "signed.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    result = run("bundle", "load", out, "--data", data, "--trust-key", trust_files["signer"])
    assert result.exit_code == 0, result.output
    assert (data / KEY).read_bytes() == (cache.root / KEY).read_bytes()


def test_an_unsigned_bundle_carries_nothing_that_nothing_verifies(
    file_signer, tmp_path, trust_files
):
    """R1: `packages/evil/1.0.0/*` with `verified_by: none` was published by an unsigned
    bundle (a directory package: no zip, so no .sig asked for)."""
    cache = make_cache(tmp_path / "cache", file_signer)
    path = "packages/evil/1.0.0/manifest.yml"
    (cache.root / path).parent.mkdir(parents=True)
    (cache.root / path).write_text("name: evil\nversion: 1.0.0\n")
    files = [
        replace(e, verified_by="none") if e.path == path else e for e in entries(cache, file_signer)
    ]
    assert path in [e.path for e in files]
    out = tmp_path / "unsigned.bundle"
    write_bundle(cache, files, out, selection={}, sequence=1)
    data = tmp_path / "data"
    data.mkdir()
    line = _refused(out, data, "--key", trust_files["files"])
    assert line == f"error: {path}: verified by nothing, in an unsigned bundle; refused"
