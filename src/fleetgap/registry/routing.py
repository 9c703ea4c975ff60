"""gorilla/mux routing as the Go registry configures it (spec: epr-api §1).

`clean_path` is the 301 for unclean paths that happens before routing. `match_route`
finds the first route whose anchored pattern matches; with StrictSlash a differing
trailing slash is a redirect. `parse_query` is Go's `url.ParseQuery`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

# (route name, template, pattern); `name` and the template are what metrics label
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("index", "/", r""),
    ("index", "/index.json", r"/index\.json"),
    ("search", "/search", r"/search"),
    ("categories", "/categories", r"/categories"),
    ("health", "/health", r"/health"),
    ("favicon", "/favicon.ico", r"/favicon\.ico"),
    (
        "artifact",
        "/epr/{packageName}/{packageName:[a-z0-9_]+}-{packageVersion}.zip",
        r"/epr/[^/]+/(?P<name>[a-z0-9_]+)-(?P<version>[^/]+)\.zip",
    ),
    (
        "signature",
        "/epr/{packageName}/{packageName:[a-z0-9_]+}-{packageVersion}.zip.sig",
        r"/epr/[^/]+/(?P<name>[a-z0-9_]+)-(?P<version>[^/]+)\.zip\.sig",
    ),
    (
        "package_index",
        "/package/{packageName:[a-z0-9_]+}/{packageVersion}/",
        r"/package/(?P<name>[a-z0-9_]+)/(?P<version>[^/]+)",
    ),
    (
        "static",
        "/package/{packageName}/{packageVersion}/{name:.*}",
        r"/package/(?P<name>[^/]+)/(?P<version>[^/]+)/(?P<file>.*)",
    ),
)

_COMPILED = tuple(
    (name, template, re.compile(pattern + r"/?", re.DOTALL)) for name, template, pattern in ROUTES
)
# Paths that are exactly a parameterless route's template: answered without a regex.
_EXACT: dict[str, tuple[str, str]] = {
    template: (name, template) for name, template, pattern in ROUTES if "(" not in pattern
}


@dataclass(frozen=True)
class RouteMatch:
    name: str
    template: str
    params: dict[str, str]
    redirect: str | None = None  # StrictSlash: the URL with the slash fixed


def clean_path(path: str) -> str:
    """Go mux `cleanPath`: `path.Clean`, keeping a trailing slash."""
    if path == "":
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def escape_path(path: str) -> str:
    """Go `url.URL.EscapedPath` for a path without a valid raw form."""
    return quote(path, safe="/$&+,:;=@")


def match_route(path: str, query_string: str) -> RouteMatch | None:
    exact = _EXACT.get(path)
    if exact is not None:
        return RouteMatch(exact[0], exact[1], {})
    for name, template, pattern in _COMPILED:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        params = {k: v for k, v in found.groupdict().items() if v is not None}
        if params.get("file", "").endswith("/"):
            params["file"] = params["file"][:-1]
        redirect = None
        if path.endswith("/") != template.endswith("/"):
            target = path[:-1] if path.endswith("/") else path + "/"
            redirect = escape_path(target) + (f"?{query_string}" if query_string else "")
        return RouteMatch(name, template, params, redirect)
    return None


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Go `url.ParseQuery`, errors ignored: pairs with `;` or bad escapes are dropped."""
    values: dict[str, list[str]] = {}
    for pair in query_string.split("&"):
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        try:
            key, value = _unescape(key), _unescape(value)
        except ValueError:
            continue
        values.setdefault(key, []).append(value)
    return values


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(text: str) -> str:
    if _BAD_ESCAPE.search(text):
        raise ValueError(text)
    raw = unquote_to_bytes(text.replace("+", " "))
    return raw.decode("utf-8", errors="surrogateescape")
