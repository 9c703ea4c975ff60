"""Which key checks Elastic's signatures is one rule, the same for `bundle verify --data` and
`bundle load` (issue 17, item 3): `--key` files win; else the file of DATA/keys/ holding
exactly Elastic's pinned key. A lab key a signed bundle put at keys/GPG-KEY-elasticsearch is
passed over: it never checks anything for an unsigned bundle, and never locks the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.bundle.conftest import add_package, entries, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.store import DataDir

LAB_KEY = "keys/GPG-KEY-elasticsearch"


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def lab_data(tmp_path, file_signer, bundle_signer, trust_files) -> tuple[DataDir, Path]:
    """DATA after a signed bundle brought a lab key as keys/GPG-KEY-elasticsearch."""
    cache = make_cache(tmp_path / "cache", file_signer)
    (cache.root / LAB_KEY).write_text(file_signer.public_key.armored)
    first = tmp_path / "first.bundle"
    write_bundle(cache, entries(cache, file_signer), first, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    loaded = run("bundle", "load", first, "--data", data, "--trust-key", trust_files["signer"])
    assert loaded.exit_code == 0, loaded.output
    return cache, data


def _both(bundle: Path, data: Path, *options: object):
    verified = run("bundle", "verify", bundle, "--data", data, *options)
    loaded = run("bundle", "load", bundle, "--data", data, *options)
    return verified, loaded


def test_a_lab_key_in_data_does_not_lock_later_loads(
    lab_data, tmp_path, file_signer, bundle_signer, trust_files
):
    cache, data = lab_data
    add_package(cache, file_signer, "apache", "1.0.0")
    second = tmp_path / "second.bundle"
    write_bundle(cache, entries(cache, file_signer), second, selection={}, sequence=2,
                 sign_key=bundle_signer)  # fmt: skip
    verified, loaded = _both(second, data, "--trust-key", trust_files["signer"], "--key",
                             trust_files["files"])  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert loaded.exit_code == 0, loaded.output
    assert (data / "packages" / "apache-1.0.0.zip").is_file()


def test_verify_and_load_give_one_verdict_for_an_unsigned_bundle(
    lab_data, tmp_path, file_signer, trust_files
):
    cache, data = lab_data
    package_only = make_cache(tmp_path / "unsigned-cache", file_signer)
    add_package(package_only, file_signer, "redis", "1.0.0")
    files = [e for e in entries(package_only, file_signer) if e.path.startswith("packages/redis")]
    unsigned = tmp_path / "unsigned.bundle"
    write_bundle(package_only, files, unsigned, selection={}, sequence=3)
    # the lab key in DATA is not Elastic's: it checks nothing, for verify as for load
    verified, loaded = _both(unsigned, data, "--allow-unsigned")
    assert verified.exit_code == loaded.exit_code == 1
    assert "no key to verify it with" in verified.output
    assert "no key to verify it with" in loaded.output
    assert not (data / "packages" / "redis-1.0.0.zip").exists()
    # --key wins, the same for both
    verified, loaded = _both(unsigned, data, "--allow-unsigned", "--key", trust_files["files"])
    assert verified.exit_code == 0, verified.output
    assert loaded.exit_code == 0, loaded.output
    assert (data / "packages" / "redis-1.0.0.zip").is_file()
