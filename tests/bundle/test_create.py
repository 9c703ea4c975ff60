"""The connected side against the loopback public side: `fleetgap distribution`,
`bundle plan` and `bundle create` (spec: epr-api §12 for the selection's package rules)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from bundle.public_side import AGENT
from bundle.tests_env import run_env
from fleetgap.bundle.reader import BundleReader, find_parts
from fleetgap.pgp.keys import SecretKey
from fleetgap.pgp.signatures import sign_bytes

from serving import fleetgap_serve

# matrix 9.1.0 × {apache, system} → apache 2.2.0, system 1.5.0; 8.15.5 → apache 2.1.0,
# system 1.4.0; pinned nginx 1.0.0 (no query asks for nginx).
PACKAGES = ["apache-2.1.0", "apache-2.2.0", "nginx-1.0.0", "system-1.4.0", "system-1.5.0"]


def read_manifest(parts: list[Path]):
    with BundleReader(find_parts(parts)) as reader:
        return reader.manifest


def fleetgap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetgap", *args],
        capture_output=True, text=True, env=run_env(), cwd=cwd, timeout=180,
    )  # fmt: skip


def selection(public, path: Path, queries: str = "  - package: apache\n  - package: system\n"):
    path.write_text(
        f"address: {public.url}\n"
        "matrix:\n  - kibana.version: 9.1.0\n  - kibana.version: 8.15.5\n"
        f"queries:\n{queries}"
        "packages:\n  - name: nginx\n    version: 1.0.0\n"
        "artifacts:\n"
        f"  - source: {public.downloads}\n"
        "    versions: [9.1.0]\n    products: [elastic-agent]\n"
        "    platforms: [linux-x86_64]\n    package_types: [tar.gz]\n"
        "keys:\n  - file: GPG-KEY-elastic-agent\n"
        f"    source: {public.url}/GPG-KEY-elastic-agent\n"
        f"    fingerprint: {public.key.fingerprint}\n"
    )
    return path


def expected_paths() -> set[str]:
    packages = {f"packages/{p}.zip{s}" for p in PACKAGES for s in ("", ".sig")}
    artifact = {f"downloads/{AGENT}{s}" for s in ("", ".sha512", ".asc")}
    return packages | artifact | {"keys/GPG-KEY-elastic-agent"}


def test_distribution_prints_downloads_flat_and_skips_what_is_valid(public, tmp_path):
    out = tmp_path / "dist"
    (tmp_path / "d.yaml").write_text(
        f"address: {public.url}\n"
        "queries:\n  - package: apache\n    all: true\n    spec.min: 3.0\n"
        "packages:\n  - name: apache\n    version: 2.1.0\n"
        f"actions:\n  - print:\n  - download:\n      destination: {out}\n"
    )
    key = str(public.key_file)
    first = fleetgap("distribution", "d.yaml", "--key", key, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["-  apache 2.1.0", "-  apache 2.2.0", "2 packages total"]
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"apache-{v}.zip{s}" for v in ("2.1.0", "2.2.0") for s in ("", ".sig")]
    for name in ("apache-2.1.0.zip", "apache-2.2.0.zip.sig"):
        assert (out / name).read_bytes() == (public.data / "packages" / name).read_bytes()
    second = fleetgap("distribution", "d.yaml", "--key", key, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 downloaded, 2 already there and valid" in second.stderr


def test_distribution_refuses_packages_no_trusted_key_signed(public, tmp_path):
    other = tmp_path / "other.asc"
    from fleetgap.pgp.keys import SecretKey

    other.write_text(SecretKey.generate("someone else").public_key.armored)
    (tmp_path / "d.yaml").write_text(
        f"address: {public.url}\nqueries:\n  - package: nginx\n"
        f"actions:\n  - download:\n      destination: {tmp_path / 'dist'}\n"
    )
    run = fleetgap("distribution", "d.yaml", "--key", str(other), cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("error: 1 package(s) failed")
    assert not (tmp_path / "dist" / "nginx-2.0.0.zip").exists()


@pytest.fixture(scope="module")
def created(public, tmp_path_factory):
    work = tmp_path_factory.mktemp("create")
    selection(public, work / "s.yaml")
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
        "--key", str(public.key_file), "--json", cwd=work,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return work, json.loads(run.stdout)


def test_create_writes_a_tar_whose_manifest_lists_every_file_verified(public, created):
    work, report = created
    assert report["parts"] == [str(work / "b.tar")] or report["parts"] == ["b.tar"]
    with tarfile.open(work / "b.tar", "r|") as tar:
        first = tar.next()
        assert first is not None and first.name == "manifest.json"
        manifest = json.loads(tar.extractfile(first).read())
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == expected_paths()
    fingerprint = public.key.fingerprint
    for path, entry in files.items():
        source = public.data / path
        assert entry["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest(), path
        assert entry["size"] == source.stat().st_size
        assert entry["in_bundle"] is True
    assert files[f"packages/{PACKAGES[0]}.zip"]["verified_by"] == "openpgp-detached"
    assert files[f"packages/{PACKAGES[0]}.zip"]["key_fingerprint"] == fingerprint
    assert files[f"downloads/{AGENT}"]["verified_by"] == "sha512+openpgp-detached"
    assert files[f"downloads/{AGENT}"]["key_fingerprint"] == fingerprint
    assert files[f"downloads/{AGENT}.sha512"]["verified_by"] == "sidecar"
    assert files["keys/GPG-KEY-elastic-agent"]["verified_by"] == "pinned-fingerprint"
    assert files["keys/GPG-KEY-elastic-agent"]["key_fingerprint"] == fingerprint
    assert manifest["selection"]["address"] == public.url
    assert manifest["delta"] is False


def test_the_cache_is_a_data_dir(public, created):
    work, _ = created
    cache = work / "cache"
    for path in expected_paths():
        assert (cache / path).read_bytes() == (public.data / path).read_bytes()
    run = fleetgap("bundle", "receipt", "--data", "cache", cwd=work)
    assert run.returncode == 0, run.stderr
    held = {f["path"] for f in json.loads(run.stdout)["files"]}
    assert held == expected_paths()


def write_receipt_without_system_150(work: Path) -> None:
    """A receipt of a closed side that holds what the cache holds, minus one package."""
    receipt = json.loads(fleetgap("bundle", "receipt", "--data", "cache", cwd=work).stdout)
    receipt["files"] = [f for f in receipt["files"] if "system-1.5.0" not in f["path"]]
    (work / "receipt.json").write_text(json.dumps(receipt))


def test_plan_counts_and_new_against_a_receipt(public, created):
    work, _ = created
    counts = {"key": 1, "package": 5, "artifact": 1}
    run = fleetgap("bundle", "plan", "s.yaml", "--json", cwd=work)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["counts"] == counts
    assert {f["path"] for f in plan["files"]} == expected_paths()
    assert plan["new_files"] == len(expected_paths())
    assert plan["bytes"] == sum((public.data / p).stat().st_size
                                for p in expected_paths())  # fmt: skip
    write_receipt_without_system_150(work)
    run = fleetgap("bundle", "plan", "s.yaml", "--since", "receipt.json", "--json", cwd=work)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    new = {f["path"] for f in plan["files"] if f["new"]}
    assert new == {"packages/system-1.5.0.zip", "packages/system-1.5.0.zip.sig"}


def test_since_makes_a_delta_carrying_only_what_is_new(public, created):
    work, _ = created
    write_receipt_without_system_150(work)
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "delta.tar", "--cache", "cache",
        "--since", "receipt.json", "--key", str(public.key_file), "--json", cwd=work,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = read_manifest([work / "delta.tar"])
    carried = {e.path for e in result.files if e.in_bundle}
    assert carried == {"packages/system-1.5.0.zip", "packages/system-1.5.0.zip.sig"}
    assert {e.path for e in result.files} == expected_paths()
    assert result.delta is True


def test_split_writes_parts(public, created):
    work, _ = created
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "split.tar", "--cache", "cache",
        "--split", "1MiB", "--key", str(public.key_file), "--json", cwd=work,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    parts = sorted(work.glob("split.tar.*"))
    assert len(parts) >= 3  # the 2.5 MB agent alone spans three 1 MiB parts
    # "at most SIZE": the trailer counts; every part but the last is exactly 1 MiB
    assert [p.stat().st_size for p in parts[:-1]] == [1 << 20] * (len(parts) - 1)
    assert parts[-1].stat().st_size <= 1 << 20
    result = read_manifest(parts)
    assert {e.path for e in result.files} == expected_paths()


@pytest.fixture
def tampered_sig(public):
    """zeta's upstream .sig replaced by a valid signature over other bytes, restored after."""
    sig = public.data / "packages" / "zeta-1.0.0.zip.sig"
    original = sig.read_bytes()
    sig.write_bytes(sign_bytes(b"not the zip", public.key))
    yield sig
    sig.write_bytes(original)


