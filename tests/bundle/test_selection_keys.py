"""`keys:` in a selection: a bare key name comes from where the artifacts come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetgap.bundle.selection import SelectionError, parse_selection
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT


def _keys(text: str):
    return parse_selection(text, Path("/sel/s.yaml")).keys


def _artifacts(*sources: str) -> str:
    entries = "".join(f"  - source: {s}\n    versions: [9.1.0]\n" for s in sources)
    return f"artifacts:\n{entries}"


def test_a_bare_key_name_follows_the_artifacts_mirror_source() -> None:
    keys = _keys(
        _artifacts("http://mirror.internal:8080/downloads/")
        + "keys:\n  - GPG-KEY-elastic-agent\n  - default.pgp\n"
    )
    assert [(k.file, k.source, k.fingerprint) for k in keys] == [
        ("GPG-KEY-elastic-agent", "http://mirror.internal:8080/GPG-KEY-elastic-agent",
         ELASTIC_FINGERPRINT),
        ("default.pgp", "http://mirror.internal:8080/GPG-KEY-elastic-agent", ELASTIC_FINGERPRINT),
    ]  # fmt: skip


def test_a_source_without_a_downloads_folder_holds_the_key_itself() -> None:
    text = _artifacts("https://files.internal/elastic") + "keys:\n  - GPG-KEY-elastic-agent\n"
    keys = _keys(text)
    assert keys[0].source == "https://files.internal/elastic/GPG-KEY-elastic-agent"


def test_without_a_mirror_a_bare_key_name_comes_from_elastic() -> None:
    keys = _keys(_artifacts("https://artifacts.elastic.co/downloads/") + "keys:\n  - default.pgp\n")
    assert keys[0].source == "https://artifacts.elastic.co/GPG-KEY-elastic-agent"
    assert _keys("keys:\n  - GPG-KEY-elastic-agent\n")[0].source == (
        "https://artifacts.elastic.co/GPG-KEY-elastic-agent"
    )


def test_the_long_form_wins_over_the_artifact_source() -> None:
    keys = _keys(
        _artifacts("http://mirror.internal/downloads/")
        + "keys:\n  - file: default.pgp\n    source: ./agent.asc\n"
        + "    fingerprint: 0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567\n"
    )
    assert (keys[0].source, keys[0].fingerprint) == (
        "/sel/agent.asc",
        "0123456789ABCDEF0123456789ABCDEF01234567",
    )


def test_two_mirrors_make_a_bare_key_name_ambiguous() -> None:
    text = _artifacts("http://a.internal/downloads/", "http://b.internal/downloads/")
    with pytest.raises(SelectionError, match=r"s.yaml:7: .*2 sources.*long form"):
        _keys(text + "keys:\n  - GPG-KEY-elastic-agent\n")


def test_the_long_form_is_in_the_help_of_plan_and_create() -> None:
    from click.testing import CliRunner

    from fleetgap.cli import main

    for command in ("plan", "create"):
        shown = CliRunner().invoke(main, ["bundle", command, "--help"]).output
        assert "- file: default.pgp" in shown and "fingerprint:" in shown and "source:" in shown
