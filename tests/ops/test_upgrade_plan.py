"""`fleetgap plan upgrade`: five steps in order with their commands and gates; with URLs,
each step is marked from what the doctor measures."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleetgap.cli import main

from closed_side import PLATFORMS, STACK, agent_path, moved_away
from serving import serve_asgi

TITLES = (
    "Package registry",
    "Elastic Stack with Kibana",
    "Artifact registry",
    "On-premise Fleet Server",
    "Elastic Agents",
)


def plan(*args: str) -> dict:
    result = CliRunner().invoke(
        main, ["plan", "upgrade", "--from", "8.19.0", "--to", STACK, *args, "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def urls(side) -> list[str]:
    args = [
        "--registry",
        side.url,
        "--artifacts",
        side.url + "/downloads/",
        "--key-url",
        side.url + "/GPG-KEY-elastic-agent",
        "--fleet-server",
        side.url,
        "--ca-cert",
        str(side.ca_cert),
        "--package",
        "nginx",
    ]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def test_five_steps_in_order_with_commands_and_gates(tmp_path):
    document = plan("--write-selections", str(tmp_path))
    steps = document["steps"]
    assert [s["number"] for s in steps] == [1, 2, 3, 4, 5]
    assert [s["title"].split(":")[0] for s in steps] == list(TITLES)
    assert {s["state"] for s in steps} == {"not measured"}
    first, _, third, fourth, _ = steps
    assert any(f"fleetgap bundle create packages-{STACK}.yml" in c for c in first["commands"])
    assert any(f"fleetgap bundle load packages-{STACK}.bundle" in c for c in first["commands"])
    assert first["gate"] == ["registry", "packages"]
    assert any("fleetgap config download-source" in c for c in third["commands"])
    assert any("server.pgp.upstream_url" in c for c in fourth["commands"])
    packages = yaml.safe_load((tmp_path / f"packages-{STACK}.yml").read_text())
    assert packages["queries"] == [{"kibana.version": STACK}]
    artifacts = yaml.safe_load((tmp_path / f"artifacts-{STACK}.yml").read_text())
    assert artifacts["artifacts"][0]["versions"] == [STACK]
    assert artifacts["artifacts"][0]["products"] == [
        "elastic-agent",
        "fleet-server",
        "endpoint-security",
    ]


def test_measured_against_a_complete_closed_side(closed_side):
    states = [s["state"] for s in plan(*urls(closed_side))["steps"]]
    assert states == ["done", "not measured", "done", "done", "not measured"]


def test_a_missing_agent_binary_leaves_step_3_not_done(closed_side):
    binary = closed_side.data / "downloads" / agent_path("linux-x86_64")
    with moved_away(binary):
        steps = plan(*urls(closed_side))["steps"]
    assert [s["state"] for s in steps] == [
        "done",
        "not measured",
        "not done",
        "done",
        "not measured",
    ]
    assert any("artifact elastic-agent linux-x86_64" in line for line in steps[2]["evidence"])


def test_kibana_version_marks_step_2():
    def status(version: str) -> Starlette:
        body = {"name": "kibana", "version": {"number": version}}
        return Starlette(routes=[Route("/api/status", lambda request: JSONResponse(body))])

    with serve_asgi(status(STACK)) as kibana:
        assert plan("--kibana", kibana)["steps"][1]["state"] == "done"
    with serve_asgi(status("8.19.0")) as kibana:
        step = plan("--kibana", kibana)["steps"][1]
    assert step["state"] == "not done"
    assert step["evidence"] == ["kibana reports version 8.19.0"]


def test_text_output_lists_the_steps():
    result = CliRunner().invoke(main, ["plan", "upgrade", "--from", "9.0.0", "--to", "9.1.0"])
    assert result.exit_code == 0
    positions = [result.output.index(f"{n}. {title}") for n, title in enumerate(TITLES, 1)]
    assert positions == sorted(positions)


def test_downgrade_is_refused():
    result = CliRunner().invoke(main, ["plan", "upgrade", "--from", "9.1.0", "--to", "9.0.0"])
    assert result.exit_code == 1
    assert result.output == "error: --to 9.0.0 must be newer than --from 9.1.0\n"


def test_step_3_carries_and_checks_the_protection_artifacts_of_the_target(tmp_path, closed_side):
    document = plan("--write-selections", str(tmp_path))
    third = document["steps"][2]
    assert "protection artifacts" in third["title"] and "defend" in third["gate"]
    assert any("fleetgap config defend --url" in c for c in third["commands"])
    from fleetgap.bundle.selection import load_selection

    written = load_selection(tmp_path / f"artifacts-{STACK}.yml").protection_artifacts
    assert written is not None and written.versions == (STACK,)
    from defend_upstream import artifact_url

    missing = closed_side.data / artifact_url("diagnostic-configuration-v1").lstrip("/")
    with moved_away(missing):
        steps = plan(*urls(closed_side))["steps"]
    assert steps[2]["state"] == "not done"
    assert any(f"defend protection artifacts {STACK}" in line for line in steps[2]["evidence"])


def test_the_plans_bundle_commands_sign_and_trust_the_bundles():
    commands = [c for s in plan()["steps"] for c in s["commands"]]
    parts = [part.strip() for c in commands for part in c.split("&&")]
    creates = [p for p in parts if "fleetgap bundle create" in p]
    closed = [p for p in parts if "fleetgap bundle verify" in p or "fleetgap bundle load" in p]
    assert len(creates) == 2 and len(closed) == 4
    assert all("--sign-key bundle-signer.key" in p for p in creates)
    assert all("--trust-key bundle-signer.key.pub" in p for p in closed)


def test_a_pre_release_upgrades_to_its_release():
    result = CliRunner().invoke(
        main, ["plan", "upgrade", "--from", "9.1.0-beta1", "--to", "9.1.0", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["from"] == "9.1.0-beta1"
    back = CliRunner().invoke(main, ["plan", "upgrade", "--from", "9.1.0", "--to", "9.1.0-rc1"])
    assert back.exit_code == 1
    assert back.output == "error: --to 9.1.0-rc1 must be newer than --from 9.1.0\n"
