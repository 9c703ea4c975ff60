"""The data directory layout and atomic placement."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetgap.errors import FleetgapError
from fleetgap.store import (
    DataDir,
    atomic_write_bytes,
    exclusive,
    is_temporary_name,
    place_file,
    prune_stale,
)


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


HOLD_LOCK = """
import sys, time
from pathlib import Path
from fleetgap.store import exclusive
with exclusive(Path(sys.argv[1]), "job"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_exclusive_refuses_a_second_holder_and_names_the_first(tmp_path):
    lock = tmp_path / "DATA" / "state" / "mirror.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = f"job is already running on .*pid {holder.pid}"
        with pytest.raises(FleetgapError, match=refused), exclusive(lock, "job"):
            pass
        holder.kill()  # kill -9: the kernel drops the lock with the process
        holder.wait(10)
        with exclusive(lock, "job"):
            assert lock.read_text() == f"pid {os.getpid()}"
    finally:
        if holder.poll() is None:
            holder.kill()


def test_prune_stale_removes_only_old_work_files(tmp_path):
    old_part = tmp_path / "beats" / "a.tar.gz.part"
    old_meta = tmp_path / "beats" / "a.tar.gz.part.meta"
    fresh_part = tmp_path / "beats" / "b.tar.gz.part"
    old_binary = tmp_path / "beats" / "c.tar.gz"  # not a work file: never removed here
    for path in (old_part, old_meta, fresh_part, old_binary):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    month_ago = time.time() - 30 * 86400
    for path in (old_part, old_meta, old_binary):
        os.utime(path, (month_ago, month_ago))
    assert prune_stale(tmp_path, 14 * 86400) == 2
    assert sorted(p.name for p in (tmp_path / "beats").iterdir()) == ["b.tar.gz.part", "c.tar.gz"]
    assert prune_stale(tmp_path / "missing", 1) == 0


def test_a_meta_file_lives_as_long_as_its_partial_download(tmp_path):
    part = tmp_path / "a.tar.gz.part"
    meta = tmp_path / "a.tar.gz.part.meta"
    part.write_bytes(b"resumed yesterday")
    meta.write_text("{}")
    month_ago = time.time() - 30 * 86400
    os.utime(meta, (month_ago, month_ago))  # written when the download first started
    assert prune_stale(tmp_path, 14 * 86400) == 0
    assert meta.exists()


def test_exclusive_is_released_after_an_error_in_the_job(tmp_path):
    lock = tmp_path / "state" / "mirror.lock"
    with pytest.raises(RuntimeError), exclusive(lock, "job"):
        raise RuntimeError("a failing job")
    with exclusive(lock, "job"):  # free again
        pass
