"""Elastic Defend's protection artifacts across the gap: a loopback stand-in for
artifacts.security.elastic.co (`fleetgap serve --data` over files written here), `bundle
create` → `bundle load` → `fleetgap serve`, then a client doing what Endpoint does."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from pathlib import Path

import httpx
import pytest

from bundle.test_create import fleetgap
from bundle.tests_env import run_env
from defend_upstream import ONLY_91, ONLY_819, SHARED, artifact_url, publish, write_manifest
from fleetgap.pgp.keys import SecretKey

from serving import fleetgap_serve

VERSIONS = ("9.1.0", "8.19.4")


@pytest.fixture()
def upstream(tmp_path):
    """Both versions published; yields (data dir, base URL)."""
    data = tmp_path / "upstream"
    publish(data, "9.1.0", "1.0.100", {**SHARED, **ONLY_91})
    publish(data, "8.19.4", "1.0.100", {**SHARED, **ONLY_819})
    with fleetgap_serve("--data", str(data), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        yield data, s.url


@pytest.fixture(scope="module")
def signer(tmp_path_factory) -> tuple[SecretKey, Path, Path]:
    """The bundle signer: the key, its secret file for --sign-key, its public for --trust-key."""
    folder = tmp_path_factory.mktemp("signer")
    key = SecretKey.generate("bundle signer")
    key.write(folder / "signer.key", folder / "signer.asc")
    return key, folder / "signer.key", folder / "signer.asc"


def write_selection(path: Path, source: str) -> Path:
    path.write_text(
        f"protection_artifacts:\n  versions: [{', '.join(VERSIONS)}]\n  source: {source}\n"
    )
    return path


def endpoint_fetch(base: str, version: str, etag: str | None = None) -> tuple[dict, dict]:
    """What Endpoint does: the manifest zip, its manifest.json, every relative_url, each
    checked (encoded size and SHA-256, zlib, decoded size and SHA-256)."""
    url = f"{base}/downloads/endpoint/manifest/artifacts-{version}.zip"
    answer = httpx.get(url, headers={"If-None-Match": etag} if etag else {})
    if answer.status_code == 304:
        return {}, dict(answer.headers)
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    for name, entry in manifest["artifacts"].items():
        got = httpx.get(base + entry["relative_url"])
        assert got.status_code == 200, name
        assert len(got.content) == entry["encoded_size"]
        assert hashlib.sha256(got.content).hexdigest() == entry["encoded_sha256"]
        decoded = zlib.decompress(got.content)
        assert len(decoded) == entry["decoded_size"]
        assert hashlib.sha256(decoded).hexdigest() == entry["decoded_sha256"]
    return manifest, dict(answer.headers)


def test_create_load_serve_as_endpoint_fetches(upstream, tmp_path):
    data, url = upstream
    write_selection(tmp_path / "s.yaml", url)
    signer = SecretKey.generate("bundle signer")
    signer.write(tmp_path / "signer.key", tmp_path / "signer.asc")
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
        "--sign-key", "signer.key", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # 2 manifests + 4 distinct artifacts (2 shared, stored and carried once)
    assert json.loads(run.stdout)["files_in_bundle"] == 6
    inspect = json.loads(fleetgap("bundle", "inspect", "b.tar", "--json", cwd=tmp_path).stdout)
    carried = {f["path"]: f for f in inspect["files"]}
    shared = artifact_url("diagnostic-configuration-v1").lstrip("/")
    assert carried[shared]["verified_by"] == "defend-manifest-entry"
    assert carried[shared]["vouched_by"].startswith("downloads/endpoint/manifest/artifacts-")
    closed = tmp_path / "closed"
    closed.mkdir()
    run = fleetgap(
        "bundle", "load", "b.tar", "--data", str(closed), "--trust-key", "signer.asc",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    with fleetgap_serve("--data", str(closed), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        for version in VERSIONS:
            manifest, headers = endpoint_fetch(s.url, version)
            assert manifest["manifest_version"] == "1.0.100"
            etag = headers["etag"]
            served = httpx.get(f"{s.url}/downloads/endpoint/manifest/artifacts-{version}.zip")
            upstream_zip = data / f"downloads/endpoint/manifest/artifacts-{version}.zip"
            assert served.content == upstream_zip.read_bytes()  # byte for byte
            assert etag == f'"{hashlib.sha256(served.content).hexdigest()}"'
            assert "-" not in etag
            again, headers = endpoint_fetch(s.url, version, etag)
            assert again == {} and headers["etag"] == etag  # 304 Not Modified
        part = httpx.get(s.url + artifact_url("diagnostic-configuration-v1"),
                         headers={"Range": "bytes=0-9"})  # fmt: skip
        assert part.status_code == 206 and len(part.content) == 10
    logged = [json.loads(line) for line in s.log_text().splitlines() if '"http"' in line]
    statuses = {
        (r["url.path"], r["http.response.code"]) for r in logged if "url.path" in r
    }  # the same request log as every other file
    assert ("/downloads/endpoint/manifest/artifacts-9.1.0.zip", 304) in statuses


def test_etag_is_the_same_after_a_restart_and_on_another_copy(upstream, tmp_path):
    data, url = upstream
    path = "/downloads/endpoint/manifest/artifacts-9.1.0.zip"
    first = httpx.get(url + path).headers["etag"]
    copy = tmp_path / "copy"
    (copy / "downloads/endpoint/manifest").mkdir(parents=True)
    (copy / path.lstrip("/")).write_bytes((data / path.lstrip("/")).read_bytes())
    with fleetgap_serve("--data", str(copy), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        assert httpx.get(s.url + path).headers["etag"] == first


def _damage_artifact(data: Path) -> str:
    target = data / artifact_url("diagnostic-configuration-v1").lstrip("/")
    body = bytearray(target.read_bytes())
    body[5] ^= 1
    target.write_bytes(bytes(body))
    return "diagnostic-configuration-v1"


def _outside_downloads(data: Path) -> str:
    bad = {
        "relative_url": "/api/fleet/artifacts/evil",
        "compression_algorithm": "zlib",
        "encryption_algorithm": "none",
        "decoded_size": 1, "decoded_sha256": "0" * 64,
        "encoded_size": 1, "encoded_sha256": "0" * 64,
    }  # fmt: skip
    from defend_upstream import manifest_zip

    write_manifest(data, "9.1.0", manifest_zip("1.0.101", {"evil-v1": bad}))
    return "/api/fleet/artifacts/evil"


def _missing_artifact(data: Path) -> str:
    (data / artifact_url("production-rules-linux-v1").lstrip("/")).unlink()
    return "production-rules-linux-v1"


@pytest.mark.parametrize("spoil", [_damage_artifact, _outside_downloads, _missing_artifact])
def test_bad_upstream_stops_create_naming_it(upstream, tmp_path, spoil):
    data, url = upstream
    named = spoil(data)
    write_selection(tmp_path / "s.yaml", url)
    run = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
                   cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1
    refusals = [line for line in run.stderr.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 1 and named in refusals[0], run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "b.tar").exists()


def test_delta_carries_only_the_changed_artifact_and_its_manifest(upstream, tmp_path, signer):
    data, url = upstream
    _, secret, public = signer
    write_selection(tmp_path / "s.yaml", url)
    run = fleetgap("bundle", "create", "s.yaml", "--out", "full.tar", "--cache", "cache",
                   "--sign-key", str(secret), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    closed = tmp_path / "closed"
    closed.mkdir()
    load = ("bundle", "load", "--data", str(closed), "--trust-key", str(public))
    assert fleetgap(*load[:2], "full.tar", *load[2:], cwd=tmp_path).returncode == 0
    receipt = fleetgap("bundle", "receipt", "--data", str(closed), cwd=tmp_path)
    (tmp_path / "receipt.json").write_text(receipt.stdout)
    # upstream: one artifact of 9.1.0 changes, so does its manifest; 8.19.4 stays
    publish(data, "9.1.0", "1.0.101", {**SHARED, "production-rules-linux-v1": b"new rule" * 99})
    planned = fleetgap("bundle", "plan", "s.yaml", "--since", "receipt.json", "--json",
                       cwd=tmp_path)  # fmt: skip
    new = sorted(f["path"] for f in json.loads(planned.stdout)["files"] if f["new"])
    assert new == [
        "downloads/endpoint/artifacts/production-rules-linux-v1.zlib",
        "downloads/endpoint/manifest/artifacts-9.1.0.zip",
    ]
    run = fleetgap("bundle", "create", "s.yaml", "--out", "delta.tar", "--cache", "cache",
                   "--since", "receipt.json", "--json", "--sign-key", str(secret),
                   cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    inspect = json.loads(fleetgap("bundle", "inspect", "delta.tar", "--json", cwd=tmp_path).stdout)
    carried = sorted(f["path"] for f in inspect["files"] if f["in_bundle"])
    assert carried == [
        "downloads/endpoint/artifacts/production-rules-linux-v1.zlib",
        "downloads/endpoint/manifest/artifacts-9.1.0.zip",
    ]
    with fleetgap_serve("--data", str(closed), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        before, headers = endpoint_fetch(s.url, "9.1.0")
        assert before["manifest_version"] == "1.0.100"
        # loaded while serving: the next hourly check sees a new ETag and the new manifest
        run = fleetgap(*load[:2], "delta.tar", *load[2:], cwd=tmp_path)
        assert run.returncode == 0, run.stderr + run.stdout
        manifest, after = endpoint_fetch(s.url, "9.1.0", headers["etag"])
        assert manifest["manifest_version"] == "1.0.101" and after["etag"] != headers["etag"]
        assert endpoint_fetch(s.url, "8.19.4")[0]["manifest_version"] == "1.0.100"


def test_plan_lists_each_version_manifest_and_artifacts_with_sizes(upstream, tmp_path):
    data, url = upstream
    write_selection(tmp_path / "s.yaml", url)
    run = fleetgap("bundle", "plan", "s.yaml", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    files = {f["path"]: f for f in json.loads(run.stdout)["files"]}
    counts = json.loads(run.stdout)["counts"]
    assert counts == {"key": 0, "package": 0, "artifact": 0, "defend-manifest": 2,
                      "protection-artifact": 4}  # fmt: skip
    for version in VERSIONS:
        path = f"downloads/endpoint/manifest/artifacts-{version}.zip"
        assert files[path]["kind"] == "defend-manifest"
        assert files[path]["size"] == (data / path).stat().st_size
    shared = files[artifact_url("diagnostic-configuration-v1").lstrip("/")]
    assert shared["kind"] == "protection-artifact"
    assert shared["endpoint_versions"] == list(VERSIONS)
    assert shared["size"] == (data / shared["path"]).stat().st_size
    only = files[artifact_url("production-rules-linux-v1").lstrip("/")]
    assert only["endpoint_versions"] == ["9.1.0"]
    assert len(files) == 6
    text = fleetgap("bundle", "plan", "s.yaml", cwd=tmp_path).stdout
    assert "2 Defend manifests (2 new)" in text and "4 protection artifacts (4 new)" in text
    _missing_artifact(data)  # the source lost one: plan says so before anything is fetched
    run = fleetgap("bundle", "plan", "s.yaml", cwd=tmp_path)
    assert run.returncode == 1
    (problem,) = [line for line in run.stderr.splitlines() if line.startswith("PROBLEM")]
    assert "production-rules-linux-v1.zlib" in problem and "404" in problem


def test_manifest_signature_checked_with_the_selection_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = tmp_path / "upstream"
    publish(data, "9.1.0", "1.0.5", SHARED, sign_with=signing)
    for name, key in (("right.pem", signing), ("wrong.pem", other)):
        (tmp_path / name).write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    with fleetgap_serve("--data", str(data), env=run_env(), cwd=tmp_path, log_dir=tmp_path) as s:
        for name, code in (("right.pem", 0), ("wrong.pem", 1)):
            (tmp_path / "s.yaml").write_text(
                "protection_artifacts:\n  versions: [9.1.0]\n"
                f"  source: {s.url}\n  public_key: {name}\n"
            )
            out = f"{name}.tar"
            run = fleetgap("bundle", "create", "s.yaml", "--out", out, "--cache", "c",
                           cwd=tmp_path)  # fmt: skip
            assert run.returncode == code, run.stderr
            assert (tmp_path / out).exists() == (code == 0)
    assert "manifest.sig does not verify" in run.stderr


def test_closed_side_refuses_an_artifact_its_manifest_does_not_list(upstream, tmp_path, signer):
    """A bundle whose manifest vouches for an artifact with another SHA-256 than the Defend
    manifest carried with it: `bundle verify` and `bundle load` refuse it, nothing placed."""
    from fleetgap.bundle.manifest import FileEntry
    from fleetgap.bundle.writer import write_bundle
    from fleetgap.store import DataDir

    data, url = upstream
    write_selection(tmp_path / "s.yaml", url)
    assert fleetgap("bundle", "plan", "s.yaml", cwd=tmp_path).returncode == 0
    cache = DataDir(tmp_path / "forged")
    manifest = "downloads/endpoint/manifest/artifacts-9.1.0.zip"
    artifact = artifact_url("diagnostic-configuration-v1").lstrip("/")
    (cache.root / artifact).parent.mkdir(parents=True)
    (cache.root / manifest).parent.mkdir(parents=True)
    (cache.root / manifest).write_bytes((data / manifest).read_bytes())
    forged = zlib.compress(b"not what the manifest lists")
    (cache.root / artifact).write_bytes(forged)
    entries = [
        FileEntry(manifest, (data / manifest).stat().st_size,
                  hashlib.sha256((data / manifest).read_bytes()).hexdigest(),
                  "defend-manifest", None),
        FileEntry(artifact, len(forged), hashlib.sha256(forged).hexdigest(),
                  "defend-manifest-entry", None, vouched_by=manifest),
    ]  # fmt: skip
    key, _, public = signer
    write_bundle(cache, entries, tmp_path / "forged.tar", selection={}, sign_key=key)
    closed = tmp_path / "closed"
    closed.mkdir()
    run = fleetgap("bundle", "load", "forged.tar", "--data", str(closed), "--trust-key",
                   str(public), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert f"{artifact}: not listed with this size and SHA-256" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (closed / artifact).exists() and not (closed / manifest).exists()


def test_closed_side_decodes_each_artifact_and_refuses_a_wrong_decoded_digest(tmp_path, signer):
    """The Defend manifest's encoded digest matches, its decoded one does not: Endpoint would
    reject the artifact after download; `bundle load` refuses it first."""
    from defend_upstream import entry_for, manifest_zip
    from fleetgap.bundle.manifest import FileEntry
    from fleetgap.bundle.writer import write_bundle
    from fleetgap.store import DataDir

    entry, encoded = entry_for("rules-v1", b"the real rules" * 100)
    entry["decoded_sha256"] = hashlib.sha256(b"something else").hexdigest()
    zipped = manifest_zip("1.0.0", {"rules-v1": entry})
    cache = DataDir(tmp_path / "forged")
    manifest = "downloads/endpoint/manifest/artifacts-9.1.0.zip"
    artifact = entry["relative_url"].lstrip("/")
    for path, body in ((manifest, zipped), (artifact, encoded)):
        (cache.root / path).parent.mkdir(parents=True, exist_ok=True)
        (cache.root / path).write_bytes(body)
    entries = [
        FileEntry(manifest, len(zipped), hashlib.sha256(zipped).hexdigest(), "defend-manifest",
                  None),
        FileEntry(artifact, len(encoded), hashlib.sha256(encoded).hexdigest(),
                  "defend-manifest-entry", None, vouched_by=manifest),
    ]  # fmt: skip
    key, _, public = signer
    write_bundle(cache, entries, tmp_path / "forged.tar", selection={}, sign_key=key)
    closed = tmp_path / "closed"
    closed.mkdir()
    run = fleetgap("bundle", "load", "forged.tar", "--data", str(closed), "--trust-key",
                   str(public), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert f"{artifact}: decodes to 1400 bytes" in run.stderr and "Traceback" not in run.stderr
    assert not (closed / artifact).exists()


def test_unsigned_bundle_cannot_bring_defend_files(upstream, tmp_path):
    """Nothing on the closed side vouches for a Defend manifest but the bundle's signature:
    an unsigned bundle with one is refused, even with --allow-unsigned."""
    data, url = upstream
    write_selection(tmp_path / "s.yaml", url)
    run = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "c", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    closed = tmp_path / "closed"
    closed.mkdir()
    run = fleetgap("bundle", "load", "b.tar", "--data", str(closed), "--allow-unsigned",
                   cwd=tmp_path)  # fmt: skip
    assert run.returncode == 1
    assert "Elastic Defend's files cross only in a signed bundle" in run.stderr
    assert not (closed / "downloads").exists() or not any((closed / "downloads").rglob("*.zip"))


def test_load_never_leaves_a_held_manifest_of_another_version_incomplete(
    upstream, tmp_path, signer
):
    """A later bundle for 9.1.0 only, whose manifest gives a shared artifact new content at
    the same relative_url: replacing it would break 8.19.4's manifest, still served."""
    data, url = upstream
    _, secret, public = signer
    write_selection(tmp_path / "s.yaml", url)
    run = fleetgap("bundle", "create", "s.yaml", "--out", "full.tar", "--cache", "cache",
                   "--sign-key", str(secret), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    closed = tmp_path / "closed"
    closed.mkdir()
    load = ("bundle", "load", "--data", str(closed), "--trust-key", str(public))
    assert fleetgap(*load[:2], "full.tar", *load[2:], cwd=tmp_path).returncode == 0
    changed = {**SHARED, "diagnostic-configuration-v1": b"new diagnostics" * 99}
    publish(data, "9.1.0", "1.0.101", {**changed, **ONLY_91})
    (tmp_path / "only91.yaml").write_text(
        f"protection_artifacts:\n  versions: [9.1.0]\n  source: {url}\n"
    )
    run = fleetgap("bundle", "create", "only91.yaml", "--out", "b2.tar", "--cache", "cache",
                   "--sign-key", str(secret), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    shared = closed / artifact_url("diagnostic-configuration-v1").lstrip("/")
    before = shared.read_bytes()
    run = fleetgap(*load[:2], "b2.tar", *load[2:], cwd=tmp_path)
    assert run.returncode != 0, "8.19.4's manifest now lists content that is no longer served"
    assert "artifacts-8.19.4.zip" in run.stderr
    assert shared.read_bytes() == before


def test_a_relative_url_never_replaces_a_file_the_cache_holds_for_something_else(tmp_path):
    """A manifest naming the path of an agent binary the cache holds (verified by its .asc)
    must not overwrite it there: no bundle, and the cached binary unchanged."""
    from defend_upstream import entry_for, manifest_zip

    binary = "downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
    upstream = tmp_path / "upstream"
    entry, encoded = entry_for("evil", b"not the agent" * 100)
    entry["relative_url"] = "/" + binary
    (upstream / binary).parent.mkdir(parents=True)
    (upstream / binary).write_bytes(encoded)
    write_manifest(upstream, "9.1.0", manifest_zip("1.0.1", {"evil": entry}))
    cached = tmp_path / "cache" / binary
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"the genuine agent binary")
    with fleetgap_serve("--data", str(upstream), env=run_env(), cwd=tmp_path,
                        log_dir=tmp_path) as s:  # fmt: skip
        (tmp_path / "s.yaml").write_text(
            f"protection_artifacts:\n  versions: [9.1.0]\n  source: {s.url}\n"
        )
        run = fleetgap("bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
                       cwd=tmp_path)  # fmt: skip
    # refused where agent binaries live whatever the cache holds; a cache file elsewhere that
    # no Defend manifest put there is refused too ("no Defend manifest put there")
    assert run.returncode != 0 and "points where agent binaries live" in run.stderr, run.stderr
    assert cached.read_bytes() == b"the genuine agent binary"
    assert not (tmp_path / "b.tar").exists()
