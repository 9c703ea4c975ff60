"""Traps a new operator met: a refused load leaves no empty skeleton behind; `bundle create
--out` does not overwrite a bundle without --force; `… | head` ends quietly."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner
from tests.bundle.conftest import entries, make_cache

from bundle.test_create import fleetgap, selection
from bundle.tests_env import run_env
from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main


def test_a_refused_load_into_a_new_directory_leaves_nothing(tmp_path, file_signer, trust_files):
    cache = make_cache(tmp_path / "cache", file_signer)
    unsigned = tmp_path / "u.tar"
    write_bundle(cache, entries(cache, file_signer), unsigned, selection={})
    data = tmp_path / "srv" / "fleetgap"
    refused = CliRunner().invoke(
        main, ["bundle", "load", str(unsigned), "--data", str(data), "--trust-key",
               str(trust_files["signer"])],
    )  # fmt: skip
    assert refused.exit_code == 1 and "not signed" in refused.output
    assert not data.exists()
    # an existing directory keeps what it held, the folders load made included
    data.mkdir(parents=True)
    (data / "mine.txt").write_text("operator's")
    again = CliRunner().invoke(main, ["bundle", "load", str(unsigned), "--data", str(data)])
    assert again.exit_code == 1 and (data / "mine.txt").read_text() == "operator's"


def test_create_does_not_overwrite_a_bundle_without_force(public, tmp_path):
    selection(public, tmp_path / "s.yaml", queries="")
    key = ("--key", str(public.key_file))
    first = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", *key, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "b.tar").read_bytes()
    again = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", *key, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1] == (
        "error: b.tar exists: not overwriting a bundle (give --force to replace it)"
    )
    assert (tmp_path / "b.tar").read_bytes() == before
    (tmp_path / "p.tar.001").write_bytes(b"a part of another bundle")
    parts = fleetgap("bundle", "create", "s.yaml", "--out", "p.tar", "--split", "1MiB", *key,
                     cwd=tmp_path)  # fmt: skip
    assert parts.returncode == 1 and "p.tar.001 exists" in parts.stderr.splitlines()[-1]
    forced = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", "--force", *key,
                      cwd=tmp_path)  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "b.tar").read_bytes() != before


def test_a_reader_that_leaves_early_gets_no_broken_pipe_error():
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetgap", "artifacts", "products"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env(),
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has its lines
    errors = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert errors == b""
