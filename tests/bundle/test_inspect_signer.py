"""`bundle inspect` says who signed the manifest: fingerprint and user ID with the signer's
key (--trust-key, or DATA/state/bundle-signers/), the issuer key ID without it."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner
from tests.bundle.conftest import entries, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main


def run(*args: object):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_inspect_names_the_signer(tmp_path, file_signer, bundle_signer, trust_files):
    cache = make_cache(tmp_path / "cache", file_signer)
    signed = tmp_path / "b.tar"
    write_bundle(cache, entries(cache, file_signer), signed, selection={}, sign_key=bundle_signer)
    fingerprint = bundle_signer.fingerprint

    shown = run("bundle", "inspect", signed, "--trust-key", trust_files["signer"]).splitlines()
    assert shown[2] == (
        f"signed by {fingerprint} (bundle signer <signer@example.org>): verified with a "
        "trusted signer's key"
    )
    data = tmp_path / "data"
    (data / "state" / "bundle-signers").mkdir(parents=True)
    shutil.copy(trust_files["signer"], data / "state" / "bundle-signers" / "ops.asc")
    document = json.loads(run("bundle", "inspect", signed, "--data", data, "--json"))
    key_id = document["signer"]["key_id"]  # the signing subkey's
    assert document["signer"] == {
        "key_id": key_id,
        "fingerprint": fingerprint,
        "user_ids": ["bundle signer <signer@example.org>"],
        "verified": True,
    }

    unknown = run("bundle", "inspect", signed, "--trust-key", trust_files["stranger"])
    assert f"signed by key ID {key_id}, not a trusted signer's key" in unknown
    assert "--trust-key" in unknown.splitlines()[2]

    unsigned = tmp_path / "u.tar"
    write_bundle(cache, entries(cache, file_signer), unsigned, selection={})
    assert "UNSIGNED" in run("bundle", "inspect", unsigned).splitlines()[1]
