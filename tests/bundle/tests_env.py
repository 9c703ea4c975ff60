"""The environment for `python -m fleetgap` subprocesses in the bundle tests: this checkout."""

from __future__ import annotations

import os
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC}
