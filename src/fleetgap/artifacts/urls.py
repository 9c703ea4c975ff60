"""URL composition exactly as Elastic Agent does it (spec: agent-artifacts §2.1, §3).

`compose_url` is used for every request the mirror makes, so `--source` behaves like the
agent's `agent.download.sourceURI`; `agent_package_name` and `agent_urls` tell which URLs an
agent of a given platform requests, for checks and operator tools.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from fleetgap.errors import FleetgapError

DEFAULT_SOURCE = "https://artifacts.elastic.co/downloads/"
AGENT_DIRECTORY = "beats/elastic-agent"

# spec: agent-artifacts §2.1 (suffix table); key: (os, arch class)
_AGENT_SUFFIX = {
    ("linux", "64"): "linux-x86_64.tar.gz",
    ("linux", "arm64"): "linux-arm64.tar.gz",
    ("linux", "32"): "linux-x86.tar.gz",
    ("windows", "64"): "windows-x86_64.zip",
    ("windows", "arm64"): "windows-arm64.zip",
    ("windows", "32"): "windows-x86.zip",
    ("darwin", "64"): "darwin-x86_64.tar.gz",
    ("darwin", "arm64"): "darwin-aarch64.tar.gz",
}


@dataclass(frozen=True)
class ArtifactUrls:
    package: str
    sha512: str
    asc: str


def compose_url(source: str, directory: str, filename: str) -> str:
    """`source` + `directory` + `filename` the agent's way (spec: agent-artifacts §3.2).

    A scheme-less source gets https://; the path is the cleaned join (duplicate slashes
    collapse, '.'/'..' resolve); query string and port of the source are kept.
    """
    if not source.startswith(("http", "file", "/")):
        source = "https://" + source
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError as exc:
        raise FleetgapError(f"not a URL: {source!r} ({exc})") from None
    path = _clean_path(f"{parts.path}/{directory}/{filename}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def check_source(source: str) -> str:
    """`source` if the mirror can fetch from it (http or https with a host), else an error."""
    parts = urllib.parse.urlsplit(compose_url(source, "", ""))
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise FleetgapError(f"not a URL: {source!r} (bad port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FleetgapError(f"--source must be an http:// or https:// URL, not {source!r}")
    return source


def agent_package_name(version: str, os_name: str, arch: str, fips: bool = False) -> str:
    """The file an agent on `os_name`/`arch` (Go names) requests (spec: agent-artifacts §2.1)."""
    arch_class = "arm64" if "arm64" in arch else "64" if "64" in arch else "32"
    os_key = os_name if os_name in ("windows", "darwin") else "linux"
    suffix = _AGENT_SUFFIX.get((os_key, arch_class))
    if suffix is None:
        raise FleetgapError(f"'{os_name}-binary-{arch}' is not a valid combination for a package")
    command = "elastic-agent-fips" if fips else "elastic-agent"
    return f"{command}-{version}-{suffix}"


def agent_urls(source: str, name: str) -> ArtifactUrls:
    """Package, .sha512 and .asc URLs for a remote source, or paths for a `file://` one."""
    if source.startswith("file://"):
        # spec: agent-artifacts §3.3 (flat drop directory, no beats/elastic-agent)
        base = source[len("file://") :].rstrip("/")
        package = f"{base}/{name}"
        return ArtifactUrls(package, package + ".sha512", package + ".asc")
    return ArtifactUrls(
        compose_url(source, AGENT_DIRECTORY, name),
        compose_url(source, AGENT_DIRECTORY, name + ".sha512"),
        compose_url(source, AGENT_DIRECTORY, name + ".asc"),
    )


def strip_build_metadata(version: str) -> str:
    """What the snapshot downloader uses in file names (spec: agent-artifacts §3.4)."""
    return version.split("+", 1)[0]


def _clean_path(path: str) -> str:
    out: list[str] = []
    for segment in re.split(r"/+", path):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    return "/" + "/".join(out)


def snapshot_base(source: str, version: str, build_id: str | None) -> str:
    """The base the snapshot downloader uses (spec: agent-artifacts §3.4).

    Only the exact default source (trailing slash included) is redirected to
    snapshots.elastic.co; `build_id` is the version's build metadata or, without it, the
    part after the dash of `latest/<M.m.p>-SNAPSHOT.json`'s build_id.
    """
    if source != DEFAULT_SOURCE:
        return source
    release = version.split("-", 1)[0].split("+", 1)[0]
    build = version.split("+", 1)[1] if "+" in version else build_id
    if not build:
        raise FleetgapError(f"snapshot for version {version} needs a build id")
    return f"https://snapshots.elastic.co/{release}-{build}/downloads/"
