"""`fleetgap serve`: load the packages, compose the ASGI app and run it.

Granian serves by default. uvicorn serves when the minimum TLS version is 1.0 or 1.1,
which Granian (rustls) cannot offer (spec: anchors-and-deps §B.2), or when asked with
`--server uvicorn`. Granian runs the app in worker processes: each worker gets the index
the main process loaded (inherited across fork; rebuilt from the Settings where processes
are spawned) through `_worker_app`, the loader Granian calls in the worker.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.util
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from fleetgap import __version__
from fleetgap.config import COMPAT_VERSION, Settings, split_address
from fleetgap.errors import FleetgapError
from fleetgap.ops.status_page import with_status_page
from fleetgap.packages.index import (
    LoadOptions,
    PackageIndex,
    current_cache_size,
    load_index,
    release_freed_memory,
)
from fleetgap.registry.app import create_app
from fleetgap.registry.holder import IndexHolder
from fleetgap.serving import heap, logs

log = logging.getLogger("fleetgap.server")

_TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
# For TLS 1.0/1.1: OpenSSL 3 refuses those versions at its default security level, and at
# level 0 its DEFAULT list also holds PSK and SRP suites; no suite without authentication,
# without encryption, or keyed by a shared secret instead of the certificate.
LEGACY_TLS_CIPHERS = "DEFAULT:!aNULL:!eNULL:!PSK:!SRP:@SECLEVEL=0"

# The longest request line and headers accepted, together. Go's registry takes 1 MiB, but
# neither Kibana nor an agent sends a head anywhere near this, and every byte of it is held
# while the request is read and logged.
MAX_HEAD_BYTES = 64 << 10

# `fleetgap.serving.metrics` is imported only where metrics are on, after PROMETHEUS_MULTIPROC_DIR
# is set (see metrics.py). The index the main process loaded, inherited by forked workers,
# and DATA's generation read just before loading it (see GenerationWatcher):
_PRELOADED: PackageIndex | None = None
_PRELOADED_GENERATION: bytes | None = None

# At start, how long to wait for a load that another host sharing DATA is publishing.
PUBLISH_WAIT_SECONDS = 60.0


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT (or, with dry_run, load and report). Returns the exit code."""
    logs.configure(settings)
    _log_startup(settings)
    if settings.data_dir is not None and not settings.dry_run:
        _warn_shared_index_cache(settings)
        _finish_interrupted_load(settings.data_dir)
    granian = not use_uvicorn(settings)
    # With Granian and a persisted index, the workers load the index; this process only
    # makes sure the persisted index is current (a quick check when it is, a full load
    # that brings it up to date when it is not) and keeps no copy of its own.
    delegate = granian and not settings.dry_run and settings.index_cache_path is not None
    generation = _generation(settings)
    current = current_cache_size(load_options(settings)) if delegate else None
    if current is not None:
        log.info("%d local package manifests loaded (persisted index is current).", current)
        index, count = None, current
    else:
        index = load_packages(settings)
        count = len(index)
    if settings.dry_run:
        assert index is not None
        return _dry_run_exit_code(settings, index)
    if settings.package_paths_enable_watcher and not settings.package_paths:
        raise FleetgapError("no package paths configured, cannot enable watcher")
    host, port = split_address(settings.address)
    _check_free(bind_host(host), port, settings.address)
    with _metrics_listener(settings, count):
        scheme = f"https (TLS {settings.tls_min_version} minimum)" if settings.tls else "http"
        if not granian:
            assert index is not None
            log.info("Serving %s on %s with uvicorn", scheme, settings.address)
            return _run_uvicorn(settings, index, generation)
        log.info("Serving %s on %s with Granian", scheme, settings.address)
        if delegate:
            index = None
            gc.collect()
            release_freed_memory()
        else:
            heap.settle()  # before the workers fork: the index's pages stay shared
        return _run_granian(settings, index, generation)


