"""`bundle create --sign-key` with a key protected by a passphrase (from the environment)."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from bundle.test_create import selection
from bundle.tests_env import run_env
from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey

PASSPHRASE = "correct horse battery staple"


def test_bundle_create_signs_with_a_protected_key(public, tmp_path):
    key = SecretKey.generate("bundle signer <signer@example.invalid>").protected(PASSPHRASE)
    (tmp_path / "signer.key").write_text(key.armored)
    (tmp_path / "signer.asc").write_text(key.public_key.armored)
    selection(public, tmp_path / "s.yaml", queries="")
    run = subprocess.run(
        [sys.executable, "-m", "fleetgap", "bundle", "create", "s.yaml", "--out", "b.tar",
         "--key", str(public.key_file), "--sign-key", "signer.key"],
        capture_output=True, text=True, cwd=tmp_path, timeout=180,
        env=run_env() | {"FLEETGAP_KEY_PASSPHRASE": PASSPHRASE},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    verify = ["bundle", "verify", str(tmp_path / "b.tar"), "--key", str(public.key_file)]
    verified = CliRunner().invoke(main, [*verify, "--trust-key", str(tmp_path / "signer.asc")])
    assert verified.exit_code == 0, verified.output
