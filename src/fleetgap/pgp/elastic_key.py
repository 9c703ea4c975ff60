"""Elastic's signing key: fetched on the connected side, pinned by fingerprint, kept in DATA/keys.

fleetgap does not carry the key file; it pins the fingerprint (the key every agent embeds,
spec: agent-artifacts §6.2) and refuses anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetgap.errors import FleetgapError
from fleetgap.net import Net, NetOptions
from fleetgap.pgp.keys import (
    ELASTIC_FINGERPRINT,
    PublicKey,
    parse_public_key,
    read_public_key,
    write_atomic,
)
from fleetgap.store import DataDir, exclusive, is_temporary_name

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
    data = DataDir(Path(data_dir))
    written = [elastic_key_path(data_dir)]
    with exclusive(data.load_lock, "fleetgap keys fetch-elastic"):
        write_atomic(written[0], body, mode=0o644)
        agent_key = data.keys / AGENT_KEY_FILE
        if not agent_key.exists():
            write_atomic(agent_key, body, mode=0o644)
            written.append(agent_key)
    return FetchedKey(key, tuple(written))


def check_elastic_key(body: bytes, origin: str = "key") -> PublicKey:
    """The key in `body` if it is exactly Elastic's (pinned fingerprint), else FleetgapError."""
    try:
        key = parse_public_key(body)
    except FleetgapError as exc:
        raise FleetgapError(f"{origin}: {exc}") from None
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


@dataclass(frozen=True)
class SigningKeys:
    """Keys that check Elastic's signatures (packages, artifacts), and the files of
    DATA/keys/ that were looked at and not used, with why."""

    keys: tuple[PublicKey, ...]
    passed_over: tuple[str, ...] = ()

    def required(self, data_dir: Path | None) -> tuple[PublicKey, ...]:
        """The keys, or FleetgapError naming what was passed over."""
        if self.keys:
            return self.keys
        root = Path(data_dir) if data_dir is not None else Path("DATA")
        why = f" ({'; '.join(self.passed_over)})" if self.passed_over else ""
        raise FleetgapError(
            f"no trusted signing key: Elastic's key (fingerprint {ELASTIC_FINGERPRINT}) is not "
            f"in {root / 'keys'}{why} (fetch it with `fleetgap keys fetch-elastic --data "
            f"{root}`) and no --key FILE was given"
        )


def elastic_signing_keys(data_dir: Path | None, key_files: Sequence[Path] = ()) -> SigningKeys:
    """The one rule for which keys check Elastic's signatures, the same for bundle verify,
    bundle load, artifacts mirror and artifacts verify: the `--key` files when given (they
    win, DATA is not consulted); else the file of DATA/keys/ that holds exactly Elastic's
    pinned certificate. Any other key there (a lab key a bundle brought) is passed over:
    it is never trusted for this, and never stops a command."""
    if key_files:
        return SigningKeys(tuple(read_public_key(Path(path)) for path in key_files))
    folder = Path(data_dir) / "keys" if data_dir is not None else None
    if folder is None or not folder.is_dir():
        return SigningKeys(())
    passed_over: list[str] = []
    for path in sorted(folder.iterdir(), key=_elastic_first):
        if not path.is_file() or is_temporary_name(path.name):
            continue
        try:
            return SigningKeys((check_elastic_key(path.read_bytes(), origin=path.name),))
        except (FleetgapError, OSError) as exc:
            passed_over.append(str(exc) if isinstance(exc, FleetgapError) else path.name)
    return SigningKeys((), tuple(passed_over))


def _elastic_first(path: Path) -> tuple[bool, str]:
    return (path.name != ELASTIC_KEY_FILE, path.name)
