"""Running registries for the registry tests: one `fleetgap serve` per corpus setup."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from registry_setups import start_setup


@pytest.fixture(scope="session")
def servers(compat: Path, tmp_path_factory: pytest.TempPathFactory):
    """One running `fleetgap serve` per setup, started when first needed."""
    stack = contextlib.ExitStack()
    started: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in started:
            started[name] = stack.enter_context(start_setup(name, compat, tmp_path_factory))
        return started[name]

    with stack:
        yield get
