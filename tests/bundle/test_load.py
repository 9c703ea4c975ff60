"""`fleetgap bundle verify|load|receipt` on bundles written by write_bundle from a test cache,
with real OpenPGP keys; every refusal leaves the data directory exactly as it was."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.bundle.conftest import ARTIFACT, add_artifact, add_package, entries, listing, make_cache

from fleetgap.bundle.manifest import FileEntry, Manifest, encode_manifest
from fleetgap.bundle.parts import writing
from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.store import DataDir

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def cache(tmp_path_factory, file_signer) -> DataDir:
    return make_cache(tmp_path_factory.mktemp("cache"), file_signer)


@pytest.fixture(scope="module")
def signed(tmp_path_factory, cache, file_signer, bundle_signer) -> Path:
    out = tmp_path_factory.mktemp("out") / "full.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=10,
                 sign_key=bundle_signer)  # fmt: skip
    return out


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def load_args(bundle, data, trust_files, *extra):
    return ("bundle", "load", bundle, "--data", data, "--trust-key", trust_files["signer"], *extra)


def test_round_trip_into_an_empty_dir(signed, cache, tmp_path, trust_files):
    verified = run("bundle", "verify", signed, "--trust-key", trust_files["signer"])
    assert verified.exit_code == 0, verified.output
    assert "OpenPGP detached signature packages/nginx-1.2.0.zip.sig" in verified.output
    assert f"SHA-512 as {ARTIFACT}.sha512 gives" in verified.output
    data = tmp_path / "data"
    result = run(*load_args(signed, data, trust_files))
    assert result.exit_code == 0, result.output
    assert listing(data) == listing(cache.root)
    receipts = list((data / "state" / "receipts").glob("*.json"))
    assert [p.name[:12] for p in receipts] == ["000000000010"]
    assert (data / "state" / "generation").is_file()
    audit = [json.loads(line) for line in (data / "state" / "audit.jsonl").read_text().splitlines()]
    assert audit[0]["signer"] and audit[0]["checks"]
    again = run(*load_args(signed, data, trust_files))
    assert again.exit_code == 0 and "already loaded" in again.output
    assert len((data / "state" / "audit.jsonl").read_text().splitlines()) == 1
    receipt = run("bundle", "receipt", "--data", data)
    holding = {f["path"]: f["sha256"] for f in json.loads(receipt.output)["files"]}
    assert holding == listing(cache.root)


def _offset(blob: bytes, marker: bytes, plus: int) -> int:
    return blob.index(marker) + plus


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("manifest", "manifest"),
        ("signature", "signature"),
        ("package", "packages/nginx-1.2.0.zip"),
        ("artifact", ARTIFACT),
        ("last byte", "trailer"),
    ],
)
def test_a_changed_byte_is_refused(signed, tmp_path, trust_files, where, expected):
    blob = bytearray(signed.read_bytes())
    position = {
        "manifest": lambda: _offset(blob, b'"sequence": 10', 13),
        "signature": lambda: _offset(blob, b"-----BEGIN PGP SIGNATURE-----", 80),
        "package": lambda: _offset(blob, b"PK\x03\x04", 40),
        "artifact": lambda: _artifact_offset(blob),
        "last byte": lambda: len(blob) - 2,
    }[where]()
    blob[position] ^= 0x01
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(bytes(blob))
    data = tmp_path / "data"
    (data / "packages").mkdir(parents=True)
    (data / "packages" / "mine.txt").write_text("operator's own file")
    before = listing(data)
    verified = run("bundle", "verify", damaged, "--trust-key", trust_files["signer"])
    assert verified.exit_code == 1
    # a small bundle is one read: its trailer's SHA-256 names the damaged file first
    named = (expected, "damaged.bundle: damaged")
    assert any(name in verified.output.splitlines()[-1] for name in named), verified.output
    loaded = run(*load_args(damaged, data, trust_files))
    assert loaded.exit_code == 1 and loaded.output.startswith("error: ")
    assert any(name in loaded.output for name in named)
    assert listing(data) == before
    assert not list((data / "state" / "incoming").glob("*/*"))


def _artifact_offset(blob: bytearray) -> int:
    import hashlib

    return blob.index(hashlib.sha512(ARTIFACT.encode()).digest()) + 1000


def test_unsigned_needs_allow_unsigned(cache, file_signer, tmp_path, trust_files):
    out = tmp_path / "unsigned.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=5)
    data = tmp_path / "data"
    refused = run("bundle", "load", out, "--data", data)
    assert refused.exit_code == 1 and "not signed" in refused.output
    assert listing(data) == {}
    # unsigned: the carried key is not vouched for; the file key must be given
    nokey = run("bundle", "load", out, "--data", data, "--allow-unsigned")
    assert nokey.exit_code == 1 and "is not trusted: the bundle is unsigned" in nokey.output
    ok = run("bundle", "load", out, "--data", data, "--allow-unsigned", "--key",
             trust_files["files"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert listing(data) == listing(cache.root)


def test_untrusted_signer_is_refused(signed, tmp_path, trust_files):
    data = tmp_path / "data"
    result = run("bundle", "load", signed, "--data", data, "--trust-key", trust_files["stranger"])
    assert result.exit_code == 1 and "does not verify with the trusted signer" in result.output
    assert listing(data) == {}


def test_a_secret_key_given_as_trust_key_is_refused(signed, tmp_path, trust_files):
    """The closed side needs the signer's public key only. A secret key file given as
    --trust-key (the README's own names mix them: `--secret signer.asc`, `--trust-key
    bundle-signer.asc`) was taken without a word: the bundle signing key crossed the gap and,
    through deploy/bundles/, into an image layer."""
    data = tmp_path / "data"
    secret = trust_files["signer-secret"]
    for command in (("bundle", "verify", signed), ("bundle", "load", signed, "--data", data)):
        result = run(*command, "--trust-key", secret)
        assert result.exit_code == 1, result.output
        (line,) = result.output.splitlines()
        assert line.startswith(f"error: {secret} holds a secret key") and "public" in line
    assert listing(data) == {}


def test_signers_put_in_the_data_dir_are_trusted(signed, tmp_path, trust_files):
    data = tmp_path / "data"
    (data / "state" / "bundle-signers").mkdir(parents=True)
    (data / "state" / "bundle-signers" / "ops.asc").write_bytes(trust_files["signer"].read_bytes())
    result = run("bundle", "load", signed, "--data", data)
    assert result.exit_code == 0, result.output


def test_downgrade_refused_unless_allowed(tmp_path, cache, file_signer, bundle_signer, trust_files):
    newer, older = tmp_path / "newer.bundle", tmp_path / "older.bundle"
    files = entries(cache, file_signer)
    write_bundle(cache, files, newer, selection={}, sequence=20, sign_key=bundle_signer)
    write_bundle(cache, files, older, selection={}, sequence=15, sign_key=bundle_signer)
    data = tmp_path / "data"
    assert run(*load_args(newer, data, trust_files)).exit_code == 0
    refused = run(*load_args(older, data, trust_files))
    assert refused.exit_code == 1 and "downgrade" in refused.output
    allowed = run(*load_args(older, data, trust_files, "--allow-downgrade"))
    assert allowed.exit_code == 0, allowed.output


def test_delta(tmp_path, file_signer, bundle_signer, trust_files):
    cache = make_cache(tmp_path / "cache", file_signer)
    full = tmp_path / "full.bundle"
    summary = write_bundle(cache, entries(cache, file_signer), full, selection={}, sequence=1,
                           sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    assert run(*load_args(full, data, trust_files)).exit_code == 0
    receipt = json.loads(run("bundle", "receipt", "--data", data).output)
    have = {f["path"]: f["sha256"] for f in receipt["files"]}
    # upstream gains one package version and one artifact version
    for name in ("apache", "mysql", "redis", "system"):
        add_package(cache, file_signer, name, "1.0.0")
    add_package(cache, file_signer, "nginx", "1.3.0")
    add_artifact(cache, file_signer, ARTIFACT.replace("9.1.0", "9.1.1"))
    delta = tmp_path / "delta.bundle"
    write_bundle(cache, entries(cache, file_signer, have), delta, selection={}, sequence=2,
                 sign_key=bundle_signer, base=receipt)  # fmt: skip
    new_full = tmp_path / "new-full.bundle"
    write_bundle(cache, entries(cache, file_signer), new_full, selection={}, sequence=2,
                 sign_key=bundle_signer)  # fmt: skip
    assert delta.stat().st_size < new_full.stat().st_size * 0.6
    # where a file it relies on is missing: refused, naming the file and its bundle
    empty = tmp_path / "empty"
    refused = run(*load_args(delta, empty, trust_files))
    assert refused.exit_code == 1
    assert "packages/nginx-1.2.0.zip is missing" in refused.output
    assert "brought by no bundle loaded here" in refused.output
    changed = tmp_path / "changed"
    assert run(*load_args(full, changed, trust_files)).exit_code == 0
    (changed / "packages" / "nginx-1.2.0.zip").write_bytes(b"changed")
    before = listing(changed)
    refused = run(*load_args(delta, changed, trust_files))
    assert refused.exit_code == 1
    assert f"packages/nginx-1.2.0.zip is different (brought by bundle {summary.bundle_id}" in (
        refused.output
    )
    assert listing(changed) == before
    applied = run(*load_args(delta, data, trust_files))
    assert applied.exit_code == 0, applied.output
    assert listing(data) == listing(cache.root)
    from_full = tmp_path / "from-full"
    assert run(*load_args(new_full, from_full, trust_files)).exit_code == 0
    assert listing(data) == listing(from_full)


def test_a_different_file_at_the_same_path_is_refused(signed, tmp_path, trust_files):
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "GPG-KEY-elastic-agent").write_text("operator's key")
    before = listing(data)
    result = run(*load_args(signed, data, trust_files))
    assert result.exit_code == 1 and "keys/GPG-KEY-elastic-agent" in result.output
    assert listing(data) == before


# -- hostile tars, built by hand ------------------------------------------------------------


def _hostile(path: Path, cache: DataDir, file_signer, extra) -> Path:
    """An unsigned bundle: the real manifest, then members `extra(tar)` adds."""
    manifest = Manifest(bundle_id="ab" * 16, created="2026-01-01T00:00:00Z", sequence=1,
                        fleetgap_version="0", selection={},
                        files=(FileEntry("packages/k", 3, "0" * 64, "none", None),))  # fmt: skip
    body = encode_manifest(manifest)
    with writing(path, manifest.bundle_id, None) as stream:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("manifest.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
            extra(tar)
        stream.finish()
    return path


def _file(name: str, data: bytes = b"abc", kind: bytes = tarfile.REGTYPE, link: str = ""):
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    return add


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (_file("../../etc/passwd"), "'..' path"),
        (_file("/etc/passwd"), "absolute"),
        (_file("packages/k", kind=tarfile.SYMTYPE, link="/etc/passwd"), "is a link"),
        (_file("packages/k", kind=tarfile.LNKTYPE, link="manifest.json"), "is a link"),
        (_file("packages/k", kind=tarfile.CHRTYPE), "not a regular file"),
        (_file("packages/k", kind=tarfile.FIFOTYPE), "not a regular file"),
        (_file("packages/other"), "not in the manifest"),
        (_file("manifest.json"), "appears twice"),
        (_file("packages/k", b"abcd"), "4 bytes, the manifest says 3"),
        # (a changed byte of a file the manifest lists: the tamper tests, on signed bundles)
        (_file("packages/k", b"xyz"), "verified by nothing, in an unsigned bundle"),
    ],
)
def test_hostile_members_are_refused(tmp_path, cache, file_signer, extra, expected):
    bundle = _hostile(tmp_path / "hostile.bundle", cache, file_signer, extra)
    data = tmp_path / "data"
    result = run("bundle", "load", bundle, "--data", data, "--allow-unsigned")
    assert result.exit_code == 1 and expected in result.output, result.output
    assert listing(data) == {}


def test_manifest_not_first_is_refused(tmp_path, cache, file_signer):
    path = tmp_path / "b.bundle"
    with writing(path, "cd" * 16, None) as stream:
        with tarfile.open(fileobj=stream, mode="w|") as tar:
            _file("packages/k")(tar)
        stream.finish()
    result = run("bundle", "verify", path, "--allow-unsigned")
    assert result.exit_code == 1 and "not manifest.json" in result.output


# -- split parts ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split(tmp_path_factory, cache, file_signer, bundle_signer) -> list[Path]:
    out = tmp_path_factory.mktemp("split") / "b.bundle"
    summary = write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=3,
                           sign_key=bundle_signer, split=100_000)  # fmt: skip
    return summary.parts


def test_split_parts_load(split, tmp_path, trust_files, cache):
    assert len(split) >= 3
    result = run(*load_args(split[0].with_suffix(""), tmp_path / "data", trust_files))
    assert result.exit_code == 0, result.output
    assert listing(tmp_path / "data") == listing(cache.root)


def test_missing_truncated_and_mixed_parts(split, signed, tmp_path, trust_files):
    missing = run("bundle", "verify", split[0], split[2], "--trust-key", trust_files["signer"])
    assert missing.exit_code == 1 and f"missing: {split[1]}" in missing.output
    truncated = tmp_path / split[1].name
    truncated.write_bytes(split[1].read_bytes()[:-1000])
    result = run("bundle", "verify", split[0], truncated, *split[2:], "--trust-key",
                 trust_files["signer"])  # fmt: skip
    assert result.exit_code == 1 and str(truncated) in result.output
    mixed = run("bundle", "verify", split[0], signed, "--trust-key", trust_files["signer"])
    assert mixed.exit_code == 1 and "two different bundles" in mixed.output
    damaged = tmp_path / "damaged" / split[1].name
    damaged.parent.mkdir()
    blob = bytearray(split[1].read_bytes())
    blob[5000] ^= 1
    damaged.write_bytes(bytes(blob))
    result = run("bundle", "verify", split[0], damaged, *split[2:], "--trust-key",
                 trust_files["signer"])  # fmt: skip
    assert result.exit_code == 1 and f"{damaged}: damaged" in result.output


# -- kill -9 and full disk ------------------------------------------------------------------


def _load_process(bundle, data, trust_files, pause=None, preexec_fn=None):
    env = {**os.environ, "PYTHONPATH": SRC}
    if pause:
        env["FLEETGAP_TEST_PAUSE_AT"] = pause
    return subprocess.Popen(
        [sys.executable, "-m", "fleetgap", *map(str, load_args(bundle, data, trust_files))],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=preexec_fn,
    )  # fmt: skip


@pytest.mark.parametrize("point", ["stream", "publish"])
def test_sigkill_then_rerun_is_consistent(signed, cache, tmp_path, trust_files, point):
    data = tmp_path / "data"
    process = _load_process(signed, data, trust_files, pause=point)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert f"paused at {point}" in line, line + process.stdout.read()
    process.send_signal(signal.SIGKILL)
    process.wait()
    if point == "publish":  # partly published: the journal finishes it
        assert (data / "state" / "load-journal.json").is_file()
        assert listing(data) != listing(cache.root)
    else:
        assert listing(data) == {}
    rerun = run(*load_args(signed, data, trust_files))
    assert rerun.exit_code == 0, rerun.output
    assert listing(data) == listing(cache.root)
    assert not (data / "state" / "load-journal.json").exists()
    assert not any((data / "state" / "incoming").iterdir())
    assert len(list((data / "state" / "receipts").iterdir())) == 1


def test_full_disk_leaves_nothing(signed, tmp_path, trust_files):
    """A file-size limit (RLIMIT_FSIZE, 100 kB) makes writes fail with EFBIG, as a full disk
    fails them with ENOSPC: the load refuses and publishes nothing."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    data = tmp_path / "data"
    process = _load_process(signed, data, trust_files, preexec_fn=limit)
    output, _ = process.communicate()
    assert process.returncode == 1
    assert output.startswith("error: cannot write into") and "nothing was published" in output
    assert listing(data) == {}
    assert not data.exists()  # the directory the refused load made is gone again


def test_serve_start_finishes_a_killed_load(signed, cache, tmp_path, trust_files):
    from fleetgap.serving.server import _finish_interrupted_load

    data = tmp_path / "data"
    process = _load_process(signed, data, trust_files, pause="publish")
    assert process.stdout is not None
    assert "paused at publish" in process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    _finish_interrupted_load(data)
    assert listing(data) == listing(cache.root)
    assert (data / "state" / "generation").read_text().split()[1] == json.loads(
        next((data / "state" / "receipts").iterdir()).read_text()
    )["bundle_id"]


def test_inspect_and_signed_receipt(signed, tmp_path, trust_files, bundle_signer):
    from fleetgap.pgp.keys import read_public_key
    from fleetgap.pgp.signatures import verify_bytes

    shown = run("bundle", "inspect", signed, "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["signed"] is True
    data = tmp_path / "data"
    assert run(*load_args(signed, data, trust_files)).exit_code == 0
    printed = run("bundle", "receipt", "--data", data, "--sign-key", trust_files["signer-secret"])
    body = json.loads(printed.output)
    assert body["signer"] == bundle_signer.fingerprint
    signature = body.pop("signature").encode()
    covered = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    key = verify_bytes(covered, signature, [read_public_key(trust_files["signer"])])
    assert key.fingerprint == bundle_signer.fingerprint


def test_sigkill_with_a_server_running_never_serves_a_mix(signed, cache, tmp_path, trust_files):
    """A server on DIR goes on serving the old state while a load is killed mid-publish, and
    serves the whole new state once it restarts (recovery at start), never a part of it."""
    import threading

    import httpx
    from tests.builders import write_zip_package
    from tests.serving import fleetgap_serve

    data = tmp_path / "data"
    write_zip_package(data / "packages", "alpha", "1.0.0")
    old, new = {"alpha"}, {"alpha", "nginx"}
    seen: list[frozenset[str]] = []
    problems: list[str] = []
    stop = threading.Event()

    def traffic(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                try:
                    names = frozenset(p["name"] for p in client.get("/search").json())
                    seen.append(names)
                    if client.head(f"/{ARTIFACT}").status_code == 200:
                        for sidecar in (".sha512", ".asc"):
                            if client.head(f"/{ARTIFACT}{sidecar}").status_code != 200:
                                problems.append(f"artifact served without its {sidecar}")
                except httpx.HTTPError as exc:
                    problems.append(repr(exc))

    flags = ["--data", str(data), "-require-package-signatures=false"]
    env = {"PYTHONPATH": SRC}
    with fleetgap_serve(*flags, env=env, cwd=tmp_path, log_dir=tmp_path) as server:
        worker = threading.Thread(target=traffic, args=(server.url,), daemon=True)
        worker.start()
        process = _load_process(signed, data, trust_files, pause="publish")
        assert process.stdout is not None
        assert "paused at publish" in process.stdout.readline()
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.wait(1.5)  # three polls of the generation file: nothing finished, nothing swapped
        stop.set()
        worker.join(10)
    assert set().union(*seen) == old
    stop.clear()
    seen.clear()
    with fleetgap_serve(*flags, env=env, cwd=tmp_path, log_dir=tmp_path) as server:
        traffic_thread = threading.Thread(target=traffic, args=(server.url,), daemon=True)
        traffic_thread.start()
        stop.wait(1.0)
        stop.set()
        traffic_thread.join(10)
    assert seen and all(names == new for names in seen)
    assert problems == []
    assert not (data / "state" / "load-journal.json").exists()
