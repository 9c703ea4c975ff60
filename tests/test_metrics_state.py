"""Metrics of a closed side: `/downloads/…` and `/ui/` have their own route labels; the loaded
bundle's sequence, the last load's time and the refused packages are gauges; the reload log
line names the bundle id and sequence."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from click.testing import CliRunner
from tests.bundle.conftest import ARTIFACT, add_package, entries, make_cache

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.pgp.keys import SecretKey

from serving import fleetgap_serve, free_port


def _load(bundle: Path, data: Path, key_file: Path) -> None:
    args = ["bundle", "load", str(bundle), "--data", str(data), "--allow-unsigned"]
    result = CliRunner().invoke(main, [*args, "--key", str(key_file)])
    assert result.exit_code == 0, result.output


def _gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match[1])


def test_route_labels_bundle_gauges_and_the_reload_line(tmp_path):
    key = SecretKey.generate("test elastic <elastic@example.invalid>")
    key_file = tmp_path / "key.asc"
    key_file.write_text(key.public_key.armored)
    cache = make_cache(tmp_path / "cache", key)
    data = tmp_path / "data"
    first = tmp_path / "first.tar"
    write_bundle(cache, entries(cache, key), first, selection={}, sequence=7)
    _load(first, data, key_file)
    (data / "packages" / "broken-1.0.0.zip").write_bytes(b"not a zip")  # refused by the index

    port = free_port()
    args = ("--data", str(data), "-metrics-address", f"127.0.0.1:{port}")
    with fleetgap_serve(*args, cwd=tmp_path, log_dir=tmp_path) as server:
        assert httpx.get(f"{server.url}/downloads/{ARTIFACT.removeprefix('downloads/')}").is_success
        assert httpx.get(f"{server.url}/downloads/nothing/here.zip").status_code == 404
        assert httpx.get(f"{server.url}/ui/").status_code == 200
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert (
            'epr_http_requests_total{code="200",method="get",path="/downloads/{file}"} 1.0' in text
        )
        assert (
            'epr_http_requests_total{code="404",method="get",path="/downloads/{file}"} 1.0' in text
        )
        assert 'epr_http_requests_total{code="200",method="get",path="/ui/"} 1.0' in text
        assert _gauge(text, "fleetgap_bundle_sequence") == 7
        receipt = json.loads(
            CliRunner().invoke(main, ["bundle", "receipt", "--data", str(data)]).output
        )
        loaded_at = _gauge(text, "fleetgap_bundle_last_load_timestamp_seconds")
        assert abs(loaded_at - time.time()) < 3600 and loaded_at > 0
        assert _gauge(text, "fleetgap_refused_packages") == 1

        have = {f["path"]: f["sha256"] for f in receipt["files"]}
        add_package(cache, key, "nginx", "1.3.0")
        second = tmp_path / "second.tar"
        summary = write_bundle(cache, entries(cache, key, have), second, selection={},
                               sequence=8, base=receipt)  # fmt: skip
        _load(second, data, key_file)
        line = f"the load of bundle {summary.bundle_id} (sequence 8) finished"
        for _ in range(200):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            if line in server.log_text() and _gauge(text, "fleetgap_bundle_sequence") == 8:
                break
            time.sleep(0.1)
        assert line in server.log_text()
        assert _gauge(text, "fleetgap_bundle_sequence") == 8
