"""Prometheus metrics with the `epr_*` names of Elastic's registry, on their own listener.

spec: epr-api §11.4. fleetgap's own state has `fleetgap_*` names: the loaded bundle's
sequence, the time of the last load, the packages the index refused. Granian serves from
worker processes, so the metrics use
prometheus_client's multiprocess mode: every process writes its samples into one directory
and the `/metrics` listener (in the main process) adds them up. `PROMETHEUS_MULTIPROC_DIR`
must be set before prometheus_client is first imported; `server.py` does that before it
imports this module.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Receive, Scope, Send

from fleetgap.serving.response_meter import ResponseMeter

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "epr"
UNKNOWN_ROUTE = "unknown"
# Apps that set no route template (the agents' downloads, the status page): one fixed label
# per prefix, never the requested path.
_PREFIX_ROUTES = (("/downloads/", "/downloads/{file}"), ("/ui/", "/ui/"))
# Go client_golang's DefBuckets, and the size buckets of the registry's metrics package.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_SIZE_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 64 * 1024, 256 * 1024)
_HTTP_LABELS = ("code", "method", "path")
# The method label: any other method a client makes up counts as "other", since each label
# value is a series kept for the life of the server (and a file in multiprocess mode).
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
)
OTHER_METHOD = "other"


@dataclass(frozen=True)
class _Metrics:
    service_info: Gauge
    number_indexed_packages: Gauge
    storage_requests_total: Counter
    storage_indexer_update_index_success_total: Counter
    storage_indexer_update_index_error_total: Counter
    storage_indexer_update_index_duration_seconds: Histogram
    indexer_get_duration_seconds: Histogram
    in_flight_requests: Gauge
    http_requests_total: Counter
    http_request_duration_seconds: Histogram
    http_request_size_bytes: Histogram
    http_response_size_bytes: Histogram
    bundle_sequence: Gauge
    bundle_last_load_timestamp_seconds: Gauge
    refused_packages: Gauge


def _create() -> _Metrics:
    # registry=None: in multiprocess mode samples go to files; MultiProcessCollector reads them.
    common = {"namespace": NAMESPACE, "registry": None}
    return _Metrics(
        service_info=Gauge(
            "service_info",
            "Version information about this binary.",
            ["version", "instance"],
            multiprocess_mode="max",
            **common,
        ),
        number_indexed_packages=Gauge(
            "number_indexed_packages",
            "A gauge for number of indexed packages.",
            multiprocess_mode="mostrecent",
            **common,
        ),
        storage_requests_total=Counter(
            "storage_requests_total",
            "A counter for requests performed to the storage.",
            ["location", "component"],
            **common,
        ),
        storage_indexer_update_index_success_total=Counter(
            "storage_indexer_update_index_success_total",
            "A counter for all the updates index of the cursor that finished successfully "
            "in the storage indexer.",
            **common,
        ),
        storage_indexer_update_index_error_total=Counter(
            "storage_indexer_update_index_error_total",
            "A counter for all the update index of the cursor that finished with error "
            "in the storage indexer.",
            **common,
        ),
        storage_indexer_update_index_duration_seconds=Histogram(
            "storage_indexer_update_index_duration_seconds",
            "A histogram of latencies for update index processes run by the storage indexer.",
            buckets=_DURATION_BUCKETS,
            **common,
        ),
        indexer_get_duration_seconds=Histogram(
            "indexer_get_duration_seconds",
            "A histogram of latencies for get processes run by the indexer.",
            ["indexer"],
            buckets=_DURATION_BUCKETS,
            **common,
        ),
        in_flight_requests=Gauge(
            "in_flight_requests",
            "A gauge of requests currently being served by the http server.",
            multiprocess_mode="livesum",
            **common,
        ),
        http_requests_total=Counter(
            "http_requests_total",
            "A counter for requests to the http server.",
            _HTTP_LABELS,
            **common,
        ),
        http_request_duration_seconds=Histogram(
            "http_request_duration_seconds",
            "A histogram of latencies for requests to the http server.",
            _HTTP_LABELS,
            buckets=_DURATION_BUCKETS,
            **common,
        ),
        http_request_size_bytes=Histogram(
            "http_request_size_bytes",
            "A histogram of sizes of requests to the http server.",
            _HTTP_LABELS,
            buckets=_SIZE_BUCKETS,
            **common,
        ),
        http_response_size_bytes=Histogram(
            "http_response_size_bytes",
            "A histogram of response sizes for requests to the http server.",
            _HTTP_LABELS,
            buckets=_SIZE_BUCKETS,
            **common,
        ),
        bundle_sequence=Gauge(
            "fleetgap_bundle_sequence",
            "The sequence of the bundle loaded last into the data directory (0: none).",
            multiprocess_mode="mostrecent",
            registry=None,
        ),
        bundle_last_load_timestamp_seconds=Gauge(
            "fleetgap_bundle_last_load_timestamp_seconds",
            "When the last bundle load finished, in seconds since the epoch (0: none).",
            multiprocess_mode="mostrecent",
            registry=None,
        ),
        refused_packages=Gauge(
            "fleetgap_refused_packages",
            "Packages in the package paths that the index refused (not served).",
            multiprocess_mode="mostrecent",
            registry=None,
        ),
    )


_lock = threading.Lock()
_metrics: _Metrics | None = None


def metrics() -> _Metrics:
    """The process's metric objects (created on first use, in multiprocess mode)."""
    global _metrics
    with _lock:
        if _metrics is None:
            if values.ValueClass is values.MutexValue:
                raise RuntimeError(f"{MULTIPROC_ENV} must be set before prometheus_client loads")
            _metrics = _create()
        return _metrics


