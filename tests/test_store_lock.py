"""The data directory's lock across hosts sharing it (NFS, a ReadWriteMany volume): the owner
record names the holder, a live one on another host refuses, a dead one is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fleetgap.store as store
from fleetgap.errors import FleetgapError
from fleetgap.store import exclusive, lock_holder

JOB = "fleetgap bundle load"


def _lock(tmp_path: Path) -> Path:
    lock = tmp_path / "DATA" / "state" / "load.lock"
    lock.parent.mkdir(parents=True)
    return lock


def _record_of_another_host(lock: Path, host: str = "replica-b", age: float = 0.0) -> Path:
    """What a holder on another host leaves: its owner record, and no lock our kernel knows."""
    record = lock.with_name(lock.name + ".owner")
    fields = {"job": JOB, "host": host, "pid": 4242, "since": "2026-12-07T18:00:00Z",
              "token": "a" * 32, "boot": "another-boot-id", "pid_ns": "pid:[1]",
              "started": "123"}  # fmt: skip
    record.write_text(json.dumps(fields))
    if age:
        then = time.time() - age
        os.utime(record, (then, then))
    return record


def test_a_live_holder_on_another_host_is_refused_and_named(tmp_path):
    lock = _lock(tmp_path)
    _record_of_another_host(lock)
    refused = rf"{JOB} is already running on .*DATA \(host replica-b, pid 4242, since "
    with pytest.raises(FleetgapError, match=refused), exclusive(lock, JOB):
        pytest.fail("ran while another host holds the lock")
    assert lock_holder(lock).host == "replica-b"


def test_the_other_hosts_clock_does_not_matter(tmp_path):
    """Only the file server's clock is compared: a record written by a host whose clock is
    a day behind (its own `since`, and an mtime it might set) is fresh if touched just now."""
    lock = _lock(tmp_path)
    record = _record_of_another_host(lock)
    fields = json.loads(record.read_text())
    record.write_text(json.dumps({**fields, "since": "2026-12-06T18:00:00Z"}))
    with pytest.raises(FleetgapError, match="host replica-b"), exclusive(lock, JOB):
        pass


def test_a_silent_record_of_another_host_is_taken_over(tmp_path):
    lock = _lock(tmp_path)
    _record_of_another_host(lock, age=store.STALE_SECONDS + 5)
    assert lock_holder(lock) is None
    with exclusive(lock, JOB) as lease:
        holder = lock_holder(lock)
        assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
        assert holder.token == lease.owner.token
    assert not lock.with_name("load.lock.owner").exists()
    assert sorted(p.name for p in lock.parent.iterdir()) == ["load.lock"]  # nothing left over


def test_an_unreadable_record_counts_as_held_while_it_may_be_being_written(tmp_path):
    lock = _lock(tmp_path)
    record = lock.with_name("load.lock.owner")
    record.write_bytes(b"")  # created with O_EXCL, its content not written yet
    with pytest.raises(FleetgapError, match="already running"), exclusive(lock, JOB):
        pass
    long_ago = time.time() - 60
    os.utime(record, (long_ago, long_ago))
    with exclusive(lock, JOB):
        assert lock_holder(lock).pid == os.getpid()


HOLD = """
import sys, time
from pathlib import Path
from fleetgap.store import exclusive
with exclusive(Path(sys.argv[1]), "fleetgap bundle load"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_holder_on_this_machine_is_taken_over_at_once(tmp_path):
    """Its record stays behind after kill -9, but its process is gone: no wait."""
    lock = _lock(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert lock_holder(lock).pid == holder.pid
        holder.kill()
        holder.wait(10)
        assert lock.with_name("load.lock.owner").exists()
        with exclusive(lock, JOB):
            assert lock_holder(lock).pid == os.getpid()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_reused_pid_is_not_a_live_holder(tmp_path):
    """A record naming a pid that now belongs to another process (here: our own pid, with
    another start time) is stale."""
    lock = _lock(tmp_path)
    mine = store.Owner.me(JOB)
    record = lock.with_name("load.lock.owner")
    record.write_text(json.dumps({**vars(mine), "started": "1", "token": "b" * 32}))
    with exclusive(lock, JOB) as lease:
        assert lease.owner.token != "b" * 32


def test_the_heartbeat_keeps_a_long_holder_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "HEARTBEAT_SECONDS", 0.05)
    lock = _lock(tmp_path)
    with exclusive(lock, JOB) as lease:
        long_ago = time.time() - 3600
        os.utime(lease.path, (long_ago, long_ago))
        deadline = time.monotonic() + 10
        while lease.path.stat().st_mtime < time.time() - 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.path.stat().st_mtime > time.time() - 60


def test_a_holder_taken_over_while_paused_notices_and_leaves_the_new_record(tmp_path):
    lock = _lock(tmp_path)
    with exclusive(lock, JOB) as lease:
        lease.confirm()
        _record_of_another_host(lock)  # we were frozen past STALE_SECONDS, replica-b took it
        with pytest.raises(FleetgapError, match="lost its lock .*host replica-b"):
            lease.confirm()
    assert lock_holder(lock).host == "replica-b"  # our release did not remove theirs


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 27 0:52 / /srv/fleet\040gap rw,relatime shared:40 - nfs4 nfs.internal:/fleetgap rw,vers=4.2
91 90 254:1 / /srv/fleet\040gap/local rw - ext4 /dev/vdb rw
92 27 0:53 / /mnt/share rw - cifs //files/share rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/srv/fleet gap", "nfs4"),
        ("/srv/fleet gap/state/index-cache.sqlite", "nfs4"),
        ("/srv/fleet gap/local/cache", None),  # a local disk mounted below the export
        ("/srv/fleet gapx", None),  # a neighbour, not inside the mount
        ("/mnt/share/DATA", "cifs"),
        ("/var/lib/fleetgap", None),
    ],
)
def test_network_filesystem_is_the_type_of_the_innermost_mount(path, kind):
    assert store.network_filesystem(Path(path), MOUNTINFO) == kind


def test_this_machines_temporary_directory_is_local(tmp_path):
    assert store.network_filesystem(tmp_path) is None


def test_a_record_of_another_version_still_counts(tmp_path):
    """Fields added or left out by another fleetgap version do not make a live holder's
    record unreadable (which would be taken over after a few seconds)."""
    lock = _lock(tmp_path)
    record = lock.with_name("load.lock.owner")
    record.write_text(json.dumps({"job": JOB, "host": "replica-b", "pid": 7, "lease": "v2"}))
    long_ago = time.time() - 20  # past the grace for an unreadable record, not stale
    os.utime(record, (long_ago, long_ago))
    with pytest.raises(FleetgapError, match=r"host replica-b, pid 7"), exclusive(lock, JOB):
        pass


def test_a_hostile_record_is_shown_on_one_printable_line(tmp_path):
    """The record comes from whichever host wrote it: its text is outside input."""
    lock = _lock(tmp_path)
    record = lock.with_name("load.lock.owner")
    record.write_text(json.dumps({"job": "x\n\x1b[2Jjob", "host": "evil\r\n\x1b]0;t\x07" * 50,
                                  "pid": 1, "since": "\x1b[31m", "token": "c" * 32}))  # fmt: skip
    with pytest.raises(FleetgapError) as refused, exclusive(lock, JOB):
        pass
    message = str(refused.value)
    assert message.isprintable() and "\x1b" not in message
    assert len(message) < 700
