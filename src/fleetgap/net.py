"""The one outgoing HTTP client: proxy, CA bundle, retries with backoff, resumable downloads.

spec: anchors-and-deps §B.3 — httpx sync `Client` (HTTP/1.1), stamina for retries, resume by
hand with `Range`/`If-Range` into `.part` files; the caller verifies, then places the file.

Transport errors, 408/429 and 5xx are retried with exponential backoff; other statuses fail
at once (a missing file will not appear by asking again). Every retry of a download resumes
from what is already on disk. Each retry is reported as one line (URL, attempt n of N,
reason, wait); the waits are bounded: `retries` of at most `wait_max` seconds each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
import stamina

from fleetgap import __version__
from fleetgap.errors import FleetgapError, printable, without_userinfo

USER_AGENT = f"fleetgap/{__version__}"
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")
# Elastic's largest artifact (a full Elasticsearch or agent package) is about 1.5 GB.
MAX_DOWNLOAD = 4 << 30
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


DEFAULT_RETRIES = 5  # waits of 1, 2, 4, 8 and 10 s: 25 s in all


def report_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NetOptions:
    proxy: str | None = None  # http://host:port; None = HTTPS_PROXY/NO_PROXY from the env
    ca_cert: Path | None = None  # PEM bundle trusted instead of the system roots
    timeout: float = 60.0  # seconds for each read (and at most for connecting)
    connect_timeout: float = 10.0  # seconds to open a connection (an unreachable host)
    attempts: int = DEFAULT_RETRIES + 1  # per request, including the first
    wait_initial: float = 1.0  # the first wait; each next one doubles, up to wait_max
    wait_max: float = 10.0
    retry_for: float | None = None  # stop retrying one request after this many seconds
    connections: int = 8
    # Follow a redirect only to the same scheme, host and port (no https -> http).
    same_origin_redirects: bool = False
    on_retry: Callable[[str], None] = report_to_stderr  # one line per retry


class NetError(FleetgapError):
    """A request failed for good (after retries, or at once for a permanent status).
    `url` and `reason` are for showing: any user-info is already removed."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        url, reason = without_userinfo(url), without_userinfo(reason)
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class Progress(Protocol):
    def start(self, total: int | None, done: int) -> None: ...

    def advance(self, size: int) -> None: ...


@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    digest: hashlib._Hash  # SHA-512 state after the whole file: copy() it to hash on
    resumed_from: int  # bytes already on disk when the last request started
    received: int  # bytes this call took off the network

    @property
    def sha512(self) -> str:
        """Lowercase hex SHA-512 of the whole file."""
        return self.digest.copy().hexdigest()


