"""Would a real Elastic Agent accept this upgrade? Its download-and-verify chain, replayed.

spec: agent-artifacts §3 (URLs), §6.1 (.sha512), §6.2 (key sources and their order),
§6.3 (signature check), §6.5 (which verifier reads what), §6.7 (outcomes), as of agent
v9.5.2. Differences that change only timing, never the outcome: a missing package or
sidecar is tried per `NetOptions` (the agent keeps retrying for ~15 minutes, even on 404,
then fails the same way); remote keys are fetched with `key_timeout` (the agent: 30 s,
retrying transport errors and any status >= 400 within it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fleetgap.artifacts.urls import DEFAULT_SOURCE, agent_package_name, agent_urls
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions
from fleetgap.pgp.keys import KeyFileError, parse_public_key
from fleetgap.pgp.sha512 import ChecksumError, check_sha512
from fleetgap.pgp.signatures import (
    SignatureError,
    SignedData,
    check_key,
    parse_detached_signature,
)

ELASTIC_REMOTE_KEY_URL = "https://artifacts.elastic.co/GPG-KEY-elastic-agent"
KEY_FETCH_TIMEOUT = 30.0  # spec: agent-artifacts §6.2, per remote key source
FLEET_KEY_PATH = "/api/agents/upgrades/{version}/pgp-public-key"


@dataclass(frozen=True)
class KeySource:
    """One entry of the agent's key list: raw armored bytes, or a URL to fetch them from."""

    label: str
    raw: bytes | None = None
    uri: str | None = None


@dataclass(frozen=True)
class UpgradeCheck:
    """What an upgrade looks like to the agent: target, where from, which keys."""

    version: str
    source_uri: str = DEFAULT_SOURCE
    os: str = "linux"
    arch: str = "amd64"
    fips: bool = False
    embedded_key: bytes | None = None  # Elastic's key as compiled into the agent
    skip_default_pgp: bool = False
    pgp_path: Path | None = None
    pgp: str | None = None
    pgp_uri: str | None = None
    remote_key_url: str = ELASTIC_REMOTE_KEY_URL  # always appended by agents >= 8.9
    fleet_url: str | None = None  # the agent's Fleet Server host, if it knows one
    net: NetOptions = field(default_factory=NetOptions)  # agent.download.* (CA, proxy)
    key_timeout: float = KEY_FETCH_TIMEOUT


@dataclass(frozen=True)
class UpgradeVerdict:
    """Outcome in the agent's terms: `error` is what `upgrade_details.metadata.error_msg`
    would say; `log` the agent's warnings and per-key lines, in order."""

    passed: bool
    artifact: str
    failed_step: str | None = None  # "download", "checksum", "signature"
    error: str | None = None
    log: tuple[str, ...] = ()
    verified_by: str | None = None  # "PGP[i] <label>: <fingerprint>"

    @property
    def state(self) -> str:
        return "UPG_DOWNLOADING -> verified" if self.passed else "UPG_FAILED"


def agent_key_sources(check: UpgradeCheck) -> list[KeySource]:
    """The agent's key list, in its order (spec: agent-artifacts §6.2)."""
    sources: list[KeySource] = []
    if not check.skip_default_pgp:
        if check.embedded_key is None:
            raise FleetgapError(
                "Elastic's key (embedded in every agent) is not available: run "
                "`fleetgap keys fetch-elastic` on the connected side, pass --elastic-key, "
                "or --skip-default-pgp"
            )
        sources.append(KeySource("embedded Elastic key", raw=check.embedded_key))
    if check.pgp_path is not None:
        try:
            raw = Path(check.pgp_path).read_bytes()
        except OSError as exc:
            reason = f"{exc.strerror}: {check.pgp_path}"
            raise FleetgapError(f"failed to read pgp file: {reason}") from None
        sources.append(KeySource(f"--pgp-path {check.pgp_path}", raw=raw))
    if check.pgp:
        sources.append(KeySource("--pgp", raw=check.pgp.encode()))
    if check.pgp_uri:
        if not _is_https(check.pgp_uri):  # the CLI rejects it up front
            raise FleetgapError(f"invalid pgp uri {check.pgp_uri!r}: HTTPS is required")
        sources.append(KeySource(f"--pgp-uri {check.pgp_uri}", uri=check.pgp_uri))
    sources.append(KeySource("default remote key", uri=check.remote_key_url))
    if check.fleet_url:
        sources.append(KeySource("Fleet Server", uri=fleet_key_url(check.fleet_url, check.version)))
    return sources