def set_indexed_packages(count: int, refused: int | None = None) -> None:
    metrics().number_indexed_packages.set(count)
    if refused is not None:
        metrics().refused_packages.set(refused)


def set_loaded_bundle(sequence: int | None, loaded_at: float | None) -> None:
    """The bundle loaded last (None: none loaded yet)."""
    metrics().bundle_sequence.set(sequence or 0)
    metrics().bundle_last_load_timestamp_seconds.set(loaded_at or 0)


def observe_indexer_get(indexer: str, seconds: float) -> None:
    """For the registry's lookups; a no-op unless metrics are enabled in this process."""
    if values.ValueClass is not values.MutexValue:
        metrics().indexer_get_duration_seconds.labels(indexer=indexer).observe(seconds)


def start_listener(host: str, port: int, version: str) -> tuple[WSGIServer, threading.Thread]:
    """Serve the summed samples of every process at http://host:port/metrics."""
    metrics().service_info.labels(version=version, instance=socket.gethostname()).set(1)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return start_http_server(port, addr=host, registry=registry)


class MetricsMiddleware:
    """Request metrics per route template: `scope["epr.route"]` (a string set by the
    registry app) or, failing that, the `.path` of Starlette's `scope["route"]`.
    Requests that matched no route are counted under path `unknown`, which keeps hostile
    paths out of the label set."""

    def __init__(self, app: ASGIApp, recorder: RequestMetrics | None = None) -> None:
        self.app = app
        self.recorder = recorder or RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorder = self.recorder
        started = time.perf_counter()
        meter = ResponseMeter(send)
        recorder.in_flight.inc()
        try:
            await self.app(scope, receive, meter)
        finally:
            recorder.in_flight.dec()
            recorder.observe(scope, meter.status or 500, meter.written, started)


class RequestMetrics:
    """The four request series of one request; the labelled children are kept per
    (code, method, route), since looking them up by labels costs more than counting."""

    def __init__(self) -> None:
        self.metrics = metrics()
        self.in_flight = self.metrics.in_flight_requests
        self._children: dict[
            tuple[int, str, str], tuple[Counter, Histogram, Histogram, Histogram]
        ] = {}

    def observe(self, scope: Scope, status: int, written: int, started: float) -> None:
        """Count a finished request; `started` is its `time.perf_counter()` at arrival."""
        elapsed = time.perf_counter() - started
        method = scope.get("method", "")
        key = (status, method if method in _METHODS else OTHER_METHOD, route_template(scope))
        children = self._children.get(key)
        if children is None:
            m = self.metrics
            labels = {"code": str(status), "method": key[1].lower(), "path": key[2]}
            children = (
                m.http_requests_total.labels(**labels),
                m.http_request_duration_seconds.labels(**labels),
                m.http_request_size_bytes.labels(**labels),
                m.http_response_size_bytes.labels(**labels),
            )
            self._children[key] = children
        total, duration, request_size, response_size = children
        total.inc()
        duration.observe(elapsed)
        request_size.observe(_request_size(scope))
        response_size.observe(written)


def route_template(scope: Scope) -> str:
    requested = scope.get("path", "")
    for prefix, label in _PREFIX_ROUTES:
        if requested.startswith(prefix) or requested == prefix[:-1]:
            return label
    route = scope.get("epr.route")
    if isinstance(route, str) and route:
        return route
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    return UNKNOWN_ROUTE


def _request_size(scope: Scope) -> int:
    """client_golang's computeApproximateRequestSize: URL, method, proto, headers, body."""
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    size = len(scope.get("raw_path") or scope.get("path", "").encode())
    size += len(scope.get("method", "")) + len("HTTP/" + str(scope.get("http_version", "1.1")))
    for name, value in headers:
        size += len(name) + len(value)
        if name.lower() == b"content-length" and value.isdigit():
            size += int(value)
    return size
