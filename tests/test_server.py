"""`fleetgap serve` as a real subprocess on 127.0.0.1: HTTP, TLS, env precedence, config.yml,
logging, metrics, the package-path watcher, the sample packages, dry run and SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme

from fleetgap.config import sample_packages_path
from fleetgap.serving.watcher import PackageWatcher

from serving import Server, fleetgap_serve, free_port

NO_SIGNATURES = ("-require-package-signatures=false",)
SAMPLES = ("fleetgap_hello", "fleetgap_http_status", "fleetgap_tcp_events")


def records(server: Server) -> list[dict]:
    """The ECS JSON log lines written so far."""
    out = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until `check()` holds; the deadline only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def search_names(server: Server) -> set[str]:
    return {item["name"] for item in httpx.get(server.url + "/search").json()}


def copy_sample(name: str, into: Path) -> Path:
    source = next((sample_packages_path() / name).iterdir())
    target = into / name / source.name
    shutil.copytree(source, target)
    return target


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cwd"
    directory.mkdir()
    return directory


# --- plain HTTP, samples, logging ---------------------------------------------------------


def test_bare_serve_serves_the_sample_packages_and_says_so_first(
    empty_dir: Path, tmp_path: Path
) -> None:
    with fleetgap_serve(cwd=empty_dir, log_dir=tmp_path) as server:
        assert search_names(server) == set(SAMPLES)
        zipped = httpx.get(server.url + "/epr/fleetgap_hello/fleetgap_hello-1.0.0.zip")
        assert zipped.status_code == 200 and zipped.content[:2] == b"PK"
        first = records(server)[0]
    assert "sample packages bundled with fleetgap" in first["message"]
    assert first["log.level"] == "warn"  # also shown at -log-level warn


def test_health_index_and_one_ecs_request_line(empty_dir: Path, tmp_path: Path) -> None:
    with fleetgap_serve(cwd=empty_dir, log_dir=tmp_path) as server:
        assert httpx.get(server.url + "/health").status_code == 200
        index = httpx.get(server.url + "/", headers={"User-Agent": "probe/1", "Referer": "r"})
        assert index.json()["service.name"] == "package-registry"
        eventually(lambda: any(r.get("log.logger") == "http" for r in records(server)), "log")
        lines = [r for r in records(server) if r.get("log.logger") == "http"]
    # /health is not logged (as upstream); / is, with the fields of spec §11.3.
    assert [line["url.path"] for line in lines] == ["/"]
    line = lines[0]
    assert line["message"] == "GET / HTTP/1.1"
    assert line["http.request.method"] == "GET"
    assert line["http.response.code"] == 200
    assert line["http.response.body.bytes"] == len(index.content)
    assert line["source.ip"] == line["source.address"] == "127.0.0.1"
    assert line["url.domain"] == "127.0.0.1" and line["url.port"] == int(server.url.split(":")[-1])
    assert line["user_agent.original"] == "probe/1" and line["http.request.referer"] == "r"
    assert isinstance(line["event.duration"], int)
    assert line["ecs.version"] and line["service.name"] == "package-registry"
    assert "@timestamp" in line


def test_dev_log_type_is_console_text(empty_dir: Path, tmp_path: Path) -> None:
    with fleetgap_serve("-log-type", "dev", cwd=empty_dir, log_dir=tmp_path) as server:
        text = server.log_text()
    assert "sample packages bundled with fleetgap" in text.splitlines()[0]
    assert not text.lstrip().startswith("{")


def test_missing_package_path_is_an_empty_registry_with_a_warning(
    empty_dir: Path, tmp_path: Path
) -> None:
    (empty_dir / "config.yml").write_text("package_paths: [./not-yet]\n")
    with fleetgap_serve(cwd=empty_dir, log_dir=tmp_path) as server:
        response = httpx.get(server.url + "/search")
        assert response.status_code == 200 and response.json() == []
        warnings_logged = [r for r in records(server) if r["log.level"] == "warn"]
    assert any("serving an empty registry" in r["message"] for r in warnings_logged)


# --- precedence: config.yml < env < flags ---------------------------------------------------


def test_config_file_paths_and_cache_times(empty_dir: Path, tmp_path: Path) -> None:
    packages = tmp_path / "pkgs"
    copy_sample("fleetgap_tcp_events", packages)
    (empty_dir / "config.yml").write_text(
        f"package_paths:\n  - {packages}\ncache_time.search: 7s\ncache_time.index: 1m\n"
    )
    with fleetgap_serve(*NO_SIGNATURES, cwd=empty_dir, log_dir=tmp_path) as server:
        search = httpx.get(server.url + "/search")
        index = httpx.get(server.url + "/")
    assert [item["name"] for item in search.json()] == ["fleetgap_tcp_events"]
    assert search.headers.get_list("cache-control") == ["max-age=7", "public"]
    assert index.headers.get_list("cache-control") == ["max-age=60", "public"]


def test_env_applies_and_flags_win(empty_dir: Path, tmp_path: Path) -> None:
    env = {"EPR_ALLOW_UNKNOWN_QUERY_PARAMETERS": "false", "EPR_ADDRESS": "127.0.0.1:1"}
    # fleetgap_serve passes -address on the command line: the flag beats EPR_ADDRESS.
    with fleetgap_serve(env=env, cwd=empty_dir, log_dir=tmp_path) as server:
        assert httpx.get(server.url + "/search?nope=1").status_code == 400
    with fleetgap_serve(
        "-allow-unknown-query-parameters=true", env=env, cwd=empty_dir, log_dir=tmp_path
    ) as server:
        assert httpx.get(server.url + "/search?nope=1").status_code == 200


def test_data_dir_packages_are_served(empty_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    copy_sample("fleetgap_hello", data / "packages")
    env = {"FLEETGAP_DATA": str(data)}
    with fleetgap_serve(*NO_SIGNATURES, env=env, cwd=empty_dir, log_dir=tmp_path) as server:
        assert search_names(server) == {"fleetgap_hello"}
        assert "sample packages" not in records(server)[0]["message"]


def test_unsigned_packages_are_refused_by_default(empty_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    copy_sample("fleetgap_hello", data / "packages")
    with fleetgap_serve("--data", str(data), cwd=empty_dir, log_dir=tmp_path) as server:
        assert search_names(server) == set()
        assert any(
            "fleetgap_hello" in r["message"] for r in records(server) if r["log.level"] == "warn"
        )


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


def tls_get(ca: trustme.CA, url: str, version: ssl.TLSVersion) -> int | str:
    """GET with a client pinned to exactly one TLS version: a status, or 'refused'."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL 3 offer TLS 1.0/1.1
    try:
        return httpx.get(url + "/health", verify=context).status_code
    except httpx.ConnectError:
        return "refused"


