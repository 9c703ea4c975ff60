"""Output that is not a terminal (systemd, CI, `| tee`): `bundle create`, `bundle load` and
`artifacts mirror` print a plain progress line every few seconds instead of nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bundle.public_side import AGENT
from bundle.test_create import selection
from bundle.tests_env import run_env


def fleetgap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = run_env() | {"FLEETGAP_PROGRESS_INTERVAL": "0.05"}
    return subprocess.run(
        [sys.executable, "-m", "fleetgap", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=180,
    )  # fmt: skip


def test_create_and_load_print_plain_progress_lines_to_a_pipe(public, tmp_path):
    selection(public, tmp_path / "s.yaml")
    created = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--cache", "cache",
        "--key", str(public.key_file), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    lines = created.stderr.splitlines()
    fetched = r"bundle create: (\d+) of (\d+) files fetched, [\d.]+ MB received \(\d+ s\)"
    fetching = [m for m in map(re.compile(fetched).fullmatch, lines) if m]
    written = r"bundle create: writing b\.tar: [\d.]+ of [\d.]+ MB \(\d+%\) \(\d+ s\)"
    writing = [line for line in lines if re.fullmatch(written, line)]
    assert fetching and writing, created.stderr
    assert fetching[-1][1] == fetching[-1][2] == "6"  # five package zips and the agent
    assert writing[-1].startswith("bundle create: writing b.tar:") and "(100%)" in writing[-1]
    assert json.loads(created.stdout)["bundle_id"]  # stdout stays the report alone

    loaded = fleetgap(
        "bundle", "load", "b.tar", "--data", "data", "--allow-unsigned",
        "--key", str(public.key_file), cwd=tmp_path,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    progress = [line for line in loaded.stderr.splitlines() if line.startswith("bundle load:")]
    assert progress and "loading b.tar:" in progress[-1] and "(100%)" in progress[-1], loaded.stderr


def test_mirror_prints_plain_progress_lines_to_a_pipe(public, tmp_path):
    mirrored = fleetgap(
        "artifacts", "mirror", "--version", "9.1.0", "--product", "elastic-agent",
        "--platform", "linux-x86_64", "--package-type", "tar.gz", "--source", public.downloads,
        "--data", "data", "--key", str(public.key_file), cwd=tmp_path,
    )  # fmt: skip
    assert mirrored.returncode == 0, mirrored.stderr
    progress = [
        line for line in mirrored.stderr.splitlines() if line.startswith("artifacts mirror:")
    ]
    assert progress and progress[-1].startswith("artifacts mirror: 1 of 1 files fetched, 2.6 MB")
    assert (tmp_path / "data" / "downloads" / AGENT).is_file()
