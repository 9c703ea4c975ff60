"""`fleetgap bundle …`: carry packages, artifacts and keys across the gap.

Connected side ("select"): `plan` and `create`. Closed side ("format"): `verify`,
`inspect`, `load` and `receipt`. Each command is its own function below.
"""

from __future__ import annotations

import json
import re
from glob import escape as glob_escape
from pathlib import Path

import click

from fleetgap import __version__
from fleetgap.cli.console import echo, shown
from fleetgap.cli.distribution import net_options
from fleetgap.cli.options import (
    data_option,
    interrupted_note,
    key_files_option,
    passphrase_option,
    progress_display,
    read_passphrase,
    report_unmatched,
    strict_option,
)
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
# the --help epilog of plan and create (\b keeps click from rewrapping the lines)
_SELECTION_EPILOG = """\b
SELECTION_FILE `keys:` entries (the key files the closed side serves):
  keys:
    - GPG-KEY-elastic-agent       # short: fetched beside the artifacts' downloads/
                                  # folder (default https://artifacts.elastic.co/)
    - file: default.pgp           # long: GPG-KEY-elastic-agent, GPG-KEY-elasticsearch
                                  # or default.pgp (Fleet Server's key file)
      source: ./agent-key.asc     # a URL, or a path beside the selection file
      fingerprint: 4609 5ACC ...  # its primary fingerprint (default: Elastic's)
"""
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_UNITS |= {f"{u}i": 1024 ** (i + 1) for i, u in enumerate("kmgt")}


@bundle.command("plan", epilog=_SELECTION_EPILOG)
@_SELECTION
@_SINCE
@net_options
@strict_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def plan_(selection_file, since, proxy, ca_cert, retries, strict, as_json, parallel) -> None:
    """What would go in: packages, artifacts and keys, sizes, and what is new (no downloads)."""
    from fleetgap.bundle.holding import read_holding
    from fleetgap.bundle.plan import plan, summary_lines
    from fleetgap.bundle.selection import load_selection
    from fleetgap.net import Net, NetOptions

    selection = load_selection(selection_file)
    holding = read_holding(since) if since else None
    options = NetOptions(
        attempts=retries + 1, proxy=proxy, ca_cert=ca_cert, connections=max(8, parallel)
    )
    with Net(options) as net:
        result = plan(selection, net, holding, parallel, report_unmatched(strict))
    kit = selection.kit
    kinds = ["key", "package", "artifact"]
    if selection.protection_artifacts is not None:
        kinds += ["defend-manifest", "protection-artifact"]
    if as_json:
        document = {
            "files": [f.as_dict() for f in result.files],
            "kit": {"platforms": kit.platforms, "python": kit.pythons} if kit else None,
            "counts": {k: result.count(k) for k in kinds},
            "bytes": result.bytes,
            "new_files": sum(1 for f in result.files if f.new),
            "new_bytes": result.new_bytes,
        }
        echo(json.dumps(document, indent=2))
    else:
        for f in result.files:
            size = f"{f.size:>12}" if f.size is not None else f"{'?':>12}"
            listed = f"  (Endpoint {', '.join(f.endpoint_versions)})" if f.endpoint_versions else ""
            echo(f"{'new ' if f.new else 'held'} {size}  {f.path}{listed}")
        for line in summary_lines(result):
            echo(line)
        if kit:  # pip resolves the wheels only when it fetches them
            echo(
                f"kit: fleetgap's wheels for {', '.join(kit.platforms)}, Python "
                f"{', '.join(kit.pythons)}: listed and sized when `bundle create` fetches them"
            )
    for f in result.problems:
        echo(f"PROBLEM {f.path}: {f.problem}", err=True)
    if result.problems:
        raise FleetgapError(f"{len(result.problems)} file(s) cannot be fetched from the source")


