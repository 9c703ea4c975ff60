"""The upgrade-key endpoint's upstream (`--pgp-upstream-url`), fetched as a hostile source.

Fleet Server serves and stores whatever its upstream answers (spec: fleet-server-pgp §3):
a captive portal's HTML becomes `default.pgp`. The agent accepts a signature by any key of
the file it is given, so fleetgap serves and stores only what parses as ONE OpenPGP
certificate (its armored block, nothing around it), and follows no redirect that leaves the
upstream's origin (scheme, host, port).

One fetch runs at a time, on its own daemon thread (never the shared thread pool, which
other routes need; never a thread that holds up the process at exit), bounded by an overall
deadline. Every request that arrives meanwhile waits for that one fetch, at most the
deadline. A failure is remembered for `failure_ttl` seconds and answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetError, NetOptions
from fleetgap.pgp.armor import PUBLIC_KEY_BLOCK, ArmorError, first_armored_block
from fleetgap.pgp.keys import parse_public_key

log = logging.getLogger("fleetgap.pgp")

DEADLINE = 10.0  # seconds for the whole fetch; the agent gives the endpoint 30 s in all
FAILURE_TTL = 10.0  # seconds a failed fetch is answered from memory
MAX_KEY_BYTES = 1 << 20  # Elastic's key is 2 KiB; a well-signed key stays far below this


class UpstreamKeyError(FleetgapError):
    """The upstream answered, but not with one OpenPGP certificate."""


class UpstreamKey:
    """`await get()` the upstream's key, as the armored block of one certificate."""

    def __init__(
        self,
        url: str,
        options: NetOptions,
        *,
        deadline: float = DEADLINE,
        failure_ttl: float = FAILURE_TTL,
        on_key: Callable[[bytes], None] | None = None,
    ) -> None:
        self.url = url
        self.options = options
        self.deadline = deadline
        self.failure_ttl = failure_ttl
        self.on_key = on_key  # called once per fetched key, on the fetch thread
        self._lock = threading.Lock()
        self._running: Future[bytes] | None = None
        self._failure: tuple[float, Exception] | None = None

    async def get(self) -> bytes:
        """The key; raises NetError (transport, status, deadline) or UpstreamKeyError."""
        running = self._join()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(running), self.deadline)
        except TimeoutError:
            failure = NetError(self.url, f"timed out: no key within {self.deadline:g} s")
            self._remember_failure(failure)
            raise failure from None

    def _join(self) -> Future[bytes]:
        with self._lock:
            if self._failure is not None and self._failure[0] > time.monotonic():
                failed: Future[bytes] = Future()
                failed.set_exception(self._failure[1])
                return failed
            if self._running is not None:  # also one that outlived its waiters' deadline
                return self._running
            running: Future[bytes] = Future()
            running.set_running_or_notify_cancel()  # a waiter's cancel cannot cancel it
            self._running = running
        thread = threading.Thread(
            target=self._fetch, args=(running,), name="fleetgap-pgp-upstream", daemon=True
        )
        thread.start()
        return running

    def _fetch(self, running: Future[bytes]) -> None:
        try:
            key = self._fetch_key()
            if self.on_key is not None:
                self.on_key(key)
        except Exception as exc:
            log.warning("Upstream key %s refused: %s", self.url, exc)
            self._remember_failure(exc)
            with self._lock:
                self._running = None
            running.set_exception(exc)
            return
        with self._lock:
            self._running = None
            self._failure = None
        running.set_result(key)

    def _fetch_key(self) -> bytes:
        with Net(self.options) as net:
            body = net.get_bytes(self.url, limit=MAX_KEY_BYTES, deadline=self.deadline)
        return one_certificate(body)

    def _remember_failure(self, failure: Exception) -> None:
        with self._lock:
            self._failure = (time.monotonic() + self.failure_ttl, failure)


def one_certificate(body: bytes) -> bytes:
    """The first armored block of `body` when it holds exactly one OpenPGP certificate."""
    try:
        block = first_armored_block(body)
        if block.kind != PUBLIC_KEY_BLOCK:
            raise ArmorError(f"expected a public key block, got: {block.kind!r}")
        key = parse_public_key(block.text)
    except (ArmorError, FleetgapError) as exc:
        raise UpstreamKeyError(f"upstream key is not one OpenPGP certificate: {exc}") from None
    if key.others:
        raise UpstreamKeyError(
            "upstream key is not one OpenPGP certificate: "
            f"the block holds {len(key.certs)} certificates"
        )
    return block.text.encode()
