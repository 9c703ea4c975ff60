"""Every golden case of Elastic's registry, replayed over HTTP against `fleetgap serve`.

The cases (compat/package-registry/cases*.tsv) and the setups come from the corpus README:
all cache times 1s, signatures not required, validation on; setups differ in package paths,
unknown-parameter handling and proxy mode. Bodies are compared after trimming whitespace
(zips as `<size> <name>` listings), and the status must be the one the Go code gives.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.responses import Response

from corpus import compat_root
from serving import fleetgap_serve, serve_asgi

REGISTRY = Path("package-registry")


@dataclass(frozen=True)
class Setup:
    cases: str
    paths: tuple[str, ...]
    flags: tuple[str, ...] = ()
    upstream_fixture: str | None = None


ALL_PATHS = ("testdata/second_package_path", "testdata/package", "testdata/local-storage")
SETUPS = {
    "A": Setup("cases.tsv", ALL_PATHS),
    "B": Setup(
        "cases-setup-B-disallow-unknown-params.tsv",
        ALL_PATHS,
        ("-allow-unknown-query-parameters=false",),
    ),
    "C": Setup("cases-setup-C-no-second-path.tsv", ALL_PATHS[1:]),
    "D": Setup("cases-setup-D-no-zips.tsv", ALL_PATHS[:2]),
    "E": Setup("cases-setup-E-proxy-mode.tsv", ALL_PATHS, (), "search-upstream-response.json"),
    "F": Setup(
        "cases-setup-F-proxy-categories.tsv",
        ALL_PATHS[:1],
        (),
        "categories-upstream-response.json",
    ),
}


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


@pytest.fixture(scope="module")
def servers(compat: Path, tmp_path_factory: pytest.TempPathFactory):
    """One running `fleetgap serve` per setup, started when first needed."""
    import contextlib

    stack = contextlib.ExitStack()
    started: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in started:
            started[name] = stack.enter_context(_start(name, compat, tmp_path_factory))
        return started[name]

    with stack:
        yield get


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


def _start(name: str, compat: Path, factory: pytest.TempPathFactory):
    import contextlib

    setup = SETUPS[name]
    work = factory.mktemp(f"setup-{name}")
    config = work / "config.yml"
    paths = "".join(f"  - {compat / REGISTRY / p}\n" for p in setup.paths)
    config.write_text(
        f"package_paths:\n{paths}"
        "cache_time.index: 1s\ncache_time.search: 1s\n"
        "cache_time.categories: 1s\ncache_time.catch_all: 1s\n"
    )
    # Elastic's favicon is not ours to ship; the replay serves the corpus copy.
    flags = [
        "-config",
        str(config),
        "-require-package-signatures=false",
        "--favicon",
        str(compat / REGISTRY / "img" / "favicon.ico"),
        *setup.flags,
    ]

    @contextlib.contextmanager
    def running():
        with contextlib.ExitStack() as stack:
            if setup.upstream_fixture:
                body = (compat / REGISTRY / "proxy-fixtures" / setup.upstream_fixture).read_bytes()
                upstream = stack.enter_context(serve_asgi(_fixed_answer(body)))
                flags.extend(
                    ["-feature-proxy-mode=true", "-proxy-to", upstream, "-proxy-allow-insecure"]
                )
            server = stack.enter_context(fleetgap_serve(*flags, log_dir=work))
            yield server.url

    return running()


def _fixed_answer(body: bytes):
    """The fake upstream of the Go tests: every request gets the same JSON body."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await Response(body, media_type="application/json")(scope, receive, send)

    return app
