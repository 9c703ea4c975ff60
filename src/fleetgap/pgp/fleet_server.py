"""Place a key where Fleet Server reads it: `<dir>/elastic-agent-upgrade-keys/default.pgp`.

spec: fleet-server-pgp §3–§4 — Fleet Server serves that file only if its mode is exactly
0600 (any other mode: HTTP 500 on every request); once it exists, the upstream URL is never
consulted again.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetgap.pgp.keys import PublicKey, parse_public_key, write_atomic

KEYS_DIRNAME = "elastic-agent-upgrade-keys"
KEY_FILENAME = "default.pgp"


def install_fleet_server_key(fleet_server_dir: Path, key_bytes: bytes) -> tuple[Path, PublicKey]:
    """Write the key (after checking it is an armored public key the agent can read)."""
    key = parse_public_key(key_bytes)
    folder = Path(fleet_server_dir) / KEYS_DIRNAME
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True)
    target = folder / KEY_FILENAME
    write_atomic(target, key_bytes, mode=0o600)
    os.chmod(target, 0o600)
    return target, key