def compose_app(settings: Settings, holder: IndexHolder) -> ASGIApp:
    """The whole ASGI app: the registry; with a data directory also the agents' downloads
    and the key URLs; load shedding, request logging and metrics around it all; and in
    front, the fast path for answers already known (fastpath.py)."""
    from fleetgap.registry.known import KnownAnswers
    from fleetgap.serving.fastpath import FastPath
    from fleetgap.serving.shedding import DownloadLimits, ShedDownloads

    known = KnownAnswers(holder)
    app = create_app(settings, holder, known=known)
    if settings.data_dir is not None:
        app = with_data_routes(app, settings, settings.data_dir)
        app = with_status_page(app, holder, settings.data_dir)  # /ui/
    limits = DownloadLimits(settings.max_downloads, settings.download_rate)
    if limits.on:
        app = ShedDownloads(app, limits)
    recorder = None
    if settings.metrics_address:
        from fleetgap.serving import metrics

        recorder = metrics.RequestMetrics()
        app = metrics.MetricsMiddleware(app, recorder)
    log = logs.RequestLog(settings.log_flush_interval)
    app = logs.RequestLogMiddleware(app, log)
    return FastPath(app, known, log, recorder, limits)


def with_data_routes(registry: ASGIApp, settings: Settings, data_dir: Path) -> ASGIApp:
    """`/downloads/` (DATA/downloads, for `agent.download.sourceURI`), the key URLs
    (DATA/keys, for Fleet Server and agents) and `/fleetgap/simple/` (DATA/kit, a pip index
    of fleetgap itself) in front of the registry, which answers the rest."""
    from starlette.routing import Mount, Router

    from fleetgap.artifacts.serving import downloads_app
    from fleetgap.pgp.key_routes import KEY_PATH_PREFIXES, key_routes
    from fleetgap.serving.kit_index import PREFIX, kit_index_app

    routes = [
        Mount("/downloads", app=downloads_app(data_dir / "downloads")),
        Mount(PREFIX, app=kit_index_app(data_dir / "kit")),
        *key_routes(
            data_dir,
            upstream_url=settings.pgp_upstream_url,
            upstream_ca=settings.pgp_upstream_ca,
            # Fleet Server answers 501 ErrTLSRequired on a plain listener, whatever proxy
            # headers say (spec: fleet-server-pgp §2): so does fleetgap.
            require_tls=True,
        ),
    ]
    routed = Router(routes=routes, default=registry)
    return PrefixDispatch(("/downloads", f"{PREFIX}/", *KEY_PATH_PREFIXES), routed, registry)


class PrefixDispatch:
    """Requests whose path starts with one of `prefixes` go to `routed`, all others to
    `default`: one string test per request in front of the registry, whose answers are
    mostly small and fast (a Starlette Router there cost a third of their time)."""

    def __init__(self, prefixes: tuple[str, ...], routed: ASGIApp, default: ASGIApp) -> None:
        self.prefixes = prefixes
        self.routed = routed
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        app = self.routed if path.startswith(self.prefixes) else self.default
        await app(scope, receive, send)


def load_packages(settings: Settings) -> PackageIndex:
    """Index the package paths, logging the outcome as Elastic's registry does."""
    index = load_index(load_options(settings))
    if len(index):
        log.info("%d local package manifests loaded.", len(index))
    elif settings.feature_proxy_mode:
        log.info("No local packages found, but the proxy mode can access remote ones.")
    else:
        log.warning(
            "No packages found in the package paths (%s): serving an empty registry until "
            "packages arrive.",
            ", ".join(str(p) for p in settings.package_paths) or "none configured",
        )
    return index


def load_options(settings: Settings) -> LoadOptions:
    return LoadOptions(
        paths=settings.package_paths,
        validate=not settings.disable_package_validation,
        require_signatures=settings.require_signatures,
        verify_keys=settings.verify_package_signatures,
        workers=settings.package_paths_workers,
        cache=settings.index_cache_path,
    )


def use_uvicorn(settings: Settings) -> bool:
    if settings.server != "auto":
        return settings.server == "uvicorn"
    return settings.tls and settings.tls_min_version in ("1.0", "1.1")


