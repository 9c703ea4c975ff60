"""`bundle verify DELTA` without `--data`: the error says a delta is verified against the
closed side it applies to, not "give --key"."""

from __future__ import annotations

import json

from click.testing import CliRunner
from tests.bundle.conftest import add_package, entries, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_delta_is_verified_against_the_data_it_applies_to(
    tmp_path, file_signer, bundle_signer, trust_files
):
    cache = make_cache(tmp_path / "cache", file_signer)
    full = tmp_path / "full.bundle"
    write_bundle(cache, entries(cache, file_signer), full, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    trust = ("--trust-key", trust_files["signer"])
    assert run("bundle", "load", full, "--data", data, *trust).exit_code == 0
    receipt = json.loads(run("bundle", "receipt", "--data", data).output)
    have = {f["path"]: f["sha256"] for f in receipt["files"]}
    add_package(cache, file_signer, "nginx", "1.3.0")
    delta = tmp_path / "delta.bundle"
    write_bundle(cache, entries(cache, file_signer, have), delta, selection={}, sequence=2,
                 sign_key=bundle_signer, base=receipt)  # fmt: skip

    alone = run("bundle", "verify", delta, *trust)
    assert alone.exit_code == 1
    error = alone.output.strip().splitlines()[-1]
    assert error.startswith("error: packages/nginx-1.3.0.zip: ")
    assert "is a delta: verify it against the closed side it applies to, with --data DIR" in error
    assert "--key" not in error

    against = run("bundle", "verify", delta, *trust, "--data", data)
    assert against.exit_code == 0, against.output
