"""A real HTTP CONNECT proxy for tests: Debian's tinyproxy with a generated config."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class Tinyproxy:
    """tinyproxy on a free 127.0.0.1 port, in the foreground, logging to `folder/proxy.log`."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not Path(binary).exists():
            raise RuntimeError("tinyproxy is not installed (apt-get install -y tinyproxy)")
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.log = folder / "proxy.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> Tinyproxy:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "tinyproxy.conf"
        # No ConnectPort line: CONNECT is allowed to any port (the upstream's is random).
        config.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\n"
            f'LogFile "{self.log}"\nLogLevel Connect\nMaxClients 20\nDisableViaHeader Yes\n'
        )
        self.process = subprocess.Popen(
            [self.binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tinyproxy did not start: {self.log_text()}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
