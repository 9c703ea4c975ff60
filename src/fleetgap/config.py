"""Settings for `fleetgap serve`: one place for config.yml, `EPR_*`/`FLEETGAP_*` env and flags.

spec: epr-api §11. Precedence, lowest first: built-in defaults, config.yml (only
`package_paths` and `cache_time.*`), environment (`EPR_<FLAG>`), command-line flags.

Every flag of Elastic's Go registry is listed in `FLAGS` under its Go name; the CLI builds
its options from that table, so a flag, its env var and its parser cannot drift apart.
fleetgap's own options are in `FLEETGAP_FLAGS`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

from fleetgap.errors import FleetgapError, without_userinfo

# The Elastic Package Registry release whose behaviour fleetgap reproduces (spec: epr-api).
COMPAT_VERSION = "1.40.1"
DEFAULT_PROXY_TO = "https://epr.elastic.co/"
DEFAULT_CONFIG = "config.yml"
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
LOG_LEVELS = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
LOG_TYPES = ("ecs", "dev")
SERVERS = ("auto", "granian", "uvicorn")


@dataclass(frozen=True)
class CacheTimes:
    """Seconds for the `Cache-Control: max-age` of each response family (spec §2)."""

    index: float = 10.0
    search: float = 600.0
    categories: float = 600.0
    catch_all: float = 600.0


@dataclass(frozen=True)
class Settings:
    address: str = "localhost:8080"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_min_version: str = "1.2"
    config: str = DEFAULT_CONFIG
    log_level: str = "info"
    log_type: str = "ecs"
    metrics_address: str = ""
    dry_run: bool = False
    disable_package_validation: bool = False
    allow_unknown_query_parameters: bool = True
    require_package_signatures: bool = True
    package_paths_enable_watcher: bool = False
    package_paths_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    feature_proxy_mode: bool = False
    proxy_to: str = DEFAULT_PROXY_TO
    proxy_allow_insecure: bool = False
    # from config.yml
    package_paths: tuple[Path, ...] = ()
    cache_time: CacheTimes = field(default_factory=CacheTimes)
    # fleetgap's own
    data_dir: Path | None = None
    verify_package_signatures: tuple[Path, ...] = ()
    service_name: str = "package-registry"
    # /favicon.ico body; None serves fleetgap's own icon (Elastic's may not be redistributed)
    favicon: Path | None = None
    # where Fleet Server's key endpoint gets the key when DATA/keys/default.pgp is missing;
    # None: fleetgap's own DATA/keys/GPG-KEY-elastic-agent
    pgp_upstream_url: str | None = None
    pgp_upstream_ca: Path | None = None  # CA bundle for pgp_upstream_url (a private CA)
    # the persisted index (sqlite); None: DATA/state/index-cache.sqlite with --data, else none
    index_cache: Path | None = None
    workers: int = 1
    server: str = "auto"
    # load shedding (shedding.py), per worker process; 0 is off
    max_downloads: int = 0
    download_rate: int = 0  # bytes per second per download
    # request lines wait at most this long in a worker's buffer (nginx's access_log flush=)
    log_flush_interval: float = 1.0
    # True when neither a config file nor a data dir was found: package_paths is then the
    # bundled sample packages (which carry no .sig files).
    sample_packages: bool = False
    # Warnings found while loading the settings, logged by the server once logging is up.
    notices: tuple[str, ...] = ()

    @property
    def index_cache_path(self) -> Path | None:
        if self.index_cache is not None:
            return self.index_cache
        return self.data_dir / "state" / "index-cache.sqlite" if self.data_dir else None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    @property
    def require_signatures(self) -> bool:
        """Signatures are required unless disabled or serving the unsigned samples."""
        return self.require_package_signatures and not self.sample_packages


def sample_packages_path() -> Path:
    """The sample packages shipped inside the fleetgap package (src/fleetgap/examples)."""
    return Path(str(resources.files("fleetgap") / "examples" / "packages"))


# --- value parsers (Go semantics: strconv.ParseBool, flag.Int, time.ParseDuration) -------


def parse_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"invalid boolean value {value!r}")


def parse_int(value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ValueError(f"invalid integer value {value!r}") from None


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: str | int | float) -> float:
    """A Go duration (`10s`, `1m30s`, `-1.5h`) in seconds; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f"invalid duration {value!r}")
    return sign * total


