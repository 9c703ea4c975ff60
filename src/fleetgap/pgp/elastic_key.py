"""Elastic's signing key: fetched on the connected side, pinned by fingerprint, kept in DATA/keys.

fleetgap does not carry the key file; it pins the fingerprint (the key every agent embeds,
spec: agent-artifacts §6.2) and refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetOptions
from fleetgap.pgp.keys import ELASTIC_FINGERPRINT, PublicKey, parse_public_key, write_atomic

ELASTIC_KEY_URL = "https://artifacts.elastic.co/GPG-KEY-elasticsearch"
ELASTIC_KEY_FILE = "GPG-KEY-elasticsearch"
AGENT_KEY_FILE = "GPG-KEY-elastic-agent"


@dataclass(frozen=True)
class FetchedKey:
    key: PublicKey
    written: tuple[Path, ...]


def elastic_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / "keys" / ELASTIC_KEY_FILE


def fetch_elastic_key(
    data_dir: Path, *, url: str = ELASTIC_KEY_URL, net: NetOptions | None = None
) -> FetchedKey:
    """Download Elastic's key, check the pinned fingerprint, store it in `DATA/keys/`.

    Also writes `GPG-KEY-elastic-agent` (what artifacts.elastic.co serves there) unless the
    operator already put a key of their own there.
    """
    with Net(net or NetOptions()) as client:
        body = client.get_bytes(url)
    key = check_elastic_key(body, origin=url)
    keys = Path(data_dir) / "keys"
    written = [elastic_key_path(data_dir)]
    write_atomic(written[0], body, mode=0o644)
    agent_key = keys / AGENT_KEY_FILE
    if not agent_key.exists():
        write_atomic(agent_key, body, mode=0o644)
        written.append(agent_key)
    return FetchedKey(key, tuple(written))


def check_elastic_key(body: bytes, origin: str = "key") -> PublicKey:
    """The key in `body` if it is exactly Elastic's (pinned fingerprint), else FleetgapError."""
    key = parse_public_key(body)
    if key.fingerprint != ELASTIC_FINGERPRINT or key.others:
        raise FleetgapError(
            f"{origin} is not Elastic's signing key: fingerprint {key.fingerprint}, "
            f"expected {ELASTIC_FINGERPRINT}" + (" and nothing else" if key.others else "")
        )
    return key


def load_elastic_key(data_dir: Path | None) -> bytes | None:
    """Elastic's key bytes from `DATA/keys/`, checked again; None when not fetched yet."""
    if data_dir is None:
        return None
    path = elastic_key_path(data_dir)
    if not path.is_file():
        return None
    body = path.read_bytes()
    check_elastic_key(body, origin=str(path))
    return body
