"""Shared fixtures: where the compatibility corpus lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corpus import compat_root

pytest_plugins = ["kit_setup"]  # the offline kit and its one install, shared by its tests


@pytest.fixture(scope="session")
def compat() -> Path:
    root = compat_root()
    if root is None:
        message = "compat corpus not found: set FLEETGAP_COMPAT or check out ../shared"
        if os.environ.get("FLEETGAP_REQUIRE_COMPAT"):
            pytest.fail(message)  # .ci/run sets this: the corpus must be there in CI
        pytest.skip(message)
    return root
