"""The Go registry's response conventions (spec: epr-api §2)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

from fleetgap.registry.content import http_error

Headers = list[tuple[str, str]]

NO_CACHE: Headers = [("cache-control", "max-age=0"), ("cache-control", "private, no-store")]


def cache_headers(seconds: float) -> Headers:
    """`max-age=N` (Go `%.0f`: half to even) then `public`, as two header lines."""
    return [("cache-control", f"max-age={round(seconds):d}"), ("cache-control", "public")]


def raw_response(status: int, body: bytes, headers: Headers, method: str = "GET") -> Response:
    response = Response(b"" if method == "HEAD" else body, status_code=status)
    response.raw_headers = [
        (b"content-length", str(len(body)).encode("latin-1")),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    ]
    return response


def json_response(body: bytes, seconds: float, method: str) -> Response:
    headers = [*cache_headers(seconds), ("content-type", "application/json")]
    return raw_response(200, body, headers, method)


def bad_request(message: str, method: str) -> Response:
    return http_error(message, 400, headers=NO_CACHE, method=method)


def not_found(message: str, method: str) -> Response:
    return http_error(message, 404, headers=NO_CACHE, method=method)


def internal_error(method: str, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return http_error("internal server error", 500, headers=list(headers), method=method)


def redirect(location: str, method: str) -> Response:
    """Go `http.Redirect` with 301: an HTML body only for GET and HEAD."""
    headers = [("location", location)]
    body = b""
    if method in ("GET", "HEAD"):
        headers.append(("content-type", "text/html; charset=utf-8"))
        body = f'<a href="{_html_escape(location)}">Moved Permanently</a>.\n\n'.encode()
    return raw_response(301, body, headers, method)


def _html_escape(text: str) -> str:
    for raw, escaped in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&#34;"),
        ("'", "&#39;"),
    ):
        text = text.replace(raw, escaped)
    return text
