"""`fleetgap doctor`: does the closed network hold everything stack version V needs?

Measured against the live URLs, the way Kibana, Fleet Server and the agents will ask:
- the registry answers `/health` and Kibana's search for V (spec: kibana-fleet-client §4.1);
- the packages Fleet setup installs (system, elastic_agent, fleet_server; spec: §10a) and the
  ones asked for are there for Kibana V, signed, and the signature verifies against the key
  Kibana uses (§6: `xpack.fleet.packageVerification.gpgKeyPath`; `--package-key`, else the
  key the key URL serves — Elastic signs packages and binaries with one key);
- per platform the elastic-agent, fleet-server and endpoint-security archives of V with
  `.sha512` and `.asc` (spec: agent-artifacts §2, §9); with `deep`, downloaded and verified
  as the agent verifies (§6);
- the key URL serves a key that verifies them; Fleet Server's key endpoint answers over
  https (spec: fleet-server-pgp §1–§3, agent-artifacts §6.4);
- Elastic Defend's protection artifacts for Endpoint V (defend_doctor.py);
- every TLS certificate chains to the CA and is valid for 30 more days.
"""

from __future__ import annotations

import datetime
import tempfile
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fleetgap.artifacts.agent_upgrade import UpgradeCheck, fleet_key_url, verify_upgrade
from fleetgap.artifacts.catalogue import Artifact, check_version, load_catalogue
from fleetgap.artifacts.urls import compose_url
from fleetgap.errors import FleetgapError
from fleetgap.net import MAX_DOWNLOAD
from fleetgap.ops import defend_doctor
from fleetgap.ops.checks import FAIL, OK, SKIP, Check, CheckResult, run_checks
from fleetgap.ops.probe import Probe, ProbeError, origin
from fleetgap.ops.receipts import loaded_bundles
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.keys import PublicKey, parse_public_key, read_public_key
from fleetgap.pgp.package_signatures import VERIFIED, verify_package
from fleetgap.pgp.sha512 import ChecksumError
from fleetgap.pgp.signatures import SignatureError, parse_detached_signature

SETUP_PACKAGES = ("system", "elastic_agent", "fleet_server")  # spec: kibana-fleet-client §10a
PRODUCTS = ("elastic-agent", "fleet-server", "endpoint-security")
ARCHIVES = ("tar.gz", "zip")  # what agents download (spec: agent-artifacts §1)
EXPIRY_MARGIN = datetime.timedelta(days=30)
# Downloads stop past these: Elastic's largest package zip is about 100 MB, and a .sha512
# or .asc is well under a kilobyte.
MAX_PACKAGE_BYTES = 512 << 20
SIDECAR = 1 << 20
# catalogue platform -> the agent's (GOOS, GOARCH)
AGENT_RUNTIME = {
    "linux-x86_64": ("linux", "amd64"),
    "linux-arm64": ("linux", "arm64"),
    "windows-x86_64": ("windows", "amd64"),
    "windows-arm64": ("windows", "arm64"),
    "darwin-x86_64": ("darwin", "amd64"),
    "darwin-aarch64": ("darwin", "arm64"),
}


@dataclass(frozen=True)
class DoctorOptions:
    stack_version: str
    registry: str | None = None
    artifacts: str | None = None  # the download source, …/downloads/
    key_url: str | None = None  # …/GPG-KEY-elastic-agent
    fleet_server: str | None = None  # https://fleet-server:8220
    defend: str | None = None  # Defend's artifacts.global.base_url (default: from artifacts)
    platforms: tuple[str, ...] = ()  # default: every platform the agent ships for V
    packages: tuple[str, ...] = ()
    ca_cert: Path | None = None
    package_key: Path | None = None  # the file Kibana's gpgKeyPath names
    data_dir: Path | None = None  # the registry's data directory, when run on its host
    deep: bool = False
    timeout: float = 10.0
    workers: int = 8


@dataclass(frozen=True)
class Report:
    version: str
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return not any(result.failed for result in self.results)

    def as_dict(self) -> dict:
        return {
            "stack_version": self.version,
            "passed": self.passed,
            "checks": [result.as_dict() for result in self.results],
        }


