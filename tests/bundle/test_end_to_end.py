"""Across the gap and back: `bundle create` against the loopback public side, `bundle load`
into an empty data directory, `fleetgap serve --data` — what Kibana and an agent then get
verifies with the public keys only."""

from __future__ import annotations

import hashlib
import json

import httpx

from bundle.public_side import AGENT
from bundle.test_create import fleetgap, selection
from bundle.tests_env import run_env
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.keys import SecretKey, parse_public_key
from fleetgap.pgp.package_signatures import verify_package_file

from serving import fleetgap_serve


def test_create_load_serve(public, tmp_path):
    signer = SecretKey.generate("bundle signer")
    signer.write(tmp_path / "signer.key", tmp_path / "signer.asc")
    selection(public, tmp_path / "s.yaml")
    key = str(public.key_file)
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache", "--key", key,
        "--sign-key", "signer.key", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["signed_by"] == signer.fingerprint
    closed = tmp_path / "closed"
    closed.mkdir()
    run = fleetgap(
        "bundle", "load", "b.tar", "--data", str(closed), "--trust-key", "signer.asc",
        "--key", key, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    with fleetgap_serve("--data", str(closed), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        found = httpx.get(f"{s.url}/search?kibana.version=9.1.0").json()
        zip_bytes = httpx.get(f"{s.url}/epr/apache/apache-2.2.0.zip").content
        sig_bytes = httpx.get(f"{s.url}/epr/apache/apache-2.2.0.zip.sig").content
        agent = httpx.get(f"{s.url}/downloads/{AGENT}").content
        sha512 = httpx.get(f"{s.url}/downloads/{AGENT}.sha512").text
        asc = httpx.get(f"{s.url}/downloads/{AGENT}.asc").content
        served_key = httpx.get(f"{s.url}/GPG-KEY-elastic-agent").content
    assert sorted((p["name"], p["version"]) for p in found) == [
        ("apache", "2.2.0"),
        ("system", "1.5.0"),
    ]
    # only public material from here on: the key the closed side serves
    public_key = parse_public_key(served_key)
    assert public_key.fingerprint == public.key.fingerprint
    download = tmp_path / "got" / "apache-2.2.0.zip"
    download.parent.mkdir()
    download.write_bytes(zip_bytes)
    download.with_name("apache-2.2.0.zip.sig").write_bytes(sig_bytes)
    assert verify_package_file(download, public_key).status == "verified"
    assert sha512.split()[0] == hashlib.sha512(agent).hexdigest()
    binary = tmp_path / "got" / AGENT.rsplit("/", 1)[1]
    binary.write_bytes(agent)
    binary.with_name(binary.name + ".sha512").write_text(sha512)
    binary.with_name(binary.name + ".asc").write_bytes(asc)
    assert (
        check_artifact(binary, [("served", public_key)]).key.fingerprint == public_key.fingerprint
    )
