"""GenerationWatcher on a data directory shared by replicas: it reads the generation file
(an NFS client revalidates on open, not on stat), waits until this host shows every file of
the finished load before it reloads (for a bounded time), and does not miss a load that
finished while the served index was being built."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from fleetgap.serving.watcher import GenerationWatcher, read_generation
from fleetgap.store import DataDir, bump_generation

BUNDLE = "0123456789abcdef0123456789abcdef"


class Reloads:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "DATA").ensure()


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(GenerationWatcher, "POLL_SECONDS", 0.02)


def _watch(data: DataDir, reloads: Reloads, **kwargs) -> GenerationWatcher:
    watcher = GenerationWatcher(data, reloads, **kwargs)
    watcher.start()
    return watcher


def _receipt(data: DataDir, files: list[str]) -> None:
    folder = data.state / "receipts"
    folder.mkdir(exist_ok=True)
    body = {"bundle_id": BUNDLE, "sequence": 1,
            "files": [{"path": p, "sha256": "0" * 64, "size": 1} for p in files]}  # fmt: skip
    (folder / f"000000000001-{BUNDLE}.json").write_text(json.dumps(body))


def test_a_new_generation_is_noticed_when_its_attributes_look_unchanged(data):
    """What a stat answered from an NFS client's attribute cache looks like: same inode,
    size and mtime; only reading the file shows the load that finished."""
    data.generation.write_bytes(b"1000000000000000000 first-load\n")
    before = data.generation.stat()
    reloads = Reloads()
    watcher = _watch(data, reloads)
    try:
        time.sleep(0.2)
        assert reloads.count == 0
        with open(data.generation, "r+b") as handle:  # rewritten in place, same length
            handle.write(b"1000000000000000001 other-load\n")
        os.utime(data.generation, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = data.generation.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
            before.st_ino, before.st_size, before.st_mtime_ns)  # fmt: skip
        assert reloads.event.wait(10)
    finally:
        watcher.stop()


def test_the_reload_waits_until_every_file_of_the_load_is_visible_here(data):
    """The generation file can reach this host before its view of the folders does: the
    index is not rebuilt (and served) without the load's packages."""
    reloads = Reloads()
    watcher = _watch(data, reloads)
    try:
        _receipt(data, ["packages/beta-2.0.0.zip", "keys/GPG-KEY-elastic-agent"])
        (data.keys / "GPG-KEY-elastic-agent").write_text("key")
        bump_generation(data, BUNDLE)
        assert not reloads.event.wait(1.0)  # 50 polls: beta-2.0.0.zip is not listed yet
        (data.packages / "beta-2.0.0.zip").write_bytes(b"zip")
        assert reloads.event.wait(10)
        time.sleep(0.2)
        assert reloads.count == 1
    finally:
        watcher.stop()


def test_the_wait_for_unseen_files_is_bounded(data, monkeypatch, caplog):
    monkeypatch.setattr(GenerationWatcher, "PATIENCE_SECONDS", 0.3)
    reloads = Reloads()
    watcher = _watch(data, reloads)
    try:
        _receipt(data, ["packages/beta-2.0.0.zip"])
        with caplog.at_level(logging.WARNING, logger="fleetgap.watcher"):
            bump_generation(data, BUNDLE)
            assert reloads.event.wait(10)
        assert "1 of its files are still not visible" in caplog.text
        assert "packages/beta-2.0.0.zip" in caplog.text
    finally:
        watcher.stop()


def test_a_generation_label_that_is_no_bundle_reloads_at_once(data):
    """Other jobs (or an operator) bump the generation with their own label."""
    reloads = Reloads()
    watcher = _watch(data, reloads)
    try:
        bump_generation(data, "artifacts-mirror")
        assert reloads.event.wait(10)
    finally:
        watcher.stop()


def test_a_load_that_finished_while_the_index_was_built_is_reloaded(data):
    seen = read_generation(data)  # read before the index was built: no load yet
    bump_generation(data, "test-load")  # a load finishes meanwhile
    reloads = Reloads()
    watcher = _watch(data, reloads, seen=seen)
    try:
        assert reloads.event.wait(10)
    finally:
        watcher.stop()


def test_the_generation_file_is_readable_by_servers_running_as_another_user(data):
    """The load may run as root or an operator, the servers as `fleetgap`: they read it."""
    bump_generation(data, BUNDLE)
    assert data.generation.stat().st_mode & 0o777 == 0o644
