"""`keys/default.pgp` brought by a bundle is published with mode 0600 (issue 17, item 5), so
the Fleet Server key route (which, like Fleet Server, answers 500 for any other mode) serves
it; other files stay world-readable for `serve`."""

from __future__ import annotations

import stat

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette
from tests.bundle.conftest import ARTIFACT, entries, make_cache
from tests.serving import serve_asgi

from fleetgap.bundle.writer import write_bundle
from fleetgap.cli import main
from fleetgap.pgp.key_routes import key_routes

DEFAULT_PGP = "keys/default.pgp"


def test_default_pgp_is_published_0600_and_served(
    tmp_path, file_signer, bundle_signer, trust_files
):
    cache = make_cache(tmp_path / "cache", file_signer)
    (cache.root / DEFAULT_PGP).write_text(file_signer.public_key.armored)
    (cache.root / DEFAULT_PGP).chmod(0o644)
    out = tmp_path / "keys.bundle"
    write_bundle(cache, entries(cache, file_signer), out, selection={}, sequence=1,
                 sign_key=bundle_signer)  # fmt: skip
    data = tmp_path / "data"
    result = CliRunner().invoke(
        main, ["bundle", "load", str(out), "--data", str(data), "--trust-key",
               str(trust_files["signer"])],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((data / DEFAULT_PGP).stat().st_mode) == 0o600
    assert stat.S_IMODE((data / ARTIFACT).stat().st_mode) == 0o644
    app = Starlette(routes=key_routes(data, require_tls=False))
    with serve_asgi(app, lifespan="off") as base:
        answer = httpx.get(f"{base}/api/agents/upgrades/9.1.0/pgp-public-key", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.content == (cache.root / DEFAULT_PGP).read_bytes()
