"""The data directory layout and atomic placement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetgap.store import DataDir, atomic_write_bytes, is_temporary_name, place_file


def test_layout_of_the_data_directory(tmp_path):
    data = DataDir(tmp_path / "DATA").ensure()
    for name in ("packages", "downloads", "keys", "state"):
        assert (tmp_path / "DATA" / name).is_dir()
    assert data.incoming == tmp_path / "DATA" / "state" / "incoming"
    assert not data.incoming.is_relative_to(data.downloads)  # never served


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "f.sha512"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["f.sha512"]


def test_place_file_across_filesystems(tmp_path, monkeypatch):
    """A rename across filesystems fails with EXDEV: copy beside the target, then rename."""
    import errno

    import fleetgap.store as store

    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((Path(src), Path(dst)))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    source = tmp_path / "incoming" / "x.tar.gz.part"
    source.parent.mkdir()
    source.write_bytes(b"payload")
    dest = tmp_path / "downloads" / "x.tar.gz"
    place_file(source, dest)
    assert dest.read_bytes() == b"payload"
    assert not source.exists()
    assert os.listdir(dest.parent) == ["x.tar.gz"]
    assert calls[1][0].parent == dest.parent and is_temporary_name(calls[1][0].name)


@pytest.mark.parametrize(
    "name, temporary",
    [
        ("elastic-agent-9.1.0-linux-x86_64.tar.gz", False),
        ("elastic-agent-9.1.0-linux-x86_64.tar.gz.sha512", False),
        ("elastic-agent-9.1.0-linux-x86_64.tar.gz.part", True),
        ("elastic-agent-9.1.0-linux-x86_64.tar.gz.part.meta", True),
        (".elastic-agent.tar.gz.abc123.tmp", True),
        (".hidden", True),
    ],
)
def test_temporary_names(name, temporary):
    assert is_temporary_name(name) is temporary