@bundle.command("create", epilog=_SELECTION_EPILOG)
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
    "--receipt-key",
    "receipt_key_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key the --since receipt must be signed with (repeatable).",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Secret key (`fleetgap keys generate`) to sign the manifest with.",
)
@passphrase_option
@click.option("--force", is_flag=True, help="Replace an existing bundle at --out.")
@click.option(
    "--split",
    "split",
    help="Write parts of at most this size each, e.g. 4000MiB (fits FAT32's 4 GiB - 1 byte).",
)
@key_files_option(
    "Trusted Elastic signing key (armored); repeatable. Default: Elastic's key (pinned)."
)
@net_options
@strict_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--parallel", default=4, show_default=True, type=click.IntRange(1, 64))
def create_(selection_file, out, cache_dir, since, receipt_key_files, sign_key, passphrase_file,
            force, split, key_files, proxy, ca_cert, retries, strict, as_json,
            parallel) -> None:  # fmt: skip
    """Stage the selection into the cache, verified, then write one bundle of it."""
    from fleetgap.bundle.holding import as_delta, read_holding
    from fleetgap.bundle.selection import load_selection
    from fleetgap.bundle.stage import stage
    from fleetgap.net import NetOptions
    from fleetgap.pgp.keys import SecretKey, read_public_key
    from fleetgap.store import DataDir

    if not force:
        _refuse_to_overwrite(Path(out))
    selection = load_selection(selection_file)
    receipt_keys = [read_public_key(path) for path in receipt_key_files]
    holding = read_holding(since, receipt_keys) if since else None
    signer = SecretKey.read(sign_key, read_passphrase(passphrase_file)) if sign_key else None
    if signer is None:
        echo(
            "warning: no --sign-key: the closed side refuses an unsigned bundle (`bundle load` "
            "needs --allow-unsigned); sign it with a key from `fleetgap keys generate`",
            err=True,
        )
    part_size = parse_size(split) if split else None
    trust = [read_public_key(path) for path in key_files]
    cache = DataDir(cache_dir)
    options = NetOptions(
        attempts=retries + 1, proxy=proxy, ca_cert=ca_cert, connections=max(8, parallel)
    )
    kept = f"what verified stays in the cache {cache.root}, partial downloads in {cache.incoming}"
    with interrupted_note(kept + "; no bundle was written"), \
            progress_display("bundle create", as_json) as bars:  # fmt: skip

        def bar(name: str):  # type: ignore[no-untyped-def]
            # the names of packages come from the source registry's answers
            return bars.for_file(shown(name, one_line=True))

        staged = stage(selection, cache, trust=trust, net_options=options, parallel=parallel,
                       progress=bar if bars else None,
                       on_unmatched=report_unmatched(strict))  # fmt: skip
    for line in staged.refused:
        echo(f"REFUSED {line}", err=True)
    if staged.refused:
        raise FleetgapError(
            f"{len(staged.refused)} file(s) did not verify or could not be fetched; no bundle "
            f"written (what verified stays in {cache.root} for the next run)"
        )
    entries = as_delta(staged.entries, holding)
    from fleetgap.bundle.writer import BundleSummary, WriteProgress, write_bundle

    def write(progress: WriteProgress | None = None) -> BundleSummary:
        return write_bundle(
            cache,
            entries,
            out,
            selection=selection.document,
            base=holding.document if holding else None,
            sign_key=signer,
            split=part_size,
            progress=progress,
        )

    with progress_display("bundle create", as_json) as bars:
        summary = write(bars.for_writing(Path(out).name) if bars else None)
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
        "protection_artifacts": staged.protection_artifacts,
        "delta": holding is not None,
        "signed_by": signer.fingerprint if signer else None,
        "kit_wheels": sum(1 for e in entries if e.path.startswith("kit/")),
        "verified_with": list(staged.trusted),
    }
    if as_json:
        echo(json.dumps(report, indent=2))
        return
    for part in summary.parts:
        echo(str(part))
    echo(
        f"bundle {summary.bundle_id} (sequence {summary.sequence}): {len(carried)} of "
        f"{len(entries)} files, {report['bytes_in_bundle'] / 1e6:.1f} MB; {staged.packages} "
        f"packages, {staged.artifacts} artifacts, {staged.keys} key files"
        + (
            f", {staged.protection_artifacts} Defend manifests and protection artifacts"
            if staged.protection_artifacts
            else ""
        )
        + ("; delta against the receipt" if holding else "")
    )
    if selection.kit:
        click.echo(
            f"kit: {report['kit_wheels']} wheels of fleetgap {__version__} and its dependencies"
        )