def parse_address(value: str) -> str:
    """`host:port` as Go's net.Listen takes it (`:8080` = every interface, `[::1]:80`)."""
    split_address(value)
    return value


def split_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {value!r} (expected host:port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError(f"invalid address {value!r} (put an IPv6 host in brackets)")
    return host or "0.0.0.0", int(port)


def _choice(allowed: tuple[str, ...], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unsupported {what} {value!r} (use one of {', '.join(allowed)})")
        return value

    return parse


def _log_level(value: str) -> str:
    # zap accepts any case and an empty string for info.
    return _choice(LOG_LEVELS, "log level")(value.lower() or "info")


def _str(value: str) -> str:
    return value


_RATE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
}
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?)?b?(?:/s)?", re.IGNORECASE)


def parse_rate(value: str) -> int:
    """Bytes per second: `10MB` (10,000,000), `512KiB`, `1G`, `250000`; 0 is off."""
    match = _RATE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid rate {value!r} (examples: 10MB, 512KiB, 1000000)")
    number, unit = match.groups()
    return int(float(number) * _RATE_UNITS[(unit or "").lower()])


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(part) for part in value.split(os.pathsep) if part)


MAX_LOG_FLUSH_INTERVAL = 60.0  # a line never waits longer than this for its write

# --- the flag table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One command-line flag: Go name, its Settings field (None: accepted, checked only)."""

    name: str
    field: str | None
    parse: Callable[[str], object]
    help: str
    boolean: bool = False
    env: str = ""
    multiple: bool = False

    @property
    def env_name(self) -> str:
        return self.env or "EPR_" + self.name.upper().replace("-", "_")

    @property
    def key(self) -> str:
        """The key of this flag in the `flags` dict given to `load_settings`."""
        return self.name.replace("-", "_")


def _bool_flag(name: str, field_name: str | None, help_text: str) -> Flag:
    return Flag(name, field_name, parse_bool, help_text, boolean=True)


# spec: epr-api §11.2 — every flag of the Go registry, same names, same env vars.
FLAGS: tuple[Flag, ...] = (
    _bool_flag("version", None, "Print the version and exit."),
    Flag("address", "address", parse_address, "Address to listen on. [localhost:8080]"),
    Flag("metrics-address", "metrics_address", _str, "Prometheus /metrics listener address."),
    Flag("log-level", "log_level", _log_level, "Log level: debug, info, warn, error. [info]"),
    Flag("log-type", "log_type", _choice(LOG_TYPES, "log type"), "Log type: ecs or dev. [ecs]"),
    Flag("tls-cert", "tls_cert", _str, "Path of the TLS certificate (PEM)."),
    Flag("tls-key", "tls_key", _str, "Path of the TLS key (PEM)."),
    Flag(
        "tls-min-version",
        "tls_min_version",
        _choice(TLS_VERSIONS, "TLS version"),
        "Minimum TLS version: 1.0, 1.1, 1.2 or 1.3. [1.2]",
    ),
    Flag("config", "config", _str, "Path to the configuration file. [config.yml]"),
    Flag("httpprof", None, _str, "Go pprof listener; accepted and ignored by fleetgap."),
    _bool_flag("dry-run", "dry_run", "Load the packages, report the count and exit."),
    _bool_flag(
        "disable-package-validation",
        "disable_package_validation",
        "Disable package content validation.",
    ),
    _bool_flag(
        "allow-unknown-query-parameters",
        "allow_unknown_query_parameters",
        "Allow unknown query parameters. [true]",
    ),
    _bool_flag(
        "require-package-signatures",
        "require_package_signatures",
        "Require a .sig file beside every package. [true]",
    ),
    _bool_flag(
        "package-paths-enable-watcher",
        "package_paths_enable_watcher",
        "Watch the package paths and re-index on change.",
    ),
    Flag(
        "package-paths-workers",
        "package_paths_workers",
        parse_int,
        "Workers reading packages. [number of CPUs]",
    ),
    _bool_flag("feature-proxy-mode", "feature_proxy_mode", "Enable proxy mode (preview)."),
    Flag("proxy-to", "proxy_to", _str, "Proxy-to endpoint. [https://epr.elastic.co/]"),
    _bool_flag("proxy-allow-insecure", "proxy_allow_insecure", "Allow an http:// proxy-to."),
    # The storage indexers read Google Cloud Storage: refused (no GCS in a closed network).
    _bool_flag("feature-storage-indexer", None, "Not supported by fleetgap (GCS)."),
    _bool_flag("feature-sql-storage-indexer", None, "Not supported by fleetgap (GCS)."),
    _bool_flag("feature-incremental-updates", None, "Storage indexer only; not supported."),
    _bool_flag("feature-enable-search-cache", None, "SQL storage indexer only; not supported."),
    _bool_flag("feature-enable-categories-cache", None, "SQL storage indexer only; not supported."),
    Flag("storage-indexer-bucket-internal", None, _str, "Storage indexer only; ignored."),
    Flag("storage-endpoint", None, _str, "Storage indexer only; ignored."),
    Flag("storage-indexer-watch-interval", None, parse_duration, "Storage indexer only; ignored."),
)

