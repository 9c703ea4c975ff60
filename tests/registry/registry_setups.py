"""The corpus setups of compat/package-registry/README.md, as `fleetgap serve` command lines."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.responses import Response

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


def start_setup(name: str, compat: Path, factory: pytest.TempPathFactory):
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