class Net:
    """A shared, thread-safe client; use as a context manager or call `close()`."""

    def __init__(self, options: NetOptions | None = None) -> None:
        self.options = options or NetOptions()
        self.client = make_client(self.options)
        self._retired: list[httpx.Client] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Net:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for client in (*self._retired, self.client):
                client.close()

    def get_bytes(self, url: str, limit: int = 1 << 20, deadline: float | None = None) -> bytes:
        """The body of a small file (at most `limit` bytes), with retries; with `deadline`,
        the whole of it (retries included) within that many seconds."""
        end = None if deadline is None else time.monotonic() + deadline

        def once(client: httpx.Client) -> bytes:
            timeout = self._timeout(url, end)
            headers = {"Accept-Encoding": "identity"}
            with client.stream("GET", url, headers=headers, timeout=timeout) as r:
                _check_status(r, url)
                _check_length(r, url, limit)
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise NetError(url, f"larger than {limit} bytes")
                    if end is not None and time.monotonic() > end:
                        raise NetError(url, f"timed out: no whole answer within {deadline:g} s")
                return bytes(body)

        return self._retrying(url, once)

    def _timeout(self, url: str, end: float | None) -> float:
        if end is None:
            return self.options.timeout
        left = end - time.monotonic()
        if left <= 0:
            raise NetError(url, "timed out: deadline passed before the request")
        return min(self.options.timeout, left)

    def content_length(self, url: str) -> int | None:
        """Size from a HEAD request (None when the server does not say)."""

        def once(client: httpx.Client) -> int | None:
            response = client.head(url, headers={"Accept-Encoding": "identity"})
            _check_status(response, url)
            length = response.headers.get("content-length")
            return int(length) if length and length.isdigit() else None

        return self._retrying(url, once)

    def download(
        self, url: str, part: Path, progress: Progress | None = None, limit: int = MAX_DOWNLOAD
    ) -> Download:
        """Fetch `url` into `part`, resuming what a previous call left there.

        The file may not grow past the size the server announced, nor past `limit` bytes:
        either stops the download, removes the part and raises NetError (not retried).

        Beside `part` a small `<part>.meta` remembers the URL and the validator (strong ETag
        or Last-Modified) sent as `If-Range`, so a changed upstream file restarts from zero.
        """
        part.parent.mkdir(parents=True, exist_ok=True)
        received = [0]  # over all attempts, failed ones included

        def once(client: httpx.Client) -> Download:
            return _download_once(client, url, part, progress, received, limit)

        result = self._retrying(url, once)
        return Download(result.path, result.size, result.digest, result.resumed_from, received[0])

    def _retrying(self, url: str, call: Callable[[httpx.Client], T]) -> T:
        options = self.options
        try:
            for attempt in stamina.retry_context(
                on=_retryable,
                attempts=options.attempts,
                timeout=options.retry_for,  # else bounded by attempts × (timeout + wait_max)
                wait_initial=options.wait_initial,
                wait_max=options.wait_max,
                wait_jitter=0.0,  # so the wait reported is the wait taken
                name=_RETRY_NAME,
            ):
                with attempt:
                    client = self.client
                    try:
                        return call(client)
                    except Exception as exc:
                        if isinstance(
                            exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError
                        ):
                            self._renew(client)
                        if _retryable(exc) and attempt.num < options.attempts:
                            options.on_retry(
                                f"{_shown(url)}: attempt {attempt.num} of {options.attempts} "
                                f"failed ({_shown(_reason(exc))}); retrying in "
                                f"{attempt.next_wait:g} s"
                            )
                        raise
        except _Transient as exc:
            raise NetError(url, exc.reason, exc.status) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise NetError(url, _describe(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _renew(self, broken: httpx.Client) -> None:
        # httpcore 1.0.x keeps a pool slot forever when TLS fails inside a CONNECT tunnel
        # (encode/httpcore#1023); after a connect failure, go on with a fresh pool. The old
        # client may still serve other threads' requests, so it is closed only in close().
        with self._lock:
            if self.client is broken:
                self._retired.append(broken)
                self.client = make_client(self.options)


def make_client(options: NetOptions) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if options.ca_cert is not None:
        try:
            verify = ssl.create_default_context(cafile=str(options.ca_cert))
        except (OSError, ssl.SSLError) as exc:
            raise FleetgapError(f"cannot use CA bundle {options.ca_cert}: {exc}") from None
    hooks = {"response": [_refuse_other_origin]} if options.same_origin_redirects else {}
    try:
        return httpx.Client(
            proxy=options.proxy,
            verify=verify,
            timeout=httpx.Timeout(
                options.timeout, connect=min(options.connect_timeout, options.timeout)
            ),
            follow_redirects=True,
            event_hooks=hooks,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(
                max_connections=options.connections,
                max_keepalive_connections=options.connections,
            ),
        )
    except (ValueError, httpx.InvalidURL) as exc:
        proxy = without_userinfo(repr(options.proxy))
        raise FleetgapError(f"bad proxy URL {proxy}: {without_userinfo(str(exc))}") from None


def _refuse_other_origin(response: httpx.Response) -> None:
    if not response.has_redirect_location:
        return
    source = response.request.url
    target = source.join(response.headers["location"])
    if _origin(target) != _origin(source):
        reason = f"redirect to another origin refused: {_origin_text(target)!r}"
        raise NetError(str(source), reason)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _origin_text(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _check_length(response: httpx.Response, url: str, limit: int) -> None:
    """Refuse before reading a body the server itself says is too long."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise NetError(url, f"larger than {limit} bytes (Content-Length {int(length)})")


def part_meta(part: Path) -> Path:
    return part.with_name(part.name + ".meta")


def discard_part(part: Path) -> None:
    """Forget a partial download (e.g. after it failed verification)."""
    for path in (part, part_meta(part)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_RETRY_NAME = "fleetgap.net"


class _QuietOwnRetries(logging.Filter):
    """Net reports its retries itself (one readable line each): drop stamina's bare
    `stamina.retry_scheduled` log line for them; other users of stamina keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "stamina.callable", None) != _RETRY_NAME


_QUIET_OWN_RETRIES = _QuietOwnRetries()
logging.getLogger("stamina").addFilter(_QUIET_OWN_RETRIES)


class _Transient(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, httpx.ConnectError) and _is_tls_verification(exc):
        return False  # an untrusted certificate stays untrusted
    if isinstance(exc, httpx.UnsupportedProtocol):
        return False
    return isinstance(exc, _Transient | httpx.TransportError)


def _is_tls_verification(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status in _RETRY_STATUSES:
        raise _Transient(reason, status)
    raise NetError(url, reason, status)


def _download_once(
    client: httpx.Client,
    url: str,
    part: Path,
    progress: Progress | None,
    counter: list[int],
    limit: int,
) -> Download:
    meta = part_meta(part)
    offset = part.stat().st_size if part.exists() else 0
    validator = _read_validator(meta, url) if offset else None
    if validator is None:
        offset = 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers |= {"Range": f"bytes={offset}-", "If-Range": validator}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:
            _, _, total = _content_range(response)
            if total == offset:  # the part was already complete
                if progress:
                    progress.start(total, total)
                return Download(part, offset, _hash_file(part), offset, 0)
            discard_part(part)
            raise _Transient("local partial file is longer than the remote one")
        _check_status(response, url)
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise NetError(url, f"server sent Content-Encoding {encoding}; expected raw bytes")
        if response.status_code == 206 and offset:
            start, _, total = _content_range(response)
            if start != offset:
                discard_part(part)
                raise _Transient(f"server resumed at byte {start}, asked for {offset}")
            digest = _hash_file(part)
            mode = "ab"
        else:
            offset, mode, digest = 0, "wb", hashlib.sha512()
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            _write_validator(meta, url, response)
        if total is not None and total > limit:
            discard_part(part)
            raise NetError(url, f"larger than {limit} bytes ({total} announced)")
        cap = limit if total is None else total
        if progress:
            progress.start(total, offset)
        received, overflow = 0, False
        with open(part, mode) as handle:
            writer = _HashingWriter(handle, digest)
            try:
                for chunk in response.iter_raw():
                    if offset + received + len(chunk) > cap:
                        overflow = True
                        break
                    writer.put(chunk)
                    received += len(chunk)
                    counter[0] += len(chunk)
                    if progress:
                        progress.advance(len(chunk))
            finally:
                writer.close()  # what arrived is on disk even when the connection broke
    if overflow:
        discard_part(part)
        raise NetError(url, f"more than the {cap} bytes expected; download stopped")
    size = offset + received
    if total is not None and size != total:
        raise _Transient(f"connection closed after {size} of {total} bytes")
    return Download(part, size, digest, offset, received)


class _HashingWriter:
    """Writes and hashes chunks on a second thread, so receiving never waits for SHA-512
    (hashlib and file writes release the GIL: the two run on two cores)."""

    def __init__(self, handle, digest) -> None:
        self._handle = handle
        self._digest = digest
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._handle.write(chunk)
                    self._digest.update(chunk)
                except BaseException as exc:  # reported to the receiving thread
                    self._error = exc


def _content_range(response: httpx.Response) -> tuple[int | None, int | None, int | None]:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", "").strip())
    if not match:
        raise _Transient("missing or malformed Content-Range")
    start, end, total = match.groups()
    as_int = lambda v: int(v) if v and v != "*" else None  # noqa: E731
    return as_int(start), as_int(end), as_int(total)


def _read_validator(meta: Path, url: str) -> str | None:
    try:
        saved = json.loads(meta.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("url") != url:
        return None
    validator = saved.get("validator")
    return validator if isinstance(validator, str) and validator else None


def _write_validator(meta: Path, url: str, response: httpx.Response) -> None:
    etag = response.headers.get("etag", "")
    # If-Range needs a strong validator: a weak ETag would never match (RFC 9110 §13.1.5).
    validator = (
        etag if etag and not etag.startswith("W/") else response.headers.get("last-modified")
    )
    if validator:
        meta.write_text(json.dumps({"url": url, "validator": validator}), "utf-8")
    else:
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Transient):
        return exc.reason
    return _describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)


def _shown(text: str) -> str:
    """Outside text (a URL, a server's reason phrase) for one line: no secrets, no controls."""
    return without_userinfo(printable(text, one_line=True))


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
