"""`fleetgap artifacts list` and the mirror's key and argument handling."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from fleetgap.artifacts.mirror import trusted_keys
from fleetgap.cli import main
from fleetgap.errors import FleetgapError
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT
from fleetgap.store import DataDir


def invoke(*args: str):
    return CliRunner().invoke(main, ["artifacts", *args])


def test_list_prints_urls_composed_like_the_agent():
    result = invoke("list", "--version", "9.1.0", "--product", "elastic-agent",
                    "--platform", "windows-arm64", "--source", "registry.local//a/")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == (
        "https://registry.local/a/beats/elastic-agent/elastic-agent-9.1.0-windows-arm64.zip\n"
    )


def test_list_with_sizes_asks_the_source(upstream, signing_key):
    path = "fleet-server/fleet-server-9.1.0-linux-arm64.tar.gz"
    upstream.publish(path, b"x" * 2_000_000, signing_key)
    result = invoke("list", "--version", "9.1.0", "--product", "fleet-server", "--platform",
                    "linux-arm64", "--platform", "darwin-aarch64", "--sizes", "--json",
                    "--source", upstream.source)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["artifacts"]
    assert [(r["path"], r["size"]) for r in rows] == [
        (path, 2_000_000),
        ("fleet-server/fleet-server-9.1.0-darwin-aarch64.tar.gz", "HTTP 404 Not Found"),
    ]
    assert [h.method for h in upstream.recorder.hits] == ["HEAD", "HEAD"]


def test_bad_selection_is_one_line_error():
    result = invoke("list", "--version", "9.1.0", "--platform", "beos")
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown platform beos")
    assert "Traceback" not in result.output


def test_default_key_is_elastics_key_from_the_data_keys_folder(tmp_path, compat):
    data = DataDir(tmp_path / "data").ensure()
    with pytest.raises(FleetgapError, match=f"fingerprint {ELASTIC_FINGERPRINT}"):
        trusted_keys(data)
    (data.keys / "unrelated.txt").write_text("not a key")
    shutil.copyfile(compat / "elastic-agent/GPG-KEY-elasticsearch", data.keys / "GPG-KEY-elastic")
    (key,) = trusted_keys(data)
    assert key.fingerprint == ELASTIC_FINGERPRINT


def test_key_option_replaces_the_default(tmp_path, public_key_file, signing_key):
    data = DataDir(tmp_path / "data").ensure()
    (key,) = trusted_keys(data, [public_key_file])
    assert key.fingerprint == signing_key.fingerprint


def test_mirror_without_any_trusted_key_refuses_before_fetching(upstream, tmp_path):
    result = invoke("mirror", "--version", "9.1.0", "--product", "cloudbeat", "--data",
                    str(tmp_path / "d"), "--source", upstream.source)  # fmt: skip
    assert result.exit_code == 1
    assert "no trusted signing key" in result.output
    assert upstream.recorder.hits == []


@pytest.mark.parametrize(
    "source, message",
    [
        ("file:///opt/drop", "--source must be an http:// or https:// URL"),
        ("http://[bad/", "not a URL: 'http://[bad/'"),
        ("http://h:99999/", "(bad port)"),
    ],
)
def test_mirror_refuses_a_source_it_cannot_fetch_from(tmp_path, public_key_file, source, message):
    result = invoke("mirror", "--version", "9.1.0", "--product", "cloudbeat", "--data",
                    str(tmp_path / "d"), "--key", str(public_key_file),
                    "--source", source)  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_products_shows_the_catalogue_with_user_additions(tmp_path):
    extra = tmp_path / "mine.yml"
    extra.write_text("products:\n  cloud-defend:\n    directory: cloud-defend\n"
                     "    platforms: {linux-arm64: [tar.gz]}\n")  # fmt: skip
    result = invoke("products", "--json", "--catalogue", str(extra))
    assert result.exit_code == 0, result.output
    rows = {row["product"]: row for row in json.loads(result.output)}
    assert len(rows) == 16
    agent = rows["elastic-agent"]["platforms"]
    assert agent["windows-arm64"] == {"package_types": ["zip"], "since": "9.0.0", "until": None}
    assert rows["cloud-defend"]["directory"] == "cloud-defend"
    text = invoke("products").output
    assert "endpoint-security  (endpoint-dev/)" in text


def test_verify_rechecks_published_files(upstream, signing_key, public_key_file, tmp_path):
    data = tmp_path / "data"
    paths = []
    for platform in ("linux-x86_64", "linux-arm64", "darwin-aarch64"):
        path = f"beats/auditbeat/auditbeat-9.1.0-{platform}.tar.gz"
        upstream.publish(path, path.encode() * 1000, signing_key)
        paths.append(path)
    mirrored = invoke("mirror", "--version", "9.1.0", "--product", "auditbeat", "--platform",
                      "linux-x86_64", "--platform", "linux-arm64", "--platform", "darwin-aarch64",
                      "--package-type", "tar.gz", "--data", str(data), "--key",
                      str(public_key_file), "--source", upstream.source)  # fmt: skip
    assert mirrored.exit_code == 0, mirrored.output
    ok = invoke("verify", "--data", str(data), "--key", str(public_key_file))
    assert ok.exit_code == 0, ok.output
    assert "3 artifacts checked, 0 failed" in ok.output

    downloads = data / "downloads"
    tampered = downloads / paths[0]
    tampered.write_bytes(tampered.read_bytes() + b"!")
    (downloads / (paths[1] + ".asc")).unlink()
    result = invoke("verify", "--data", str(data), "--key", str(public_key_file), "--json")
    assert result.exit_code == 1
    rows = {row["path"]: row for row in json.loads(result.stdout)["artifacts"]}
    assert "checksum mismatch" in rows[paths[0]]["problem"]
    assert rows[paths[1]]["problem"] == f"missing {paths[1].rsplit('/', 1)[1]}.asc"
    assert rows[paths[2]]["ok"] is True


def test_a_data_directory_that_cannot_be_made_is_one_error_line(tmp_path, public_key_file):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    result = invoke("mirror", "--data", str(blocker / "data"), "--key", str(public_key_file),
                    "--version", "9.1.0", "--product", "filebeat",
                    "--source", "http://127.0.0.1:9/")  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: Not a directory: {blocker / 'data' / 'packages'}"
    ]
    assert "Traceback" not in result.output


def test_verify_checks_defend_files_against_their_manifests(tmp_path, public_key_file):
    from defend_upstream import ONLY_91, SHARED, artifact_url, publish

    data = tmp_path / "data"
    publish(data, "9.1.0", "1.0.1", {**SHARED, **ONLY_91})
    publish(data, "9.1.0", "1.0.2", SHARED)  # production-rules…: left by the older manifest
    ok = invoke("verify", "--data", str(data), "--key", str(public_key_file))
    assert ok.exit_code == 0, ok.output
    assert "3 artifacts checked, 0 failed" in ok.output  # the manifest and the 2 it lists
    damaged = data / artifact_url("diagnostic-configuration-v1").lstrip("/")
    damaged.write_bytes(damaged.read_bytes()[:-1])
    result = invoke("verify", "--data", str(data), "--key", str(public_key_file), "--json")
    assert result.exit_code == 1
    rows = {row["path"]: row for row in json.loads(result.stdout)["artifacts"]}
    problem = rows[artifact_url("diagnostic-configuration-v1").removeprefix("/downloads/")]
    assert "the manifest entry diagnostic-configuration-v1 says" in problem["problem"]
