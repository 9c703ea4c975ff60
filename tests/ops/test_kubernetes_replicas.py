"""deploy/kubernetes.yml runs replicas on one ReadWriteMany claim: checked in the manifest, and
by starting two of its containers here as written (paths mapped into tmp_path, each replica
with its own /tmp as each pod has its own emptyDir) on one data directory."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import trustme
import yaml

from fleetgap.store import DataDir, bump_generation

from builders import write_zip_package
from serving import fleetgap_serve

MANIFEST = Path(__file__).parents[2] / "deploy" / "kubernetes.yml"


def _kinds() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text()) if d}


def _pod() -> dict:
    return _kinds()["Deployment"]["spec"]["template"]["spec"]


def test_replicas_share_one_read_write_many_claim_on_different_nodes():
    kinds = _kinds()
    deployment, claim = kinds["Deployment"], kinds["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = _pod()
    (data,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_each_replica_keeps_its_index_cache_on_its_own_disk():
    """SQLite (in WAL mode) must not be shared between hosts over a network file system."""
    pod = _pod()
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    cache = Path(env["FLEETGAP_INDEX_CACHE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    holding = [m for m in mounts if cache.is_relative_to(m)]
    assert holding, f"{cache} is on the read-only root file system"
    assert "emptyDir" in volumes[mounts[max(holding, key=len)]]


def test_two_replicas_started_as_written_serve_one_load(tmp_path):
    (container,) = _pod()["containers"]
    data = DataDir(tmp_path / "claim").ensure()
    write_zip_package(data.packages, "alpha", "1.0.0")
    ca = trustme.CA()
    tls = tmp_path / "tls"
    tls.mkdir()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tls / "tls.crt")
    cert.private_key_pem.write_to_path(tls / "tls.key")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)

    def mapped(value: str, pod_tmp: Path) -> str:
        for inside, here in (
            ("/packages/package-registry", data.root),
            ("/etc/fleetgap/tls", tls),
            ("/tmp", pod_tmp),
        ):
            if value == inside or value.startswith(inside + "/"):
                return str(here) + value[len(inside) :]
        return value

    def replica(name: str):  # type: ignore[no-untyped-def]
        pod_tmp = tmp_path / name / "tmp"
        pod_tmp.mkdir(parents=True)
        env = {e["name"]: mapped(e["value"], pod_tmp) for e in container["env"]}
        env.pop("EPR_ADDRESS")  # fleetgap_serve gives a free port on 127.0.0.1
        env["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"  # the test package is unsigned
        args = [mapped(a, pod_tmp) for a in container["args"]]
        return pod_tmp, fleetgap_serve(
            *args, env=env, cwd=tmp_path, log_dir=tmp_path, scheme="https"
        )

    def names(url: str) -> set[str]:
        trusted = ssl.create_default_context(cafile=ca_file)
        found = httpx.get(f"{url}/search", params={"all": "true"}, verify=trusted)
        return {f"{p['name']}-{p['version']}" for p in found.json()}

    tmp_one, first = replica("pod-1")
    tmp_two, second = replica("pod-2")
    with first as one, second as two:
        assert names(one.url) == names(two.url) == {"alpha-1.0.0"}
        write_zip_package(data.packages, "beta", "2.0.0")
        bump_generation(data, "test-load")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
            "beta-2.0.0" in names(r.url) for r in (one, two)
        ):
            time.sleep(0.1)
        assert names(one.url) == names(two.url) == {"alpha-1.0.0", "beta-2.0.0"}
    for pod_tmp in (tmp_one, tmp_two):
        assert (pod_tmp / "index-cache.sqlite").is_file()
    assert not (data.state / "index-cache.sqlite").exists()
