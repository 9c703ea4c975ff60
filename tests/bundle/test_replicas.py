"""Replicas: two `fleetgap serve` processes on one data directory, and loads run from other
"hosts" (processes in their own UTS namespace, `unshare --uts`, with their own host name).

Every replica serves a finished load without a restart and never a mix (an index listing a
package whose zip it cannot serve, or half of a load); two loads never run at once, and the
refusal names the host holding the lock; a replica started while another host publishes
waits for it instead of indexing half of it or failing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.builders import write_zip_package
from tests.bundle.conftest import ARTIFACT, entries, listing, make_cache
from tests.serving import fleetgap_serve, free_port

from fleetgap.bundle.writer import write_bundle
from fleetgap.store import STALE_SECONDS, DataDir

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {"PYTHONPATH": SRC}
LIVENESS_SECONDS = 15.0  # generous on a busy machine; bench/replicas.py measures the real delay
OLD = frozenset({"alpha-1.0.0"})
NEW = frozenset({"alpha-1.0.0", "nginx-1.2.0"})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, file_signer, bundle_signer) -> Path:
    cache = make_cache(tmp_path_factory.mktemp("cache"), file_signer)
    out = tmp_path_factory.mktemp("out") / "monthly.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    return out


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    data = DataDir(tmp_path / "shared").ensure()
    write_zip_package(data.packages, "alpha", "1.0.0")
    return data


def load_on_host(host: str, bundle: Path, data: DataDir, trust_files, pause: str = ""):
    """`fleetgap bundle load` in a process whose host name is `host`."""
    env = {**os.environ, **ENV}
    if pause:
        env["FLEETGAP_TEST_PAUSE_AT"] = pause
    command = [
        "unshare", "--user", "--map-root-user", "--uts",
        "sh", "-c", 'hostname "$0" && exec "$@"', host,
        sys.executable, "-m", "fleetgap", "bundle", "load", str(bundle),
        "--data", str(data.root), "--trust-key", str(trust_files["signer"]),
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def age_lock_record(data: DataDir, seconds: float) -> None:
    """As the file server sees it: the holder has not touched its record for `seconds`."""
    record = data.state / "load.lock.owner"
    then = time.time() - seconds
    os.utime(record, (then, then))


class Sampler:
    """Kibana's and an agent's requests to one replica in a loop: every state it answers
    with, and every answer that shows a mix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.states: list[frozenset[str]] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def state(self, client: httpx.Client) -> frozenset[str]:
        listed = client.get("/search", params={"all": "true"}).json()
        for package in listed:  # the index never lists a package whose zip is not served
            if client.head(package["download"]).status_code != 200:
                self.problems.append(f"{package['download']} listed but not served")
        return frozenset(f"{p['name']}-{p['version']}" for p in listed)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self.states.append(self.state(client))
                    if client.head(f"/{ARTIFACT}").status_code == 200:
                        for sidecar in (".sha512", ".asc"):
                            if client.head(f"/{ARTIFACT}{sidecar}").status_code != 200:
                                self.problems.append(f"artifact served without its {sidecar}")
                except httpx.HTTPError as exc:
                    self.problems.append(repr(exc))


def wait_for(sampler: Sampler, wanted: frozenset[str]) -> bool:
    deadline = time.monotonic() + LIVENESS_SECONDS
    with httpx.Client(base_url=sampler.url, timeout=10) as client:
        while time.monotonic() < deadline:
            if sampler.state(client) == wanted:
                return True
            time.sleep(0.05)
    return False


