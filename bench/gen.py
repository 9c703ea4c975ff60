"""Generate a realistic package registry and agent artifact tree, deterministically from a seed.

    python bench/gen.py /tmp/fleetgap-bench            # 400 packages x 25 versions, ~3 GB artifacts
    python bench/gen.py /tmp/fleetgap-bench-s --small  # a quick set for trying things out

Layout of OUT (the data directory `fleetgap serve` reads, see DESIGN.md):

    OUT/config.yml                       package_paths: [OUT/packages]
    OUT/packages/<name>-<version>.zip    packages as elastic-package builds them (spec: epr-api §5)
    OUT/downloads/beats/elastic-agent/elastic-agent-<v>-<platform>.(tar.gz|zip)(.sha512)
    OUT/gen.json                         the parameters; a second run with the same ones is a no-op

Every package is valid for the loader (spec: epr-api §5.3, §5.6): strict-semver versions,
format_version 3.x, docs/README.md, icon and screenshot files that exist, data streams with
`data_stream.*` constant_keyword fields and `@timestamp`, no `-` in directory names, and an
ingest pipeline only where it is the default one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import struct
import sys
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

DEFAULT_OUT = Path("/tmp/fleetgap-bench")
GEN_VERSION = 1  # bump when the output for a given seed changes

# A subset of the real category list (categories/categories.yml), top-level and sub.
CATEGORIES = (
    "observability",
    "security",
    "web",
    "datastore",
    "network",
    "cloud",
    "aws",
    "azure",
    "google_cloud",
    "custom",
    "custom_logs",
    "containers",
    "kubernetes",
    "message_queue",
    "monitoring",
    "os_system",
    "productivity",
    "elastic_stack",
    "config_management",
    "crm",
)
VENDORS = (
    "apache",
    "nginx",
    "haproxy",
    "mysql",
    "postgresql",
    "redis",
    "mongodb",
    "kafka",
    "rabbitmq",
    "aws",
    "azure",
    "gcp",
    "cisco",
    "fortinet",
    "paloalto",
    "okta",
    "zscaler",
    "crowdstrike",
    "sentinel_one",
    "github",
    "gitlab",
    "jira",
    "kubernetes",
    "docker",
    "containerd",
    "iis",
    "tomcat",
    "jetty",
    "couchbase",
    "cassandra",
    "elasticsearch",
    "zookeeper",
    "activemq",
    "ibmmq",
    "oracle",
    "mssql",
    "snowflake",
    "cloudflare",
    "akamai",
    "f5",
    "juniper",
    "checkpoint",
    "sophos",
    "symantec",
    "trellix",
    "netskope",
    "box",
    "slack",
    "zoom",
    "o365",
    "salesforce",
)
SUFFIXES = (
    "logs",
    "metrics",
    "audit",
    "events",
    "otel",
    "cloudtrail",
    "firewall",
    "access",
    "ids",
    "waf",
    "endpoint",
    "siem",
    "inventory",
    "billing",
    "network",
    "edr",
    "vpn",
    "dns",
    "proxy",
    "flow",
    "alerts",
    "threat",
)
INPUTS_LOGS = ("logfile", "httpjson", "cel", "tcp", "udp", "filestream", "aws-s3")
KIBANA_ERAS = (
    # (constraint choices, share of a package's version history)
    ((">=7.17.0", "^7.17.0 || ^8.0.0", "~7.x.x || ~8.x.x"), 0.25),
    (("^8.13.0 || ^9.0.0", "^8.10.0", ">=8.12.0 <10.0.0"), 0.35),
    (("^8.18.0 || ^9.0.0", "^9.0.0", "^8.19.0 || ^9.0.0"), 0.3),
    (("^9.1.0", "^9.1.0", "^9.2.0"), 0.1),
)
FORMAT_VERSIONS = ("3.0.0", "3.0.3", "3.1.4", "3.2.1", "3.3.0", "3.3.2", "3.4.0")
AGENT_PLATFORMS = (
    "linux-x86_64.tar.gz",
    "linux-arm64.tar.gz",
    "darwin-x86_64.tar.gz",
    "darwin-aarch64.tar.gz",
    "windows-x86_64.zip",
)
AGENT_VERSIONS = ("8.18.8", "8.19.5", "9.0.8", "9.1.5")


@dataclass(frozen=True)
class GenOptions:
    seed: int = 1
    packages: int = 400
    versions: int = 25
    agent_versions: tuple[str, ...] = AGENT_VERSIONS
    platforms: tuple[str, ...] = AGENT_PLATFORMS
    artifact_mb: float = 150.0
    gen_version: int = GEN_VERSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--packages", type=int, default=None, help="package names (400)")
    parser.add_argument("--versions", type=int, default=None, help="versions per name (25)")
    parser.add_argument("--artifact-mb", type=float, default=None, help="mean artifact MB (150)")
    parser.add_argument("--agent-versions", default=None, help="comma list of agent versions")
    parser.add_argument("--small", action="store_true", help="30 x 5 packages, 2 MB artifacts")
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-sign", action="store_true", help="no .zip.sig / .asc files")
    args = parser.parse_args(argv)

    opts = GenOptions(seed=args.seed)
    if args.small:
        opts = GenOptions(
            seed=args.seed,
            packages=30,
            versions=5,
            agent_versions=AGENT_VERSIONS[-2:],
            platforms=AGENT_PLATFORMS[:2],
            artifact_mb=2.0,
        )
    overrides = {
        "packages": args.packages,
        "versions": args.versions,
        "artifact_mb": args.artifact_mb,
        "agent_versions": tuple(args.agent_versions.split(",")) if args.agent_versions else None,
    }
    opts = GenOptions(**{**asdict(opts), **{k: v for k, v in overrides.items() if v is not None}})
    generate(args.out, opts, force=args.force, jobs=args.jobs, sign=not args.no_sign)
    return 0


def generate(
    out: Path, opts: GenOptions, *, force: bool = False, jobs: int = 1, sign: bool = True
) -> Path:
    """Write the whole tree under `out`; skip when `out/gen.json` already records `opts`.

    With `sign`, every zip gets a `.zip.sig` and every artifact an `.asc` (see `sign_tree`).
    """
    out = out.resolve()
    stamp = out / "gen.json"
    wanted = json.dumps(asdict(opts), sort_keys=True)
    if not force and stamp.exists() and stamp.read_text() == wanted:
        print(f"{out}: up to date ({opts.packages} x {opts.versions} packages)", file=sys.stderr)
        if sign:
            sign_tree(out, jobs)
        return out
    for sub in ("packages", "downloads", "state", "bench-key"):
        shutil.rmtree(out / sub, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    (out / "packages").mkdir(parents=True, exist_ok=True)

    names = package_names(opts.seed, opts.packages)
    work = [(opts.seed, name, opts.versions, str(out / "packages")) for name in names]
    count = 0
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for written in pool.map(_write_package_versions, work, chunksize=4):
            count += written
    print(f"{out}/packages: {count} package versions", file=sys.stderr)

    total = write_artifacts(out / "downloads", opts)
    print(f"{out}/downloads: {total / 1e9:.2f} GB of agent artifacts", file=sys.stderr)

    config = {"package_paths": [str(out / "packages")]}
    (out / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    stamp.write_text(wanted)
    if sign:
        sign_tree(out, jobs)
    return out


# ---------------------------------------------------------------- signatures


def sign_tree(out: Path, jobs: int) -> None:
    """Sign what has no signature yet, with fleetgap's own OpenPGP code (RSA-4096).

    The key is made once and kept in OUT/bench-key/ (secret.asc, public.asc), so a later
    run only signs new files. Signatures carry a creation time: unlike the packages and
    artifacts they are not reproducible from the seed.
    """
    try:
        from fleetgap.pgp.keys import SecretKey
    except ImportError:
        print("fleetgap.pgp not available: packages left unsigned", file=sys.stderr)
        return
    key_dir = out / "bench-key"
    secret = key_dir / "secret.asc"
    if not secret.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        SecretKey.generate("fleetgap bench <bench@localhost>").write(secret, key_dir / "public.asc")
    todo = [
        (str(p), ".sig")
        for p in sorted((out / "packages").glob("*.zip"))
        if not Path(f"{p}.sig").exists()
    ]
    todo += [
        (str(p), ".asc")
        for p in sorted((out / "downloads").rglob("*"))
        if p.is_file() and not p.name.endswith((".sha512", ".asc", ".tmp"))
        if not Path(f"{p}.asc").exists()
    ]
    if not todo:
        return
    armored = secret.read_bytes()
    chunks = [todo[i : i + 200] for i in range(0, len(todo), 200)]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        signed = sum(pool.map(_sign_files, [(armored, c) for c in chunks]))
    print(f"{out}: {signed} signatures written ({key_dir}/public.asc)", file=sys.stderr)


def _sign_files(job: tuple[bytes, list[tuple[str, str]]]) -> int:
    from fleetgap.pgp.keys import SecretKey
    from fleetgap.pgp.signatures import sign_file

    armored, files = job
    key = SecretKey.parse(armored)
    for path, suffix in files:
        sign_file(Path(path), key, Path(path + suffix))
    return len(files)


# ---------------------------------------------------------------- packages


def package_names(seed: int, count: int) -> list[str]:
    rng = random.Random(f"{seed}:names")
    combos = list(VENDORS) + [f"{v}_{s}" for v in VENDORS for s in SUFFIXES]
    if count > len(combos):
        combos += [f"{c}_{i}" for i in range(2, 2 + count // len(combos) + 1) for c in combos]
    chosen = combos[: len(VENDORS)] + rng.sample(combos[len(VENDORS) :], len(combos) - len(VENDORS))
    return sorted(chosen[:count])


def version_history(rng: random.Random, count: int) -> list[str]:
    """`count` strictly increasing semver versions; a few are prereleases of the next GA."""
    major = rng.choice((0, 1, 1, 1, 2))
    minor, patch = rng.randint(0, 5), 0
    versions: list[str] = []
    while len(versions) < count:
        roll = rng.random()
        if roll < 0.07 and len(versions) + 2 <= count:
            # a prerelease, then the release it previews
            nxt = (major + 1, 0, 0) if rng.random() < 0.5 else (major, minor + 1, 0)
            versions.append("{}.{}.{}-{}".format(*nxt, rng.choice(("preview1", "rc1", "beta.1"))))
            major, minor, patch = nxt
        elif roll < 0.12:
            major, minor, patch = major + 1, 0, 0
        elif roll < 0.4:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        versions.append(f"{major}.{minor}.{patch}")
    return versions[:count]


def kibana_constraints(rng: random.Random, count: int) -> list[str]:
    out: list[str] = []
    for choices, share in KIBANA_ERAS:
        out += [rng.choice(choices)] * max(1, round(share * count))
    out = out[:count]
    return out + [out[-1]] * (count - len(out))


@dataclass(frozen=True)
class PackageShape:
    name: str
    title: str
    kind: str  # integration | input
    categories: tuple[str, ...]
    datasets: tuple[tuple[str, str, str], ...]  # (name, type, input)
    owner: str
    experimental: bool
    screenshot: bytes
    dashboard_kb: int


def _write_package_versions(job: tuple[int, str, int, str]) -> int:
    seed, name, count, out_dir = job
    rng = random.Random(f"{seed}:pkg:{name}")
    shape = _shape(rng, name)
    versions = version_history(rng, count)
    constraints = kibana_constraints(rng, count)
    fmt_start = rng.randrange(len(FORMAT_VERSIONS) - 2)
    dashboard = _dashboard(rng, shape)
    for i, version in enumerate(versions):
        fmt = FORMAT_VERSIONS[min(len(FORMAT_VERSIONS) - 1, fmt_start + i * 3 // count)]
        files = package_files(shape, versions[: i + 1], constraints[i], fmt, dashboard, rng)
        write_zip(Path(out_dir) / f"{name}-{version}.zip", f"{name}-{version}", files, i)
    return len(versions)


def _shape(rng: random.Random, name: str) -> PackageShape:
    kind = "input" if rng.random() < 0.1 else "integration"
    cats = tuple(sorted(rng.sample(CATEGORIES, rng.randint(1, 3))))
    datasets = []
    if kind == "integration":
        pool = ["access", "error", "audit", "events", "alerts", "status", "stats", "metrics"]
        for ds in rng.sample(pool, rng.randint(1, 4)):
            dtype = "metrics" if ds in ("status", "stats", "metrics") else "logs"
            inp = f"{name}/metrics" if dtype == "metrics" else rng.choice(INPUTS_LOGS)
            datasets.append((ds, dtype, inp))
    # screenshot sizes spread like real ones: tens to hundreds of KB, a few large packages
    shot_kb = int(math.exp(rng.uniform(math.log(15), math.log(250))))
    dash_kb = int(math.exp(rng.uniform(math.log(4), math.log(400))))
    if rng.random() < 0.02:
        dash_kb *= 15
    return PackageShape(
        name=name,
        title=name.replace("_", " ").title(),
        kind=kind,
        categories=cats,
        datasets=tuple(datasets),
        owner=rng.choice(("elastic/obs-team", "elastic/security-service-integrations", "acme")),
        experimental=rng.random() < 0.04,
        screenshot=png_bytes(rng, shot_kb * 1024),
        dashboard_kb=dash_kb,
    )


def package_files(
    shape: PackageShape,
    history: list[str],
    kibana: str,
    fmt: str,
    dashboard: bytes,
    rng: random.Random,
) -> dict[str, bytes]:
    """The files of one package version, relative to its root, in archive order."""
    version = history[-1]
    prerelease = "-" in version
    manifest: dict = {
        "format_version": fmt,
        "name": shape.name,
        "title": shape.title,
        "version": version,
        "description": f"Collect logs and metrics from {shape.title} with Elastic Agent.",
        "type": shape.kind,
        "categories": list(shape.categories),
        "conditions": {"kibana": {"version": kibana}, "elastic": {"subscription": "basic"}},
        "icons": [
            {
                "src": "/img/icon.svg",
                "title": f"{shape.title} logo",
                "size": "32x32",
                "type": "image/svg+xml",
            }
        ],
        "screenshots": [
            {
                "src": "/img/overview.png",
                "title": f"{shape.title} overview",
                "size": "400x250",
                "type": "image/png",
            }
        ],
        "owner": {
            "github": shape.owner,
            "type": "elastic" if "elastic" in shape.owner else "partner",
        },
        "source": {"license": "Elastic-2.0"},
    }
    if shape.experimental:
        manifest["release"] = "experimental"
    elif prerelease or version.startswith("0."):
        manifest["release"] = "beta"
    if shape.kind == "input":
        manifest["policy_templates"] = [
            {
                "name": shape.name,
                "type": "logs",
                "title": f"{shape.title} input",
                "description": f"Collect custom data with the {shape.title} input.",
                "input": "logfile",
                "template_path": "input.yml.hbs",
                "vars": [_paths_var(shape.name)],
            }
        ]
    else:
        inputs = sorted({inp for _, _, inp in shape.datasets})
        manifest["policy_templates"] = [
            {
                "name": shape.name,
                "title": f"{shape.title} logs and metrics",
                "description": f"Collect logs and metrics from {shape.title} instances.",
                "inputs": [
                    {
                        "type": inp,
                        "title": f"Collect data with {inp}",
                        "description": f"Collecting {shape.title} data with {inp}.",
                    }
                    for inp in inputs
                ],
            }
        ]

    files: dict[str, bytes] = {"manifest.yml": _yaml(manifest)}
    files["changelog.yml"] = _yaml(
        [
            {
                "version": v,
                "changes": [{"description": f"Release {v}.", "type": "enhancement", "link": "x"}],
            }
            for v in reversed(history)
        ]
    )
    files["docs/README.md"] = (
        f"# {shape.title}\n\nThe {shape.title} integration, version {version}.\n\n"
        + "## Data streams\n\n"
        + "".join(f"- `{ds}` ({t})\n" for ds, t, _ in shape.datasets)
        + "\nLorem ipsum dolor sit amet. " * rng.randint(10, 80)
        + "\n"
    ).encode()
    files["img/icon.svg"] = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
        f'<circle cx="16" cy="16" r="12" fill="#{zlib.crc32(shape.name.encode()) & 0xFFFFFF:06x}"/>'
        "</svg>\n"
    ).encode()
    files["img/overview.png"] = shape.screenshot
    if shape.kind == "input":
        files["agent/input/input.yml.hbs"] = b"paths:\n{{#each paths}}\n  - {{this}}\n{{/each}}\n"
        files["fields/base-fields.yml"] = BASE_FIELDS
    for ds, dtype, inp in shape.datasets:
        base = f"data_stream/{ds}"
        template = "stream.yml.hbs"
        stream = {
            "input": inp,
            "title": f"{shape.title} {ds}",
            "description": f"Collect {shape.title} {ds} {dtype}.",
            "template_path": template,
            "vars": [_paths_var(shape.name)] if dtype == "logs" else [_period_var()],
        }
        ds_manifest = {"title": f"{shape.title} {ds}", "type": dtype, "streams": [stream]}
        files[f"{base}/manifest.yml"] = _yaml(ds_manifest)
        files[f"{base}/fields/base-fields.yml"] = BASE_FIELDS
        files[f"{base}/fields/fields.yml"] = _yaml(
            [
                {
                    "name": f"{shape.name}.{ds}",
                    "type": "group",
                    "fields": [
                        {"name": f"field_{j}", "type": "keyword", "description": f"Field {j}."}
                        for j in range(rng.randint(3, 30))
                    ],
                }
            ]
        )
        files[f"{base}/agent/stream/{template}"] = (
            b"{{#if paths}}\npaths:\n{{#each paths}}\n  - {{this}}\n{{/each}}\n{{/if}}\n"
            b"period: {{period}}\n"
        )
        if dtype == "logs":
            files[f"{base}/elasticsearch/ingest_pipeline/default.yml"] = _yaml(
                {
                    "description": f"Pipeline for {shape.name} {ds}",
                    "processors": [{"set": {"field": "ecs.version", "value": "8.11.0"}}],
                }
            )
    if shape.kind == "integration":
        files[f"kibana/dashboard/{shape.name}-overview.json"] = dashboard.replace(
            b"@VERSION@", version.encode()
        )
    return files


BASE_FIELDS = yaml.safe_dump(
    [
        {"name": "data_stream.type", "type": "constant_keyword", "description": "Type."},
        {"name": "data_stream.dataset", "type": "constant_keyword", "description": "Dataset."},
        {"name": "data_stream.namespace", "type": "constant_keyword", "description": "Ns."},
        {"name": "@timestamp", "type": "date", "description": "Event timestamp."},
    ],
    sort_keys=False,
).encode()


def _owner_type(github: str) -> str:
    return "elastic" if github.startswith("elastic/") else "partner"


def _paths_var(name: str) -> dict:
    return {
        "name": "paths",
        "type": "text",
        "title": "Paths",
        "multi": True,
        "required": True,
        "show_user": True,
        "default": [f"/var/log/{name}/*.log"],
    }


def _period_var() -> dict:
    return {"name": "period", "type": "text", "title": "Period", "default": "10s"}


def _yaml(data: object) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


def _dashboard(rng: random.Random, shape: PackageShape) -> bytes:
    """A Kibana saved-object JSON of about `dashboard_kb` KB (compresses like real ones)."""
    panels = []
    size = 0
    i = 0
    while size < shape.dashboard_kb * 1024:
        panel = {
            "panelIndex": f"{i}",
            "gridData": {"x": (i * 12) % 48, "y": i * 8, "w": 24, "h": 15, "i": f"{i}"},
            "embeddableConfig": {
                "title": f"{shape.title} panel {i}",
                "query": f"data_stream.dataset:{shape.name}.{rng.choice(SUFFIXES)}",
                "seed": rng.getrandbits(64),
            },
        }
        panels.append(panel)
        size += 260
        i += 1
    doc = {
        "id": f"{shape.name}-overview",
        "type": "dashboard",
        "attributes": {"title": f"[{shape.title}] Overview", "panelsJSON": json.dumps(panels)},
        "coreMigrationVersion": "8.8.0",
        "managed": True,
        "references": [],
        "version": "@VERSION@",
    }
    return json.dumps(doc, indent=2).encode()


def png_bytes(rng: random.Random, target: int, width: int = 400, height: int = 250) -> bytes:
    """A valid RGB PNG of roughly `target` bytes (random noise on part of each row)."""
    noisy = max(1, min(width * 3, target // height))
    rows = b"".join(
        b"\x00" + rng.randbytes(noisy) + b"\x40" * (width * 3 - noisy) for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def write_zip(path: Path, root: str, files: dict[str, bytes], day: int) -> None:
    """Write a zip the way elastic-package does: directory entries, then files, deflated."""
    stamp = (2024, 1 + day // 28 % 12, 1 + day % 28, 12, 0, 0)
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        seen: set[str] = set()
        for rel in files:
            parts = rel.split("/")[:-1]
            for depth in range(len(parts) + 1):
                d = "/".join([root, *parts[:depth]]) + "/"
                if d not in seen:
                    seen.add(d)
                    info = zipfile.ZipInfo(d, stamp)
                    info.external_attr = (0o40755 << 16) | 0x10
                    zf.writestr(info, b"")
            info = zipfile.ZipInfo(f"{root}/{rel}", stamp)
            info.external_attr = 0o100644 << 16
            stored = rel.endswith(".png")  # already compressed
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, files[rel])
    os.replace(tmp, path)


# ---------------------------------------------------------------- artifacts


def write_artifacts(downloads: Path, opts: GenOptions) -> int:
    """Agent binaries (random bytes) with `.sha512` sidecars in Elastic's layout."""
    target = downloads / "beats" / "elastic-agent"
    target.mkdir(parents=True, exist_ok=True)
    block = random.Random(f"{opts.seed}:block").randbytes(8 << 20)
    total = 0
    for version in opts.agent_versions:
        for platform in opts.platforms:
            name = f"elastic-agent-{version}-{platform}"
            rng = random.Random(f"{opts.seed}:artifact:{name}")
            size = int(opts.artifact_mb * 1e6 * rng.uniform(0.8, 1.2))
            digest = hashlib.sha512()
            tmp = target / f"{name}.tmp"
            with open(tmp, "wb") as fh:
                written = 0
                index = 0
                while written < size:
                    # distinct blocks: a per-block prefix over a shared random body
                    head = hashlib.blake2b(f"{name}:{index}".encode()).digest()
                    piece = (head + block[len(head) :])[: size - written]
                    fh.write(piece)
                    digest.update(piece)
                    written += len(piece)
                    index += 1
            os.replace(tmp, target / name)
            (target / f"{name}.sha512").write_text(f"{digest.hexdigest()}  {name}\n")
            total += size
    return total


if __name__ == "__main__":
    sys.exit(main())