def run_doctor(options: DoctorOptions) -> Report:
    options = replace(options, stack_version=check_version(options.stack_version))
    if options.timeout <= 0:
        raise FleetgapError("--timeout must be more than 0 seconds")
    for name, url in (
        ("--registry", options.registry),
        ("--artifacts", options.artifacts),
        ("--key-url", options.key_url),
        ("--fleet-server", options.fleet_server),
        ("--defend", options.defend),
    ):
        if url is not None and origin(url) is None:
            raise FleetgapError(f"{name} must be an http:// or https:// URL, not {url!r}")
    urls = (
        options.registry, options.artifacts, options.key_url, options.fleet_server,
        options.defend,
    )  # fmt: skip
    if not any(urls) and options.data_dir is None:
        raise FleetgapError(
            "nothing to check: give --registry, --artifacts, --key-url, --fleet-server, "
            "--defend or --data"
        )
    doctor = _Doctor(options)
    try:
        return Report(options.stack_version, tuple(run_checks(doctor.checks(), options.workers)))
    finally:
        doctor.probe.close()


class _Doctor:
    def __init__(self, options: DoctorOptions) -> None:
        self.o = options
        self.v = options.stack_version
        self.catalogue = load_catalogue()
        unknown = [p for p in options.platforms if p not in self.catalogue.platforms]
        if unknown:
            known = ", ".join(self.catalogue.platforms)
            raise FleetgapError(f"unknown platform {', '.join(unknown)} (known: {known})")
        agents = self._select("elastic-agent", ())
        self.platforms = options.platforms or tuple(a.platform for a in agents)
        self.artifacts = [a for p in PRODUCTS for a in self._select(p, self.platforms)]
        self._key_lock = threading.Lock()
        self._key: tuple[PublicKey | None, str] | None = None
        self.probe = Probe(options.ca_cert, options.timeout)

    def _select(self, product: str, platforms: Sequence[str]) -> list[Artifact]:
        """The archives of `product` for V (the catalogue knows per version which platforms
        a product has, e.g. windows-arm64 since 9.0)."""
        try:
            return self.catalogue.select(self.v, [product], platforms, ARCHIVES)
        except FleetgapError:  # the product has none of these platforms
            return []

    def checks(self) -> list[tuple[str, str, Check]]:
        o = self.o
        out: list[tuple[str, str, Check]] = [
            ("registry health", "registry", self.registry_health),
            (f"registry search kibana.version={self.v}", "registry", self.registry_search),
        ]
        for name in dict.fromkeys((*SETUP_PACKAGES, *o.packages)):
            out.append((f"package {name}", "packages", lambda n=name: self.package(n)))
        for artifact in self.artifacts:
            check_id = f"artifact {artifact.product} {artifact.platform}"
            out.append((check_id, "artifacts", lambda a=artifact: self.artifact(a)))
        defend_id = f"defend protection artifacts {self.v}"
        out.append((defend_id, "defend", self.defend_artifacts))
        out.append(("key url", "key", self.key_check))
        out.append(("fleet server key endpoint", "fleet-server", self.fleet_server_key))
        if o.data_dir is not None:
            out.append(("loaded bundles", "bundles", self.bundles))
        for scheme, host, port in self._tls_origins():
            if scheme == "https":
                tls_id = f"tls {host}:{port}"
                out.append((tls_id, "tls", lambda h=host, p=port: self.tls(h, p)))
        return out

    # --- registry -------------------------------------------------------------------------

    def registry_health(self) -> CheckResult:
        check_id = "registry health"
        if not self.o.registry:
            return _skip(check_id, "registry", "no --registry given")
        url = _join(self.o.registry, "health")
        try:
            self.probe.get(url)
        except ProbeError as exc:
            return CheckResult(
                check_id,
                "registry",
                FAIL,
                str(exc),
                "start the registry: `fleetgap serve --data DATA` (with --tls-cert/--tls-key), "
                "and set xpack.fleet.registryUrl to its URL (`fleetgap config kibana`)",
            )
        return CheckResult(check_id, "registry", OK, f"{url} answers")

    def registry_search(self) -> CheckResult:
        check_id = f"registry search kibana.version={self.v}"
        if not self.o.registry:
            return _skip(check_id, "registry", "no --registry given")
        try:
            items = self._search({"kibana.version": self.v})
        except ProbeError as exc:
            return CheckResult(check_id, "registry", FAIL, str(exc), _FIX_REGISTRY)
        if not items:
            return CheckResult(
                check_id,
                "registry",
                FAIL,
                f"no package is compatible with Kibana {self.v}",
                f"select packages for stack version {self.v}: `fleetgap bundle plan` and "
                "`fleetgap bundle create` on the connected side, `fleetgap bundle load` here",
            )
        return CheckResult(check_id, "registry", OK, f"{len(items)} packages for Kibana {self.v}")

    def _search(self, query: dict[str, str]) -> list[dict]:
        url = _join(self.o.registry or "", "search") + "?" + urllib.parse.urlencode(query)
        response = self.probe.get(url)
        try:
            items = response.json()
        except ValueError:
            raise ProbeError(url, "answer is not JSON") from None
        if not isinstance(items, list):
            raise ProbeError(url, "answer is not a list of packages")
        return items

    def package(self, name: str) -> CheckResult:
        check_id = f"package {name}"
        if not self.o.registry:
            return _skip(check_id, "packages", "no --registry given")
        add = (
            f"add package {name} to the bundle selection, `fleetgap bundle create` on the "
            "connected side, then `fleetgap bundle load BUNDLE --data DATA` here"
        )
        try:
            # the query Fleet setup sends for a `latest` package (spec: §10a step 2)
            items = self._search({"package": name, "prerelease": "false", "kibana.version": self.v})
        except ProbeError as exc:
            return CheckResult(check_id, "packages", FAIL, str(exc), _FIX_REGISTRY)
        if not items:
            return CheckResult(
                check_id, "packages", FAIL, f"{name}: no version for Kibana {self.v}", add
            )
        item = items[0]
        label = f"{name}-{item.get('version')}"
        key, key_origin = self._package_key()
        if key is None:
            return CheckResult(
                check_id,
                "packages",
                FAIL,
                f"{label} present; {key_origin}",
                "give --package-key FILE (the key xpack.fleet.packageVerification.gpgKeyPath "
                "names) or a working --key-url",
            )
        signature_path = item.get("signature_path")
        if not signature_path:
            return CheckResult(
                check_id,
                "packages",
                FAIL,
                f"{label} has no signature (Kibana: verification unknown)",
                _fix_signature(label),
            )
        try:
            signature = self.probe.get(_join(self.o.registry, signature_path), SIDECAR).content
            with tempfile.TemporaryDirectory(prefix="fleetgap-doctor-") as tmp:
                archive = Path(tmp) / f"{label}.zip"
                url = _join(self.o.registry, item.get("download", ""))
                self.probe.download(url, archive, MAX_PACKAGE_BYTES)
                verdict = verify_package(archive, key, signature)
        except ProbeError as exc:
            return CheckResult(check_id, "packages", FAIL, str(exc), _fix_signature(label))
        except SignatureError as exc:
            return CheckResult(check_id, "packages", FAIL, f"{label}: {exc}", _fix_signature(label))
        if verdict.status != VERIFIED:
            return CheckResult(
                check_id,
                "packages",
                FAIL,
                f"{label}: {verdict.status} with {key_origin} ({verdict.reason})",
                "set xpack.fleet.packageVerification.gpgKeyPath to the key that signed the "
                f"packages (check: `fleetgap packages verify {label}.zip --key KEY`)",
            )
        return CheckResult(check_id, "packages", OK, f"{label} verified by {key.fingerprint}")

    def _package_key(self) -> tuple[PublicKey | None, str]:
        if self.o.package_key is not None:
            return read_public_key(self.o.package_key), f"--package-key {self.o.package_key}"
        key, problem = self.served_key()
        if key is None:
            return None, f"no key to check the signature with ({problem})"
        return key, f"the key at {self.o.key_url}"

    # --- artifacts ------------------------------------------------------------------------

    def artifact(self, artifact: Artifact) -> CheckResult:
        check_id = f"artifact {artifact.product} {artifact.platform}"
        if not self.o.artifacts:
            return _skip(check_id, "artifacts", "no --artifacts given")
        fix = (
            f"add {artifact.product} {self.v} for {artifact.platform} to the bundle selection "
            "(artifacts), `fleetgap bundle create` on the connected side (or `fleetgap "
            f"artifacts mirror --version {self.v} --product {artifact.product} --platform "
            f"{artifact.platform}`), then `fleetgap bundle load BUNDLE --data DATA`"
        )
        url = self._artifact_url(artifact.path)
        missing, unreachable = [], None
        for suffix in ("", ".sha512", ".asc"):
            try:
                self.probe.exists(url + suffix)
            except ProbeError as exc:
                if exc.status is None:
                    unreachable = exc
                    break
                missing.append(f"{artifact.name}{suffix} (HTTP {exc.status})")
        if unreachable is not None:
            return CheckResult(check_id, "artifacts", FAIL, str(unreachable), _FIX_ARTIFACTS)
        if missing:
            return CheckResult(check_id, "artifacts", FAIL, "missing " + ", ".join(missing), fix)
        if self.o.deep:
            return self._deep(check_id, artifact, url, fix)
        key, problem = self.served_key()
        if key is None:
            return CheckResult(
                check_id,
                "artifacts",
                OK,
                f"{artifact.name} with .sha512 and .asc (signer not checked: {problem})",
            )
        signer = self._asc_signer(url + ".asc", key)
        if signer is not None:
            return CheckResult(
                check_id, "artifacts", FAIL, f"{artifact.name}.asc: {signer}", _FIX_KEY
            )
        return CheckResult(
            check_id, "artifacts", OK, f"{artifact.name} with .sha512 and .asc by {key.key_id}"
        )

    def _artifact_url(self, path: str) -> str:
        directory, name = path.rsplit("/", 1)
        return compose_url(self.o.artifacts or "", directory, name)

    def _asc_signer(self, asc_url: str, key: PublicKey) -> str | None:
        """None when `key` holds the signing key the .asc names, else why not."""
        try:
            parsed = parse_detached_signature(self.probe.get(asc_url, limit=1 << 20).content)
        except (ProbeError, SignatureError) as exc:
            return str(exc)
        issuer = parsed.issuer_key_id
        if issuer and key.signing_key(issuer) is not None:
            return None
        return f"signed by key ID {issuer or '(none)'}, which the key URL's key does not hold"

    def _deep(self, check_id: str, artifact: Artifact, url: str, fix: str) -> CheckResult:
        key, problem = self.served_key()
        if artifact.product == "elastic-agent" and artifact.platform in AGENT_RUNTIME:
            os_name, arch = AGENT_RUNTIME[artifact.platform]
            net = replace(self.probe.net, attempts=1)
            verdict = verify_upgrade(
                UpgradeCheck(
                    self.v,
                    source_uri=self.o.artifacts or "",
                    os=os_name,
                    arch=arch,
                    skip_default_pgp=True,
                    remote_key_url=self.o.key_url or "",
                    fleet_url=self.o.fleet_server,
                    net=net,
                    key_timeout=self.o.timeout,
                )
            )
            if verdict.passed:
                return CheckResult(
                    check_id,
                    "artifacts",
                    OK,
                    f"{artifact.name}: verified as the agent does ({verdict.verified_by})",
                )
            return CheckResult(
                check_id,
                "artifacts",
                FAIL,
                f"{verdict.error}",
                {"download": fix, "checksum": _FIX_DAMAGED}.get(
                    verdict.failed_step or "", _FIX_KEY
                ),
            )
        if key is None:
            return CheckResult(
                check_id, "artifacts", FAIL, f"{artifact.name}: cannot verify ({problem})", _FIX_KEY
            )
        with tempfile.TemporaryDirectory(prefix="fleetgap-doctor-") as tmp:
            target = Path(tmp) / artifact.name
            try:
                for suffix, limit in (("", MAX_DOWNLOAD), (".sha512", SIDECAR), (".asc", SIDECAR)):
                    self.probe.download(url + suffix, Path(f"{target}{suffix}"), limit)
                checked = check_artifact(target, [(str(self.o.key_url), key)])
            except ProbeError as exc:
                return CheckResult(check_id, "artifacts", FAIL, str(exc), fix)
            except ChecksumError as exc:
                return CheckResult(check_id, "artifacts", FAIL, str(exc), _FIX_DAMAGED)
            except FleetgapError as exc:
                return CheckResult(check_id, "artifacts", FAIL, f"{artifact.name}: {exc}", _FIX_KEY)
        return CheckResult(
            check_id,
            "artifacts",
            OK,
            f"{artifact.name}: sha512 and signature verified ({checked.key.fingerprint})",
        )

    # --- keys -----------------------------------------------------------------------------

    def served_key(self) -> tuple[PublicKey | None, str]:
        """The key at --key-url, fetched once for all checks."""
        with self._key_lock:
            if self._key is None:
                self._key = self._fetch_key()
            return self._key

    def _fetch_key(self) -> tuple[PublicKey | None, str]:
        if not self.o.key_url:
            return None, "no --key-url given"
        try:
            return parse_public_key(self.probe.get(self.o.key_url, limit=1 << 20).content), ""
        except (ProbeError, FleetgapError) as exc:
            return None, str(exc)

    def key_check(self) -> CheckResult:
        if not self.o.key_url:
            return _skip("key url", "key", "no --key-url given")
        key, problem = self.served_key()
        if key is None:
            return CheckResult("key url", "key", FAIL, problem, _FIX_KEY)
        if key.refusal:
            return CheckResult(
                "key url",
                "key",
                FAIL,
                f"{key.fingerprint}: the agent cannot use it: {key.refusal}",
                _FIX_KEY,
            )
        if self.o.artifacts:
            agents = [a for a in self.artifacts if a.product == "elastic-agent"]
            for artifact in agents[:1]:
                signer = self._asc_signer(self._artifact_url(artifact.path) + ".asc", key)
                if signer is not None and "HTTP 404" not in signer:
                    return CheckResult(
                        "key url", "key", FAIL, f"{artifact.name}.asc {signer}", _FIX_KEY
                    )
        return CheckResult("key url", "key", OK, f"serves {key}")

    def fleet_server_key(self) -> CheckResult:
        check_id = "fleet server key endpoint"
        if not self.o.fleet_server:
            return _skip(check_id, "fleet-server", "no --fleet-server given")
        url = fleet_key_url(self.o.fleet_server, self.v)
        fix = (
            "run Fleet Server >= 8.16.3 (8.17.1, 8.18.0, 9.0.0) with server.ssl enabled and "
            f"server.pgp.upstream_url: {self.o.key_url or 'KEY_URL'} (`fleetgap config "
            "fleet-server --key-url KEY_URL`), or place the key with `fleetgap keys "
            "install-fleet-server DIR --data DATA`"
        )
        if not url.startswith("https://"):
            return CheckResult(
                check_id,
                "fleet-server",
                FAIL,
                f"{url}: agents skip a key URL that is not https",
                fix,
            )
        try:
            body = self.probe.get(url, limit=1 << 20).content
        except ProbeError as exc:
            detail = str(exc)
            if exc.status == 401:
                detail += " (Fleet Server 8.11-8.16.2 asks for an API key agents never send)"
            elif exc.status == 404:
                detail += " (no key endpoint here: Fleet Server older than 8.11, or not it)"
            return CheckResult(check_id, "fleet-server", FAIL, detail, fix)
        try:
            served = parse_public_key(body)
        except FleetgapError as exc:
            return CheckResult(check_id, "fleet-server", FAIL, f"{url}: {exc}", fix)
        key, _ = self.served_key()
        if key is not None and served.fingerprint != key.fingerprint:
            return CheckResult(
                check_id,
                "fleet-server",
                FAIL,
                f"serves {served.fingerprint}, the key URL {key.fingerprint}",
                fix,
            )
        return CheckResult(check_id, "fleet-server", OK, f"{url} serves {served.fingerprint}")

    # --- Elastic Defend -------------------------------------------------------------------

    def defend_artifacts(self) -> CheckResult:
        base = defend_doctor.base_url(self.o.defend, self.o.artifacts)
        return defend_doctor.defend_check(self.probe, base, self.v, self.o.defend is not None)

    # --- bundles --------------------------------------------------------------------------

    def bundles(self) -> CheckResult:
        """Informational, from DATA/state/receipts: which bundles this data directory holds."""
        found = loaded_bundles(self.o.data_dir or Path())
        broken = [b for b in found if b.problem]
        if broken:
            names = ", ".join(f"{b.file} ({b.problem})" for b in broken)
            return CheckResult(
                "loaded bundles",
                "bundles",
                FAIL,
                f"unreadable receipt: {names}",
                "receipts are written by `fleetgap bundle load`; load the bundle again",
            )
        if not found:
            return _skip("loaded bundles", "bundles", f"no bundle loaded in {self.o.data_dir}")
        last = found[-1]
        return CheckResult(
            "loaded bundles",
            "bundles",
            OK,
            f"{len(found)} loaded; last: sequence {last.sequence} ({last.bundle_id}, loaded "
            f"{last.loaded_at or 'at an unknown time'})",
        )

    # --- TLS ------------------------------------------------------------------------------

    def _tls_origins(self) -> list[tuple[str, str, int]]:
        urls = (
            self.o.registry, self.o.artifacts, self.o.key_url, self.o.fleet_server,
            self.o.defend,
        )  # fmt: skip
        found = [origin(url) for url in urls if url]
        return list(dict.fromkeys(o for o in found if o is not None))

    def tls(self, host: str, port: int) -> CheckResult:
        check_id = f"tls {host}:{port}"
        reissue = (
            f"`fleetgap certs create --host {host} --out DIR --ca CA_DIR`, then serve with "
            "EPR_TLS_CERT=DIR/server.crt EPR_TLS_KEY=DIR/server.key"
        )
        try:
            peer = self.probe.peer_certificate(host, port)
        except ProbeError as exc:
            return CheckResult(check_id, "tls", FAIL, str(exc), _FIX_UNREACHABLE)
        now = datetime.datetime.now(datetime.UTC)
        if not peer.trusted:
            trusted = f"--ca-cert {self.o.ca_cert}" if self.o.ca_cert else "the system roots"
            return CheckResult(
                check_id,
                "tls",
                FAIL,
                f"{peer.subject}: does not chain to {trusted}: {peer.problem}",
                f"pass the CA that issued it with --ca-cert (and give it to Kibana as "
                f"NODE_EXTRA_CA_CERTS, to agents as ssl.certificate_authorities), or {reissue}",
            )
        left = peer.not_after - now
        if left < EXPIRY_MARGIN:
            when = f"{peer.not_after:%Y-%m-%d}"
            state = "expired" if left.total_seconds() < 0 else f"expires in {left.days} days"
            return CheckResult(check_id, "tls", FAIL, f"{peer.subject}: {state} ({when})", reissue)
        return CheckResult(
            check_id, "tls", OK, f"{peer.subject}: trusted, valid until {peer.not_after:%Y-%m-%d}"
        )


_FIX_REGISTRY = "check --registry (xpack.fleet.registryUrl) and that `fleetgap serve` runs there"
_FIX_ARTIFACTS = (
    "check --artifacts (the download source: `fleetgap config download-source`) and that "
    "`fleetgap serve --data DATA` runs there"
)
_FIX_DAMAGED = (
    "the binary does not match its .sha512: `fleetgap artifacts verify --data DATA` names "
    "the damaged files; load the bundle that carried them again (`fleetgap bundle load`)"
)
_FIX_UNREACHABLE = "check the URL and that the server runs and is reachable from here"
_FIX_KEY = (
    "publish the key that signs the binaries: `fleetgap keys publish KEY --data DATA` "
    "(Elastic's: `fleetgap keys fetch-elastic` on the connected side, carried in the bundle)"
)


def _fix_signature(label: str) -> str:
    return (
        f"carry {label}.zip.sig with the package (`fleetgap packages sign` for your own "
        "packages), `fleetgap bundle create`, then `fleetgap bundle load`"
    )


def _skip(check_id: str, group: str, why: str) -> CheckResult:
    return CheckResult(check_id, group, SKIP, why)


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")