FLEETGAP_FLAGS: tuple[Flag, ...] = (
    Flag(
        "data",
        "data_dir",
        Path,
        "fleetgap data directory; DATA/packages is added to the package paths.",
        env="FLEETGAP_DATA",
    ),
    Flag(
        "verify-package-signatures",
        "verify_package_signatures",
        _paths,
        "Verify every package's .sig against this OpenPGP key file (repeatable).",
        env="FLEETGAP_VERIFY_PACKAGE_SIGNATURES",
        multiple=True,
    ),
    Flag(
        "pgp-upstream-url",
        "pgp_upstream_url",
        _str,
        "Key URL for /api/agents/upgrades/V/pgp-public-key when DATA/keys/default.pgp is "
        "missing, as Fleet Server's server.pgp.upstream_url. [DATA/keys/GPG-KEY-elastic-agent]",
        env="FLEETGAP_PGP_UPSTREAM_URL",
    ),
    Flag(
        "pgp-upstream-ca",
        "pgp_upstream_ca",
        Path,
        "CA certificates (PEM) to trust for --pgp-upstream-url.",
        env="FLEETGAP_PGP_UPSTREAM_CA",
    ),
    Flag(
        "index-cache",
        "index_cache",
        Path,
        "Persisted package index, reused on restart. [DATA/state/index-cache.sqlite with --data]",
        env="FLEETGAP_INDEX_CACHE",
    ),
    Flag(
        "favicon",
        "favicon",
        Path,
        "Icon file served at /favicon.ico. [fleetgap's own icon]",
        env="FLEETGAP_FAVICON",
    ),
    Flag(
        "workers",
        "workers",
        parse_int,
        "Server worker processes (Granian). [1]",
        env="FLEETGAP_WORKERS",
    ),
    Flag(
        "server",
        "server",
        _choice(SERVERS, "server"),
        "HTTP server: auto (Granian; uvicorn for TLS 1.0/1.1), granian or uvicorn. [auto]",
        env="FLEETGAP_SERVER",
    ),
    Flag(
        "max-downloads",
        "max_downloads",
        parse_int,
        "Concurrent package zip and agent artifact downloads per worker process; more get "
        "429 with Retry-After. [0: no limit]",
        env="FLEETGAP_MAX_DOWNLOADS",
    ),
    Flag(
        "download-rate",
        "download_rate",
        parse_rate,
        "Bytes per second per download, e.g. 10MB or 512KiB. [0: no limit]",
        env="FLEETGAP_DOWNLOAD_RATE",
    ),
    Flag(
        "log-flush-interval",
        "log_flush_interval",
        parse_duration,
        "Longest a request line waits in a worker's buffer before it is written, e.g. 1s or "
        f"250ms; 0 writes at the end of each event-loop turn. "
        f"At most {MAX_LOG_FLUSH_INTERVAL:g}s. [1s]",
        env="FLEETGAP_LOG_FLUSH_INTERVAL",
    ),
)

