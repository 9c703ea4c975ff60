"""`fleetgap artifacts list|mirror`: select products, show their URLs, mirror them verified."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from fleetgap.artifacts.catalogue import Artifact, load_catalogue
from fleetgap.artifacts.urls import DEFAULT_SOURCE, check_source, compose_url
from fleetgap.cli.console import echo
from fleetgap.cli.options import (
    data_option,
    interrupted_note,
    key_files_option,
    progress_display,
    retries_option,
)
from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions
from fleetgap.store import DataDir


def _selection(command: Callable) -> Callable:
    options = [
        click.option("--version", "version", required=True, help="Release, e.g. 9.1.0."),
        click.option("--product", "products", multiple=True, help="Repeatable; default all."),
        click.option("--platform", "platforms", multiple=True, help="e.g. linux-x86_64."),
        click.option(
            "--package-type", "package_types", multiple=True, help="tar.gz, zip, deb, rpm, msi."
        ),
        click.option(
            "--catalogue",
            "catalogues",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Extra product catalogue (YAML); repeatable.",
        ),
        click.option(
            "--source", default=DEFAULT_SOURCE, show_default=True, help="Downloads base URL."
        ),
        click.option("--proxy", help="HTTP(S) proxy URL (default: HTTPS_PROXY from the env)."),
        click.option(
            "--ca-cert",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="PEM CA bundle to trust instead of the system roots.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def artifacts() -> None:
    """Elastic Agent and product binaries in Elastic's download layout."""


@artifacts.command("products")
@click.option(
    "--catalogue",
    "catalogues",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Extra product catalogue (YAML); repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def products_(catalogues, as_json) -> None:
    """Show the catalogue: products, their folder, platforms and package types."""
    catalogue = load_catalogue(catalogues)
    rows = [
        {
            "product": product.name,
            "directory": product.directory,
            "platforms": {
                offer.platform: {
                    "package_types": list(offer.package_types),
                    "since": ".".join(map(str, offer.since)) if offer.since else None,
                    "until": ".".join(map(str, offer.until)) if offer.until else None,
                }
                for offer in product.offers
            },
        }
        for product in catalogue.products.values()
    ]
    if as_json:
        echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        echo(f"{row['product']}  ({row['directory']}/)")
        for platform, offer in row["platforms"].items():
            bounds = "".join(f" {word} {offer[word]}" for word in ("since", "until") if offer[word])
            echo(f"    {platform:<17} {', '.join(offer['package_types'])}{bounds}")


@artifacts.command("list")
@_selection
@click.option("--sizes", is_flag=True, help="Ask the source for each size (HEAD).")
def list_(
    version, products, platforms, package_types, catalogues, source, proxy, ca_cert, as_json, sizes
) -> None:
    """Print what `mirror` would fetch for a selection."""
    selected = _select(version, products, platforms, package_types, catalogues)
    urls = [compose_url(check_source(source), *a.path.rsplit("/", 1)) for a in selected]
    found: list[int | str | None] = [None] * len(selected)
    if sizes:
        with Net(NetOptions(proxy=proxy, ca_cert=ca_cert, attempts=2)) as net:
            for i, url in enumerate(urls):
                try:
                    found[i] = net.content_length(url)
                except NetError as exc:
                    found[i] = exc.reason
    if as_json:
        rows = [_row(a, u, s) for a, u, s in zip(selected, urls, found, strict=True)]
        echo(json.dumps({"version": version, "artifacts": rows}, indent=2))
        return
    for url, size in zip(urls, found, strict=True):
        echo(f"{url}\t{_size(size)}" if sizes else url)


@artifacts.command("mirror")
@_selection
@data_option("fleetgap data directory; files land in DATA/downloads/.", required=True)
@key_files_option(
    "Trusted signing key (armored); repeatable. Default: Elastic's key in DATA/keys/."
)
@retries_option
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def mirror_(
    version,
    products,
    platforms,
    package_types,
    catalogues,
    source,
    proxy,
    ca_cert,
    as_json,
    data_dir,
    key_files,
    retries,
    parallel,
) -> None:
    """Download, verify (.sha512 and .asc) and publish artifacts under DATA/downloads/."""
    from fleetgap.artifacts.mirror import mirror, trusted_keys

    selected = _select(version, products, platforms, package_types, catalogues)
    data = DataDir(data_dir)
    keys = trusted_keys(data, key_files)
    options = NetOptions(attempts=retries + 1, proxy=proxy, ca_cert=ca_cert, connections=parallel)
    kept = (
        f"what verified is published under {data.downloads}, partial downloads are kept in "
        f"{data.incoming}"
    )
    with interrupted_note(kept), progress_display("artifacts mirror", as_json) as bars:
        report = mirror(
            selected,
            data,
            keys,
            source=source,
            net_options=options,
            parallel=parallel,
            progress=bars.for_artifact if bars else None,
        )
    if as_json:
        rows = [
            _row(o.artifact, o.url, o.size)
            | {"status": o.status, "reason": o.reason, "received": o.received}
            for o in report.outcomes
        ]
        summary = {s: report.count(s) for s in ("fetched", "present", "missing", "failed")}
        echo(json.dumps({"version": version, "artifacts": rows, **summary}, indent=2))
    for failure in report.failures:
        label = "MISSING" if failure.status == "missing" else "FAILED"
        echo(f"{label} {failure.artifact.path}: {failure.reason}", err=True)
    echo(report.summary(), err=as_json)
    failed, missing = report.count("failed"), report.count("missing")
    if failed:
        also = f" and {missing} not published at the source" if missing else ""
        raise FleetgapError(f"{failed} artifact(s) failed verification or download{also}")
    if missing:
        raise FleetgapError(f"{missing} artifact(s) not published at the source")


@artifacts.command("verify")
@data_option("fleetgap data directory whose downloads/ is checked.", required=True, exists=True)
@key_files_option(
    "Trusted signing key (armored); repeatable. Default: Elastic's key in DATA/keys/."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_(data_dir, key_files, as_json) -> None:
    """Re-check every published file against its .sha512 and .asc."""
    from fleetgap.artifacts.audit import audit_downloads
    from fleetgap.artifacts.mirror import trusted_keys

    data = DataDir(data_dir)
    findings = audit_downloads(data, trusted_keys(data, key_files))
    bad = [f for f in findings if f.problem]
    if as_json:
        rows = [{"path": f.path, "ok": f.problem is None, "problem": f.problem} for f in findings]
        echo(json.dumps({"artifacts": rows}, indent=2))
    for finding in bad:
        echo(f"FAILED {finding.path}: {finding.problem}", err=True)
    echo(f"{len(findings)} artifacts checked, {len(bad)} failed", err=as_json)
    if bad:
        raise FleetgapError(f"{len(bad)} published artifact(s) do not verify")


def _select(version, products, platforms, package_types, catalogues) -> list[Artifact]:
    catalogue = load_catalogue(catalogues)
    return catalogue.select(version, products, platforms, package_types)


def _row(artifact: Artifact, url: str, size: object) -> dict:
    return {
        "product": artifact.product,
        "platform": artifact.platform,
        "package_type": artifact.package_type,
        "path": artifact.path,
        "url": url,
        "size": size,
    }


def _size(size: int | str | None) -> str:
    if isinstance(size, int):
        return f"{size / 1e6:.1f} MB"
    return "unknown" if size is None else f"error: {size}"
