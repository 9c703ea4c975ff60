"""Key hosting: Fleet Server's upgrade-key endpoint (every derived case) and the GPG-KEY URLs,
served for real over HTTPS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetgap.pgp.key_routes import PgpLimits, key_routes

from pgp_servers import TLS, run_app
from serving import free_port

PATH = "/api/agents/upgrades/{}/pgp-public-key"


@contextlib.contextmanager
def fleet(data: Path, tls: TLS | None, **options) -> Iterator[httpx.Client]:
    app = Starlette(routes=key_routes(data, **options))
    with run_app(app, tls) as running:
        verify = ssl.create_default_context(cafile=str(tls.ca_pem)) if tls else False
        with httpx.Client(base_url=running.base, verify=verify, timeout=30) as client:
            yield client


@contextlib.contextmanager
def upstream(tls: TLS, body: bytes | int, gate: threading.Event | None = None):
    """An upstream key server that counts its hits (and can be held until `gate` is set)."""
    hits: list[str] = []
    arrived = threading.Event()

    async def key(request: Request) -> Response:
        hits.append(request.url.path)
        arrived.set()
        if gate is not None:
            await asyncio.to_thread(gate.wait, 20)
        if isinstance(body, int):
            return Response(b"nope", body)
        return Response(body)

    with run_app(Starlette(routes=[Route("/GPG-KEY-elastic-agent", key)]), tls) as running:
        yield f"{running.base}/GPG-KEY-elastic-agent", hits, arrived


def _place_key(data: Path, body: bytes, mode: int = 0o600) -> Path:
    keys = data / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    path = keys / "default.pgp"
    path.write_bytes(body)
    os.chmod(path, mode)
    return path


def _scenario(case: dict, data: Path, tls: TLS, key: bytes) -> httpx.Response:
    name = case["name"]
    if name in ("tls_key_on_disk_0600", "no_auth_header_needed"):
        _place_key(data, key)
        with fleet(data, tls) as client:
            return client.get(PATH.format("9.1.0"))
    if name == "version_in_path_ignored":
        _place_key(data, key)
        with fleet(data, tls) as client:
            first = client.get(PATH.format("9.1.0"))
            second = client.get(PATH.format("1.2.3"))
        assert first.content == second.content == key
        return second
    if name == "plain_http_listener":
        _place_key(data, key)
        with fleet(data, None) as client:
            return client.get(PATH.format("9.1.0"))
    if name == "wrong_permissions":
        _place_key(data, key, 0o644)
        with (
            upstream(tls, key) as (url, hits, _),
            fleet(data, tls, upstream_url=url, upstream_ca=tls.ca_pem) as client,
        ):
            response = client.get(PATH.format("9.1.0"))
            assert client.get(PATH.format("9.1.0")).status_code == 500  # every request
        assert hits == []  # no upstream fallback
        return response
    if name == "missing_file_upstream_ok":
        with (
            upstream(tls, key) as (url, hits, _),
            fleet(data, tls, upstream_url=url, upstream_ca=tls.ca_pem) as client,
        ):
            response = client.get(PATH.format("9.1.0"))
            assert client.get(PATH.format("9.1.0")).content == key
        assert len(hits) == 1  # fetched once, then served from memory
        stored = data / "keys" / "default.pgp"
        assert stored.read_bytes() == key
        assert stored.stat().st_mode & 0o777 == 0o600
        assert (data / "keys").stat().st_mode & 0o777 == 0o700
        return response
    if name == "missing_file_upstream_non_200":
        with (
            upstream(tls, 404) as (url, _, _),
            fleet(data, tls, upstream_url=url, upstream_ca=tls.ca_pem) as client,
        ):
            response = client.get(PATH.format("9.1.0"))
        assert not (data / "keys" / "default.pgp").exists()
        return response
    if name == "missing_file_upstream_unreachable":
        url = f"https://127.0.0.1:{free_port()}/GPG-KEY-elastic-agent"
        with fleet(data, tls, upstream_url=url, upstream_ca=tls.ca_pem) as client:
            return client.get(PATH.format("9.1.0"))
    if name in ("non_integer_version", "prerelease_in_path", "two_part_version"):
        version = case["request"].split("/upgrades/")[1].split("/")[0]
        _place_key(data, key)
        with fleet(data, tls) as client:
            return client.get(PATH.format(version))
    if name in ("bad_api_version_header", "malformed_api_version_header"):
        value = case["request"].split("'Elastic-Api-Version: ")[1].rstrip("'")
        _place_key(data, key)
        with fleet(data, tls) as client:
            return client.get(PATH.format("9.1.0"), headers={"Elastic-Api-Version": value})
    if name == "rate_limited":
        _place_key(data, key)
        with fleet(data, tls, limits=PgpLimits(interval=3600, burst=1, max=0)) as client:
            assert client.get(PATH.format("9.1.0")).status_code == 200
            return client.get(PATH.format("9.1.0"))
    if name == "too_many_in_flight":
        gate = threading.Event()
        limits = PgpLimits(interval=0, burst=0, max=1)
        with (
            upstream(tls, key, gate) as (url, _, arrived),
            fleet(data, tls, upstream_url=url, upstream_ca=tls.ca_pem, limits=limits) as client,
        ):
            results: list[httpx.Response] = []
            first = threading.Thread(
                target=lambda: results.append(client.get(PATH.format("1.0.0")))
            )
            first.start()
            assert arrived.wait(20)  # the first request is now in flight, held upstream
            response = client.get(PATH.format("9.1.0"))
            gate.set()
            first.join(20)
        assert results[0].status_code == 200
        return response
    if name == "other_method":
        _place_key(data, key)
        with fleet(data, tls) as client:
            return client.post(PATH.format("9.1.0"))
    raise AssertionError(f"no scenario for derived case {name!r}")


def test_every_derived_endpoint_case(
    endpoint_case: dict, tmp_path: Path, tls: TLS, elastic_key_file: Path
) -> None:
    key = elastic_key_file.read_bytes()
    data = tmp_path / "data"
    data.mkdir()  # Fleet Server creates only the last level (keys/) itself
    response = _scenario(endpoint_case, data, tls, key)
    status = endpoint_case["status"]
    if isinstance(status, int):
        assert response.status_code == status
    else:  # connection refused upstream -> 503 (spec: fleet-server-pgp §6)
        assert response.status_code == 503
        assert response.json()["error"] == "ServiceUnavailable"
    body = endpoint_case.get("body")
    if isinstance(body, dict):
        got = response.json()
        assert got["statusCode"] == body["statusCode"] and got["error"] == body["error"]
        if body["message"].endswith(": ..."):
            assert got["message"].startswith(body["message"][: -len("...")])
        else:
            assert got["message"] == body["message"]
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert response.headers["x-content-type-options"] == "nosniff"
    if response.status_code == 200:
        assert response.content == key
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["elastic-api-version"] == "2023-06-01"
        assert response.headers["x-request-id"]
    for header, value in endpoint_case.get("headers", {}).items():
        if header == "Elastic-Api-Version" and response.status_code == 400:
            assert response.headers[header] == value


def test_request_id_is_echoed(tmp_path: Path, tls: TLS) -> None:
    _place_key(tmp_path, b"key")
    with fleet(tmp_path, tls) as client:
        response = client.get(PATH.format("9.1.0"), headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


def test_a_valid_requested_api_version_is_echoed(tmp_path: Path, tls: TLS) -> None:
    _place_key(tmp_path, b"key")
    with fleet(tmp_path, tls) as client:
        response = client.get(PATH.format("9.1.0"), headers={"Elastic-Api-Version": "2023-06-01"})
    assert response.status_code == 200
    assert response.headers["elastic-api-version"] == "2023-06-01"


def test_go_integer_rules_for_version_parts(tmp_path: Path, tls: TLS) -> None:
    _place_key(tmp_path, b"key")
    with fleet(tmp_path, tls) as client:
        assert client.get(PATH.format("+09.-1.007")).status_code == 200  # sign, leading zeros
        big = client.get(PATH.format("9.1.99999999999999999999"))
    assert big.status_code == 500
    assert "value out of range" in big.json()["message"]


def test_without_upstream_the_published_agent_key_is_served(tmp_path: Path, tls: TLS) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "GPG-KEY-elastic-agent").write_bytes(b"our key")
    with fleet(tmp_path, tls) as client:
        response = client.get(PATH.format("9.1.0"))
    assert response.status_code == 200 and response.content == b"our key"
    assert not (tmp_path / "keys" / "default.pgp").exists()


def test_without_upstream_or_keys_the_endpoint_says_404_upstream(tmp_path: Path, tls) -> None:
    with fleet(tmp_path, tls) as client:
        response = client.get(PATH.format("9.1.0"))
    assert response.status_code == 500
    assert json.loads(response.text)["message"] == "upstream http server status error: 404"


@pytest.mark.parametrize("name", ["GPG-KEY-elastic-agent", "GPG-KEY-elasticsearch"])
def test_published_keys_are_served_from_the_data_dir(tmp_path: Path, tls: TLS, name: str) -> None:
    with fleet(tmp_path, tls) as client:
        assert client.get(f"/{name}").status_code == 404
        (tmp_path / "keys").mkdir(exist_ok=True)
        (tmp_path / "keys" / name).write_bytes(b"armored key")
        response = client.get(f"/{name}")
    assert response.status_code == 200
    assert response.content == b"armored key"


def test_a_key_placed_later_is_answered_at_once(tmp_path: Path, tls: TLS) -> None:
    """A bundle load that brings default.pgp is seen on the next request, not after the TTL."""
    published = tmp_path / "keys" / "GPG-KEY-elastic-agent"
    published.parent.mkdir(parents=True)
    published.write_bytes(b"published key")
    with fleet(tmp_path, tls) as client:
        assert client.get(PATH.format("9.1.0")).content == b"published key"
        _place_key(tmp_path, b"loaded key")
        assert client.get(PATH.format("9.1.0")).content == b"loaded key"
        assert client.get(PATH.format("9.1.0")).content == b"loaded key"
