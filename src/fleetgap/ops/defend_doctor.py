"""Doctor's check of Elastic Defend's protection artifacts for Endpoint V, measured the way
Endpoint fetches them: the manifest zip from `{base_url}/downloads/endpoint/manifest/
artifacts-V.zip` must come with an ETag Endpoint accepts (no hyphen); every artifact its
`manifest.json` lists must be served with the size and SHA-256 (encoded and decoded) of its
entry. The result names the `manifest_version` (what Endpoint reports as applied) and how
old the manifest is (the time of `manifest.json` inside the zip)."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from fleetgap.artifacts import defend
from fleetgap.errors import FleetgapError
from fleetgap.ops.checks import FAIL, OK, SKIP, CheckResult
from fleetgap.ops.probe import Probe, ProbeError

GROUP = "defend"


def base_url(defend_url: str | None, artifacts_url: str | None) -> str | None:
    """`--defend`, else the host of `--artifacts` (…/downloads/ stripped): fleetgap serves
    both from one data directory."""
    if defend_url:
        return defend_url.rstrip("/")
    if artifacts_url:
        trimmed = artifacts_url.rstrip("/")
        return trimmed.removesuffix("/downloads") if trimmed.endswith("/downloads") else None
    return None


def defend_check(probe: Probe, base: str | None, version: str, required: bool) -> CheckResult:
    check_id = f"defend protection artifacts {version}"
    if base is None:
        return CheckResult(check_id, GROUP, SKIP, "no --defend (or --artifacts …/downloads/)")
    fix = (
        f"add `protection_artifacts: {{versions: [{version}]}}` to the bundle selection, "
        "`fleetgap bundle create` on the connected side, then `fleetgap bundle load BUNDLE "
        "--data DATA` here"
    )
    url = defend.manifest_url(base, version)
    try:
        answer = probe.get(url, limit=defend.MAX_MANIFEST_ZIP)
    except ProbeError as exc:
        if exc.status == 404 and not required:
            return CheckResult(
                check_id, GROUP, SKIP, f"no Defend manifest at {url} (give --defend to require it)"
            )
        return CheckResult(check_id, GROUP, FAIL, str(exc), fix)
    etag = answer.headers.get("etag")
    if not etag or "-" in etag:
        shown = "no ETag" if not etag else f"ETag {defend._shown(etag)} has a hyphen"
        return CheckResult(
            check_id,
            GROUP,
            FAIL,
            f"{url}: {shown}: Endpoint would never pick up new artifacts",
            "serve the artifacts with `fleetgap serve --data DATA` (a content ETag); on "
            "another web server, an ETag without a hyphen",
        )
    try:
        manifest = defend.parse_manifest_zip(answer.content, url)
    except FleetgapError as exc:
        return CheckResult(check_id, GROUP, FAIL, str(exc), fix)
    problems = _artifact_problems(probe, base, manifest)
    age = _age(answer.content)
    summary = f"manifest_version {manifest.manifest_version}, {age}"
    if problems:
        more = f"; {len(problems) - 5} more" if len(problems) > 5 else ""
        shown = "; ".join(problems[:5]) + more
        return CheckResult(check_id, GROUP, FAIL, f"{summary}: {shown}", fix)
    return CheckResult(
        check_id,
        GROUP,
        OK,
        f"{summary}; all {len(manifest.entries)} artifacts served as listed; ETag {etag}",
    )


def _artifact_problems(probe: Probe, base: str, manifest: defend.DefendManifest) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="fleetgap-doctor-") as tmp:
        for entry in manifest.entries:
            target = Path(tmp) / "artifact"
            url = defend.artifact_url(base, entry)
            try:
                probe.download(url, target, limit=entry.encoded_size)
                defend.check_artifact_file(target, entry, entry.name)
            except ProbeError as exc:
                status = f"HTTP {exc.status}" if exc.status else exc.reason
                problems.append(f"{entry.name} ({entry.relative_url}): {status}")
            except FleetgapError as exc:
                problems.append(str(exc))
            finally:
                target.unlink(missing_ok=True)
    return problems


def _age(zip_bytes: bytes) -> str:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            stamp = datetime.datetime(*archive.getinfo(defend.MANIFEST_MEMBER).date_time)
    except (KeyError, ValueError, zipfile.BadZipFile):
        return "age unknown"
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    days = (now - stamp).days
    return f"built {stamp:%Y-%m-%d} ({days} days ago)" if days >= 0 else f"built {stamp:%Y-%m-%d}"