VERSIONS = [
    ssl.TLSVersion.TLSv1,
    ssl.TLSVersion.TLSv1_1,
    ssl.TLSVersion.TLSv1_2,
    ssl.TLSVersion.TLSv1_3,
]


@pytest.mark.parametrize(
    ("minimum", "server_name"),
    [("1.2", "Granian"), ("1.3", "Granian"), ("1.0", "uvicorn"), ("1.1", "uvicorn")],
)
def test_tls_minimum_version_refuses_older_clients(
    tls_files: tuple[trustme.CA, Path, Path],
    empty_dir: Path,
    tmp_path: Path,
    minimum: str,
    server_name: str,
) -> None:
    ca, cert, key = tls_files
    args = ("-tls-cert", str(cert), "-tls-key", str(key), "-tls-min-version", minimum)
    with fleetgap_serve(*args, cwd=empty_dir, log_dir=tmp_path, scheme="https") as server:
        results = [tls_get(ca, server.url, version) for version in VERSIONS]
        used = [r["message"] for r in records(server) if r["message"].startswith("Serving ")]
    index = ["1.0", "1.1", "1.2", "1.3"].index(minimum)
    assert results == ["refused"] * index + [200] * (4 - index)
    assert used == [f"Serving https (TLS {minimum} minimum) on {server.url[8:]} with {server_name}"]


