"""deploy/: the Dockerfile, the systemd unit and the Kubernetes manifest, checked as far as a
machine without Docker or a cluster allows: parsed, linted, and the command lines the image
and the unit run started here against a temporary data directory until /health answers."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from serving import free_port

DEPLOY = Path(__file__).parents[2] / "deploy"
INSTALLED = "/opt/fleetgap/bin/fleetgap"  # install.sh's virtual environment (its --prefix)


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line runs off the end"
    return instructions


def docker_env() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile():
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def one(word: str) -> str:
    (rest,) = [rest for w, rest in dockerfile() if w == word]
    return rest


def test_dockerfile_has_the_go_registry_image_conventions():
    words = [w for w, _ in dockerfile()]
    assert words[0] == "FROM"
    known = {
        "FROM",
        "ARG",
        "ENV",
        "COPY",
        "RUN",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "CMD",
        "LABEL",
        "VOLUME",
    }
    assert set(words) <= known
    assert one("EXPOSE") == "8080"
    env = docker_env()
    assert env["EPR_ADDRESS"] == "0.0.0.0:8080"
    assert env["FLEETGAP_DATA"] == "/packages/package-registry"
    user = one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert "/health" in one("HEALTHCHECK") and "8080" in one("HEALTHCHECK")
    assert any(rest.startswith("BUNDLE") for w, rest in dockerfile() if w == "ARG")
    load = [rest for w, rest in dockerfile() if w == "RUN" and "bundle load" in rest]
    assert load and '--data "$FLEETGAP_DATA"' in load[0]
    for word in ("ENTRYPOINT", "CMD"):
        assert isinstance(json.loads(one(word)), list)  # exec form: signals reach fleetgap


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context():
    root = DEPLOY.parent
    ignored = [
        line.strip()
        for line in (root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, rest in dockerfile():
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (root / source).exists(), source
                top = source.strip("/").split("/", 1)[0]
                assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), source


def test_image_command_starts_and_its_healthcheck_passes(tmp_path):
    """The image's ENTRYPOINT + CMD with the image's ENV, paths mapped into tmp_path."""
    data = tmp_path / "packages" / "package-registry"
    data.mkdir(parents=True)
    image_root = {"/packages/package-registry": str(data)}
    port = free_port()
    env = {k: _mapped(v, image_root) for k, v in docker_env().items()}
    env["EPR_ADDRESS"] = f"127.0.0.1:{port}"
    command = json.loads(one("ENTRYPOINT")) + json.loads(one("CMD"))
    command = [_mapped(arg, image_root) for arg in command]
    workdir = tmp_path / "package-registry"
    workdir.mkdir()
    with _running(command, env, workdir, port, tmp_path):
        health = json.loads(one("HEALTHCHECK").split("CMD", 1)[1])
        probe = [sys.executable if health[0] == "python" else health[0], *health[1:]]
        # the probe finds the port in EPR_ADDRESS, as in the image (R3: it was fixed at 8080)
        assert subprocess.run(probe, env={**os.environ, **env}, timeout=30).returncode == 0


# --- systemd ---------------------------------------------------------------------------------


def unit() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (DEPLOY / "fleetgap.service").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        assert current is not None
        current.append((key, value))
    return sections


def service(key: str) -> list[str]:
    return [value for k, value in unit()["Service"] if k == key]


def test_unit_has_a_hardening_section():
    hardening = dict(unit()["Service"])
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/fleetgap",
        "CapabilityBoundingSet": "",
        "User": "fleetgap",
    }.items():
        assert hardening[key] == value, key
    assert "/var/lib/fleetgap" in service("ExecStart")[0]
    assert dict(unit()["Install"])["WantedBy"] == "multi-user.target"


def test_unit_verifies_with_systemd_analyze(tmp_path):
    systemd_analyze = shutil.which("systemd-analyze")
    assert systemd_analyze, "systemd-analyze missing (.ci/run installs Debian's systemd)"
    installed = shutil.which("fleetgap")
    assert installed, "the fleetgap console script is not installed"
    text = (DEPLOY / "fleetgap.service").read_text().replace(INSTALLED, installed)
    copy = tmp_path / "fleetgap.service"
    copy.write_text(text)
    verify = subprocess.run(
        [systemd_analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr
    security = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert exposure, security.stdout[-500:] + security.stderr[-500:]
    assert float(exposure.group(1)) < 2.0  # systemd rates < 2 as "OK"


def test_unit_exec_start_starts(tmp_path):
    data = tmp_path / "var-lib-fleetgap"
    data.mkdir()
    paths = {"/var/lib/fleetgap": str(data)}
    port = free_port()
    env = {}
    for assignment in service("Environment"):
        name, _, value = assignment.partition("=")
        env[name] = _mapped(value, paths)
    env["EPR_ADDRESS"] = f"127.0.0.1:{port}"
    (exec_start,) = service("ExecStart")
    command = [_mapped(arg, paths) for arg in shlex.split(exec_start)]
    assert command[0] == INSTALLED
    with _running(command, env, tmp_path, port, tmp_path):
        pass


def setup_commands() -> list[list[str]]:
    """The commands the unit's header tells root to run, in order."""
    header = (DEPLOY / "fleetgap.service").read_text().split("[Unit]")[0]
    lines = [line[4:] for line in header.splitlines() if line.startswith("#   ")]
    return [shlex.split(line, comments=True) for line in lines]


