"""Bad selection files: one `error:` line naming the file and line, exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bundle.tests_env import run_env

CASES = {
    "unknown top key": (
        "address: https://epr.elastic.co\nmatrixx:\n  - kibana.version: 9.1.0\n",
        2,
        "matrixx",
    ),
    "unknown query key": ("queries:\n  - package: nginx\n    kibana: 9.1.0\n", 3, "kibana"),
    "queries not a list": ("queries:\n  package: nginx\n", 2, "list"),
    "pinned version not a string": (
        "packages:\n  - name: apache\n    version: [2, 1]\n",
        3,
        "version",
    ),
    "address not a URL": ("address: epr.elastic.co\n", 1, "address"),
    "unknown product": (
        "artifacts:\n  - versions: [9.1.0]\n    products: [elastic-agent, no-such-beat]\n",
        3,
        "no-such-beat",
    ),
    "unknown platform": (
        "artifacts:\n  - versions: [9.1.0]\n    platforms: [amiga-m68k]\n",
        3,
        "amiga-m68k",
    ),
    "artifacts without versions": ("artifacts:\n  - products: [elastic-agent]\n", 2, "versions"),
    "bad key fingerprint": (
        "keys:\n  - file: default.pgp\n    source: ./k.asc\n    fingerprint: nothex\n",
        4,
        "fingerprint",
    ),
    "not YAML": ("queries:\n  - package: [nginx\n", 3, "YAML"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_selection_is_one_error_line_naming_the_line(tmp_path, case):
    text, line, word = CASES[case]
    path = tmp_path / "selection.yaml"
    path.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "fleetgap", "bundle", "plan", str(path)],
        capture_output=True, text=True, env=run_env(), timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {path}:{line}: "), lines[0]
    assert word in lines[0]
    assert run.stdout == ""
