"""A query or pinned package that matches nothing is named in a warning; `--strict` makes it
an error (the Go tool says nothing and exits 0)."""

from __future__ import annotations

from bundle.test_create import fleetgap


def _selection(public, path, pinned: str = "1.0.0") -> None:
    path.write_text(
        f"address: {public.url}\n"
        "matrix:\n  - kibana.version: 9.1.0\n  - kibana.version: 8.15.5\n"
        "queries:\n  - package: ngnix\n  - package: apache\n"
        f"packages:\n  - name: nginx\n    version: {pinned}\n"
    )


def test_a_query_matching_nothing_is_a_warning_or_with_strict_an_error(public, tmp_path):
    _selection(public, tmp_path / "s.yaml")
    run = fleetgap("bundle", "plan", "s.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: query package=ngnix matches no package at {public.url}"
    ]
    strict = fleetgap("bundle", "plan", "s.yaml", "--strict", cwd=tmp_path)
    assert strict.returncode == 1
    assert strict.stderr.splitlines() == [
        f"error: query package=ngnix matches no package at {public.url} (--strict)"
    ]
    assert strict.stdout == ""


def test_a_pinned_package_the_registry_does_not_list_is_named(public, tmp_path):
    _selection(public, tmp_path / "s.yaml", pinned="1.0.1")
    (tmp_path / "s.yaml").write_text(
        (tmp_path / "s.yaml").read_text().replace("  - package: ngnix\n", "")
    )
    run = fleetgap("distribution", "s.yaml", "--key", str(public.key_file), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: pinned package nginx 1.0.1 is not listed at {public.url}"
    ]
    strict = fleetgap(
        "bundle", "create", "s.yaml", "--out", "b.tar", "--strict",
        "--key", str(public.key_file), cwd=tmp_path,
    )  # fmt: skip
    assert strict.returncode == 1 and not (tmp_path / "b.tar").exists()
    assert strict.stderr.splitlines()[-1] == (
        f"error: pinned package nginx 1.0.1 is not listed at {public.url} (--strict)"
    )