def serving_app(
    settings: Settings, index: PackageIndex, generation: bytes | None = None
) -> ASGIApp:
    """In the serving process: hold the index, start the watchers, compose the app.
    `generation`: DATA's generation file as read before `index` was loaded."""
    holder = IndexHolder(index)
    _note_index(settings, index)
    if settings.package_paths_enable_watcher:
        from fleetgap.serving.watcher import PackageWatcher

        PackageWatcher(settings.package_paths, functools.partial(_rescan, settings, holder)).start()
    if settings.data_dir is not None:
        # Bundle loads publish under DATA and then rewrite its generation file (store.py).
        from fleetgap.serving.watcher import GenerationWatcher
        from fleetgap.store import DataDir

        data = DataDir(settings.data_dir)
        reload = functools.partial(_rescan, settings, holder)
        describe = functools.partial(_last_load, settings.data_dir)
        GenerationWatcher(data, reload, seen=generation, describe=describe).start()
    return compose_app(settings, holder)


def _generation(settings: Settings) -> bytes | None:
    if settings.data_dir is None:
        return None
    from fleetgap.serving.watcher import read_generation
    from fleetgap.store import DataDir

    return read_generation(DataDir(settings.data_dir))


def _rescan(settings: Settings, holder: IndexHolder) -> None:
    index = load_index(load_options(settings))
    holder.replace(index)
    if heap.settled():
        heap.resettle()  # lets the old index go, freezes the new one
    log.info("%d local package manifests loaded after a change.", len(index))
    _note_index(settings, index)


def _note_index(settings: Settings, index: PackageIndex) -> None:
    """The metrics of what is served: packages indexed and refused, the loaded bundle."""
    if not settings.metrics_address:
        return
    from fleetgap.ops.receipts import last_loaded, loaded_timestamp
    from fleetgap.serving import metrics

    metrics.set_indexed_packages(len(index), len(index.refused))
    if settings.data_dir is not None:
        bundle = last_loaded(settings.data_dir)
        if bundle is not None:
            metrics.set_loaded_bundle(bundle.sequence, loaded_timestamp(bundle))
        else:
            metrics.set_loaded_bundle(None, None)


def _last_load(data_dir: Path) -> str:
    """For the reload log line: which bundle's load finished."""
    from fleetgap.ops.receipts import last_loaded

    bundle = last_loaded(data_dir)
    if bundle is None:
        return "a bundle load"
    return f"the load of bundle {bundle.bundle_id} (sequence {bundle.sequence})"


# --- startup log and dry run ------------------------------------------------------------


def _log_startup(settings: Settings) -> None:
    if settings.sample_packages:
        # A warning: in production this means the config was not found (a missing mount).
        log.warning(
            "No configuration found (no %s, no --data): serving the sample packages bundled "
            "with fleetgap from %s. Write a config.yml with package_paths, or pass --data, "
            "to serve your own.",
            settings.config,
            settings.package_paths[0],
        )
    else:
        log.info(
            "fleetgap %s starting (Elastic Package Registry %s compatible)",
            __version__,
            COMPAT_VERSION,
        )
    for notice in settings.notices:
        log.warning(notice)
    log.info("Packages paths: %s", ", ".join(str(p) for p in settings.package_paths))
    times = settings.cache_time
    for route, seconds in (
        ("/", times.index),
        ("/index.json", times.index),
        ("/search", times.search),
        ("/categories", times.categories),
        ("all others", times.catch_all),
    ):
        log.info("Cache time for %s: %s", route, _go_duration(seconds))


def _dry_run_exit_code(settings: Settings, index: PackageIndex) -> int:
    """0 when every package loaded and there is something to serve (as Go's -dry-run,
    for which any broken package or an empty index is fatal)."""
    log.info("Running dry-run mode")
    if index.refused:
        log.error("%d package(s) refused (see the warnings above)", len(index.refused))
        return 1
    if len(index) or settings.feature_proxy_mode or settings.package_paths_enable_watcher:
        return 0
    log.error("No local packages found.")
    return 1