ALL_FLAGS: tuple[Flag, ...] = FLAGS + FLEETGAP_FLAGS
_STORAGE_FEATURES = (
    "feature-storage-indexer",
    "feature-sql-storage-indexer",
    "feature-incremental-updates",
    "feature-enable-search-cache",
    "feature-enable-categories-cache",
)


def load_settings(flags: Mapping[str, object], environ: Mapping[str, str]) -> Settings:
    """Build the Settings from command-line `flags` and the environment.

    `flags` holds only what was given on the command line, keyed by `Flag.key`
    (`tls_min_version`); values are the raw strings (a tuple of strings for a repeatable
    flag, True for a bare boolean flag). Raises FleetgapError with one line on bad input.
    """
    values: dict[str, object] = {}
    given: set[str] = set()
    for flag in ALL_FLAGS:
        raw = environ.get(flag.env_name)
        if raw is not None:
            values[flag.name] = _parse(flag, raw, f"${flag.env_name}")
            given.add(flag.name)
    for flag in ALL_FLAGS:
        raw = flags.get(flag.key)
        if raw is None or (flag.multiple and not raw):
            continue
        if flag.multiple:
            values[flag.name] = tuple(Path(str(item)) for item in raw)  # type: ignore[union-attr]
        elif raw is True:
            values[flag.name] = True
        else:
            values[flag.name] = _parse(flag, str(raw), f"-{flag.name}")
        given.add(flag.name)
    _refuse_unsupported(values, environ)

    settings = Settings(
        **{
            flag.field: values[flag.name]
            for flag in ALL_FLAGS
            if flag.field and flag.name in values
        }
    )
    notices: list[str] = []
    if "httpprof" in values and values["httpprof"]:
        notices.append("-httpprof is a Go profiler; fleetgap accepts and ignores it")
    if name := environ.get("ELASTIC_APM_SERVICE_NAME"):
        settings = replace(settings, service_name=name)
    settings = _apply_config_file(settings, explicit="config" in given, notices=notices)
    _validate(settings, tls_min_given="tls-min-version" in given)
    return replace(settings, notices=tuple(notices))


def version_requested(flags: Mapping[str, object], environ: Mapping[str, str]) -> bool:
    """`-version` / `EPR_VERSION` (flag wins), checked before anything else is loaded."""
    raw = flags.get("version")
    if raw is None:
        raw = environ.get("EPR_VERSION", "false")
    version_flag = next(flag for flag in FLAGS if flag.name == "version")
    return raw is True or _parse(version_flag, str(raw), "-version") is True


def _parse(flag: Flag, raw: str, where: str) -> object:
    try:
        return flag.parse(raw)
    except ValueError as exc:
        raise FleetgapError(f"invalid value for {where}: {exc}") from None


def _refuse_unsupported(values: Mapping[str, object], environ: Mapping[str, str]) -> None:
    for name in _STORAGE_FEATURES:
        if values.get(name):
            raise FleetgapError(
                f"-{name} is not supported: fleetgap serves packages from package_paths "
                "and --data (there is no Google Cloud Storage in a closed network)"
            )
    if environ.get("EPR_EMULATOR_INDEX_PATH"):
        raise FleetgapError(
            "EPR_EMULATOR_INDEX_PATH needs a storage indexer, which fleetgap does not support"
        )


# --- config.yml ----------------------------------------------------------------------------


def _apply_config_file(settings: Settings, *, explicit: bool, notices: list[str]) -> Settings:
    path = Path(settings.config)
    data_paths = (settings.data_dir / "packages",) if settings.data_dir else ()
    if not path.is_file():
        if explicit or path.exists():
            raise FleetgapError(f"configuration file is not available: {settings.config}")
        if data_paths:
            return replace(settings, package_paths=data_paths)
        return replace(settings, package_paths=(sample_packages_path(),), sample_packages=True)
    package_paths, cache_time = read_config_file(path, notices)
    listed = {os.path.realpath(p) for p in package_paths}
    extra = tuple(p for p in data_paths if os.path.realpath(p) not in listed)
    return replace(settings, package_paths=package_paths + extra, cache_time=cache_time)


