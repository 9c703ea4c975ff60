"""Signing keys protected by a passphrase: `keys generate` writes one (read by Sequoia and,
as the oracle, by GnuPG), and every --sign-key takes the passphrase from a file or the
environment; a missing or wrong one is one error line."""

from __future__ import annotations

import json
import subprocess

import pysequoia
from click.testing import CliRunner

from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey, read_public_key
from fleetgap.pgp.signatures import verify_bytes

PASSPHRASE = "correct horse battery staple"


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_generate_protects_the_key_and_every_signing_command_unlocks_it(tmp_path, gpg_home):
    (tmp_path / "pass.txt").write_text(PASSPHRASE + "\n")
    made = invoke("keys", "generate", "--uid", "Ops <ops@example.org>", "--secret",
                  tmp_path / "ops.key", "--passphrase-file", tmp_path / "pass.txt")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "protected by the passphrase" in made.output
    armored = (tmp_path / "ops.key").read_text()
    tsk = pysequoia.Tsk.from_bytes(armored.encode())
    # the secret material is encrypted: no signer without the passphrase
    assert SecretKey(tsk).fingerprint == read_public_key(tmp_path / "ops.key.pub").fingerprint
    try:
        tsk.signer(None)
        raise AssertionError("an unprotected key")
    except Exception as exc:  # noqa: BLE001 - pysequoia raises a plain Exception
        assert "encrypted" in str(exc)

    # GnuPG, the oracle: it imports the key and signs with it given the passphrase
    gpg = ["gpg", "--homedir", str(gpg_home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run([*gpg, "--import", str(tmp_path / "ops.key")], check=True, capture_output=True)
    (tmp_path / "data.txt").write_bytes(b"signed by gpg with the protected key\n")
    wrong_gpg = subprocess.run(
        [*gpg, "--passphrase", "wrong", "--armor", "--detach-sign", "--output",
         str(tmp_path / "x.asc"), str(tmp_path / "data.txt")], capture_output=True,
    )  # fmt: skip
    assert wrong_gpg.returncode != 0
    subprocess.run(
        [*gpg, "--passphrase", PASSPHRASE, "--armor", "--detach-sign", "--output",
         str(tmp_path / "data.txt.asc"), str(tmp_path / "data.txt")],
        check=True, capture_output=True,
    )  # fmt: skip
    public = read_public_key(tmp_path / "ops.key.pub")
    signature = (tmp_path / "data.txt.asc").read_bytes()
    assert verify_bytes((tmp_path / "data.txt").read_bytes(), signature, [public]) == public

    data = tmp_path / "data"
    (data / "state").mkdir(parents=True)
    receipt = ("bundle", "receipt", "--data", data, "--sign-key", tmp_path / "ops.key")
    missing = invoke(*receipt)
    assert missing.exit_code == 1 and missing.output == (
        f"error: {tmp_path / 'ops.key'} is protected by a passphrase: give --passphrase-file "
        "FILE or set FLEETGAP_KEY_PASSPHRASE\n"
    )
    wrong = invoke(*receipt, env={"FLEETGAP_KEY_PASSPHRASE": "wrong"})
    assert (
        wrong.output == f"error: {tmp_path / 'ops.key'}: the passphrase does not unlock the key\n"
    )
    by_env = invoke(*receipt, env={"FLEETGAP_KEY_PASSPHRASE": PASSPHRASE})
    assert by_env.exit_code == 0, by_env.output
    assert json.loads(by_env.output)["signer"] == public.fingerprint
    by_file = invoke(*receipt, "--passphrase-file", tmp_path / "pass.txt")
    assert by_file.exit_code == 0, by_file.output
