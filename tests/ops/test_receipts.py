"""Loaded bundles read from DATA/state/receipts (the bundle contract's receipt files), as the
status page and `fleetgap doctor --data` show them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fleetgap.cli import main
from fleetgap.ops.receipts import loaded_bundles


def receipt(data, sequence, bundle_id, **fields):
    folder = data / "state" / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "bundle_id": bundle_id,
        "sequence": sequence,
        "created": "2026-11-01T00:00:00Z",
        "loaded_at": "2026-11-02T00:00:00Z",
        "fleetgap_version": "0.1.0",
        "delta": False,
        "signer": None,
        "files": [{"path": "keys/k", "sha256": "0" * 64, "size": 1}],
    }
    body.update(fields)
    (folder / f"{sequence:012d}-{bundle_id}.json").write_text(json.dumps(body))


def test_bundles_in_sequence_order_with_unreadable_ones_last(tmp_path):
    receipt(tmp_path, 1764000000, "b" * 32, delta=True, signer="F" * 40)
    receipt(tmp_path, 1761000000, "a" * 32)
    (tmp_path / "state" / "receipts" / "000000000009-broken.json").write_text("{not json")
    found = loaded_bundles(tmp_path)
    assert [b.sequence for b in found] == [1761000000, 1764000000, None]
    assert found[1].delta and found[1].signer == "F" * 40 and found[1].files == 1
    assert found[2].file == "000000000009-broken.json" and found[2].problem


def test_doctor_data_reports_the_last_bundle(tmp_path):
    receipt(tmp_path, 1764000000, "c" * 32)
    result = CliRunner().invoke(
        main, ["doctor", "--stack-version", "9.1.0", "--data", str(tmp_path), "--json"]
    )
    checks = {c["id"]: c for c in json.loads(result.output)["checks"]}
    bundles = checks["loaded bundles"]
    assert bundles["status"] == "ok"
    assert bundles["detail"].startswith(f"1 loaded; last: sequence 1764000000 ({'c' * 32}")
    # no URL given: every other check is skipped (not measured), so the doctor passes
    assert {c["status"] for i, c in checks.items() if i != "loaded bundles"} == {"skip"}
    assert result.exit_code == 0


def test_doctor_data_fails_on_an_unreadable_receipt(tmp_path):
    receipt(tmp_path, 5, "d" * 32)
    (tmp_path / "state" / "receipts" / "000000000006-x.json").write_text('{"bundle_id": "x"}')
    result = CliRunner().invoke(
        main, ["doctor", "--stack-version", "9.1.0", "--data", str(tmp_path), "--json"]
    )
    assert result.exit_code == 1
    checks = {c["id"]: c for c in json.loads(result.output)["checks"]}
    assert checks["loaded bundles"]["detail"] == (
        "unreadable receipt: 000000000006-x.json (no 'sequence' field)"
    )


def test_doctor_with_nothing_to_check_is_one_error_line():
    result = CliRunner().invoke(main, ["doctor", "--stack-version", "9.1.0"])
    assert result.exit_code == 1
    assert result.output.startswith("error: nothing to check: give --registry")
