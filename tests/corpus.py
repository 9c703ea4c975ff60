"""Where the compatibility corpus lives: ../shared/compat, or $FLEETGAP_COMPAT."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def compat_root() -> Path | None:
    """../shared/compat beside the checkout, or $FLEETGAP_COMPAT; None when neither exists."""
    env = os.environ.get("FLEETGAP_COMPAT")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "compat")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None
