"""URL composition matches the agent's (derived cases of elastic-agent v9.5.2)."""

from __future__ import annotations

import json

import pytest

from fleetgap.artifacts.urls import (
    DEFAULT_SOURCE,
    agent_package_name,
    agent_urls,
    compose_url,
    snapshot_base,
    strip_build_metadata,
)
from fleetgap.errors import FleetgapError


def cases(compat):
    return json.loads((compat / "elastic-agent/derived/artifact_urls.json").read_text())


def test_every_derived_url_case(compat):
    checked = 0
    for case in cases(compat)["artifact_cases"]:
        version, source = case["version"], case["source_uri"]
        name = agent_package_name(version, case["os"], case["arch"], case["fips"])
        if "remote" in case and "lookup" not in case:
            assert agent_urls(source, name) == _triple(case["remote"]), case["name"]
        if "local" in case:
            assert agent_urls(source, name) == _triple(case["local"]), case["name"]
        if "lookup" in case:  # latest/<M.m.p>-SNAPSHOT.json gave build_id "9.2.0-6d69ee76"
            base = snapshot_base(source, version, "6d69ee76")
            assert agent_urls(base, name) == _triple(case["remote"]), case["name"]
        for attempt in case.get("attempt_order", ()):
            if attempt["downloader"] == "fs":
                assert attempt["local_name"] == name
                continue
            if attempt["downloader"] == "snapshot":
                stripped = agent_package_name(
                    strip_build_metadata(version), case["os"], case["arch"], case["fips"]
                )
                got = agent_urls(snapshot_base(source, version, None), stripped)
            else:
                got = agent_urls(source, name)
            assert got == _triple(attempt["remote"]), (case["name"], attempt["downloader"])
        checked += 1
    assert checked == 14


def _triple(urls):
    from fleetgap.artifacts.urls import ArtifactUrls

    return ArtifactUrls(urls["package"], urls["sha512"], urls["asc"])


def test_compose_keeps_plus_literal_and_resolves_dot_segments():
    assert (
        compose_url("http://h:1/a/./b/../c", "beats/elastic-agent", "x-1.0.0+build1-linux.tar.gz")
        == "http://h:1/a/c/beats/elastic-agent/x-1.0.0+build1-linux.tar.gz"
    )


def test_snapshot_redirect_only_for_the_exact_default_source():
    assert snapshot_base(
        DEFAULT_SOURCE.rstrip("/"), "9.2.0-SNAPSHOT", "x"
    ) == DEFAULT_SOURCE.rstrip("/")
    with pytest.raises(FleetgapError, match="needs a build id"):
        snapshot_base(DEFAULT_SOURCE, "9.2.0-SNAPSHOT", None)


@pytest.mark.parametrize(
    "os_name, arch, suffix",
    [
        ("linux", "386", "linux-x86.tar.gz"),
        ("freebsd", "amd64", "linux-x86_64.tar.gz"),  # any other OS is treated as linux
        ("darwin", "arm64", "darwin-aarch64.tar.gz"),
        ("windows", "386", "windows-x86.zip"),
    ],
)
def test_agent_suffix_table(os_name, arch, suffix):
    assert agent_package_name("9.1.0", os_name, arch) == f"elastic-agent-9.1.0-{suffix}"