def test_two_replicas_one_directory_loads_from_other_hosts(bundle, data, tmp_path, trust_files):
    flags = ["--data", str(data.root), "-require-package-signatures=false"]
    with (
        fleetgap_serve(*flags, env=ENV, cwd=tmp_path, log_dir=tmp_path) as one,
        fleetgap_serve(*flags, "--workers", "2", env=ENV, cwd=tmp_path, log_dir=tmp_path) as two,
        Sampler(one.url) as first,
        Sampler(two.url) as second,
    ):
        # A load on host-c holds the lock (paused while streaming); one from here is refused.
        paused = load_on_host("host-c", bundle, data, trust_files, pause="stream")
        assert paused.stdout is not None
        assert "paused at stream" in paused.stdout.readline()
        here = subprocess.run(
            [sys.executable, "-m", "fleetgap", "bundle", "load", str(bundle), "--data",
             str(data.root), "--trust-key", str(trust_files["signer"])],
            env={**os.environ, **ENV}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert here.returncode == 1
        assert here.stderr.startswith("error: fleetgap bundle load is already running on ")
        assert f"(host host-c, pid {paused.pid}, since " in here.stderr

        # host-c dies (kill -9): its lock is left behind, and still counts for a while from
        # host-d, which cannot see host-c's processes.
        paused.send_signal(signal.SIGKILL)
        paused.wait(10)
        code, output = finish(load_on_host("host-d", bundle, data, trust_files))
        assert code == 1 and "(host host-c, pid" in output, output
        assert {*first.states, *second.states} == {OLD}

        age_lock_record(data, STALE_SECONDS + 10)  # host-c silent past the stale limit
        code, output = finish(load_on_host("host-d", bundle, data, trust_files))
        assert code == 0, output
        loaded = time.monotonic()
        assert wait_for(first, NEW) and wait_for(second, NEW)
        print(f"both replicas served the load {time.monotonic() - loaded:.2f} s after it ended")
        time.sleep(0.5)  # a few more rounds of both samplers on the new state
    for sampler in (first, second):
        assert sampler.problems == []
        assert set(sampler.states) == {OLD, NEW}
        assert sampler.states[-1] == NEW
        swapped = sampler.states.index(NEW)
        assert set(sampler.states[swapped:]) == {NEW}  # never back to the old one
    assert not (data.state / "load.lock.owner").exists()
    assert not any(data.incoming.iterdir())
    # what the servers read of the load, readable when they run as another user than it
    (receipt,) = (data.state / "receipts").iterdir()
    for path in (receipt, data.generation):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_replica_started_while_another_host_publishes_waits_for_it(
    bundle, data, tmp_path, trust_files
):
    """Its first index is the whole load, not what host-c had published so far; and when
    host-c was killed, the replica finishes the load once host-c's lock goes stale."""
    paused = load_on_host("host-c", bundle, data, trust_files, pause="publish")
    assert paused.stdout is not None
    assert "paused at publish" in paused.stdout.readline()
    assert (data.state / "load-journal.json").is_file()  # half published

    def kill_host_c_once_the_replica_waits() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = "".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
            if "Waiting for a load to finish publishing" in logs:
                break
            time.sleep(0.1)
        paused.send_signal(signal.SIGKILL)
        paused.wait(10)
        age_lock_record(data, STALE_SECONDS + 10)

    killer = threading.Thread(target=kill_host_c_once_the_replica_waits, daemon=True)
    killer.start()
    flags = ["--data", str(data.root), "-require-package-signatures=false"]
    try:
        with (
            fleetgap_serve(*flags, env=ENV, cwd=tmp_path, log_dir=tmp_path) as replica,
            Sampler(replica.url) as sampler,
        ):
            time.sleep(1.0)
        log = replica.log_text()
    finally:
        killer.join(60)
        if paused.poll() is None:
            paused.kill()
    assert "(host host-c, pid" in log
    assert "Finished the interrupted load of bundle" in log
    assert sampler.problems == []
    assert sampler.states and set(sampler.states) == {NEW}
    assert not (data.state / "load-journal.json").exists()


def test_a_load_taken_over_while_frozen_publishes_nothing(bundle, data, trust_files, monkeypatch):
    """A load frozen past the stale limit (a paused VM) finds on waking that another host
    took the lock over: it stops before its journal, and leaves DATA and their lock alone."""
    import json

    from click.testing import CliRunner

    import fleetgap.bundle.load as load_module
    from fleetgap.cli import main

    record = data.state / "load.lock.owner"
    theirs = {"job": "fleetgap bundle load", "host": "host-e", "pid": 4242,
              "since": "2026-12-07T18:00:00Z", "token": "e" * 32}  # fmt: skip

    def frozen_then_taken_over(point: str) -> None:
        if point == "stream":  # while it streams: host-e judged our record stale, took it
            record.write_text(json.dumps(theirs))

    monkeypatch.setattr(load_module, "_pause", frozen_then_taken_over)
    before = listing(data.root)
    result = CliRunner().invoke(
        main, ["bundle", "load", str(bundle), "--data", str(data.root),
               "--trust-key", str(trust_files["signer"])],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "lost its lock" in result.output and "host host-e, pid 4242" in result.output
    assert listing(data.root) == before  # nothing published
    assert not (data.state / "load-journal.json").exists()
    assert not (data.state / "receipts").exists()
    assert not any(data.incoming.iterdir())
    assert json.loads(record.read_text()) == theirs


def test_a_replica_with_data_mounted_read_only_waits_for_a_writer_to_finish(
    bundle, data, tmp_path, trust_files
):
    """Servers may mount the shared directory read-only. One that starts after a load was
    killed midway cannot finish it: it waits (no traceback, no half of it indexed) until
    a load on a host that can write finishes it."""
    killed = load_on_host("host-c", bundle, data, trust_files, pause="publish")
    assert killed.stdout is not None
    assert "paused at publish" in killed.stdout.readline()
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    port = free_port()
    log = tmp_path / "read-only-replica.log"
    root = str(data.root)
    command = [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
        'mount --bind -o ro "$0" "$0" && exec "$@"', root,
        sys.executable, "-m", "fleetgap", "serve", "-address", f"127.0.0.1:{port}",
        "--data", root, "-require-package-signatures=false",
    ]  # fmt: skip
    with open(log, "wb") as out:
        replica = subprocess.Popen(command, env={**os.environ, **ENV}, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "Waiting for a load to finish publishing" not in log.read_text():
            assert replica.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "Read-only file system" in log.read_text()
        age_lock_record(data, STALE_SECONDS + 10)  # host-c silent past the stale limit
        code, output = finish(load_on_host("host-d", bundle, data, trust_files))
        assert code == 0, output
        url = f"http://127.0.0.1:{port}"
        while not _healthy(url):  # it goes on once the journal is gone
            assert replica.poll() is None, log.read_text()
            assert time.monotonic() < deadline + 60, log.read_text()
            time.sleep(0.1)
        sampler = Sampler(url)
        with httpx.Client(base_url=url, timeout=10) as client:
            assert sampler.state(client) == NEW
        assert sampler.problems == []
    finally:
        replica.terminate()
        replica.wait(15)
    assert "Traceback" not in log.read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