def _go_duration(seconds: float) -> str:
    """Go's time.Duration.String for the common cases (10s, 10m0s, 1h0m0s, 1.5s)."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{minutes}m{secs:g}s"
    return f"{hours}h{text}" if hours else text


# --- metrics ------------------------------------------------------------------------------


@contextlib.contextmanager
def _metrics_listener(settings: Settings, indexed: int) -> Iterator[None]:
    if not settings.metrics_address:
        yield
        return
    # Set before prometheus_client is first imported, here or in any worker (see metrics.py).
    directory = tempfile.mkdtemp(prefix="fleetgap-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from fleetgap.serving import metrics

    host, port = split_address(settings.metrics_address)
    try:
        server, _thread = metrics.start_listener(bind_host(host), port, __version__)
    except OSError as exc:
        raise FleetgapError(
            f"failed to start Prometheus metrics endpoint on {settings.metrics_address}: {exc}"
        ) from None
    log.info("Starting http metrics in %s", settings.metrics_address)
    metrics.set_indexed_packages(indexed)
    try:
        yield
    finally:
        server.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


# --- Granian ------------------------------------------------------------------------------


def _run_granian(settings: Settings, index: PackageIndex | None, generation: bytes | None) -> int:
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols
    from granian.http import HTTP1Settings, HTTP2Settings

    global _PRELOADED, _PRELOADED_GENERATION
    _PRELOADED, _PRELOADED_GENERATION = index, generation
    host, port = split_address(settings.address)
    tls: dict[str, object] = {}
    if settings.tls:
        tls = {
            "ssl_cert": Path(settings.tls_cert or ""),
            "ssl_key": Path(settings.tls_key or ""),
            "ssl_protocol_min": SSLProtocols(f"tls{settings.tls_min_version}"),
        }
    server = Granian(
        "fleetgap.serving.server:serving_app",  # informative only: the loader below builds the app
        address=bind_host(host),
        port=port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        websockets=False,
        log_dictconfig=logs.logging_config(settings),
        log_access=False,
        loop=event_loop(),
        # hyper answers 431 to a request head that does not fit in its HTTP/1 buffer
        http1_settings=HTTP1Settings(max_buffer_size=MAX_HEAD_BYTES),
        http2_settings=HTTP2Settings(max_headers_size=MAX_HEAD_BYTES),
        **tls,  # type: ignore[arg-type]
    )
    server.on_reload(_forget_preloaded)
    log.info("Package registry started")
    server.serve(target_loader=functools.partial(_worker_app, settings), wrap_loader=False)
    log.info("Package registry stopped")
    return 0


def event_loop() -> str:
    """uvloop where it is installed (a dependency on POSIX): under load it serves one and a
    half times the requests of asyncio's own loop, on Granian and on uvicorn alike (uvicorn
    picks it itself). Named here rather than left to Granian's "auto", which would prefer
    the experimental rloop if it were ever installed."""
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _forget_preloaded() -> None:
    """SIGHUP: Granian respawns its workers; they re-read the package paths."""
    global _PRELOADED
    log.info("Reloading: workers will rescan the package paths")
    _PRELOADED = None
    if heap.settled():
        heap.resettle()  # the index frozen before the workers forked can go now


def _worker_app(settings: Settings) -> ASGIApp:
    """Runs in each Granian worker process."""
    if _PRELOADED is not None:
        index, generation = _PRELOADED, _PRELOADED_GENERATION
    else:
        generation = _generation(settings)
        index = load_index(load_options(settings))
    app = serving_app(settings, index, generation)
    heap.settle()
    return app


# --- uvicorn ------------------------------------------------------------------------------


def _run_uvicorn(settings: Settings, index: PackageIndex, generation: bytes | None) -> int:
    import uvicorn

    if settings.workers > 1:
        log.warning("--workers applies to Granian only; uvicorn serves with one process")
    from fleetgap.serving.header_deadline import HeaderDeadlineProtocol

    host, port = split_address(settings.address)
    app = serving_app(settings, index, generation)
    heap.settle()
    config = uvicorn.Config(
        HeadLimit(app),
        host=bind_host(host),
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        # As Granian: the client's own address and scheme, whatever X-Forwarded-* say (the
        # key route's TLS check and the request log's source.ip rely on them).
        proxy_headers=False,
        # h11 (not httptools, which has no such limit) with Granian's deadline for a head;
        # it stops reading a head at about MAX_HEAD_BYTES (it checks between reads) and
        # HeadLimit refuses the rest exactly
        http=HeaderDeadlineProtocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        ssl_certfile=settings.tls_cert if settings.tls else None,
        ssl_keyfile=settings.tls_key if settings.tls else None,
        ssl_context_factory=functools.partial(_ssl_context, settings) if settings.tls else None,
    )
    log.info("Package registry started")
    _UvicornServer(config).run()
    log.info("Package registry stopped")
    return 0


class HeadLimit:
    """431 to a request whose line and headers exceed MAX_HEAD_BYTES, as Granian answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > MAX_HEAD_BYTES:
                await send({"type": "http.response.start", "status": 431, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def _ssl_context(settings: Settings, _config: object, _default: object) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.tls_cert or "", settings.tls_key or "")
    context.minimum_version = _TLS_VERSIONS[settings.tls_min_version]
    if settings.tls_min_version in ("1.0", "1.1"):
        context.set_ciphers(LEGACY_TLS_CIPHERS)
    return context


class _UvicornServer:
    """uvicorn's Server, except that SIGTERM ends with exit code 0: uvicorn re-raises the
    signal after its graceful shutdown, which would end the process with 143."""

    def __init__(self, config: object) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                previous = {
                    sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)
                }
                try:
                    yield
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)

        self.server = Server(config)  # type: ignore[arg-type]

    def run(self) -> None:
        self.server.run()


