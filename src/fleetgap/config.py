"""Settings for `fleetgap serve`: one place for config.yml, `EPR_*`/`FLEETGAP_*` env and flags.

spec: epr-api §11. Precedence, lowest first: built-in defaults, config.yml (only
`package_paths` and `cache_time.*`), environment, command-line flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PROXY_TO = "https://epr.elastic.co/"


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
    config: str = "config.yml"
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
