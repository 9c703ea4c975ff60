"""deploy/Dockerfile's build-time command lines, run as written (taken from the file), with the
image's paths mapped into a temporary folder: fleetgap installed from the offline kit and a
real signed bundle loaded with its signer's key, all with no network; and the HEALTHCHECK
against the image command serving TLS."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trustme
from test_deploy import docker_env, dockerfile, one

from fleetgap import __version__
from kit_setup import Installed, Kit, offline, source_env

from serving import free_port


def build_args() -> dict[str, str]:
    args = {}
    for word, rest in dockerfile():
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = shlex.split(default)[0] if default else ""
    return args


def mapper(paths: dict[str, str]):
    """Replace each image path by its folder here, in one pass, longest path first."""
    pattern = re.compile("|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda m: paths[m.group(0)], text)


def without_mounts(run: str) -> str:
    """A RUN line's command: its leading `--mount=` options dropped (their targets are mapped
    to the folders here)."""
    return re.sub(r"^(--mount=\S+\s+)+", "", run)


def run_build(tmp_path: Path, installed: Installed, context: Path, **args: str):
    """Every RUN line in order, under /bin/sh as Docker runs them, with the ARG and ENV
    values; useradd and chown are recorded instead of changing this machine's users."""
    data, home = tmp_path / "image-data", tmp_path / "image-home"
    mapped = mapper({
        "/tmp/bundles": str(context),  # --mount=type=bind,source=deploy/bundles
        "/tmp/source": str(Path(__file__).resolve().parents[2]),  # --mount=…,source=.
        "/tmp/kit": str(tmp_path / "image-kit"),
        "/opt/fleetgap": str(installed.prefix),
        "/usr/local/bin": str(installed.bin_dir),
        "/packages/package-registry": str(data),
        "/package-registry": str(home),
    })  # fmt: skip
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "calls.log"
    for tool in ("useradd", "chown"):
        shim = shims / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {name: mapped(value) for name, value in docker_env().items()}
    env |= {**build_args(), **args}
    env["PATH"] = os.pathsep.join([str(shims), str(installed.bin_dir), os.environ["PATH"]])
    script = "set -e\n" + "".join(
        f"sh -c {shlex.quote(mapped(without_mounts(rest)))}\n"
        for word, rest in dockerfile()
        if word == "RUN"
    )
    done = offline(["sh", "-c", script], env=env, cwd=tmp_path)
    return done, data, calls


def make_signed_bundle(tmp_path: Path, kit: Kit) -> Path:
    """A real bundle, signed by the kit's signer, carrying one key file."""
    (tmp_path / "agent.asc").write_text(kit.signer.public_key.armored)
    selection = tmp_path / "selection.yml"
    selection.write_text(
        "keys:\n  - file: GPG-KEY-elastic-agent\n    source: ./agent.asc\n"
        f"    fingerprint: {kit.signer.fingerprint}\n"
    )
    secret = tmp_path / "signer-secret.asc"
    secret.write_text(kit.signer.armored)
    bundle = tmp_path / "fleetgap-test.bundle"
    done = offline(
        [sys.executable, "-m", "fleetgap", "bundle", "create", selection, "--out", bundle,
         "--cache", tmp_path / "cache", "--sign-key", secret],
        env=source_env(), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return bundle


def build_context(tmp_path: Path, kit: Kit) -> Path:
    """deploy/bundles/ as the operator fills it: the bundle, its signer's key and the kit."""
    context = tmp_path / "deploy-bundles"
    context.mkdir()
    bundle = make_signed_bundle(tmp_path, kit)
    bundle.rename(context / bundle.name)
    (context / "bundle-signer.asc").write_text(kit.signer.public_key.armored)
    (context / "fleetgap-kit.tar").write_bytes(kit.tar.read_bytes())
    return context


def test_build_installs_from_the_kit_and_loads_a_signed_bundle_offline(
    kit: Kit, installed: Installed, tmp_path: Path
):
    context = build_context(tmp_path, kit)
    done, data, calls = run_build(
        tmp_path, installed, context,
        BUNDLE="fleetgap-test.bundle", TRUST_KEY="bundle-signer.asc", KIT="fleetgap-kit.tar",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"fleetgap {__version__} installed in {installed.prefix}" in done.stdout
    assert re.search(r"^loaded bundle [0-9a-f]{32} \(sequence \d+\)", done.stdout, re.M)
    key = (data / "keys" / "GPG-KEY-elastic-agent").read_text()
    assert key == kit.signer.public_key.armored
    assert not (tmp_path / "image-kit").exists()  # the unpacked kit is gone from the image
    assert calls.read_text().splitlines()[-1] == f"chown -R fleetgap:fleetgap {data}"


def test_build_with_a_bundle_but_no_trust_key_stops_with_one_line(
    kit: Kit, installed: Installed, tmp_path: Path
):
    context = build_context(tmp_path, kit)
    done, data, _ = run_build(
        tmp_path, installed, context, BUNDLE="fleetgap-test.bundle", KIT="fleetgap-kit.tar"
    )
    assert done.returncode != 0
    assert done.stderr.splitlines()[-1].startswith(
        "error: --build-arg BUNDLE needs --build-arg TRUST_KEY="
    )
    assert not (data / "keys" / "GPG-KEY-elastic-agent").exists()


def test_build_inputs_are_mounted_never_copied_into_a_layer():
    """A COPY of deploy/bundles/ stays in its layer whatever a later RUN deletes: the bundle
    twice in `docker save`, and whatever else was left there (a secret key) in the image."""
    copied = [rest for word, rest in dockerfile() if word in ("COPY", "ADD")]
    assert copied == []
    runs = [rest for word, rest in dockerfile() if word == "RUN" and "/tmp/bundles" in rest]
    assert runs and all(
        "--mount=type=bind,source=deploy/bundles,target=/tmp/bundles" in r for r in runs
    )


def test_healthcheck_passes_when_the_image_serves_tls(tmp_path: Path):
    ca = trustme.CA()
    cert = ca.issue_cert("registry.example.org")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = {**os.environ, **docker_env(), "FLEETGAP_DATA": str(data)}
    env |= {"EPR_ADDRESS": f"127.0.0.1:{port}", "EPR_TLS_CERT": str(cert_file),
            "EPR_TLS_KEY": str(key_file)}  # fmt: skip
    command = json.loads(one("ENTRYPOINT")) + json.loads(one("CMD"))
    command = [sys.executable, "-m", "fleetgap", *command[1:-1], str(data)]
    health = json.loads(one("HEALTHCHECK").split("CMD", 1)[1])
    probe = [sys.executable if health[0] == "python" else health[0], *health[1:]]
    # the probe finds the port in EPR_ADDRESS, as the image sets it
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            healthy = subprocess.run(probe, env=env, capture_output=True, timeout=30)
            if healthy.returncode == 0:
                break
            assert time.monotonic() < deadline, healthy.stderr.decode()[-500:] + log.read_text()
            time.sleep(0.5)
        assert httpx.get(f"https://127.0.0.1:{port}/health", verify=False).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=15)
