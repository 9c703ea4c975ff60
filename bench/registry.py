"""Benchmark `fleetgap serve` against nginx serving the same bytes as static files.

    python bench/gen.py /tmp/fleetgap-bench          # once (deterministic, a few minutes)
    python bench/registry.py /tmp/fleetgap-bench     # about 7 minutes

One run measures, on this machine:
  * cold start: process start -> /health is 200 and Kibana's /search returns packages;
    peak RSS (and PSS) of the server's process tree while indexing and under load;
  * warm restart: the same again with whatever the first start left in DATA/state;
  * per endpoint, 32 concurrent keep-alive clients for --duration seconds (wrk with a Lua
    script for the percentiles, or a Python asyncio client when wrk is absent), --rounds
    times per server in turn, the best round kept: requests/s, p50/p99 latency, MB/s, for
    fleetgap, for nginx serving the identical response bytes as static files, and for the
    no-op Granian app (bench/noop.py) serving them with no application code;
and prints one table plus PASS/MISS per target of issue 11 and per index budget of issue 5.
Load goes only to 127.0.0.1.
Results are also written to DATA/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
KIBANA = "9.1.0"

# Targets of issue 11 (1 worker): cached JSON against the no-op Granian app and nginx,
# zips and artifacts against nginx, p99 for answers under SMALL_BODY.
MIN_RATIO_JSON_NOOP = 0.9
MIN_RATIO_JSON = 0.3
MAX_P99_MS = 10.0
SMALL_BODY = 10_000
MIN_RATIO_ZIP = 0.6
MIN_RATIO_ARTIFACT = 0.9
# Index budgets of issue 5 (2-core machine class).
MAX_COLD_S = 30.0
MAX_WARM_S = 2.0
MAX_RSS_MB = 400.0

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str  # request path on fleetgap
    kind: str  # json | download
    budget: str  # json | zip | artifact | none


@dataclass
class LoadResult:
    rps: float
    mbps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    server_cores: float = 0.0  # CPU used by the server's process tree, in cores
    other_cores: float = 0.0  # CPU used by everything else on the machine (noise), in cores


@dataclass
class Row:
    endpoint: Endpoint
    body_bytes: int
    fleetgap: LoadResult | None = None
    nginx: LoadResult | None = None
    noop: LoadResult | None = None  # the no-op Granian app (bench/noop.py), same bytes
    note: str = ""


@dataclass
class StartResult:
    seconds: float
    peak_rss_mb: float
    peak_pss_mb: float
    processes: int
    loaded_after: float | None = None  # when the log said the packages were loaded


@dataclass
class Report:
    machine: dict
    data: dict
    cold: StartResult | None = None
    warm: StartResult | None = None
    persisted_index: str = ""
    load_peak_rss_mb: float = 0.0
    load_peak_pss_mb: float = 0.0
    processes_after_load: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    budgets: list[tuple[str, str, str]] = field(default_factory=list)  # name, figure, PASS/MISS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path("/tmp/fleetgap-bench"))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="load runs per server and endpoint, taken in turn; the table shows each's best",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--kibana", default=KIBANA, help="kibana.version Kibana sends")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--no-noop", action="store_true", help="skip the no-op Granian app")
    parser.add_argument("--nginx-access-log", action="store_true", help="nginx logs requests")
    parser.add_argument("--only", default="", help="comma list of endpoint keys to load")
    parser.add_argument(
        "--workers", type=int, default=0, help="FLEETGAP_WORKERS (default: its own)"
    )
    parser.add_argument("--log-level", default="", help="EPR_LOG_LEVEL (default: its own)")
    parser.add_argument("--keep-server", action="store_true", help="leave fleetgap running")
    parser.add_argument(
        "--serve-cmd",
        default=f"{sys.executable} -m fleetgap serve",
        help="command that starts the registry (env EPR_* is set for it)",
    )
    args = parser.parse_args(argv)

    data = args.data.resolve()
    if not (data / "config.yml").exists():
        sys.exit(f"error: {data}/config.yml missing; run: python bench/gen.py {data}")
    wrk = None if args.python_client else shutil.which("wrk")
    nginx = None if args.no_nginx else shutil.which("nginx")
    report = Report(machine=machine_info(wrk, nginx), data=data_info(data))
    extra = {}
    if args.workers:
        extra["FLEETGAP_WORKERS"] = str(args.workers)
    if args.log_level:
        extra["EPR_LOG_LEVEL"] = args.log_level
    if not any((data / "packages").glob("*.zip.sig")):
        extra["EPR_REQUIRE_PACKAGE_SIGNATURES"] = "false"  # unsigned tree (gen.py --no-sign)
    report.machine["serve_env"] = " ".join(f"{k}={v}" for k, v in extra.items()) or "defaults"
    report.machine["serve_env"] += (
        " (package signatures required)" if "EPR_REQUIRE_PACKAGE_SIGNATURES" not in extra else ""
    )
    print_machine(report)

    with tempfile.TemporaryDirectory(prefix="fleetgap-bench-") as tmp:
        work = Path(tmp)
        log = data / "bench-fleetgap.log"
        server = FleetgapServer(args.serve_cmd.split(), data, log, extra, work)
        server.log.unlink(missing_ok=True)
        try:
            clear_state(data)
            report.cold = server.start_measured(args.kibana)
            cold = report.cold
            print(f"cold start: {cold.seconds:.2f} s, peak RSS {cold.peak_rss_mb:.0f} MB")
            server.stop()
            report.persisted_index = persisted_index(data)
            report.warm = server.start_measured(args.kibana)
            print(f"warm start: {report.warm.seconds:.2f} s ({report.persisted_index})")

            endpoints = choose_endpoints(server.base, data, args.kibana)
            if args.only:
                endpoints = [e for e in endpoints if e.key in args.only.split(",")]
            static = work / "www"
            rows = [capture(server.base, e, static, data) for e in endpoints]
            ng = noop = None
            if nginx:
                ng = Nginx(nginx, work, static, data, access_log=args.nginx_access_log)
                ng.start()
            if not args.no_noop:
                noop = NoopApp(static / "static", data, args.workers or 1)
                noop.start()
            load = Loader(wrk, args.connections, args.threads, args.duration, args.warmup, work)
            sampler = RssSampler(server.pid)
            sampler.start()
            try:
                for row in rows:
                    if row.note:
                        continue
                    for _ in range(max(1, args.rounds)):
                        row.fleetgap = best(
                            row.fleetgap, load.run(server.base + row.endpoint.path, server.pid)
                        )
                        if noop:
                            url = noop.base + ng_path(row.endpoint)
                            row.noop = best(row.noop, load.run(url, noop.pid))
                        if ng:
                            url = ng.base + ng_path(row.endpoint)
                            row.nginx = best(row.nginx, load.run(url, ng.pid))
                    print_row_progress(row)
            finally:
                sampler.stop()
                if ng:
                    ng.stop()
                if noop:
                    noop.stop()
            report.load_peak_rss_mb, report.load_peak_pss_mb = sampler.peak_mb()
            report.processes_after_load = tree_breakdown(server.pid)
            report.rows = rows
        finally:
            if args.keep_server:
                print(f"fleetgap left running at {server.base} (pid {server.pid})")
            else:
                server.stop()
            tail = server.log_tail()
        report.budgets = check_budgets(report)
        print_report(report)
        if tail:
            print("\nlast lines of the fleetgap log:\n" + tail)
    out = data / "results.json"
    out.write_text(json.dumps(asdict(report), indent=2, default=str))
    print(f"\nresults: {out}")
    return 0


# ---------------------------------------------------------------- the registry process


class FleetgapServer:
    def __init__(
        self, cmd: list[str], data: Path, log: Path, extra_env: dict[str, str], workdir: Path
    ) -> None:
        self.cmd = cmd
        self.workdir = workdir
        self.extra_env = extra_env
        self.data = data
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def environment(self) -> tuple[dict[str, str], Path]:
        """The env and working directory for the server.

        With `--data` support, fleetgap reads DATA/packages and serves DATA/downloads; it then
        runs in an empty directory so DATA/config.yml does not add the same path twice.
        Otherwise it runs like Elastic's registry on DATA/config.yml.
        """
        env = dict(os.environ)
        env.update(self.extra_env)
        env["EPR_ADDRESS"] = f"127.0.0.1:{self.port}"
        if self.supports_data_dir():
            env["FLEETGAP_DATA"] = str(self.data)
            return env, self.workdir
        env["EPR_CONFIG"] = str(self.data / "config.yml")
        return env, self.data

    def supports_data_dir(self) -> bool:
        out = subprocess.run([*self.cmd, "--help"], capture_output=True, text=True, timeout=60)
        return "--data " in out.stdout

    def start_measured(self, kibana: str, timeout: float = 600.0) -> StartResult:
        env, cwd = self.environment()
        logf = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        wall0 = time.time()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=cwd,
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logf.close()
        sampler = RssSampler(self.proc.pid)
        sampler.start()
        try:
            ready = f"/search?kibana.version={kibana}"
            while True:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"error: fleetgap serve exited with {self.proc.returncode}\n"
                        + self.log_tail()
                    )
                if time.monotonic() - t0 > timeout:
                    raise SystemExit("error: fleetgap serve not ready in time\n" + self.log_tail())
                status, _ = http_get(self.base + "/health")
                if status == 200:
                    status, body = http_get(self.base + ready)
                    if status == 200 and body.startswith(b"[") and len(body) > 2:
                        break
                time.sleep(0.02)
            seconds = time.monotonic() - t0
        finally:
            sampler.stop()
        rss, pss = sampler.peak_mb()
        loaded = self.logged_at("package manifests loaded")
        after = loaded - wall0 if loaded else None
        return StartResult(seconds, rss, pss, sampler.max_procs, after)

    def logged_at(self, text: str) -> float | None:
        """The time of the first ECS log line of this start whose message contains `text`."""
        with open(self.log, "rb") as fh:
            fh.seek(self.log_offset)
            for raw in fh:
                if text.encode() not in raw:
                    continue
                with contextlib.suppress(ValueError, KeyError):
                    stamp = json.loads(raw)["@timestamp"].replace("Z", "+00:00")
                    return datetime.fromisoformat(stamp).timestamp()
        return None

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGTERM, 20)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line[:240] for line in text[-lines:])


def clear_state(data: Path) -> None:
    """A cold start needs no persisted index: DATA/state of a generated tree is derived data."""
    state = data / "state"
    if not state.exists():
        return
    if not (data / "gen.json").exists():
        sys.exit(f"error: {state} exists and {data} was not made by bench/gen.py; move it away")
    shutil.rmtree(state)


def persisted_index(data: Path) -> str:
    state = data / "state"
    files = [p for p in state.rglob("*") if p.is_file()] if state.is_dir() else []
    if not files:
        return "no persisted index in DATA/state: plain restart measured"
    size = sum(p.stat().st_size for p in files)
    return f"DATA/state holds {len(files)} file(s), {size / 1e6:.1f} MB"


class RssSampler:
    """Peak RSS and PSS of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss = 0
        self.peak_pss = 0
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def peak_mb(self) -> tuple[float, float]:
        return self.peak_rss / 1024, self.peak_pss / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def _sample(self) -> None:
        pids = process_tree(self.root)
        rss = pss = 0
        for pid in pids:
            rss += _proc_kb(f"/proc/{pid}/status", "VmRSS:")
            pss += _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.max_procs = max(self.max_procs, len(pids))


