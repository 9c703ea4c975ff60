"""A Defend file is replaced in place only over what an earlier bundle brought *as a Defend
file*: a relative_url naming an agent binary or sidecar an earlier bundle brought (verified
by Elastic's key) must not let a Defend manifest entry replace it."""

from __future__ import annotations

import hashlib

import pytest

from fleetgap.bundle.load import _check_conflicts
from fleetgap.bundle.manifest import FileEntry
from fleetgap.errors import FleetgapError
from fleetgap.store import DataDir

AGENT_BINARY = "downloads/beats/elastic-agent/elastic-agent-9.1.0-linux-x86_64.tar.gz"
VOUCHER = "downloads/endpoint/manifest/artifacts-9.1.0.zip"


def _present(tmp_path, body: bytes) -> DataDir:
    data = DataDir(tmp_path)
    (tmp_path / AGENT_BINARY).parent.mkdir(parents=True)
    (tmp_path / AGENT_BINARY).write_bytes(body)
    return data


def _defend_entry(body: bytes) -> FileEntry:
    return FileEntry(
        AGENT_BINARY, len(body), hashlib.sha256(body).hexdigest(), "defend-manifest-entry", None,
        vouched_by=VOUCHER,
    )  # fmt: skip


def test_a_defend_entry_does_not_replace_an_agent_binary_an_earlier_bundle_brought(tmp_path):
    old = b"the agent binary, verified by its .sha512 and .asc"
    data = _present(tmp_path, old)
    receipts = [
        {
            "files": [
                {
                    "path": AGENT_BINARY,
                    "sha256": hashlib.sha256(old).hexdigest(),
                    "size": len(old),
                    "verified_by": "sidecar",
                }
            ]
        }
    ]
    with pytest.raises(FleetgapError, match="already holds other content"):
        _check_conflicts(data, [_defend_entry(b"not the sidecar")], receipts)


def test_a_receipt_without_kinds_does_not_vouch_for_replacing(tmp_path):
    old = b"sidecar from an older load"
    data = _present(tmp_path, old)
    receipts = [{"files": [{"path": AGENT_BINARY, "sha256": hashlib.sha256(old).hexdigest()}]}]
    with pytest.raises(FleetgapError, match="already holds other content"):
        _check_conflicts(data, [_defend_entry(b"new")], receipts)


def test_a_defend_file_an_earlier_bundle_brought_is_replaced(tmp_path):
    old = b"artifact v1"
    data = _present(tmp_path, old)
    receipts = [
        {
            "files": [
                {
                    "path": AGENT_BINARY,
                    "sha256": hashlib.sha256(old).hexdigest(),
                    "verified_by": "defend-manifest-entry",
                }
            ]
        }
    ]
    assert _check_conflicts(data, [_defend_entry(b"artifact v2")], receipts) == []