def test_tls_default_minimum_is_1_2(
    tls_files: tuple[trustme.CA, Path, Path], empty_dir: Path, tmp_path: Path
) -> None:
    ca, cert, key = tls_files
    env = {"EPR_TLS_CERT": str(cert), "EPR_TLS_KEY": str(key)}
    with fleetgap_serve(env=env, cwd=empty_dir, log_dir=tmp_path, scheme="https") as server:
        results = [tls_get(ca, server.url, version) for version in VERSIONS]
    assert results == ["refused", "refused", 200, 200]


def test_uvicorn_answers_long_queries(empty_dir: Path, tmp_path: Path) -> None:
    # h11's own limit is 16 KiB; fleetgap takes heads up to 64 KiB (Go: 1 MiB, but see
    # test_memory_bounds.py: larger heads are refused)
    with fleetgap_serve("--server", "uvicorn", cwd=empty_dir, log_dir=tmp_path) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                b"GET /search?x=" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: x\r\n"
                b"Connection: close\r\n\r\n"
            )
            head = client.recv(64)
    assert head.startswith(b"HTTP/1.1 200 ")


# --- metrics ------------------------------------------------------------------------------


def test_metrics_listener_has_the_epr_names(empty_dir: Path, tmp_path: Path) -> None:
    metrics_port = free_port()
    # Two Granian workers: the listener must add up the samples of both processes.
    args = ("-metrics-address", f"127.0.0.1:{metrics_port}", "--workers", "2")
    with fleetgap_serve(*args, cwd=empty_dir, log_dir=tmp_path) as server:
        for _ in range(6):
            httpx.get(server.url + "/search")  # a new connection each: both workers serve
        httpx.get(server.url + "/package/fleetgap_hello/1.0.0/")
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert "epr_number_indexed_packages 3.0" in text
    assert 'epr_http_requests_total{code="200",method="get",path="/search"} 6.0' in text
    template = "/package/{packageName:[a-z0-9_]+}/{packageVersion}/"
    assert f'epr_http_requests_total{{code="200",method="get",path="{template}"}} 1.0' in text
    assert 'epr_service_info{instance="' in text
    for name in (
        "epr_in_flight_requests",
        "epr_http_request_duration_seconds_bucket",
        "epr_http_request_size_bytes_bucket",
        "epr_http_response_size_bytes_bucket",
        "epr_storage_indexer_update_index_success_total",
    ):
        assert name in text


# --- watcher ------------------------------------------------------------------------------


def test_watcher_picks_up_added_and_removed_packages(empty_dir: Path, tmp_path: Path) -> None:
    packages = tmp_path / "arrives-later"  # does not exist at start
    (empty_dir / "config.yml").write_text(f"package_paths: [{packages}]\n")
    args = ("-package-paths-enable-watcher", *NO_SIGNATURES)
    with fleetgap_serve(*args, cwd=empty_dir, log_dir=tmp_path) as server:
        assert search_names(server) == set()
        packages.mkdir()
        copy_sample("fleetgap_hello", packages)
        eventually(lambda: search_names(server) == {"fleetgap_hello"}, "first package")
        copy_sample("fleetgap_http_status", packages)
        eventually(lambda: len(search_names(server)) == 2, "second package")
        shutil.rmtree(packages / "fleetgap_hello")
        eventually(lambda: search_names(server) == {"fleetgap_http_status"}, "removal")
        assert server.process.poll() is None


def test_watcher_batches_a_burst_of_changes_into_one_rescan(tmp_path: Path) -> None:
    rescans: list[float] = []
    watcher = PackageWatcher([tmp_path], lambda: rescans.append(time.monotonic()))
    watcher.start()
    try:
        time.sleep(0.5)  # let the watch start
        copy_sample("fleetgap_hello", tmp_path)  # about a dozen files and folders at once
        eventually(lambda: len(rescans) >= 1, "a rescan")
        time.sleep(2.5)  # longer than the quiet period: a second rescan would show up
    finally:
        watcher.stop()
    assert len(rescans) == 1


