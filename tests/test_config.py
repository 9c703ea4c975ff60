"""Settings: config.yml, EPR_* env and flags with the Go registry's names and precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetgap.config import (
    FLAGS,
    CacheTimes,
    load_settings,
    parse_bool,
    parse_duration,
    sample_packages_path,
    split_address,
    version_requested,
)
from fleetgap.errors import FleetgapError

GO_FLAG_NAMES = {
    "version", "address", "metrics-address", "log-level", "log-type", "tls-cert", "tls-key",
    "tls-min-version", "config", "httpprof", "dry-run", "disable-package-validation",
    "allow-unknown-query-parameters", "feature-storage-indexer", "storage-indexer-bucket-internal",
    "storage-endpoint", "storage-indexer-watch-interval", "feature-sql-storage-indexer",
    "feature-incremental-updates", "feature-enable-search-cache",
    "feature-enable-categories-cache", "feature-proxy-mode", "proxy-to", "proxy-allow-insecure",
    "package-paths-enable-watcher", "package-paths-workers", "require-package-signatures",
}  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(directory: Path, text: str, name: str = "config.yml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_go_flag_is_accepted_with_its_env_name() -> None:
    assert {flag.name for flag in FLAGS} == GO_FLAG_NAMES
    by_name = {flag.name: flag for flag in FLAGS}
    assert by_name["tls-min-version"].env_name == "EPR_TLS_MIN_VERSION"
    assert by_name["package-paths-enable-watcher"].env_name == "EPR_PACKAGE_PATHS_ENABLE_WATCHER"


def test_defaults_match_the_go_registry(workdir: Path) -> None:
    write_config(workdir, "package_paths: [./packages]\n")
    settings = load_settings({}, {})
    assert settings.address == "localhost:8080"
    assert settings.log_level == "info" and settings.log_type == "ecs"
    assert settings.allow_unknown_query_parameters is True
    assert settings.require_package_signatures is True
    assert settings.package_paths_enable_watcher is False
    assert settings.metrics_address == ""
    assert settings.proxy_to == "https://epr.elastic.co/"
    assert settings.tls_min_version == "1.2"
    assert settings.cache_time == CacheTimes(index=10, search=600, categories=600, catch_all=600)
    assert settings.package_paths == (Path("packages"),)
    assert settings.sample_packages is False
    assert settings.service_name == "package-registry"


def test_reads_the_docker_config_with_flat_keys(workdir: Path, compat: Path) -> None:
    docker = compat / "package-registry" / "config.docker.yml"
    settings = load_settings({"config": str(docker)}, {})
    assert settings.package_paths == (Path("/packages/package-registry"),)
    assert settings.cache_time == CacheTimes(index=10, search=600, categories=600, catch_all=600)


def test_reads_every_compat_config_fixture(workdir: Path, compat: Path) -> None:
    for path in sorted((compat / "package-registry").glob("config*.yml")):
        settings = load_settings({"config": str(path)}, {})
        assert settings.package_paths, path


def test_go_durations_and_bare_seconds(workdir: Path) -> None:
    write_config(
        workdir,
        "cache_time.index: 1m30s\ncache_time.search: 45\n"
        "cache_time.categories: 1.5h\ncache_time.catch_all: 300ms\n",
    )
    times = load_settings({}, {}).cache_time
    assert times == CacheTimes(index=90, search=45, categories=5400, catch_all=0.3)


@pytest.mark.parametrize("value", ["0s", "-1s", "0"])
def test_cache_time_of_zero_or_less_is_an_error(workdir: Path, value: str) -> None:
    write_config(workdir, f"cache_time.index: {value}\n")
    with pytest.raises(FleetgapError, match="cache_time.index must be > 0"):
        load_settings({}, {})


def test_unparsable_duration_is_one_line_error(workdir: Path) -> None:
    write_config(workdir, "cache_time.search: ten minutes\n")
    with pytest.raises(FleetgapError, match="cache_time.search") as info:
        load_settings({}, {})
    assert "\n" not in str(info.value)


def test_nested_cache_time_is_ignored_like_go_ucfg_with_a_notice(workdir: Path) -> None:
    write_config(workdir, "cache_time:\n  index: 99s\n")
    settings = load_settings({}, {})
    assert settings.cache_time.index == 10
    assert any("nested cache_time" in notice for notice in settings.notices)


def test_package_paths_scalar_is_a_one_element_list(workdir: Path) -> None:
    write_config(workdir, "package_paths: /srv/packages\n")
    assert load_settings({}, {}).package_paths == (Path("/srv/packages"),)


def test_bad_yaml_is_one_line_error(workdir: Path) -> None:
    write_config(workdir, "package_paths: [unclosed\n")
    with pytest.raises(FleetgapError, match="reading config failed") as info:
        load_settings({}, {})
    assert "\n" not in str(info.value)


def test_explicit_missing_config_is_an_error(workdir: Path) -> None:
    with pytest.raises(FleetgapError, match="configuration file is not available: nope.yml"):
        load_settings({"config": "nope.yml"}, {})
    with pytest.raises(FleetgapError, match="not available: env.yml"):
        load_settings({}, {"EPR_CONFIG": "env.yml"})


def test_no_config_anywhere_serves_the_bundled_samples(workdir: Path) -> None:
    settings = load_settings({}, {})
    assert settings.sample_packages is True
    assert settings.package_paths == (sample_packages_path(),)
    assert settings.require_package_signatures is True
    assert settings.require_signatures is False  # the samples carry no .sig files
    assert (sample_packages_path() / "fleetgap_hello" / "1.0.0" / "manifest.yml").is_file()


def test_data_dir_adds_its_packages_folder(workdir: Path) -> None:
    settings = load_settings({"data": "/srv/fleetgap"}, {})
    assert settings.package_paths == (Path("/srv/fleetgap/packages"),)
    assert settings.sample_packages is False
    write_config(workdir, "package_paths: [./mine]\n")
    settings = load_settings({}, {"FLEETGAP_DATA": "/data"})
    assert settings.data_dir == Path("/data")
    assert settings.package_paths == (Path("mine"), Path("/data/packages"))


def test_env_applies_and_flags_override_env(workdir: Path) -> None:
    write_config(workdir, "package_paths: [./p]\n")
    env = {
        "EPR_ADDRESS": "0.0.0.0:9000",
        "EPR_LOG_LEVEL": "debug",
        "EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS": "false",
        "EPR_REQUIRE_PACKAGE_SIGNATURES": "0",
        "EPR_PACKAGE_PATHS_WORKERS": "3",
    }
    settings = load_settings({}, env)
    assert settings.address == "0.0.0.0:9000"
    assert settings.log_level == "debug"
    assert settings.allow_unknown_query_parameters is False
    assert settings.require_package_signatures is False
    assert settings.package_paths_workers == 3
    flags = {"address": "127.0.0.1:9001", "allow_unknown_query_parameters": "true"}
    settings = load_settings(flags, env)
    assert settings.address == "127.0.0.1:9001"
    assert settings.allow_unknown_query_parameters is True
    assert settings.log_level == "debug"


def test_env_picks_the_config_file(workdir: Path) -> None:
    write_config(workdir, "package_paths: [./other]\n", name="other.yml")
    assert load_settings({}, {"EPR_CONFIG": "other.yml"}).package_paths == (Path("other"),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EPR_DRY_RUN": "yes"}, "invalid value for $EPR_DRY_RUN"),
        ({"EPR_PACKAGE_PATHS_WORKERS": "many"}, "invalid value for $EPR_PACKAGE_PATHS_WORKERS"),
        ({"EPR_TLS_MIN_VERSION": "1.4"}, "unsupported TLS version '1.4'"),
        ({"EPR_LOG_TYPE": "text"}, "unsupported log type"),
        ({"EPR_ADDRESS": "8080"}, "invalid address"),
    ],
)
def test_invalid_env_value_is_one_line_error(
    workdir: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(FleetgapError, match=message.replace("$", r"\$")) as info:
        load_settings({}, env)
    assert "\n" not in str(info.value)


def test_go_boolean_spellings() -> None:
    for text in ("1", "t", "T", "TRUE", "true", "True"):
        assert parse_bool(text) is True
    for text in ("0", "f", "F", "FALSE", "false", "False"):
        assert parse_bool(text) is False
    with pytest.raises(ValueError):
        parse_bool("yes")


def test_duration_parser_follows_go() -> None:
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("2h45m") == 9900
    assert parse_duration("1500us") == pytest.approx(0.0015)
    with pytest.raises(ValueError):
        parse_duration("10 s")
    with pytest.raises(ValueError):
        parse_duration("5d")


def test_addresses() -> None:
    assert split_address("localhost:8080") == ("localhost", 8080)
    assert split_address(":8080") == ("0.0.0.0", 8080)
    assert split_address("[::1]:443") == ("::1", 443)
    for bad in ("8080", "host:http", "::1:80", "h:70000"):
        with pytest.raises(ValueError):
            split_address(bad)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3"])
def test_tls_min_version_accepts_1_0_to_1_3(workdir: Path, version: str) -> None:
    cert = write_config(workdir, "x", name="cert.pem")
    key = write_config(workdir, "x", name="key.pem")
    flags = {"tls_cert": str(cert), "tls_key": str(key), "tls_min_version": version}
    settings = load_settings(flags, {})
    assert settings.tls and settings.tls_min_version == version


def test_tls_min_version_needs_cert_and_key(workdir: Path) -> None:
    with pytest.raises(FleetgapError, match="missing TLS cert and key"):
        load_settings({}, {"EPR_TLS_MIN_VERSION": "1.3"})
    cert = write_config(workdir, "x", name="cert.pem")
    with pytest.raises(FleetgapError, match="both -tls-cert and -tls-key"):
        load_settings({"tls_cert": str(cert)}, {})


def test_granian_cannot_serve_tls_below_1_2(workdir: Path) -> None:
    cert = write_config(workdir, "x", name="cert.pem")
    flags = {"tls_cert": str(cert), "tls_key": str(cert), "tls_min_version": "1.1"}
    assert load_settings(flags, {}).server == "auto"
    with pytest.raises(FleetgapError, match="Granian cannot serve TLS 1.1"):
        load_settings({**flags, "server": "granian"}, {})


def test_proxy_to_must_be_https_unless_insecure_allowed(workdir: Path) -> None:
    flags = {"feature_proxy_mode": True, "proxy_to": "http://mirror.internal/"}
    with pytest.raises(FleetgapError, match="-proxy-to must use HTTPS"):
        load_settings(flags, {})
    settings = load_settings({**flags, "proxy_allow_insecure": True}, {})
    assert settings.proxy_to == "http://mirror.internal/"
    # Without proxy mode the URL is not checked (as in Go).
    assert load_settings({"proxy_to": "http://x/"}, {}).proxy_to == "http://x/"


@pytest.mark.parametrize(
    "name",
    [
        "feature_storage_indexer",
        "feature_sql_storage_indexer",
        "feature_incremental_updates",
        "feature_enable_search_cache",
        "feature_enable_categories_cache",
    ],
)
def test_storage_indexer_features_are_refused(workdir: Path, name: str) -> None:
    with pytest.raises(FleetgapError, match="is not supported") as info:
        load_settings({name: True}, {})
    assert "\n" not in str(info.value)


def test_storage_value_flags_alone_are_accepted(workdir: Path) -> None:
    flags = {"storage_endpoint": "https://x/", "storage_indexer_watch_interval": "2m"}
    load_settings(flags, {"EPR_FEATURE_STORAGE_INDEXER": "false"})
    with pytest.raises(FleetgapError, match="storage indexer"):
        load_settings({}, {"EPR_EMULATOR_INDEX_PATH": "/tmp/index.json"})


def test_package_paths_workers_must_be_positive(workdir: Path) -> None:
    with pytest.raises(FleetgapError, match="package-paths-workers must be greater than 0"):
        load_settings({"package_paths_workers": "0"}, {})


def test_service_name_from_apm_env(workdir: Path) -> None:
    assert load_settings({}, {"ELASTIC_APM_SERVICE_NAME": "epr-x"}).service_name == "epr-x"


def test_verify_keys_from_flags_and_env(workdir: Path) -> None:
    key = write_config(workdir, "key", name="elastic.asc")
    settings = load_settings({"verify_package_signatures": (str(key),)}, {})
    assert settings.verify_package_signatures == (key,)
    env = {"FLEETGAP_VERIFY_PACKAGE_SIGNATURES": str(key)}
    assert load_settings({}, env).verify_package_signatures == (key,)
    with pytest.raises(FleetgapError, match="key file not found"):
        load_settings({"verify_package_signatures": ("missing.asc",)}, {})


def test_version_flag_and_env() -> None:
    assert version_requested({"version": True}, {}) is True
    assert version_requested({}, {"EPR_VERSION": "true"}) is True
    assert version_requested({"version": "false"}, {"EPR_VERSION": "true"}) is False
    assert version_requested({}, {}) is False


def test_data_packages_already_in_config_are_scanned_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "packages").mkdir(parents=True)
    config = tmp_path / "config.yml"
    config.write_text(f"package_paths:\n  - {data / 'packages'}\n")
    settings = load_settings({"config": str(config), "data": str(data)}, {})
    assert settings.package_paths == (data / "packages",)


def test_download_limits_are_off_by_default_and_read_from_flags_and_env(workdir: Path) -> None:
    from fleetgap.config import parse_rate

    defaults = load_settings({}, {})
    assert (defaults.max_downloads, defaults.download_rate) == (0, 0)
    assert [parse_rate(v) for v in ("10MB", "512KiB", "1G", "250000", "0", "2.5mb/s")] == [
        10_000_000,
        512 * 1024,
        1_000_000_000,
        250_000,
        0,
        2_500_000,
    ]
    with pytest.raises(ValueError):
        parse_rate("fast")
    settings = load_settings({"max_downloads": "50"}, {"FLEETGAP_DOWNLOAD_RATE": "10MB"})
    assert (settings.max_downloads, settings.download_rate) == (50, 10_000_000)
