"""`fleetgap bundle receipt`: the holding of a data directory, read back by read_receipt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from fleetgap.bundle.receipt import read_receipt
from fleetgap.cli import main


def test_receipt_lists_what_is_served_and_reads_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "packages").mkdir(parents=True)
    (data / "packages" / "a-1.0.0.zip").write_bytes(b"zip")
    (data / "packages" / ".a-2.0.0.zip.tmp").write_bytes(b"half")
    (data / "state").mkdir()
    (data / "state" / "index-cache.sqlite").write_bytes(b"derived")
    result = CliRunner().invoke(main, ["bundle", "receipt", "--data", str(data)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "receipt.json"
    path.write_text(result.output)
    receipt = read_receipt(path)
    assert [f.path for f in receipt.files] == ["packages/a-1.0.0.zip"]
    assert receipt.files[0].sha256 == hashlib.sha256(b"zip").hexdigest()
    assert json.loads(result.output)["format"] == "fleetgap-receipt"
