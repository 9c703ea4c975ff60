"""`fleetgap bundle …`: carry packages, artifacts and keys across the gap.

Connected side ("select"): `plan` and `create`. Closed side ("format"): `verify`,
`inspect`, `load` and `receipt`. Each command is its own function below.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from fleetgap.cli.distribution import net_options
from fleetgap.cli.options import data_option, key_files_option
from fleetgap.errors import FleetgapError


@click.group()
def bundle() -> None:
    """Signed bundles: select and create (connected side), verify and load (closed side)."""


# ---- connected side: plan, create ---------------------------------------------------------

_SELECTION = click.argument(
    "selection_file", type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
_SINCE = click.option(
    "--since",
    "since",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The closed side's receipt (`bundle receipt`): leave out what it already holds.",
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS |= {f"{u}i": 1024 ** (i + 1) for i, u in enumerate("kmgt")}


@bundle.command("plan")
@_SELECTION
@_SINCE
@net_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def plan_(selection_file, since, proxy, ca_cert, as_json, parallel) -> None:
    """What would go in: packages, artifacts and keys, sizes, and what is new (no downloads)."""
    from fleetgap.bundle.holding import read_holding
    from fleetgap.bundle.plan import plan, summary_lines
    from fleetgap.bundle.selection import load_selection
    from fleetgap.net import Net, NetOptions

    selection = load_selection(selection_file)
    holding = read_holding(since) if since else None
    with Net(NetOptions(proxy=proxy, ca_cert=ca_cert, connections=max(8, parallel))) as net:
        result = plan(selection, net, holding, parallel)
    if as_json:
        document = {
            "files": [f.as_dict() for f in result.files],
            "counts": {k: result.count(k) for k in ("key", "package", "artifact")},
            "bytes": result.bytes,
            "new_files": sum(1 for f in result.files if f.new),
            "new_bytes": result.new_bytes,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        for f in result.files:
            size = f"{f.size:>12}" if f.size is not None else f"{'?':>12}"
            click.echo(f"{'new ' if f.new else 'held'} {size}  {f.path}")
        for line in summary_lines(result):
            click.echo(line)
    for f in result.problems:
        click.echo(f"PROBLEM {f.path}: {f.problem}", err=True)
    if result.problems:
        raise FleetgapError(f"{len(result.problems)} file(s) cannot be fetched from the source")


@bundle.command("create")
@_SELECTION
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle."
)
@click.option(
    "--cache",
    "cache_dir",
    default="fleetgap-cache",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Staging data directory (reused and resumed; `fleetgap serve --data` can serve it).",
)
@_SINCE
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Secret key (`fleetgap keys generate`) to sign the manifest with.",
)
@click.option("--split", "split", help="Write parts of at most this size, e.g. 4GiB.")
@key_files_option(
    "Trusted Elastic signing key (armored); repeatable. Default: Elastic's key (pinned)."
)
@net_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def create_(selection_file, out, cache_dir, since, sign_key, split, key_files, proxy, ca_cert,
            as_json, parallel) -> None:  # fmt: skip
    """Stage the selection into the cache, verified, then write one bundle of it."""
    from fleetgap.bundle.holding import as_delta, read_holding
    from fleetgap.bundle.selection import load_selection
    from fleetgap.bundle.stage import stage
    from fleetgap.net import NetOptions
    from fleetgap.pgp.keys import SecretKey, read_public_key
    from fleetgap.store import DataDir

    selection = load_selection(selection_file)
    holding = read_holding(since) if since else None
    signer = SecretKey.read(sign_key) if sign_key else None
    part_size = parse_size(split) if split else None
    trust = [read_public_key(path) for path in key_files]
    cache = DataDir(cache_dir)
    options = NetOptions(proxy=proxy, ca_cert=ca_cert, connections=max(8, parallel))
    show = not as_json and sys.stderr.isatty()
    if show:
        from fleetgap.artifacts.progress import RichProgress

        with RichProgress() as bars:
            staged = stage(selection, cache, trust=trust, net_options=options,
                           parallel=parallel, progress=bars.for_file)  # fmt: skip
    else:
        staged = stage(selection, cache, trust=trust, net_options=options, parallel=parallel)
    for line in staged.refused:
        click.echo(f"REFUSED {line}", err=True)
    if staged.refused:
        raise FleetgapError(
            f"{len(staged.refused)} file(s) did not verify or could not be fetched; no bundle "
            f"written (what verified stays in {cache.root} for the next run)"
        )
    entries = as_delta(staged.entries, holding)
    from fleetgap.bundle.writer import write_bundle

    summary = write_bundle(
        cache,
        entries,
        out,
        selection=selection.document,
        base=holding.document if holding else None,
        sign_key=signer,
        split=part_size,
    )
    carried = [e for e in entries if e.in_bundle]
    report = {
        "bundle_id": summary.bundle_id,
        "sequence": summary.sequence,
        "parts": [str(p) for p in summary.parts],
        "files": len(entries),
        "files_in_bundle": len(carried),
        "bytes_in_bundle": sum(e.size for e in carried),
        "packages": staged.packages,
        "artifacts": staged.artifacts,
        "keys": staged.keys,
        "delta": holding is not None,
        "signed_by": signer.fingerprint if signer else None,
        "verified_with": list(staged.trusted),
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for part in summary.parts:
        click.echo(str(part))
    click.echo(
        f"bundle {summary.bundle_id} (sequence {summary.sequence}): {len(carried)} of "
        f"{len(entries)} files, {report['bytes_in_bundle'] / 1e6:.1f} MB; {staged.packages} "
        f"packages, {staged.artifacts} artifacts, {staged.keys} key files"
        + ("; delta against the receipt" if holding else "")
    )


def parse_size(text: str) -> int:
    """`4GiB`, `700MB`, `1.5G`, `1048576` → bytes (K/M/G/T powers of 1000, Ki/Mi/… of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise FleetgapError(f"not a size: {text!r} (e.g. 4GiB, 700MB)")
    size = int(float(match[1]) * _UNITS[(match[2] or "").lower()])
    if size < 1 << 20:
        raise FleetgapError(f"--split {text}: parts must be at least 1 MiB")
    return size


# ---- closed side: verify, inspect, load, receipt (the format helper's) ---------------------


@bundle.command()
@data_option("fleetgap data directory (env FLEETGAP_DATA).", required=True, exists=True)
def receipt(data_dir) -> None:
    """Print what DIR holds (paths, sizes, SHA-256) as JSON, for `bundle create --since`."""
    from fleetgap.bundle.receipt import holding_receipt
    from fleetgap.store import DataDir

    click.echo(json.dumps(holding_receipt(DataDir(data_dir)).as_dict(), indent=1))


@bundle.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parts and manifest as JSON.")
def inspect(files: tuple[Path, ...], as_json: bool) -> None:
    """Show what FILE… claims (parts, manifest), without checking: see `bundle verify`."""
    from fleetgap.bundle.inspect import inspect_bundle

    found = inspect_bundle(files)
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=1))
        return
    manifest = found.manifest
    kind = "delta" if manifest.delta else "full"
    click.echo(f"bundle {manifest.bundle_id} ({kind}), sequence {manifest.sequence}")
    click.echo(f"created {manifest.created} by fleetgap {manifest.fleetgap_version}")
    click.echo(f"manifest signature: {'present' if found.signed else 'none (unsigned)'}")
    click.echo(f"parts: {len(found.parts)}")
    carried = manifest.carried
    click.echo(
        f"files: {len(manifest.files)} listed, {len(carried)} carried "
        f"({manifest.carried_bytes} bytes)"
    )
    for entry in manifest.files:
        where = "" if entry.in_bundle else "  (held on the closed side)"
        click.echo(f"  {entry.path}  {entry.size}  {entry.verified_by}{where}")


@bundle.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--trust-key",
    "trust_keys",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key trusted to sign bundle manifests (repeatable).",
)
def verify(files: tuple[Path, ...], trust_keys: tuple[Path, ...]) -> None:
    """Read every byte of FILE…, check the manifest signature (with --trust-key), every
    member's SHA-256 and every part; one line per check."""
    from fleetgap.bundle.reader import read_bundle
    from fleetgap.pgp.keys import read_public_key

    keys = [read_public_key(path) for path in trust_keys]
    result = read_bundle(files, trust_keys=keys, report=lambda check: click.echo(check.line()))
    click.echo(f"all {len(result.checks)} checks passed: bundle {result.manifest.bundle_id}")
