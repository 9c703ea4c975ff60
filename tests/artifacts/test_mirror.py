"""`fleetgap artifacts mirror` against a fake public artifact host on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import craft
import httpx
import pytest
from click.testing import CliRunner

from fleetgap.artifacts.urls import agent_package_name, agent_urls, compose_url
from fleetgap.cli import main
from fleetgap.pgp.signatures import sign_bytes
from fleetgap.store import is_temporary_name

from .conftest import Gate, serve_downloads

PRODUCTS = ("elastic-agent", "filebeat", "fleet-server")
PLATFORMS = ("linux-x86_64", "windows-x86_64")


def content_for(path: str) -> bytes:
    """Deterministic, distinct bytes per artifact."""
    return hashlib.sha256(path.encode()).digest() * 64 + path.encode()


def run_mirror(upstream, data: Path, key_file: Path, *args: str):
    result = CliRunner().invoke(
        main,
        [
            "artifacts",
            "mirror",
            "--source",
            upstream.source,
            "--data",
            str(data),
            "--key",
            str(key_file),
            *args,
        ],  # fmt: skip
    )
    return result


def mirror_process(upstream, data: Path, key_file: Path, product: str) -> list[str]:
    """The command line of a mirror of one linux-x86_64 tar.gz, run as its own process."""
    return [
        sys.executable, "-m", "fleetgap", "artifacts", "mirror", "--source", upstream.source,
        "--data", str(data), "--key", str(key_file), "--version", "9.1.0",
        "--product", product, "--platform", "linux-x86_64", "--package-type", "tar.gz",
    ]  # fmt: skip


def publish_gated(upstream, signing_key, path: str, size: int, after: int) -> tuple[bytes, Gate]:
    """Publish `size` random bytes at `path`; the server holds the body back after `after`."""
    content = os.urandom(size)
    upstream.publish(path, content, signing_key)
    gate = Gate(path=Path(path).name, after=after)
    upstream.recorder.gates.append(gate)
    return content, gate


def wait_until_stable(part: Path) -> None:
    """Until the partial file exists and has stopped growing (the server is holding back)."""
    last, stable_since = -1, time.monotonic()
    while True:
        size = part.stat().st_size if part.exists() else -1
        if size != last:
            last, stable_since = size, time.monotonic()
        elif size > 0 and time.monotonic() - stable_since > 0.5:
            return
        time.sleep(0.05)


def visible_files(downloads: Path) -> set[str]:
    return {p.relative_to(downloads).as_posix() for p in downloads.rglob("*") if p.is_file()}


def publish_selection(upstream, signing_key, version: str, products, platforms, types):
    from fleetgap.artifacts.catalogue import load_catalogue

    artifacts = load_catalogue().select(version, products, platforms, types)
    for artifact in artifacts:
        upstream.publish(artifact.path, content_for(artifact.path), signing_key)
    return artifacts


def test_mirror_three_products_two_platforms_then_rerun_fetches_nothing(
    upstream, signing_key, public_key_file, tmp_path
):
    artifacts = publish_selection(
        upstream, signing_key, "9.1.0", PRODUCTS, PLATFORMS, ("tar.gz", "zip")
    )
    assert len(artifacts) == 6
    data = tmp_path / "data"
    args = [f"--product={p}" for p in PRODUCTS] + [f"--platform={p}" for p in PLATFORMS]
    args += ["--version", "9.1.0", "--package-type", "tar.gz", "--package-type", "zip"]

    result = run_mirror(upstream, data, public_key_file, *args)

    assert result.exit_code == 0, result.output
    assert "6 fetched, 0 already present, 0 not published at the source, 0 failed" in result.output
    for artifact in artifacts:
        published = data / "downloads" / artifact.path
        assert published.read_bytes() == content_for(artifact.path)
        assert (upstream.root / (artifact.path + ".sha512")).read_bytes() == Path(
            f"{published}.sha512"
        ).read_bytes()
        assert Path(f"{published}.asc").is_file()
    assert not list((data / "state" / "incoming").rglob("*.part"))

    upstream.recorder.clear()
    again = run_mirror(upstream, data, public_key_file, *args, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert {row["status"] for row in report["artifacts"]} == {"present"}
    assert upstream.recorder.hits == []  # nothing requested, let alone downloaded


def url_case_files(compat: Path) -> dict[str, list[tuple[str, str]]]:
    """version -> (URL path after the source, file name) for every derived agent URL case."""
    cases = json.loads((compat / "elastic-agent/derived/artifact_urls.json").read_text())
    wanted: dict[str, list[tuple[str, str]]] = {}
    for case in cases["artifact_cases"]:
        for attempt in case.get("attempt_order") or [case]:
            version = case["version"]
            if attempt.get("downloader") == "snapshot" or "lookup" in case:
                version = version.split("+", 1)[0]  # spec: agent-artifacts §3.4
            name = agent_package_name(version, case["os"], case["arch"], case["fips"])
            urls = attempt.get("remote")
            if urls is None:  # file:// drop dir or the fs downloader: flat layout, same name
                local = attempt.get("local", {}).get("package") or attempt["local_name"]
                assert Path(local).name == name
                wanted.setdefault(version, []).append((f"beats/elastic-agent/{name}", name))
                continue
            package_path = urllib.parse.urlsplit(urls["package"]).path
            assert package_path.endswith(f"/beats/elastic-agent/{name}"), case["name"]
            source_part = len(package_path) - len(f"beats/elastic-agent/{name}")
            for url in urls.values():
                wanted.setdefault(version, []).append(
                    (urllib.parse.urlsplit(url).path[source_part:], name)
                )
    return wanted


def platform_of(name: str) -> str:
    stem = name.removesuffix(".tar.gz").removesuffix(".zip")
    return "-".join(stem.rsplit("-", 2)[-2:])


def test_every_agent_url_case_resolves_to_a_served_file_after_mirror(
    upstream, signing_key, public_key_file, tmp_path, compat
):
    from fleetgap.artifacts.catalogue import load_catalogue

    wanted = url_case_files(compat)
    assert len(wanted) == 4  # 9.1.0, independent release, snapshot with and without build
    data = tmp_path / "data"
    for version, files in wanted.items():
        names = {name for _, name in files}
        products = sorted({"elastic-agent" + ("-fips" if "-fips-" in n else "") for n in names})
        platforms = sorted({platform_of(n) for n in names})
        selection = load_catalogue().select(version, products, platforms, ["tar.gz", "zip"])
        assert names <= {a.name for a in selection}, version  # the catalogue names them all
        for artifact in selection:
            upstream.publish(artifact.path, content_for(artifact.name), signing_key)
        args = ["--version", version, "--package-type", "tar.gz", "--package-type", "zip"]
        args += [f"--product={p}" for p in products] + [f"--platform={p}" for p in platforms]
        result = run_mirror(upstream, data, public_key_file, *args)
        assert result.exit_code == 0, result.output

    _, server = serve_downloads(data / "downloads")
    with server, httpx.Client() as client:
        base = f"{server.url}/downloads/"
        for files in wanted.values():
            for remainder, name in files:
                response = client.get(base + remainder)
                assert response.status_code == 200, remainder
                upstream_file = upstream.root / "beats/elastic-agent" / Path(remainder).name
                assert response.content == upstream_file.read_bytes(), remainder
                # and the agent's own composition, pointed at us, asks for exactly this path
                assert agent_urls(base, name).package == base + f"beats/elastic-agent/{name}"


@pytest.mark.parametrize(
    "defect, reason",
    [
        ("tampered", "checksum mismatch"),
        ("wrong_sha512", "checksum mismatch"),
        ("other_key", "bad signature"),
        ("missing_asc", "cannot fetch .asc (HTTP 404"),
        ("sha512_names_other_file", "was not found"),
    ],
)
def test_defective_upstream_file_is_never_published(
    upstream, signing_key, other_key, public_key_file, tmp_path, defect, reason
):
    good = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
    bad = "beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
    upstream.publish(good, content_for(good), signing_key)
    content = content_for(bad)
    kwargs: dict = {}
    if defect == "tampered":
        signed = sign_bytes(content, signing_key)
        sha = f"{hashlib.sha512(content).hexdigest()}  {Path(bad).name}\n".encode()
        content = content[:100] + bytes([content[100] ^ 1]) + content[101:]
        kwargs = {"sha512": sha, "signature": signed}
    elif defect == "wrong_sha512":
        kwargs = {"sha512": f"{hashlib.sha512(b'x').hexdigest()}  {Path(bad).name}\n".encode()}
    elif defect == "other_key":
        kwargs = {"signature": sign_bytes(content, other_key)}
    elif defect == "missing_asc":
        kwargs = {"with_asc": False}
    elif defect == "sha512_names_other_file":
        kwargs = {"sha512": f"{hashlib.sha512(content).hexdigest()}  other.tar.gz\n".encode()}
    upstream.publish(bad, content, signing_key, **kwargs)
    data = tmp_path / "data"

    result = run_mirror(
        upstream, data, public_key_file, "--version", "9.1.0", "--platform", "linux-x86_64",
        "--product", "filebeat", "--product", "elastic-agent", "--package-type", "tar.gz",
    )  # fmt: skip

    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert failed[0].startswith(f"FAILED {bad}: ")
    assert reason in failed[0]
    assert "error: 1 artifact(s) failed" in result.output
    files = visible_files(data / "downloads")
    assert not any(f.startswith("beats/elastic-agent/") for f in files)
    assert {good, good + ".sha512", good + ".asc"} <= files
    assert not list((data / "state" / "incoming").rglob("*.part"))


def test_killed_mirror_resumes_without_fetching_the_finished_part_again(
    upstream, signing_key, public_key_file, tmp_path
):
    big = "beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
    size = 48 << 20
    content, gate = publish_gated(upstream, signing_key, big, size, after=20 << 20)
    data = tmp_path / "data"
    command = mirror_process(upstream, data, public_key_file, "elastic-agent")
    part = data / "state" / "incoming" / (big + ".part")

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert gate.reached.wait(60), "the mirror never reached the middle of the file"
        wait_until_stable(part)
        # mid-file: nothing of this artifact is visible under downloads/
        assert not any("elastic-agent" in f for f in visible_files(data / "downloads"))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        gate.release.set()
    kept = part.stat().st_size
    assert 0 < kept < size
    assert not any("elastic-agent" in f for f in visible_files(data / "downloads"))
    upstream.recorder.gates.clear()
    upstream.recorder.clear()

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert second.returncode == 0, second.stdout + second.stderr
    hits = [h for h in upstream.recorder.for_path(Path(big).name) if h.method == "GET"]
    assert [(h.range, h.status) for h in hits] == [(f"bytes={kept}-", 206)]
    assert hits[0].sent == size - kept  # the finished part was not sent again
    assert (data / "downloads" / big).read_bytes() == content
    assert not part.exists()


def test_mirror_through_http_connect_proxy_with_private_ca(tmp_path, signing_key, public_key_file):
    import trustme

    from .proxy import Tinyproxy

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    root = tmp_path / "upstream"
    recorder, server = serve_downloads(root, ssl_context_files=(str(cert_file), str(key_file)))
    from .conftest import Upstream

    with server, Tinyproxy(tmp_path / "proxy") as proxy:
        upstream = Upstream(root, recorder, server)
        artifacts = publish_selection(
            upstream, signing_key, "9.1.0", ["fleet-server"], ["linux-x86_64"], ["tar.gz"]
        )
        data = tmp_path / "data"
        result = run_mirror(
            upstream, data, public_key_file, "--version", "9.1.0", "--product", "fleet-server",
            "--platform", "linux-x86_64", "--proxy", proxy.url, "--ca-cert", str(ca_file),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"CONNECT 127.0.0.1:{server.port}" in proxy.log_text()
        path = data / "downloads" / artifacts[0].path
        assert path.read_bytes() == content_for(artifacts[0].path)

        # without the private CA the same mirror fails (the proxy did not terminate TLS)
        other = run_mirror(
            upstream, tmp_path / "data2", public_key_file, "--version", "9.1.0",
            "--product", "fleet-server", "--platform", "linux-x86_64", "--proxy", proxy.url,
        )  # fmt: skip
        assert other.exit_code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in other.output

        # HTTPS_PROXY from the environment is used when --proxy is not given
        connects = proxy.log_text().count("CONNECT")
        from_env = CliRunner().invoke(
            main,
            ["artifacts", "mirror", "--source", upstream.source, "--data", str(tmp_path / "d3"),
             "--key", str(public_key_file), "--version", "9.1.0", "--product", "fleet-server",
             "--platform", "linux-x86_64", "--ca-cert", str(ca_file)],
            env={"HTTPS_PROXY": proxy.url, "NO_PROXY": "", "no_proxy": ""},
        )  # fmt: skip
        assert from_env.exit_code == 0, from_env.output
        assert proxy.log_text().count("CONNECT") > connects


def test_no_partial_or_temporary_name_is_served(tmp_path):
    downloads = tmp_path / "downloads"
    (downloads / "beats").mkdir(parents=True)
    (downloads / "beats" / "x.tar.gz.part").write_bytes(b"partial")
    (downloads / "beats" / ".x.tar.gz.abc.tmp").write_bytes(b"temp")
    assert all(is_temporary_name(p.name) for p in (downloads / "beats").iterdir())
    _, server = serve_downloads(downloads)
    with server, httpx.Client() as client:
        listing = client.get(f"{server.url}/downloads/beats/").text
        assert ".part" not in listing and ".tmp" not in listing
        for name in ("x.tar.gz.part", ".x.tar.gz.abc.tmp"):
            assert client.get(compose_url(server.url, "downloads/beats", name)).status_code == 404


def test_ctrl_c_stops_at_once_and_keeps_the_partial_file_for_the_next_run(
    upstream, signing_key, public_key_file, tmp_path
):
    big = "fleet-server/fleet-server-9.1.0-linux-x86_64.tar.gz"
    content, gate = publish_gated(upstream, signing_key, big, 24 << 20, after=8 << 20)
    data = tmp_path / "data"
    command = mirror_process(upstream, data, public_key_file, "fleet-server")
    part = data / "state" / "incoming" / (big + ".part")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert gate.reached.wait(60)
        wait_until_stable(part)
        first.send_signal(signal.SIGINT)  # the server is still holding the response open
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
        gate.release.set()
    assert first.returncode == 130
    assert first.stdout is not None
    said = first.stdout.read().decode().strip().splitlines()
    # not click's bare "Aborted!": what was kept, and that a re-run resumes
    assert said[-1] == (
        f"interrupted: what verified is published under {data / 'downloads'}, partial "
        f"downloads are kept in {data / 'state' / 'incoming'}; run the same command again "
        "to resume"
    )
    assert "Aborted!" not in said
    kept = part.stat().st_size
    assert 0 < kept < len(content)
    assert visible_files(data / "downloads") == set()
    upstream.recorder.gates.clear()
    upstream.recorder.clear()
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    (hit,) = [h for h in upstream.recorder.for_path(Path(big).name) if h.method == "GET"]
    assert hit.range == f"bytes={kept}-"
    assert (data / "downloads" / big).read_bytes() == content


@pytest.mark.parametrize(
    "signature", [{"hash_algo": 8}, {"sig_type": craft.SIG_TEXT}], ids=["sha256", "text"]
)
def test_signature_over_another_hash_is_checked_with_a_second_read(
    upstream, signing_key, tmp_path, signature
):
    """One pass serves the sidecar and a binary SHA-512 signature; other signatures
    (another hash, canonical text) need the file once more — and still decide alone."""
    key, stranger = craft.RsaKey.generate(), craft.RsaKey.generate()
    key_file = tmp_path / "crafted.asc"
    key_file.write_text(craft.armor_public(craft.build_cert(key)))
    good = "beats/metricbeat/metricbeat-9.1.0-linux-arm64.tar.gz"
    bad = "beats/metricbeat/metricbeat-9.1.0-linux-x86_64.tar.gz"
    for path, signer in ((good, key), (bad, stranger)):
        content = os.urandom(3 << 20) + b"\nlast line\r\n"
        asc = craft.detached_signature(signer, content, **signature).encode()
        upstream.publish(path, content, signing_key, signature=asc)
    data = tmp_path / "data"
    result = run_mirror(
        upstream, data, key_file, "--version", "9.1.0", "--product", "metricbeat",
        "--platform", "linux-x86_64", "--platform", "linux-arm64", "--package-type", "tar.gz",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1, result.output
    assert failed[0].startswith(f"FAILED {bad}: bad signature")
    assert "signature made by unknown entity" in failed[0]
    assert (data / "downloads" / good).is_file()
    assert not (data / "downloads" / bad).exists()


def test_an_unusable_asc_fails_the_artifact_before_the_binary_is_downloaded(
    upstream, signing_key, public_key_file, tmp_path
):
    path = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
    upstream.publish(path, content_for(path), signing_key, signature=b"not a signature\n")
    data = tmp_path / "data"
    result = run_mirror(
        upstream, data, public_key_file, "--version", "9.1.0", "--product", "filebeat",
        "--platform", "linux-x86_64", "--package-type", "tar.gz",
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"FAILED {path}: bad signature: invalid signature" in result.output
    assert upstream.recorder.for_path(".asc") and upstream.recorder.for_path(".sha512")
    assert upstream.recorder.for_path(Path(path).name) == []  # the binary was never asked for


def test_a_second_mirror_on_the_same_data_refuses_to_start(
    upstream, signing_key, public_key_file, tmp_path
):
    big = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
    content, gate = publish_gated(upstream, signing_key, big, 8 << 20, after=2 << 20)
    data = tmp_path / "data"
    command = mirror_process(upstream, data, public_key_file, "filebeat")
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert gate.reached.wait(60)
        second = run_mirror(
            upstream, data, public_key_file, "--version", "9.1.0", "--product", "filebeat",
            "--platform", "linux-x86_64", "--package-type", "tar.gz",
        )  # fmt: skip
        assert second.exit_code == 1
        assert "fleetgap artifacts mirror is already running" in second.output
        assert f"pid {first.pid}" in second.output
    finally:
        gate.release.set()
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert (data / "downloads" / big).read_bytes() == content


def test_stale_partial_downloads_are_removed_at_the_next_run(
    upstream, signing_key, public_key_file, tmp_path
):
    path = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
    upstream.publish(path, content_for(path), signing_key)
    incoming = tmp_path / "data" / "state" / "incoming" / "beats" / "filebeat"
    incoming.mkdir(parents=True)
    stale = incoming / "filebeat-8.19.0-linux-x86_64.tar.gz.part"
    recent = incoming / "filebeat-9.0.0-linux-x86_64.tar.gz.part"
    for part in (stale, recent):
        part.write_bytes(b"partial")
    old = time.time() - 15 * 86400
    os.utime(stale, (old, old))
    result = run_mirror(
        upstream, tmp_path / "data", public_key_file, "--version", "9.1.0", "--product",
        "filebeat", "--platform", "linux-x86_64", "--package-type", "tar.gz",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "removed 1 partial download file(s) untouched for 14 days" in result.output
    assert not stale.exists() and recent.exists()


def test_an_artifact_the_source_does_not_publish_is_reported_as_missing(
    upstream, signing_key, public_key_file, tmp_path
):
    present = "beats/filebeat/filebeat-9.1.0-linux-x86_64.tar.gz"
    absent = "beats/filebeat/filebeat-9.1.0-linux-arm64.tar.gz"
    upstream.publish(present, content_for(present), signing_key)
    data = tmp_path / "data"
    result = run_mirror(
        upstream, data, public_key_file, "--version", "9.1.0", "--product", "filebeat",
        "--platform", "linux-x86_64", "--platform", "linux-arm64", "--package-type", "tar.gz",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    (missing,) = [line for line in lines if line.startswith("MISSING")]
    assert missing.startswith(f"MISSING {absent}: not published at the source (")
    assert "HTTP 404" in missing
    assert not [line for line in lines if line.startswith("FAILED")]
    assert "1 fetched, 0 already present, 1 not published at the source, 0 failed" in result.output
    assert "error: 1 artifact(s) not published at the source" in result.output
    assert (data / "downloads" / present).is_file()
    assert not (data / "downloads" / absent).exists()