def _refuse_to_overwrite(out: Path) -> None:
    """`--out` names a bundle file, or the stem of its parts (OUT.001, …)."""
    parts = sorted(out.parent.glob(f"{glob_escape(out.name)}.[0-9][0-9][0-9]*"))
    existing = [out] if out.exists() else parts
    if existing:
        raise FleetgapError(
            f"{existing[0]} exists: not overwriting a bundle (give --force to replace it)"
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


# ---- closed side: verify, inspect, load, receipt ----


def _signers(trust_key_files, data_dir):
    from fleetgap.pgp.keys import read_public_key

    files = list(trust_key_files)
    if not files and data_dir is not None:
        folder = Path(data_dir) / "state" / "bundle-signers"
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    for path in files:
        _refuse_secret_key(path)
    return [read_public_key(path) for path in files]


def _refuse_secret_key(path: Path) -> None:
    """A trusted signer is a public key: a secret one here means the signing key crossed."""
    from fleetgap.errors import FleetgapError
    from fleetgap.pgp.armor import PRIVATE_KEY_BLOCK, ArmorError, first_armored_block

    try:
        kind = first_armored_block(Path(path).read_bytes()).kind
    except (OSError, ArmorError):
        return  # read_public_key names what is wrong with it
    if kind == PRIVATE_KEY_BLOCK:
        raise FleetgapError(
            f"{path} holds a secret key; trust the signer's public key instead "
            f"(`fleetgap keys generate` wrote it beside the secret one, as <secret>.pub) and "
            "keep the secret key on the connected side"
        )


def _trust(trust_key_files, key_files, allow_unsigned, data_dir=None):
    from fleetgap.bundle.verify import Trust
    from fleetgap.pgp.elastic_key import elastic_signing_keys

    file_keys = elastic_signing_keys(data_dir, key_files).keys
    return Trust(_signers(trust_key_files, data_dir), file_keys, allow_unsigned)


_files = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
_trust_key = click.option(
    "--trust-key",
    "trust_key_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Public key trusted to sign bundle manifests (repeatable).",
)
_allow_unsigned = click.option(
    "--allow-unsigned", is_flag=True, help="Accept a bundle without a manifest signature."
)


@bundle.command("verify")
@_files
@_trust_key
@key_files_option("Extra key for package and artifact signatures (e.g. a test key).")
@_allow_unsigned
@data_option("For a delta: the data directory holding the keys and sidecars it relies on.")
def verify_command(files, trust_key_files, key_files, allow_unsigned, data_dir) -> None:
    """Read every byte of a bundle and check every hash and signature."""
    from fleetgap.bundle.verify import verify_bundle

    trust = _trust(trust_key_files, key_files, allow_unsigned, data_dir)
    present = Path(data_dir) if data_dir is not None else None
    result = verify_bundle(files, trust, on_check=lambda c: echo(c.line()), present=present)
    echo(f"bundle {result.manifest.bundle_id}: all {len(result.checks)} checks passed")


@bundle.command("inspect")
@_files
@_trust_key
@data_option("Data directory whose state/bundle-signers/ names who signed.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect_command(files, trust_key_files, data_dir, as_json) -> None:
    """Show a bundle's manifest and who signed it (reads the manifest only; `verify` checks
    the rest)."""
    from fleetgap.bundle.reader import BundleReader, find_parts
    from fleetgap.bundle.signer import manifest_signer

    with BundleReader(find_parts(files)) as reader:
        manifest = reader.manifest
        signature = reader.signature
        manifest_bytes = reader.manifest_bytes
    signer = None
    if signature is not None:
        keys = _signers(trust_key_files, data_dir)
        signer = manifest_signer(manifest_bytes, signature, keys)
    if as_json:
        document = {**manifest.as_dict(), "signed": signer is not None}
        document["signer"] = signer.as_dict() if signer is not None else None
        echo(json.dumps(document, indent=1))
        return
    created = shown(manifest.created, one_line=True)
    version = shown(manifest.fleetgap_version, one_line=True)
    echo(
        f"bundle {manifest.bundle_id} sequence {manifest.sequence} created {created} "
        f"by fleetgap {version}"
    )
    echo(
        f"{'delta' if manifest.delta else 'full'}, {'signed' if signer else 'UNSIGNED'}, "
        f"{len(manifest.carried)} files carried ({manifest.carried_bytes} bytes), "
        f"{len(manifest.files)} in the state it leads to"
    )
    if signer is not None:
        echo(signer.line())
    for entry in manifest.files:
        mark = " " if entry.in_bundle else "-"
        verified_by, path = (shown(v, one_line=True) for v in (entry.verified_by, entry.path))
        echo(f"{mark} {entry.size:>12} {entry.sha256[:16]} {verified_by:<24} {path}")


@bundle.command("load")
@_files
@data_option("The fleetgap data directory to load into.", required=True)
@_trust_key
@key_files_option("Extra key for package and artifact signatures (e.g. a test key).")
@_allow_unsigned
@click.option("--allow-downgrade", is_flag=True, help="Load a lower sequence than the newest.")
@click.option("--dry-run", is_flag=True, help="Verify and report; change nothing.")
def load_command(
    files, data_dir, trust_key_files, key_files, allow_unsigned, allow_downgrade, dry_run
) -> None:
    """Verify a bundle and publish it into DATA atomically (all or nothing)."""
    from fleetgap.bundle.load import load
    from fleetgap.store import DataDir

    trust = _trust(trust_key_files, key_files, allow_unsigned, data_dir)
    with progress_display("bundle load", False) as bars:
        result = load(
            files,
            DataDir(Path(data_dir)),
            trust,
            allow_downgrade=allow_downgrade,
            dry_run=dry_run,
            progress=bars.for_writing(Path(files[0]).name, "loading") if bars else None,
        )
    for check in result.checks:
        echo(check.line())
    if result.status == "already loaded":
        echo(f"bundle {result.bundle_id} is already loaded; nothing to do")
    elif result.status == "dry run":
        echo(
            f"dry run: bundle {result.bundle_id} verified; would publish "
            f"{len(result.published)} files"
        )
    else:
        echo(
            f"loaded bundle {result.bundle_id} (sequence {result.sequence}): "
            f"{len(result.published)} files published"
        )


@bundle.command("receipt")
@data_option("The fleetgap data directory.", required=True, exists=True)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Secret key to sign the receipt with.",
)
@passphrase_option
def receipt_command(data_dir, sign_key, passphrase_file) -> None:
    """Print what DATA holds (paths, SHA-256), for `bundle create --since`."""
    from fleetgap.bundle.receipt import make_receipt
    from fleetgap.pgp.keys import SecretKey
    from fleetgap.store import DataDir

    passphrase = read_passphrase(passphrase_file) if sign_key is not None else None
    key = SecretKey.read(sign_key, passphrase) if sign_key is not None else None
    # printed as made: a signed document, and JSON escapes its control characters itself
    click.echo(json.dumps(make_receipt(DataDir(Path(data_dir)), key), indent=1))