def tree_breakdown(root: int) -> list[str]:
    """One line per process of the tree: pid, RSS, PSS, command (shortened)."""
    out = []
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rss = _proc_kb(f"/proc/{pid}/status", "VmRSS:") / 1024
        pss = _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024
        out.append(f"pid {pid}: RSS {rss:.0f} MB, PSS {pss:.0f} MB: {cmd[:90]}")
    return out


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _proc_kb(path: str, key: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# ---------------------------------------------------------------- endpoints and captured bodies


def choose_endpoints(base: str, data: Path, kibana: str) -> list[Endpoint]:
    """Kibana's requests, with a package and zips picked from what the server answers."""
    status, body = http_get(f"{base}/search?kibana.version={kibana}")
    found = json.loads(body) if status == 200 else []
    zips = sorted((data / "packages").glob("*.zip"), key=lambda p: (p.stat().st_size, p.name))
    median_zip = zips[len(zips) // 2]
    largest_zip = zips[-1]
    pick = found[len(found) // 2] if found else {"name": "none", "version": "0.0.0"}
    name, version = pick["name"], pick["version"]
    artifacts = sorted(
        p
        for p in (data / "downloads").rglob("*")
        if p.is_file() and not p.name.endswith((".sha512", ".asc"))
    )
    linux = [p for p in artifacts if "linux-x86_64" in p.name] or artifacts
    out = [
        Endpoint("search", f"/search?kibana.version={kibana}", "json", "json"),
        Endpoint(
            "search_prerelease_false",
            f"/search?kibana.version={kibana}&prerelease=false",
            "json",
            "json",
        ),
        Endpoint(
            "search_latest_one",
            f"/search?package={name}&prerelease=false&kibana.version={kibana}",
            "json",
            "json",
        ),
        Endpoint("search_all", "/search?all=true", "json", "json"),
        Endpoint("categories", f"/categories?kibana.version={kibana}", "json", "json"),
        Endpoint("package", f"/package/{name}/{version}/", "json", "json"),
        Endpoint("zip_median", epr_zip_path(median_zip), "download", "zip"),
        Endpoint("zip_largest", epr_zip_path(largest_zip), "download", "zip"),
    ]
    if linux:
        rel = linux[-1].relative_to(data / "downloads").as_posix()
        out.append(Endpoint("artifact", f"/downloads/{rel}", "download", "artifact"))
    return out


def epr_zip_path(zip_path: Path) -> str:
    stem = zip_path.name[: -len(".zip")]
    name = stem.split("-", 1)[0]
    return f"/epr/{name}/{zip_path.name}"


def capture(base: str, endpoint: Endpoint, static: Path, data: Path) -> Row:
    """Fetch the body once from fleetgap; JSON bodies become nginx's static files."""
    if endpoint.kind == "download":
        status, size, digest = http_digest(base + endpoint.path)
        row = Row(endpoint, size)
        source = download_source(endpoint, data)
        if status != 200:
            row.note = f"fleetgap answered {status}"
        elif digest != file_digest(source):
            row.note = "fleetgap bytes differ from the file on disk"
        return row
    status, body = http_get(base + endpoint.path)
    row = Row(endpoint, len(body))
    if status != 200:
        row.note = f"fleetgap answered {status}"
        return row
    target = static / "static" / f"{endpoint.key}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    return row


def download_source(endpoint: Endpoint, data: Path) -> Path:
    if endpoint.path.startswith("/epr/"):
        return data / "packages" / endpoint.path.rsplit("/", 1)[1]
    return data / endpoint.path.lstrip("/")


def ng_path(endpoint: Endpoint) -> str:
    """The URL nginx serves the same bytes at (downloads: the same path)."""
    return endpoint.path if endpoint.kind == "download" else f"/static/{endpoint.key}.json"


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ---------------------------------------------------------------- nginx, the floor


class Nginx:
    def __init__(
        self, binary: str, work: Path, static: Path, data: Path, *, access_log: bool
    ) -> None:
        self.binary = binary
        self.dir = work / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        user = "user root root;\n" if os.geteuid() == 0 else ""
        log = f"access_log {self.dir}/access.log combined buffer=64k;" if access_log else ""
        temps = "".join(
            f"  {kind}_temp_path {self.dir}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"""{user}daemon off;
worker_processes auto;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  {log or "access_log off;"}
{temps}  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  types {{ application/json json; application/zip zip; application/gzip gz; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    location /static/ {{ root {static}; }}
    location ~ ^/epr/[^/]+/([^/]+\\.zip)$ {{ alias {data}/packages/$1; }}
    location /downloads/ {{ alias {data}/downloads/; }}
  }}
}}
"""
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        cmd = [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log")]
        cmd += ["-c", str(self.dir / "nginx.conf")]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while http_get(self.base + "/static/")[0] == 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = (self.dir / "error.log").read_text(errors="replace")
                raise SystemExit(f"error: nginx did not start\n{err}")
            time.sleep(0.05)

    def stop(self) -> None:
        # QUIT = graceful stop of the master and its workers (our own process group)
        stop_group(self.proc, signal.SIGQUIT, 10)


class NoopApp:
    """bench/noop.py under Granian with fleetgap's Granian settings: the ceiling of any ASGI
    app on this machine, serving the same bytes at nginx's paths."""

    def __init__(self, static: Path, data: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.static, self.data, self.workers = static, data, workers
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        from fleetgap.serving.server import event_loop  # the loop fleetgap's Granian runs on

        granian = shutil.which("granian") or sys.exit("error: granian not found")
        cmd = [granian, "--interface", "asgi", "--no-ws", "--workers", str(self.workers)]
        cmd += ["--loop", event_loop()]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        cmd += ["--working-dir", str(BENCH_DIR), "noop:app"]
        env = dict(os.environ, FLEETGAP_NOOP_STATIC=str(self.static))
        env["FLEETGAP_NOOP_DATA"] = str(self.data)
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while http_get(self.base + "/")[0] != 404:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("error: the no-op Granian app did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGTERM, 20)


def stop_group(proc: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Stop a server started in its own process group: `sig`, then SIGKILL after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- load generation


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time of the machine, a server's process tree and our children (the load tool).

    The machine may be shared; what the rest of it burns during a run is reported as noise.
    """

    at: float
    machine_busy: float
    server: float
    children: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        return cls(time.monotonic(), _machine_busy(), _tree_cpu(server_pid), _children_cpu())

    def cores_since(self, server_pid: int) -> tuple[float, float]:
        now = CpuSnapshot.take(server_pid)
        elapsed = max(now.at - self.at, 1e-9)
        server = now.server - self.server
        other = (now.machine_busy - self.machine_busy) - server - (now.children - self.children)
        return server / elapsed, max(0.0, other) / elapsed


_HZ = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _HZ


def _tree_cpu(root: int) -> float:
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / _HZ


def _children_cpu() -> float:
    """CPU of the load tool: wrk (a child) or the Python client (this process)."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def best(kept: LoadResult | None, new: LoadResult) -> LoadResult:
    """The round with more requests per second: the one least disturbed by the machine."""
    return new if kept is None or new.rps > kept.rps else kept


class Loader:
    def __init__(
        self,
        wrk: str | None,
        connections: int,
        threads: int,
        duration: float,
        warmup: float,
        work: Path,
    ) -> None:
        self.wrk = wrk
        self.connections = connections
        self.threads = threads
        self.duration = duration
        self.warmup = warmup
        self.script = work / "report.lua"
        self.script.write_text(WRK_LUA)

    def run(self, url: str, server_pid: int) -> LoadResult:
        if self.warmup > 0:
            self._once(url, self.warmup)
        before = CpuSnapshot.take(server_pid)
        result = self._once(url, self.duration)
        result.server_cores, result.other_cores = before.cores_since(server_pid)
        return result

    def _once(self, url: str, seconds: float) -> LoadResult:
        if self.wrk is None:
            return asyncio.run(python_load(url, self.connections, seconds))
        cmd = [self.wrk, f"-t{self.threads}", f"-c{self.connections}"]
        cmd += [f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(self.script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
        line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
        if line is None:
            raise SystemExit(f"error: wrk gave no result for {url}\n{out}")
        r = json.loads(line[len("WRKJSON ") :])
        secs = r["duration_us"] / 1e6
        errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
        return LoadResult(
            rps=r["requests"] / secs,
            mbps=r["bytes"] / secs / 1e6,
            p50_ms=r["p50"] / 1000,
            p99_ms=r["p99"] / 1000,
            requests=r["requests"],
            errors=errors,
            tool="wrk",
        )


async def python_load(url: str, connections: int, seconds: float) -> LoadResult:
    """Keep-alive HTTP/1.1 GETs from `connections` coroutines (the fallback when wrk is absent).

    One Python process is much slower than wrk, so against fast servers it measures the client.
    """
    host, port, path = split_url(url)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    counters = {"bytes": 0, "errors": 0}
    deadline = time.monotonic() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                writer.write(request)
                status, length = await read_head(reader)
                remaining = length
                while remaining:
                    chunk = await reader.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise ConnectionError("closed")
                    remaining -= len(chunk)
                counters["bytes"] += length
                if status != 200:
                    counters["errors"] += 1
                latencies.append(time.monotonic() - t0)
        except (ConnectionError, ValueError):
            counters["errors"] += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.monotonic() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return LoadResult(
        rps=len(latencies) / elapsed,
        mbps=counters["bytes"] / elapsed / 1e6,
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        requests=len(latencies),
        errors=counters["errors"],
        tool="python",
    )


async def read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise ValueError("chunked responses are not supported by the Python client")
    return status, length


# ---------------------------------------------------------------- budgets and output


def check_budgets(report: Report) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    for row in report.rows:
        e = row.endpoint
        if e.budget == "none":
            continue
        if row.note or row.fleetgap is None:
            out.append((f"{e.key}", row.note or "not measured", "MISS"))
            continue
        f, n, z = row.fleetgap, row.nginx, row.noop
        if e.budget == "json":
            if z:
                ratio = f.rps / z.rps
                label = f"{e.key} req/s >= {MIN_RATIO_JSON_NOOP:.0%} of the no-op app"
                out.append((label, f"{ratio:.0%}", verdict(ratio >= MIN_RATIO_JSON_NOOP)))
            if n:
                ratio = f.rps / n.rps
                label = f"{e.key} req/s >= {MIN_RATIO_JSON:.0%} of nginx"
                out.append((label, f"{ratio:.0%}", verdict(ratio >= MIN_RATIO_JSON)))
            if row.body_bytes < SMALL_BODY:
                label = f"{e.key} p99 < {MAX_P99_MS:.0f} ms"
                out.append((label, f"{f.p99_ms:.1f} ms", verdict(f.p99_ms < MAX_P99_MS)))
            out.append((f"{e.key} no errors", str(f.errors), verdict(f.errors == 0)))
        elif n:
            floor = MIN_RATIO_ZIP if e.budget == "zip" else MIN_RATIO_ARTIFACT
            ratio = f.mbps / n.mbps
            label = f"{e.key} MB/s >= {floor:.0%} of nginx"
            out.append((label, f"{ratio:.0%}", verdict(ratio >= floor)))
    if report.cold:
        out.append(
            (
                f"cold index < {MAX_COLD_S:.0f} s",
                f"{report.cold.seconds:.1f} s",
                verdict(report.cold.seconds < MAX_COLD_S),
            )
        )
    if report.warm:
        persisted = not report.persisted_index.startswith("no persisted")
        label = f"restart with persisted index < {MAX_WARM_S:.0f} s"
        figure = f"{report.warm.seconds:.2f} s" + ("" if persisted else " (no persisted index)")
        out.append((label, figure, verdict(persisted and report.warm.seconds < MAX_WARM_S)))
    indexing = max(
        report.cold.peak_rss_mb if report.cold else 0,
        report.warm.peak_rss_mb if report.warm else 0,
    )
    serving = report.load_peak_rss_mb
    for label, rss in (("while indexing", indexing), ("while serving", serving)):
        out.append(
            (
                f"peak RSS {label} (process tree) < {MAX_RSS_MB:.0f} MB",
                f"{rss:.0f} MB",
                verdict(rss < MAX_RSS_MB),
            )
        )
    return out


def print_machine(report: Report) -> None:
    m, d = report.machine, report.data
    print(f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gb']:.1f} GB RAM, {m['os']}")
    print(f"tools: {m['load_tool']}; {m['nginx']}; python {m['python']}; fleetgap {m['fleetgap']}")
    print(f"fleetgap serve settings: {m.get('serve_env', 'defaults')}")
    print(
        f"data: {d['package_versions']} package versions in {d['zip_mb']:.0f} MB of zips, "
        f"{d['artifacts']} artifacts ({d['artifact_gb']:.2f} GB)"
    )


def print_row_progress(row: Row) -> None:
    f, n = row.fleetgap, row.nginx
    ng = f", nginx {n.rps:.0f} req/s" if n else ""
    z = f", no-op {row.noop.rps:.0f} req/s" if row.noop else ""
    print(
        f"  {row.endpoint.key}: fleetgap {f.rps:.0f} req/s p99 {f.p99_ms:.1f} ms{z}{ng}",
        flush=True,
    )


def print_report(report: Report) -> None:
    print()
    for line in report_table(report):
        print(line)
    print()
    for line in budget_table(report):
        print(line)


def report_table(report: Report) -> Iterator[str]:
    yield (
        "| endpoint | body | fleetgap req/s | no-op req/s | nginx req/s | f / no-op | f / nginx "
        "| fleetgap p50 / p99 ms | nginx p50 / p99 ms | fleetgap MB/s | nginx MB/s "
        "| server cores f / z / n | noise cores f / z / n |"
    )
    yield "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for row in report.rows:
        f, n = row.fleetgap, row.nginx
        label = f"`{row.endpoint.path}`"
        if row.note or f is None:
            yield f"| {label} | | {row.note or 'not measured'} | | | | | | | | | | |"
            continue
        n, z = row.nginx, row.noop
        download = row.endpoint.kind == "download"
        errs = f" ({f.errors} errors)" if f.errors else ""
        yield (
            f"| {label} | {human_bytes(row.body_bytes)} | {f.rps:,.0f}{errs} | "
            f"{f'{z.rps:,.0f}' if z else '-'} | {f'{n.rps:,.0f}' if n else '-'} | "
            f"{_ratio(f, z, download)} | {_ratio(f, n, download)} | "
            f"{f.p50_ms:.1f} / {f.p99_ms:.1f} | "
            f"{f'{n.p50_ms:.1f} / {n.p99_ms:.1f}' if n else '-'} | {f.mbps:,.0f} | "
            f"{f'{n.mbps:,.0f}' if n else '-'} | {_each('server_cores', f, z, n)} | "
            f"{_each('other_cores', f, z, n)} |"
        )


def _ratio(f: LoadResult, other: LoadResult | None, download: bool) -> str:
    if other is None:
        return "-"
    return f"{(f.mbps / other.mbps if download else f.rps / other.rps):.2f}"


def _each(pick: str, *results: LoadResult | None) -> str:
    return " / ".join(f"{getattr(r, pick):.2f}" if r else "-" for r in results)


def budget_table(report: Report) -> Iterator[str]:
    c, w = report.cold, report.warm
    if c:
        yield (
            f"cold start {c.seconds:.2f} s{_loaded(c)}, peak RSS {c.peak_rss_mb:.0f} MB, "
            f"PSS {c.peak_pss_mb:.0f} MB, {c.processes} processes"
        )
    if w:
        yield f"warm restart {w.seconds:.2f} s{_loaded(w)} — {report.persisted_index}"
    rss, pss = report.load_peak_rss_mb, report.load_peak_pss_mb
    yield f"under load: peak RSS {rss:.0f} MB, PSS {pss:.0f} MB; after the load:"
    for line in report.processes_after_load:
        yield f"  {line}"
    yield ""
    yield "| budget | measured | verdict |"
    yield "|---|---:|---|"
    for name, figure, verdict in report.budgets:
        yield f"| {name} | {figure} | {verdict} |"


def _loaded(start: StartResult) -> str:
    if start.loaded_after is None:
        return ""
    return f" (packages loaded {start.loaded_after:.1f} s after start, per the log)"


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def machine_info(wrk: str | None, nginx: str | None) -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    mem_kb = _proc_kb("/proc/meminfo", "MemTotal:")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if commit and dirty:
        commit += f" + {len(dirty)} uncommitted file(s) in src/"
    wrk_version = "python asyncio client"
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (out.stdout + out.stderr).split("Copyright")[0].strip()
    nginx_version = "no nginx"
    if nginx:
        nginx_version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gb": mem_kb / 1024 / 1024,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "fleetgap": commit or "unknown",
        "load_tool": wrk_version,
        "nginx": nginx_version,
    }


def data_info(data: Path) -> dict:
    zips = list((data / "packages").glob("*.zip"))
    arts = [
        p
        for p in (data / "downloads").rglob("*")
        if p.is_file() and not p.name.endswith((".sha512", ".asc"))
    ]
    return {
        "path": str(data),
        "package_versions": len(zips),
        "zip_mb": sum(p.stat().st_size for p in zips) / 1e6,
        "artifacts": len(arts),
        "artifact_gb": sum(p.stat().st_size for p in arts) / 1e9,
    }


# ---------------------------------------------------------------- tiny HTTP helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_url(url: str) -> tuple[str, int, str]:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host, int(port or 80), "/" + path


def http_get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """(status, body), or (0, b"") when the server does not answer."""
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def http_digest(url: str) -> tuple[int, int, str]:
    """(status, size, sha256) of a body, streamed."""
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        digest, size = hashlib.sha256(), 0
        while chunk := resp.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return resp.status, size, digest.hexdigest()
    except OSError:
        return 0, 0, ""
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
