"""`/ui/` on `fleetgap serve --data DATA`: what this closed side holds, on one page.

Packages (versions, Kibana range, signature state against DATA/keys; the ones the index
refused, with the reason), an artifact coverage matrix (version x product x platform:
complete, missing, unverified — from the artifacts catalogue, for the versions present under
DATA/downloads or asked for by a loaded bundle's selection; what no loaded selection asks
for is greyed, not missing), the loaded bundles (receipts in DATA/state/receipts, see
notes/bundle-contract; a delta's carried files apart from the state it leads to), Elastic
Defend's manifests per Endpoint version (defend_status.py) and the key fingerprints
(DATA/keys).
Server-rendered with Jinja2, inline CSS, no script and no external asset, so it renders
inside the closed network; a Content-Security-Policy allows nothing else. Verification
results are kept per file state (ops/verdicts.py); what is not verified within a page's
budget shows as `checking` until a later view. The page is rendered once per index, load
(DATA/state/generation), change of DATA/keys or finished verification (and at least once
a minute), not per request, and shows no absolute path of the server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetgap import __version__
from fleetgap.artifacts.catalogue import (
    Artifact,
    Catalogue,
    check_version,
    load_catalogue,
    release_tuple,
)
from fleetgap.errors import FleetgapError
from fleetgap.ops.defend_status import defend_rows
from fleetgap.ops.receipts import LoadedBundle, loaded_bundles
from fleetgap.ops.verdicts import Verdicts
from fleetgap.packages.model import Package
from fleetgap.pgp.artifact_check import check_artifact
from fleetgap.pgp.keys import PublicKey, parse_public_key
from fleetgap.pgp.package_signatures import VERIFIED, verify_package_file
from fleetgap.registry.holder import IndexHolder
from fleetgap.store import DataDir, inside, is_temporary_name

PREFIX = "/ui"
CORE_PRODUCTS = ("elastic-agent", "fleet-server", "endpoint-security")
ARCHIVES = ("tar.gz", "zip")  # what agents download (spec: agent-artifacts §1)
COMPLETE, MISSING, UNVERIFIED, NOT_PUBLISHED = "complete", "missing", "unverified", "n/a"
NOT_SELECTED = "not selected"
_SIDECARS = (".sha512", ".asc", ".sig")

REFUSED = "refused"
# Seconds a rendered page is shown at most: files copied into DATA by hand, without a load,
# appear within this.
PAGE_MAX_AGE = 60.0
# An absolute path not after a word, `.`, `:` or `/` (so not DATA/..., not in a URL): the
# page shows its last part only.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"<>]+/)+([^\s/'\"<>]*)")
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def without_paths(value: object) -> object:
    """Every text the page shows, with absolute paths cut to their last part."""
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda m: ".../" + m.group(1), value)
    return value


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("fleetgap.ops", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    finalize=without_paths,
)
_templates.filters["megabytes"] = lambda size: f"{size / 1e6:.1f} MB"


def with_status_page(app: ASGIApp, holder: IndexHolder, data_dir: Path) -> ASGIApp:
    """`app` with `/ui/` in front of it."""
    return _StatusDispatch(app, StatusPage(holder, Path(data_dir)))


class _StatusDispatch:
    def __init__(self, app: ASGIApp, page: StatusPage) -> None:
        self.app = app
        self.page = page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == PREFIX or path.startswith(PREFIX + "/"):
            response = await self.page.respond(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class KeyRow:
    file: str
    fingerprint: str | None
    user_ids: tuple[str, ...]
    problem: str | None


@dataclass(frozen=True)
class PackageRow:
    name: str
    version: str
    kibana: str
    signature: str  # verified | unverified | unsigned | unknown
    detail: str


@dataclass(frozen=True)
class Cell:
    state: str  # complete | missing | unverified | n/a | not selected
    detail: str = ""

    @property
    def css(self) -> str:
        return "na" if self.state in (NOT_PUBLISHED, NOT_SELECTED) else self.state


@dataclass(frozen=True)
class MatrixRow:
    version: str
    product: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Matrix:
    platforms: tuple[str, ...]
    rows: tuple[MatrixRow, ...]


@dataclass
class StatusPage:
    holder: IndexHolder
    data_dir: Path
    catalogue: Catalogue = field(default_factory=load_catalogue)
    budget: float = 3.0  # seconds a page waits for verification before showing "checking"
    verdicts: Verdicts = field(default_factory=Verdicts)
    _render: threading.local = field(default_factory=threading.local)  # this render's deadline
    # the last page: (what it was rendered from, its bytes, its headers)
    _page: tuple[object, bytes, dict[str, str], float] | None = None
    _page_lock: threading.Lock = field(default_factory=threading.Lock)

    async def respond(self, request: Request) -> Response:
        if request.url.path == PREFIX:
            return RedirectResponse(PREFIX + "/", 301)
        if request.url.path != PREFIX + "/":
            return PlainTextResponse("404 page not found\n", 404)
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("method not allowed\n", 405)
        body, headers = await run_in_threadpool(self.page)
        return HTMLResponse(body, headers=headers)

    def page(self) -> tuple[bytes, dict[str, str]]:
        """The rendered page and its headers, rendered again only when what it shows may
        have changed; one render at a time."""
        with self._page_lock:
            page, now = self._page, time.monotonic()
            if page is None or page[0] != self._state() or now - page[3] > PAGE_MAX_AGE:
                html = self.render()
                page = self._page = (self._state(), html.encode(), _headers(html), now)
            return page[1], page[2]

    def _state(self) -> object:
        """What the page depends on besides time: the index, the last load, DATA/keys and
        how many verifications have finished."""
        data = DataDir(self.data_dir)
        return (
            id(self.holder.index),
            _stat(data.generation),
            _stat(data.keys),
            tuple(_stat(path) for path in _sorted_files(data.keys)),
            self.verdicts.finished,
        )

    def render(self) -> str:
        self._render.deadline = time.monotonic() + self.budget
        keys = self.keys()
        trusted = [(row.file, key) for row, key in keys if key is not None]
        return _templates.get_template("status.html").render(
            version=__version__,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            packages=self.packages(trusted),
            refused=[(self._shown(r.path), r.reason) for r in self.holder.index.refused],
            matrix=self.matrix(trusted),
            bundles=self.bundles(),
            defend=defend_rows(self.data_dir, self._judged),
            keys=[row for row, _ in keys],
        )

    def _shown(self, path: Path) -> str:
        """A path as the page shows it: under DATA, relative to it; else its name."""
        for root in (self.data_dir, Path(os.path.realpath(self.data_dir))):
            with contextlib.suppress(ValueError):
                return "DATA/" + Path(path).relative_to(root).as_posix()
        return Path(path).name

    # --- keys -----------------------------------------------------------------------------

    def keys(self) -> list[tuple[KeyRow, PublicKey | None]]:
        folder = self.data_dir / "keys"
        found = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            if not path.is_file() or is_temporary_name(path.name):
                continue
            if not inside(folder, path):  # not served either
                found.append((KeyRow(path.name, None, (), "leads outside DATA/keys"), None))
                continue
            try:
                key = parse_public_key(path.read_bytes())
            except (FleetgapError, OSError) as exc:
                found.append((KeyRow(path.name, None, (), _first_line(exc)), None))
                continue
            found.append((KeyRow(path.name, key.fingerprint, tuple(key.user_ids), None), key))
        return found

    # --- packages -------------------------------------------------------------------------

    def packages(self, keys: list[tuple[str, PublicKey]]) -> list[PackageRow]:
        index = self.holder.index
        ordered = sorted(index.by_key.values(), key=lambda p: (p.name, p.semver))
        return [self._package_row(package, keys) for package in ordered]

    def _package_row(self, package: Package, keys: list[tuple[str, PublicKey]]) -> PackageRow:
        kibana = package.kibana.source if package.kibana is not None else "any"
        state, detail = self._package_signature(package, keys)
        return PackageRow(package.name, package.version, kibana, state, detail)

    def _package_signature(self, package: Package, keys) -> tuple[str, str]:
        if not package.signed:
            return "unsigned", "no .sig beside the package"
        if not package.is_zip:
            return "unknown", "a directory package: no signature can cover it"
        if not keys:
            return "unknown", "no key in DATA/keys to check it with"

        def judge() -> tuple[str, str]:
            reasons = []
            for name, key in keys:
                try:
                    verdict = verify_package_file(package.base_path, key)
                except (FleetgapError, OSError) as exc:  # a .sig that is not a signature
                    return REFUSED, _first_line(exc)
                if verdict.status == VERIFIED:
                    return VERIFIED, f"by {key.fingerprint} ({name})"
                reasons.append(f"{name}: {verdict.reason}")
            return "unverified", "; ".join(reasons)

        return self._cached(package.base_path, keys, judge)

    # --- artifacts ------------------------------------------------------------------------

    def matrix(self, keys: list[tuple[str, PublicKey]]) -> Matrix:
        present = self._present()
        asked = self._asked()
        wanted = present | {(product, version) for version, product, _ in asked or ()}
        versions = sorted({version for _, version in wanted}, key=_version_key, reverse=True)
        rows: list[tuple[str, str, dict[str, Artifact]]] = []
        platforms: dict[str, None] = {}
        for version in versions:
            products = list(CORE_PRODUCTS) + sorted(
                {p for p, v in wanted if v == version and p not in CORE_PRODUCTS}
            )
            for product in products:
                try:
                    published = self.catalogue.select(version, [product], (), ARCHIVES)
                except FleetgapError:
                    continue
                by_platform = {a.platform: a for a in published}
                platforms.update(dict.fromkeys(by_platform))
                rows.append((version, product, by_platform))
        order = [p for p in self.catalogue.platforms if p in platforms]
        downloads = self.data_dir / "downloads"
        return Matrix(
            tuple(order),
            tuple(
                MatrixRow(
                    version,
                    product,
                    tuple(
                        self._cell(
                            downloads,
                            by_platform.get(p),
                            keys,
                            asked is None or (version, product, p) in asked,
                        )
                        for p in order
                    ),
                )  # fmt: skip
                for version, product, by_platform in rows
            ),
        )

    def _present(self) -> set[tuple[str, str]]:
        """(product, version) of every binary under DATA/downloads the catalogue names."""
        downloads = self.data_dir / "downloads"
        found: set[tuple[str, str]] = set()
        suffixes = {s for spelled in self.catalogue.suffixes.values() for s in spelled.values()}
        for product in self.catalogue.products.values():
            folder = downloads / product.directory
            for path in _files(folder):
                rest = path.name.removeprefix(product.prefix + "-")
                if rest == path.name:
                    continue
                for suffix in suffixes:
                    if rest.endswith("-" + suffix):
                        version = rest[: -len(suffix) - 1]
                        # a version that does not parse: another product sharing the
                        # folder (elastic-agent-fips-…)
                        with contextlib.suppress(FleetgapError):
                            found.add((product.name, check_version(version)))
        return found

    def _asked(self) -> set[tuple[str, str, str]] | None:
        """(version, product, platform) the loaded bundles' selections asked for; None when
        no receipt names its selection (data from `artifacts mirror`, older receipts)."""
        selections = [b.selection for b in self.bundles() if b.selection is not None]
        if not selections:
            return None
        asked: set[tuple[str, str, str]] = set()
        for selection in selections:
            entries = selection.get("artifacts") or []
            for entry in [entries] if isinstance(entries, dict) else entries:
                types = _listed(entry.get("package_types")) if isinstance(entry, dict) else ()
                if not isinstance(entry, dict) or (types and not set(types) & set(ARCHIVES)):
                    continue  # the matrix shows archives only
                products = _listed(entry.get("products")) or tuple(self.catalogue.products)
                platforms = _listed(entry.get("platforms")) or self.catalogue.platforms
                for version in _listed(entry.get("versions")):
                    asked.update((version, pr, pl) for pr in products for pl in platforms)
        return asked

    def _cell(self, downloads: Path, artifact: Artifact | None, keys, asked: bool) -> Cell:
        if artifact is None:
            return Cell(NOT_PUBLISHED, "Elastic publishes no archive of it for this platform")
        path = downloads / artifact.path
        if not path.is_file() or not inside(downloads, path):  # what /downloads/ serves
            if not asked:
                return Cell(NOT_SELECTED, f"{artifact.name}: no loaded bundle's selection asks")
            return Cell(MISSING, artifact.name)

        def judge() -> tuple[str, str]:
            try:
                checked = check_artifact(path, keys)
            except (FleetgapError, OSError) as exc:
                return UNVERIFIED, f"{artifact.name}: {_first_line(exc)}"
            return COMPLETE, f"{artifact.name}: verified by {checked.key.fingerprint}"

        if not keys:
            return Cell(UNVERIFIED, f"{artifact.name}: no key in DATA/keys")
        return Cell(*self._cached(path, keys, judge))

    # --- bundles --------------------------------------------------------------------------

    def bundles(self) -> list[LoadedBundle]:
        return loaded_bundles(self.data_dir)

    # --- cache ----------------------------------------------------------------------------

    def _judged(self, token, judge) -> tuple[str, str]:
        return self.verdicts.get(token, judge, self._render.deadline)

    def _cached(self, path: Path, keys, judge) -> tuple[str, str]:
        try:
            info = path.stat()
            sidecars = tuple(
                (s.stat().st_mtime_ns, s.stat().st_size) if s.is_file() else None
                for s in (Path(f"{path}{suffix}") for suffix in _SIDECARS)
            )
        except OSError as exc:
            return UNVERIFIED, _first_line(exc)
        fingerprints = tuple(key.fingerprint for _, key in keys)
        token = (str(path), info.st_size, info.st_mtime_ns, sidecars, fingerprints)
        return self.verdicts.get(token, judge, self._render.deadline)


def _headers(html: str) -> dict[str, str]:
    """No script, no external anything; the page's own inline style by its hash."""
    hashes = [hashlib.sha256(style.encode()).digest() for style in _STYLE.findall(html)]
    styles = " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in hashes)
    policy = (
        f"default-src 'none'; style-src {styles}; img-src 'self' data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _sorted_files(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _files(folder: Path) -> Iterable[Path]:
    if not folder.is_dir():
        return ()
    return (
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.endswith(_SIDECARS) and not is_temporary_name(path.name)
    )


def _listed(value: object) -> tuple[str, ...]:
    """A selection field: one value or a list of them, as the selection file allows."""
    values = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(str(v) for v in values if isinstance(v, str | int | float))


def _version_key(version: str) -> tuple:
    return (release_tuple(version), version)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