def fleet_key_url(fleet_host: str, target_version: str, fleet_path: str = "") -> str:
    """Fleet Server's key URL for a target (spec: agent-artifacts §6.4): scheme defaults to
    http (so it is then skipped as non-https), only the target's M.m.p is used."""
    base = fleet_host if "://" in fleet_host else f"http://{fleet_host}"
    base = base.rstrip("/")
    if fleet_path.strip("/"):
        base += "/" + fleet_path.strip("/")
    release = target_version.split("+", 1)[0].split("-", 1)[0]
    return base + FLEET_KEY_PATH.format(version=release)


def verify_upgrade(check: UpgradeCheck) -> UpgradeVerdict:
    """Download (to a temp dir), check the sidecar and the signature, as the agent would."""
    name = agent_package_name(check.version, check.os, check.arch, check.fips)
    sources = agent_key_sources(check)
    urls = agent_urls(check.source_uri, name)
    with tempfile.TemporaryDirectory(prefix="fleetgap-upgrade-") as tmp:
        target = Path(tmp)
        if check.source_uri.startswith("file://"):
            return _verify_local(check, name, Path(urls.package).parent, sources)
        return _verify_remote(check, name, urls, target, sources)


def _verify_remote(check, name, urls, target: Path, sources) -> UpgradeVerdict:
    log: list[str] = []
    package = target / name
    with Net(check.net) as net:
        try:
            net.download(urls.package, package)
            sidecar = net.get_bytes(urls.sha512)
        except NetError as exc:
            return _failed(name, "download", f"failed download of agent binary: {_net(exc)}", log)
    outcome = _checksum(name, package, sidecar, log)
    if outcome:
        return outcome
    # http verifier: the .asc first, then the keys (spec §6.5)
    with Net(_key_net(check)) as net:
        try:
            asc = net.get_bytes(urls.asc)
        except NetError as exc:
            return _failed(
                name, "signature", f"failed verification of agent binary: {_net(exc)}", log
            )
    blobs = _fetch_keys(check, sources, log)
    unreachable = sum(1 for line in log if "because it's unavailable" in line)
    if unreachable:
        # spec §6.5: the fs verifier runs first and fetches every key too, so each
        # unreachable URL costs the agent up to two 30 s waits per upgrade attempt
        log.append(
            f"NOTE {unreachable} key URL(s) unusable: a real agent waits up to "
            f"{2 * unreachable * KEY_FETCH_TIMEOUT:.0f} s on them (fs and http verifier)"
        )
    return check_signature_blobs(package, asc, blobs, log)


def _verify_local(check, name, drop: Path, sources) -> UpgradeVerdict:
    """`file://` source: flat drop dir, fs verifier only (keys fetched before the .asc)."""
    log: list[str] = []
    package = drop / name
    if not drop.is_dir():
        log.append(
            f"drop path {drop} is not a directory: the agent falls back to its downloads dir"
        )
    try:
        sidecar = (drop / f"{name}.sha512").read_bytes()
        package.stat()
    except OSError as exc:
        return _failed(
            name,
            "download",
            f"failed download of agent binary: package '{exc.filename}' not found: {exc.strerror}",
            log,
        )
    outcome = _checksum(name, package, sidecar, log)
    if outcome:
        return outcome
    blobs = _fetch_keys(check, sources, log, retry=False)  # the fs verifier does not retry
    try:
        asc = (drop / f"{name}.asc").read_bytes()
    except OSError as exc:
        return _failed(
            name,
            "signature",
            f"failed verification of agent binary: {exc.strerror}: {exc.filename}",
            log,
        )
    return check_signature_blobs(package, asc, blobs, log)


