"""Every golden case of Elastic's registry, replayed over HTTP against `fleetgap serve`.

The cases (compat/package-registry/cases*.tsv) and the setups come from the corpus README:
all cache times 1s, signatures not required, validation on; setups differ in package paths,
unknown-parameter handling and proxy mode. Bodies are compared after trimming whitespace
(zips as `<size> <name>` listings), and the status must be the one the Go code gives.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from corpus import compat_root
from registry_setups import REGISTRY, SETUPS


def _cases() -> list[object]:
    root = compat_root()
    if root is None:
        return [pytest.param(None, None, None, None, id="corpus-missing")]
    params = []
    for name, setup in SETUPS.items():
        for line in (root / REGISTRY / setup.cases).read_text().splitlines():
            url, golden, status = line.split("\t")
            params.append(pytest.param(name, url, golden, int(status), id=f"{name}:{url}"))
    return params


@pytest.fixture
def corpus_present(compat: Path) -> Path:
    return compat


@pytest.mark.parametrize(("setup", "url", "golden", "status"), _cases())
def test_golden_case(corpus_present, servers, setup, url, golden, status) -> None:
    base = servers(setup)
    response = httpx.get(base + url.replace(" ", "%20"), timeout=30)
    expected = (corpus_present / REGISTRY / golden).read_bytes()
    body = response.content
    if golden.endswith("-preview.txt"):
        body = zip_listing(body)
    assert response.status_code == status
    assert body.strip() == expected.strip()
    if 200 <= status < 300:
        assert response.headers.get_list("cache-control") == ["max-age=1", "public"]


def zip_listing(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        lines = [f"{info.file_size} {info.filename}\n" for info in archive.infolist()]
    return "".join(lines).encode()
