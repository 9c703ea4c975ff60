"""The `fleetgap serve` command line: Go flag names and syntax, -version, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetgap.cli import main
from fleetgap.cli.serve import normalise_go_flags
from fleetgap.config import FLAGS


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("EPR_", "FLEETGAP_"))]:
        monkeypatch.delenv(name)
    return CliRunner()


def test_version_prints_the_compat_version_then_fleetgap(runner: CliRunner) -> None:
    for args in (["serve", "-version"], ["serve", "--version"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0
        assert result.output.startswith("Elastic Package Registry version 1.40.1 (fleetgap ")
    result = runner.invoke(main, ["serve"], env={"EPR_VERSION": "true"})
    assert result.output.startswith("Elastic Package Registry version 1.40.1")


def test_help_lists_every_go_flag_and_its_env(runner: CliRunner) -> None:
    result = runner.invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in FLAGS:
        assert f"--{flag.name}" in result.output
        assert flag.env_name in result.output


def test_go_single_dash_flags_are_normalised() -> None:
    args = ["-address", ":8080", "-dry-run=false", "--config", "c.yml", "-x", "-", "--", "-y"]
    assert normalise_go_flags(args) == [
        "--address", ":8080", "--dry-run=false", "--config", "c.yml", "-x", "-", "--", "-y",
    ]  # fmt: skip
    assert normalise_go_flags(["address", "-tls-min-version=1.3"]) == [
        "address",
        "--tls-min-version=1.3",
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["-feature-storage-indexer"], {}, "-feature-storage-indexer is not supported"),
        ([], {"EPR_FEATURE_SQL_STORAGE_INDEXER": "true"}, "-feature-sql-storage-indexer is not"),
        (["-tls-min-version", "1.3"], {}, "-tls-min-version set but missing TLS cert"),
        (["-config", "missing.yml"], {}, "configuration file is not available: missing.yml"),
        ([], {"EPR_LOG_LEVEL": "loud"}, "invalid value for $EPR_LOG_LEVEL"),
        (["-package-paths-workers=0"], {}, "package-paths-workers must be greater than 0"),
        (
            ["-feature-proxy-mode", "-proxy-to", "http://epr.internal/"],
            {},
            "-proxy-to must use HTTPS",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_exit_1(
    runner: CliRunner, args: list[str], env: dict[str, str], message: str
) -> None:
    result = runner.invoke(main, ["serve", *args], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output