def _checksum(name: str, package: Path, sidecar: bytes, log: list[str]) -> UpgradeVerdict | None:
    try:
        check_sha512(package, sidecar.decode("utf-8", "replace"), f"{package}.sha512")
    except ChecksumError as exc:
        if exc.kind == "mismatch":
            log.append("checksum mismatch: the agent deletes the package and its .sha512")
        return _failed(name, "checksum", f"failed verification of agent binary: {exc}", log)
    return None


def _fetch_keys(
    check: UpgradeCheck, sources: list[KeySource], log: list[str], retry: bool = True
) -> list[tuple[str, bytes]]:
    """Every source, fetched eagerly; unusable remote ones are dropped with a warning."""
    blobs: list[tuple[str, bytes]] = []
    options = _key_net(check) if retry else replace(_key_net(check), attempts=1)
    with Net(options) as net:
        for source in sources:
            if source.raw is not None:
                blobs.append((source.label, source.raw))
                continue
            body = _fetch_key(net, source.uri or "", log)
            if body:
                blobs.append((source.label, body))
    return blobs


def _fetch_key(net: Net, uri: str, log: list[str]) -> bytes | None:
    if not _is_https(uri):
        log.append(
            f'WARN Skipped remote PGP located at "{uri}" because it\'s unavailable: '
            "failed to fetch remote PGP: HTTPS is required"
        )
        return None
    try:
        body = net.get_bytes(uri)
    except NetError as exc:
        if exc.status is not None:
            log.append(
                f"WARN Failed to fetch remote PGP key from \"{uri}\": call to '{uri}' returned "
                f"unsuccessful status code: {exc.status}"
            )
        else:
            log.append(
                f'WARN Skipped remote PGP located at "{uri}" because it\'s unavailable: '
                f"{exc.reason}"
            )
        return None
    if not body:
        log.append(f'WARN remote PGP key from "{uri}" is empty; skipped')
        return None
    return body


def check_signature_blobs(
    package: Path, asc: bytes, blobs: Sequence[tuple[str, bytes]], log: list[str] | None = None
) -> UpgradeVerdict:
    """The agent's signature step: each key blob in order (spec: agent-artifacts §6.3)."""
    log = [] if log is None else log
    name = package.name
    path = str(package)
    if not blobs:
        log.append("WARN No PGP key available, skipping verification process")
        return _failed(
            name,
            "signature",
            f"failed verification of agent binary: {_not_verified(path)}: %!w(<nil>)",
            log,
        )
    last = ""
    try:
        parsed = parse_detached_signature(asc)
    except SignatureError as exc:
        parsed, last = None, str(exc)
    for index, (label, blob) in enumerate(blobs):
        if parsed is None:
            log.append(f"WARN Verification with PGP[{index}] failed: {last}")
            continue
        try:
            key = parse_public_key(blob)
        except KeyFileError as exc:
            last = str(exc)
            log.append(f"WARN Verification with PGP[{index}] failed: {last}")
            continue
        problem = check_key(SignedData(path=package), parsed, key)
        if problem is None:
            log.append(f"Verification with PGP[{index}] successful")
            return UpgradeVerdict(
                True,
                name,
                log=tuple(log),
                verified_by=f"PGP[{index}] {label}: {key.fingerprint}",
            )
        last = problem
        log.append(f"WARN Verification with PGP[{index}] failed: {problem}")
    return _failed(
        name,
        "signature",
        f"failed verification of agent binary: {_not_verified(path)}: {last}",
        log,
    )


def _key_net(check: UpgradeCheck) -> NetOptions:
    return replace(
        check.net,
        timeout=check.key_timeout,
        retry_for=check.key_timeout,
        attempts=max(check.net.attempts, 1000),
        wait_initial=0.5,
    )


def _failed(name: str, step: str, error: str, log: list[str]) -> UpgradeVerdict:
    return UpgradeVerdict(False, name, failed_step=step, error=error, log=tuple(log))


def _net(exc: NetError) -> str:
    if exc.status is not None:
        return f"call to '{exc.url}' returned unsuccessful status code: {exc.status}"
    return f"{exc.url}: {exc.reason}"


def _not_verified(path: str) -> str:
    return f'could not verify PGP signature of "{path}"'


def _is_https(uri: str) -> bool:
    return uri.lower().startswith("https://")
