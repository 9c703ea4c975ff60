"""`fleetgap plan upgrade --from A --to B`: the five steps of an air-gapped upgrade, in order.

(1) package registry, (2) Elastic Stack with Kibana, (3) artifact registry with the new
agent binaries and Elastic Defend's protection artifacts for Endpoint B, (4) on-premise
Fleet Server, (5) agents. Each step has its commands and the doctor checks that must pass
before the next one; given the URLs, the doctor runs for B and each step is marked done or
not done from what it measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import yaml

from fleetgap.artifacts.catalogue import check_version
from fleetgap.errors import FleetgapError
from fleetgap.ops.checks import FAIL, OK, SKIP, CheckResult
from fleetgap.ops.doctor import PRODUCTS, DoctorOptions, Report, run_doctor
from fleetgap.ops.probe import Probe, ProbeError
from fleetgap.semver import Version

DONE = "done"
NOT_DONE = "not done"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    commands: tuple[str, ...]
    gate: tuple[str, ...]  # doctor check groups that must pass before the next step
    state: str = NOT_MEASURED
    evidence: tuple[str, ...] = ()  # the measured checks behind `state`
    files: tuple[tuple[str, str], ...] = ()  # (file name, text) to write for this step


@dataclass(frozen=True)
class Plan:
    source: str
    target: str
    steps: tuple[Step, ...]

    def as_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "steps": [asdict(s) for s in self.steps]}


def plan_upgrade(
    source: str, target: str, urls: DoctorOptions | None = None, kibana: str | None = None
) -> Plan:
    """The plan; with `urls` (a DoctorOptions for any version) the steps are measured for B."""
    source, target = check_version(source), check_version(target)
    # semver order: a pre-release comes before its release (9.1.0-beta1 < 9.1.0)
    if Version.parse(target).compare(Version.parse(source)) <= 0:
        raise FleetgapError(f"--to {target} must be newer than --from {source}")
    o = urls or DoctorOptions(stack_version=target)
    steps = _steps(source, target, o)
    measured = urls is not None and any((o.registry, o.artifacts, o.key_url, o.fleet_server))
    if measured:
        report = run_doctor(replace(o, stack_version=target))
        steps = [_mark(step, report) for step in steps]
    if kibana:
        steps[1] = _mark_kibana(steps[1], kibana, target, o)
    return Plan(source, target, tuple(steps))


def _steps(a: str, b: str, o: DoctorOptions) -> list[Step]:
    registry = o.registry or "https://REGISTRY:8080"
    artifacts = o.artifacts or f"{registry}/downloads/"
    key_url = o.key_url or f"{registry}/GPG-KEY-elastic-agent"
    urls = f"--registry {registry} --artifacts {artifacts} --key-url {key_url}"
    fleet = f" --fleet-server {o.fleet_server}" if o.fleet_server else " --fleet-server FLEET"
    platforms = list(o.platforms) or ["linux-x86_64", "windows-x86_64", "darwin-aarch64"]
    packages_selection = {
        "queries": [{"kibana.version": b}],
        "keys": ["GPG-KEY-elasticsearch"],
    }
    artifacts_selection = {
        "artifacts": [{"versions": [b], "products": list(PRODUCTS), "platforms": platforms}],
        "keys": ["GPG-KEY-elastic-agent"],
        "protection_artifacts": {"versions": [b]},  # Endpoint B's manifest and artifacts
    }
    defend_base = o.defend or artifacts.rstrip("/").removesuffix("/downloads")
    bundle = "fleetgap bundle"
    # the closed side loads only bundles signed by a key it trusts (README: Trust)
    sign, trust = "--sign-key bundle-signer.key", "--trust-key bundle-signer.key.pub"
    return [
        Step(
            1,
            f"Package registry: the packages for Kibana {b}",
            (
                "closed side: fleetgap bundle receipt --data DATA > receipt.json "
                "(carry it to the connected side)",
                f"connected side: {bundle} plan packages-{b}.yml --since receipt.json",
                f"connected side: {bundle} create packages-{b}.yml --since receipt.json "
                f"--out packages-{b}.bundle {sign}",
                f"closed side: {bundle} verify packages-{b}.bundle --data DATA {trust} && "
                f"{bundle} load packages-{b}.bundle --data DATA {trust}",
                f"fleetgap doctor --stack-version {b} {urls}",
            ),
            ("registry", "packages"),
            files=((f"packages-{b}.yml", _yaml(packages_selection)),),
        ),
        Step(
            2,
            f"Elastic Stack with Kibana: {a} -> {b}",
            (
                f"upgrade Elasticsearch, then Kibana, to {b} (Elastic's rolling upgrade)",
                "keep kibana.yml pointed at fleetgap: fleetgap config kibana "
                f"--registry {registry} --ca-cert CA (xpack.fleet.registryUrl, "
                "xpack.fleet.isAirGapped, packageVerification.gpgKeyPath)",
                "Kibana's Fleet setup then asks the registry for system, elastic_agent and "
                f"fleet_server for {b}",
            ),
            ("registry", "packages"),
        ),
        Step(
            3,
            f"Artifact registry: the agent binaries and the protection artifacts of {b}",
            (
                f"connected side: {bundle} create artifacts-{b}.yml --since receipt.json "
                f"--out artifacts-{b}.bundle {sign}",
                f"closed side: {bundle} verify artifacts-{b}.bundle --data DATA {trust} && "
                f"{bundle} load artifacts-{b}.bundle --data DATA {trust}",
                "Fleet's agent binary download source: fleetgap config download-source "
                f"--artifacts {artifacts} (POST /api/fleet/agent_download_sources)",
                "Elastic Defend policy (once): fleetgap config defend --url "
                f"{defend_base} (advanced.artifacts.global.base_url per OS); Endpoint {b} "
                f"then fetches /downloads/endpoint/manifest/artifacts-{b}.zip",
                f"fleetgap doctor --stack-version {b} {urls} --deep",
            ),
            ("artifacts", "key", "tls", "defend"),
            files=((f"artifacts-{b}.yml", _yaml(artifacts_selection)),),
        ),
        Step(
            4,
            f"On-premise Fleet Server: {a} -> {b}",
            (
                f"upgrade the Fleet Server hosts' agents to {b} first (Fleet UI: Agents, "
                "select the Fleet Server hosts, Upgrade agent)",
                f"server.pgp.upstream_url: fleetgap config fleet-server --key-url {key_url}",
                f"fleetgap doctor --stack-version {b} {urls}{fleet}",
            ),
            ("fleet-server",),
        ),
        Step(
            5,
            f"Elastic Agents: {a} -> {b}",
            (
                f"Fleet UI: Agents, select, Upgrade agents to {b}; or POST "
                f'/api/fleet/agents/bulk_upgrade {{"agents": "<kuery>", "version": "{b}"}}',
                f"standalone agents: elastic-agent upgrade {b} --source-uri {artifacts} "
                f"--pgp-uri {key_url}",
            ),
            ("registry", "packages", "artifacts", "key", "fleet-server", "tls"),
        ),
    ]


def _mark(step: Step, report: Report) -> Step:
    """Steps 1, 3 and 4 are done when their checks pass; 2 and 5 happen outside fleetgap's
    sight (step 2 is measured with --kibana), their gate says whether they may start."""
    if step.number in (2, 5):
        return step
    results = [r for r in report.results if r.group in step.gate]
    return replace(step, state=_state(results), evidence=_evidence(results))


def _state(results: Sequence[CheckResult]) -> str:
    if not results or all(r.status == SKIP for r in results):
        return NOT_MEASURED
    return NOT_DONE if any(r.status == FAIL for r in results) else DONE


def _evidence(results: Sequence[CheckResult]) -> tuple[str, ...]:
    problems = tuple(f"{r.status}: {r.id}: {r.detail}" for r in results if r.status != OK)
    if problems or not results:
        return problems
    return (f"ok: all {len(results)} checks pass",)


def _mark_kibana(step: Step, kibana: str, target: str, o: DoctorOptions) -> Step:
    """Kibana's `/api/status` names its version (where it answers without credentials)."""
    probe = Probe(o.ca_cert, o.timeout)
    try:
        body = probe.get(kibana.rstrip("/") + "/api/status").json()
        version = str(body["version"]["number"])
    except ProbeError as exc:
        return replace(step, state=NOT_MEASURED, evidence=(f"skip: kibana: {exc}",))
    except (ValueError, KeyError, TypeError):
        return replace(step, state=NOT_MEASURED, evidence=("skip: kibana: no version in status",))
    finally:
        probe.close()
    state = DONE if version == target else NOT_DONE
    return replace(step, state=state, evidence=(f"kibana reports version {version}",))


def _yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
