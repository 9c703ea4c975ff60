"""The header assertions of the Go tests (compat/package-registry/cases-headers.tsv).

Rows come from TestRouter, TestContentTypes, TestStaticsModifiedTime and
TestRangeDownloads; each row names a request, the status and one response header. Range
rows then download the resource in 100 KiB ranges and reassemble the golden bytes.
"""

from __future__ import annotations

import io
import zipfile
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from corpus import compat_root
from registry_setups import REGISTRY

RANGE_STEP = 102400


def _rows() -> list[object]:
    root = compat_root()
    if root is None:
        return [pytest.param(None, id="corpus-missing")]
    rows = []
    for line in (root / REGISTRY / "cases-headers.tsv").read_text().splitlines():
        fields = line.split("\t")
        rows.append(pytest.param(fields, id=f"{fields[0]} {fields[1]} {fields[2]}"))
    return rows


@pytest.mark.parametrize("row", _rows())
def test_header_row(compat: Path, servers, row: list[str]) -> None:
    method, url, request_header, status, header, expected = row
    base = servers("A")
    headers = {}
    if request_header != "-":
        name, _, value = request_header.partition(": ")
        if value.startswith("<now"):
            value = formatdate(usegmt=True)
        headers[name] = value
    response = httpx.request(method, base + url, headers=headers, timeout=30)
    assert response.status_code == int(status)
    if header == "-":
        return
    values = response.headers.get_list(header)
    if expected == "*":
        assert values == ["*"]
    elif expected.startswith("<non-empty>"):
        assert values and values[0]
    elif expected.startswith("<absent>"):
        assert values == []
        assert "content-length" not in response.headers  # zipped on the fly: streamed
    elif header == "Cache-Control":
        assert values == ["max-age=1", "public"]  # the replay's cache_time.search is 1s
    elif expected.startswith("bytes"):
        assert values == ["bytes"]
        _check_ranged_download(compat, base + url, int(response.headers["content-length"]))
    else:
        assert values == [expected]


def _check_ranged_download(compat: Path, url: str, size: int) -> None:
    chunks = []
    for start in range(0, size, RANGE_STEP + 1):
        end = min(start + RANGE_STEP, size - 1)
        part = httpx.get(url, headers={"Range": f"bytes={start}-{end}"}, timeout=30)
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        chunks.append(part.content)
    data = b"".join(chunks)
    assert len(data) == size
    golden = {
        "/package/example/1.0.0/img/kibana-envoyproxy.jpg": "example-1.0.0-screenshot.jpg",
        "/package/example/1.0.1/img/kibana-envoyproxy.jpg": "example-1.0.1-screenshot.jpg",
    }
    path = httpx.URL(url).path
    if path in golden:
        assert data == (compat / REGISTRY / "testdata/generated" / golden[path]).read_bytes()
    else:
        expected = (compat / REGISTRY / "testdata/local-storage/example-1.0.1.zip").read_bytes()
        assert data == expected
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
