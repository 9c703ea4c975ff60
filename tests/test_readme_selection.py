"""The README's example selection is enough for Fleet setup: `doctor` passes after it."""

from __future__ import annotations

import re
from pathlib import Path

from fleetgap.bundle.selection import parse_selection
from fleetgap.ops.doctor import SETUP_PACKAGES

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_selection_carries_the_packages_fleet_setup_installs(tmp_path) -> None:
    section = README.read_text().split("## Crossing the gap", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    (tmp_path / "elastic-agent.asc").write_text("the long form's key file\n")
    selection = parse_selection(example[1], tmp_path / "sel.yaml")
    asked = {dict(q.values).get("package") for q in selection.queries}
    asked |= {p.name for p in selection.packages}
    assert set(SETUP_PACKAGES) <= asked