def test_unit_runs_what_install_sh_installs():
    (install,) = [c for c in setup_commands() if c[0] == "sh" and c[1].endswith("/install.sh")]
    assert "--prefix" not in " ".join(install)  # install.sh's default prefix: /opt/fleetgap
    assert service("ExecStart")[0].split()[0] == "/opt/fleetgap/bin/fleetgap"


def test_unit_header_loads_a_signed_bundle_with_its_signer():
    """Nothing in the header's set-up trusts a bundle signer (DATA/state/bundle-signers/ is
    never made), so its `bundle load` line as written refused every signed bundle ("no
    trusted signer")."""
    text = (DEPLOY / "fleetgap.service").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("#") and " bundle load " in x]
    assert "--trust-key" in line or "bundle-signers" in text, line


def test_setup_as_documented_gives_the_service_user_no_ca_key(tmp_path):
    """The header's `certs create` run as written (paths moved under tmp_path); what it
    hands to the service user (chown/chgrp) is never the CA's key nor a folder holding it;
    the env file it makes holds absolute paths, so the unit's ExecStart, started from
    another directory with that file as its EnvironmentFile, serves HTTPS."""
    root = tmp_path / "root"
    paths = {"/etc/fleetgap": str(root / "etc"), "/root": str(root / "home"),
             "/var/lib/fleetgap": str(root / "data")}  # fmt: skip
    commands = [[_mapped(arg, paths) for arg in c] for c in setup_commands()]
    (create,) = [c for c in commands if c[:3] == ["fleetgap", "certs", "create"]]
    work = tmp_path / "somewhere"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "fleetgap", *create[1:]], cwd=work,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (ca_key,) = [p for p in root.rglob("ca.key")]
    for command in commands:
        if command[0] in ("chown", "chgrp"):
            assert "-R" not in command and "--recursive" not in command, command
            for target in command[2:]:
                assert not (ca_key == Path(target) or Path(target) in ca_key.parents), command
    for command in commands:
        if command[0] == "cp":
            shutil.copy(command[1], command[2])
    (env_file,) = [v.lstrip("-") for v in service("EnvironmentFile")]
    env = dict(
        line.split("=", 1) for line in Path(_mapped(env_file, paths)).read_text().splitlines()
    )
    assert all(Path(value).is_absolute() and Path(value).is_file() for value in env.values())
    data = root / "data"
    data.mkdir()
    port = free_port()
    env["EPR_ADDRESS"] = f"127.0.0.1:{port}"
    command = [_mapped(arg, paths) for arg in shlex.split(service("ExecStart")[0])]
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    with _running(command, env, elsewhere, port, tmp_path, scheme="https"):
        context = ssl.create_default_context(cafile=env["NODE_EXTRA_CA_CERTS"])
        url = f"https://127.0.0.1:{port}/health"
        name = create[create.index("--host") + 1]  # the certificate's name, checked by TLS
        with httpx.Client(verify=context, timeout=10) as client:
            request = client.build_request("GET", url, extensions={"sni_hostname": name})
            answer = client.send(request)
        assert answer.status_code == 200


# --- Kubernetes ------------------------------------------------------------------------------


def manifests() -> dict[str, dict]:
    documents = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yml").read_text()) if d]
    return {d["kind"]: d for d in documents}


def test_kubernetes_deployment_service_and_volume():
    found = manifests()
    assert set(found) == {"Deployment", "Service", "PersistentVolumeClaim"}
    deployment, service_, claim = (
        found[k] for k in ("Deployment", "Service", "PersistentVolumeClaim")
    )
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert service_["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8080
    assert service_["spec"]["ports"][0]["targetPort"] in (port["name"], 8080)
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health" and get["port"] == 8080
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["EPR_ADDRESS"] == "0.0.0.0:8080"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == docker_env()["FLEETGAP_DATA"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container["args"] == json.loads(one("CMD"))
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_kubernetes_image_is_not_pulled_from_a_registry_the_closed_network_lacks():
    """`image: X:latest` with no imagePullPolicy means Always: every pod start asks a registry
    for it, and an image carried across with `docker save`/`load` (or `ctr images import` on
    each node) never starts (ErrImagePull)."""
    (container,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    policy = container.get("imagePullPolicy")
    if policy is None:
        policy = "Always" if container["image"].endswith(":latest") else "IfNotPresent"
    assert policy in ("IfNotPresent", "Never"), (container["image"], policy)


# --- helpers ---------------------------------------------------------------------------------


def _mapped(value: str, paths: dict[str, str]) -> str:
    for inside, here in paths.items():
        value = value.replace(inside, here)
    return value


class _running:
    """Start `command` (its `fleetgap` run as this Python's `-m fleetgap`) until /health."""

    def __init__(self, command, env, cwd, port, log_dir, scheme="http") -> None:  # type: ignore[no-untyped-def]
        assert Path(command[0]).name == "fleetgap", command
        self.command = [sys.executable, "-m", "fleetgap", *command[1:]]
        self.env = {**os.environ, **env}
        self.cwd, self.port, self.log = cwd, port, log_dir / f"run-{port}.log"
        self.scheme = scheme

    def __enter__(self) -> None:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited: {self.log.read_text()}")
            try:
                url = f"{self.scheme}://127.0.0.1:{self.port}/health"
                if httpx.get(url, timeout=2, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"no /health: {self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