_CACHE_KEYS = {
    "cache_time.index": "index",
    "cache_time.search": "search",
    "cache_time.categories": "categories",
    "cache_time.catch_all": "catch_all",
}


def read_config_file(path: Path, notices: list[str]) -> tuple[tuple[Path, ...], CacheTimes]:
    """`package_paths` and `cache_time.*` from a config.yml (spec: epr-api §11.1).

    go-ucfg reads it without path splitting, so keys are flat (`cache_time.index: 10s`);
    a nested `cache_time:` mapping is ignored there, and here too (with a notice).
    """
    try:
        # BaseLoader: every scalar stays a string, as go-ucfg sees them before unpacking.
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FleetgapError(f"reading config failed (path: {path}): {reason}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise FleetgapError(f"reading config failed (path: {path}): not a mapping of keys")

    raw_paths = document.get("package_paths") or []
    if isinstance(raw_paths, str):
        raw_paths = [raw_paths]
    if not isinstance(raw_paths, list) or not all(isinstance(p, str) for p in raw_paths):
        raise FleetgapError(f"unpacking config failed (path: {path}): package_paths is not a list")

    times: dict[str, float] = {}
    for key, attr in _CACHE_KEYS.items():
        if key not in document:
            continue
        raw = document[key]
        try:
            if not isinstance(raw, str):
                raise ValueError(f"invalid duration {raw!r}")
            seconds = parse_duration(raw)
        except ValueError as exc:
            raise FleetgapError(f"unpacking config failed (path: {path}): {key}: {exc}") from None
        if seconds <= 0:
            raise FleetgapError(f"unpacking config failed (path: {path}): {key} must be > 0")
        times[attr] = seconds
    if isinstance(document.get("cache_time"), dict):
        notices.append(
            f"{path}: a nested cache_time mapping is ignored (as by Elastic's registry); "
            "write flat keys such as cache_time.index: 10s"
        )
    return tuple(Path(p) for p in raw_paths), CacheTimes(**times)


# --- cross-field checks (main.go validateFlags) ---------------------------------------------


def _validate(settings: Settings, *, tls_min_given: bool) -> None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise FleetgapError("TLS needs both -tls-cert and -tls-key")
    if tls_min_given and not settings.tls:
        raise FleetgapError(
            "-tls-min-version set but missing TLS cert and key files (-tls-cert and -tls-key)"
        )
    for name in ("tls_cert", "tls_key"):
        value = getattr(settings, name)
        if value and not Path(value).is_file():
            raise FleetgapError(f"-{name.replace('_', '-')}: file not found: {value}")
    if settings.package_paths_workers <= 0:
        raise FleetgapError("package-paths-workers must be greater than 0")
    if settings.workers <= 0:
        raise FleetgapError("--workers must be greater than 0")
    if settings.max_downloads < 0:
        raise FleetgapError("--max-downloads must be 0 (no limit) or more")
    if not 0 <= settings.log_flush_interval <= MAX_LOG_FLUSH_INTERVAL:
        raise FleetgapError(
            f"--log-flush-interval must be between 0 and {MAX_LOG_FLUSH_INTERVAL:g}s"
        )
    if settings.metrics_address:
        try:
            split_address(settings.metrics_address)
        except ValueError as exc:
            raise FleetgapError(f"invalid value for -metrics-address: {exc}") from None
    if settings.feature_proxy_mode and settings.proxy_to:
        scheme = settings.proxy_to.partition("://")[0].lower() if "://" in settings.proxy_to else ""
        shown = without_userinfo(settings.proxy_to)
        if not scheme:
            raise FleetgapError(f"invalid -proxy-to URL: {shown!r}")
        if not settings.proxy_allow_insecure and scheme != "https":
            raise FleetgapError(
                f'-proxy-to must use HTTPS (got "{shown}"); use -proxy-allow-insecure to allow HTTP'
            )
    if settings.server == "granian" and settings.tls and settings.tls_min_version in ("1.0", "1.1"):
        raise FleetgapError(
            f"Granian cannot serve TLS {settings.tls_min_version}; use --server uvicorn or auto"
        )
    for key in settings.verify_package_signatures:
        if not key.is_file():
            raise FleetgapError(f"--verify-package-signatures: key file not found: {key}")