def test_sighup_respawns_workers_that_rescan_the_package_paths(
    empty_dir: Path, tmp_path: Path
) -> None:
    packages = tmp_path / "p"
    copy_sample("fleetgap_hello", packages)
    (empty_dir / "config.yml").write_text(f"package_paths: [{packages}]\n")
    with fleetgap_serve(*NO_SIGNATURES, cwd=empty_dir, log_dir=tmp_path) as server:
        copy_sample("fleetgap_tcp_events", packages)
        assert search_names(server) == {"fleetgap_hello"}  # no watcher: not seen yet
        server.process.send_signal(signal.SIGHUP)
        eventually(lambda: len(_names_or_empty(server)) == 2, "rescan after SIGHUP")
        assert server.process.poll() is None


def _names_or_empty(server: Server) -> set[str]:
    try:
        return search_names(server)
    except httpx.HTTPError:  # between the old worker stopping and the new one starting
        return set()


# --- dry run, errors ------------------------------------------------------------------------


def run_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleetgap", "serve", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_reports_the_count_and_exits(empty_dir: Path) -> None:
    done = run_serve("-dry-run", cwd=empty_dir)
    assert done.returncode == 0
    assert "3 local package manifests loaded." in done.stderr


def test_dry_run_fails_on_an_empty_registry_or_a_broken_package(
    empty_dir: Path, tmp_path: Path
) -> None:
    packages = tmp_path / "p"
    packages.mkdir()
    (empty_dir / "config.yml").write_text(f"package_paths: [{packages}]\n")
    assert run_serve("-dry-run", *NO_SIGNATURES, cwd=empty_dir).returncode == 1
    broken = copy_sample("fleetgap_hello", packages)
    (broken / "docs" / "README.md").unlink()
    done = run_serve("-dry-run", *NO_SIGNATURES, cwd=empty_dir)
    assert done.returncode == 1
    assert "README" in done.stderr


def test_port_in_use_is_one_line_error(empty_dir: Path, tmp_path: Path) -> None:
    with fleetgap_serve(cwd=empty_dir, log_dir=tmp_path) as server:
        address = server.url.removeprefix("http://")
        done = run_serve("-address", address, cwd=empty_dir)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: listen tcp {address}: Address already in use"
    )


# --- SIGTERM ------------------------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["granian", "uvicorn"])
def test_sigterm_finishes_the_download_in_flight_and_exits_0(
    empty_dir: Path, tmp_path: Path, server_name: str
) -> None:
    packages = tmp_path / "p"
    package = copy_sample("fleetgap_hello", packages)
    size = 256 * 1024 * 1024  # far beyond socket buffers: the server is mid-send at SIGTERM
    with open(package / "img" / "big.bin", "wb") as big:
        big.truncate(size)  # sparse: instant to create
    (empty_dir / "config.yml").write_text(f"package_paths: [{packages}]\n")
    args = ("--server", server_name, *NO_SIGNATURES)
    with fleetgap_serve(*args, cwd=empty_dir, log_dir=tmp_path) as server:
        url = server.url + "/package/fleetgap_hello/1.0.0/img/big.bin"
        received = 0
        with httpx.stream("GET", url, timeout=60) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes(1024 * 1024)
            received += len(next(chunks))
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            for chunk in chunks:
                received += len(chunk)
        assert received == size
        assert server.process.wait(timeout=60) == 0


def test_built_package_ships_and_serves_the_samples(empty_dir: Path, tmp_path: Path) -> None:
    """What `pip install .` installs (setuptools build_py) holds the sample packages, and
    `fleetgap serve` run from that copy serves them."""
    repo = Path(__file__).resolve().parent.parent
    lib, egg = tmp_path / "lib", tmp_path / "egg"
    egg.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q"]
        + ["egg_info", "--egg-base", str(egg), "build_py", "--build-lib", str(lib)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    shipped = lib / "fleetgap" / "examples" / "packages"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(SAMPLES)
    done = run_serve("-dry-run", cwd=empty_dir, env={"PYTHONPATH": str(lib)})
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stderr.splitlines()[0])
    assert str(shipped) in first["message"]
    assert "3 local package manifests loaded." in done.stderr