def test_a_tampered_signature_excludes_the_package_and_fails(public, tmp_path, tampered_sig):
    selection(public, tmp_path / "s.yaml", queries="  - package: zeta\n")
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
        "--key", str(public.key_file), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1
    refused = [line for line in run.stderr.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 1 and "zeta" in refused[0], run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: 1 file(s) did not verify")
    assert not (tmp_path / "b.tar").exists()
    assert not (tmp_path / "cache" / "packages" / "zeta-1.0.0.zip").exists()
    assert (tmp_path / "cache" / "packages" / "nginx-1.0.0.zip").is_file()  # the rest stays


def test_the_cache_serves_as_a_staging_registry(public, created):
    work, _ = created
    with fleetgap_serve("--data", str(work / "cache"), env=run_env(), cwd=work, log_dir=work) as s:
        found = httpx.get(f"{s.url}/search?kibana.version=9.1.0").json()
        agent = httpx.get(f"{s.url}/downloads/{AGENT}")
    # 9.1.0: of what was staged, apache 2.2.0 and system 1.5.0 are the newest that fit
    assert sorted((p["name"], p["version"]) for p in found) == [
        ("apache", "2.2.0"),
        ("system", "1.5.0"),
    ]
    assert agent.status_code == 200
    assert agent.content == (public.data / "downloads" / AGENT).read_bytes()


def test_create_without_a_sign_key_warns_that_the_closed_side_will_refuse_it(public, tmp_path):
    selection(public, tmp_path / "s.yaml", queries="")
    run = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
        "--key", str(public.key_file), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: no --sign-key: the closed side refuses an unsigned bundle (`bundle load` "
        "needs --allow-unsigned); sign it with a key from `fleetgap keys generate`"
    ]
    key = SecretKey.generate("bundle signer <signer@example.invalid>")
    (tmp_path / "signer.key").write_text(key.armored)
    signed = fleetgap(
        "bundle", "create", "s.yaml", "--out", "signed.tar", "--cache", "cache",
        "--key", str(public.key_file), "--sign-key", "signer.key", cwd=tmp_path,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert "warning:" not in signed.stderr
