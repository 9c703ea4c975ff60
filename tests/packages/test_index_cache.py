"""The persisted index: unchanged packages are not read again; changed ones are."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import httpx

from fleetgap.packages.index import LoadOptions, load_index

from builders import package_files, write_zip_package
from serving import fleetgap_serve


def load(paths: Path, cache: Path):
    return load_index(LoadOptions((paths,), require_signatures=False, cache=cache))


def _overwrite_keeping_identity(path: Path, data: bytes) -> None:
    """New content, same size, mtime and inode: the cache cannot tell it changed."""
    before = path.stat()
    assert len(data) == before.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_unchanged_package_is_taken_from_the_cache(tmp_path: Path) -> None:
    packages, cache = tmp_path / "packages", tmp_path / "state" / "index.sqlite"
    zipped = write_zip_package(packages, "alpha", "1.0.0")
    first = load(packages, cache)
    _overwrite_keeping_identity(zipped, b"\0" * zipped.stat().st_size)
    second = load(packages, cache)
    assert second.get("alpha", "1.0.0").index_json == first.get("alpha", "1.0.0").index_json
    assert second.refused == ()


def test_changed_package_is_read_again(tmp_path: Path) -> None:
    packages, cache = tmp_path / "packages", tmp_path / "index.sqlite"
    write_zip_package(packages, "alpha", "1.0.0")
    load(packages, cache)
    write_zip_package(packages, "alpha", "1.0.0", package_files("alpha", "1.0.0", {"title": "New"}))
    assert load(packages, cache).get("alpha", "1.0.0").base["title"] == "New"


def test_removed_package_leaves_the_cache(tmp_path: Path) -> None:
    packages, cache = tmp_path / "packages", tmp_path / "index.sqlite"
    write_zip_package(packages, "alpha", "1.0.0")
    beta = write_zip_package(packages, "beta", "1.0.0")
    load(packages, cache)
    beta.unlink()
    assert list(load(packages, cache).by_key) == [("alpha", "1.0.0")]
    with sqlite3.connect(cache) as db:
        assert [row[0] for row in db.execute("SELECT path FROM entries")] == [
            str(packages / "alpha-1.0.0.zip")
        ]


def test_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    packages, cache = tmp_path / "packages", tmp_path / "index.sqlite"
    write_zip_package(packages, "alpha", "1.0.0")
    cache.write_bytes(b"this is not a database")
    assert list(load(packages, cache).by_key) == [("alpha", "1.0.0")]


def test_serve_with_data_dir_keeps_its_index_in_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_zip_package(data / "packages", "alpha", "1.0.0")
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as server:
        assert httpx.get(server.url + "/search").json()[0]["name"] == "alpha"
    with sqlite3.connect(data / "state" / "index-cache.sqlite") as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (1,)


def test_restart_with_a_current_index_loads_it_only_in_the_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_zip_package(data / "packages", "alpha", "1.0.0")
    flags = ["--data", str(data), "-require-package-signatures=false"]
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as first:
        assert "persisted index is current" not in first.log_text()
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as second:
        assert httpx.get(second.url + "/search").json()[0]["name"] == "alpha"
        assert "1 local package manifests loaded (persisted index is current)" in second.log_text()
    write_zip_package(data / "packages", "beta", "1.0.0")
    with fleetgap_serve(*flags, cwd=tmp_path, log_dir=tmp_path) as third:
        names = [p["name"] for p in httpx.get(third.url + "/search").json()]
        assert names == ["alpha", "beta"]
        assert "persisted index is current" not in third.log_text()