def _warn_shared_index_cache(settings: Settings) -> None:
    """Replicas on other hosts may share a data directory on a network file system, but not
    the index cache in it: SQLite must not be written from several hosts over one."""
    from fleetgap.store import network_filesystem

    kind = network_filesystem(settings.data_dir) if settings.index_cache is None else None
    if kind:
        log.warning(
            "%s is on a network file system (%s): if servers on other hosts share it, give "
            "each its own index cache on local disk (--index-cache FILE, see README "
            '"Replicas"); using %s',
            settings.data_dir,
            kind,
            settings.index_cache_path,
        )


def _finish_interrupted_load(data_dir: Path) -> None:
    """A `bundle load` killed while publishing is rolled forward before serving. One still
    publishing from another host sharing DATA is waited for, so that this server never
    indexes half of it: its renames take seconds, and the lock of one that was killed goes
    stale (store.STALE_SECONDS), after which this server finishes it. A server that cannot
    write to DATA (mounted read-only) waits for a host that can to finish it."""
    from fleetgap.bundle.load import journal_path, recover
    from fleetgap.store import DataDir, exclusive

    data = DataDir(data_dir)
    deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
    waiting = False
    while journal_path(data).is_file():
        try:
            with exclusive(data.load_lock, "fleetgap bundle load"):
                if (bundle_id := recover(data)) is not None:
                    log.info("Finished the interrupted load of bundle %s.", bundle_id)
            return
        except FleetgapError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"cannot finish it here: {exc.strerror or exc} ({data.state})"
        if time.monotonic() > deadline:
            log.warning("%s; serving what %s holds now", reason, data_dir)
            return
        if not waiting:
            log.info("Waiting for a load to finish publishing: %s", reason)
            waiting = True
        time.sleep(0.5)


def _check_free(host: str, port: int, address: str) -> None:
    """Fail with Go's message if the port is taken: Granian binds with SO_REUSEPORT and
    would otherwise share the port with whatever already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: connections in TIME_WAIT from a previous run do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FleetgapError(f"listen tcp {address}: {exc.strerror or exc}") from None


def bind_host(host: str) -> str:
    """An IP address to bind: names (`localhost`) resolve as Go's net.Listen does, IPv4 first."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FleetgapError(f"cannot resolve listen address {host!r}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    ipv4 = [a for a in addresses if ":" not in a]
    return (ipv4 or addresses)[0]
