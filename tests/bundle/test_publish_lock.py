"""Load never replaces a file it did not bring, checked again at publish time under the load
lock; artifacts mirror, keys publish and keys fetch-elastic take the same lock, so none of
them writes into DATA while a load runs (issue 17, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from tests.bundle.conftest import ARTIFACT, entries, listing, make_cache
from tests.serving import serve_asgi

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def paused_load(tmp_path, file_signer, bundle_signer, trust_files):
    """A `bundle load` in its own process, held after its first streamed member."""
    cache = make_cache(tmp_path / "cache", file_signer)
    bundle = tmp_path / "full.bundle"
    write_bundle(cache, entries(cache, file_signer), bundle, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    resume = tmp_path / "resume"
    env = {**os.environ, "PYTHONPATH": SRC, "FLEETGAP_TEST_PAUSE_AT": "stream",
           "FLEETGAP_TEST_RESUME_FILE": str(resume)}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetgap", "bundle", "load", str(bundle), "--data", str(data),
         "--trust-key", str(trust_files["signer"])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "paused at stream" in line, line + process.stdout.read()

    def finish() -> tuple[int, str]:
        resume.write_text("go")
        output = process.stdout.read()
        return process.wait(60), output

    try:
        yield data, finish
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_file_written_while_streaming_is_not_replaced(paused_load):
    data, finish = paused_load
    theirs = data / ARTIFACT
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_bytes(b"the operator's own file, copied in while the load streamed")
    before = listing(data)
    code, output = finish()
    assert code == 1, output
    last = output.strip().splitlines()[-1]
    assert f"already holds other content at: {ARTIFACT}" in last, output
    assert listing(data) == before  # nothing published, theirs untouched
    assert not list((data / "state" / "incoming").glob("*/*"))
    assert not (data / "state" / "receipts").is_dir() or not any(
        (data / "state" / "receipts").iterdir()
    )


def test_mirror_and_key_commands_wait_for_no_load(paused_load, tmp_path, trust_files, compat):
    data, finish = paused_load
    elastic = (compat / "elastic-agent" / "GPG-KEY-elasticsearch").read_bytes()
    routes = [Route("/GPG-KEY-elasticsearch", lambda request: Response(elastic))]
    with serve_asgi(Starlette(routes=routes), lifespan="off") as base:
        fetched = run("keys", "fetch-elastic", "--data", data, "--url",
                      f"{base}/GPG-KEY-elasticsearch")  # fmt: skip
    published = run("keys", "publish", trust_files["files"], "--data", data)
    mirrored = run("artifacts", "mirror", "--version", "9.1.0", "--product", "elastic-agent",
                   "--platform", "linux-x86_64", "--package-type", "tar.gz", "--data", data,
                   "--key", trust_files["files"], "--source", f"{base}/downloads/")  # fmt: skip
    for result in (fetched, published, mirrored):
        assert result.exit_code == 1, result.output
        assert "already running" in result.output.strip().splitlines()[-1], result.output
    assert not (data / "keys").is_dir() or not any((data / "keys").iterdir())
    assert not (data / ARTIFACT).exists()
    code, output = finish()
    assert code == 0, output
