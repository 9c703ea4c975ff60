"""Render a package's JSON documents once, at index time (spec: epr-api §8, §9)."""

from __future__ import annotations

from typing import Any

from fleetgap.packages import schema
from fleetgap.packages.model import Package
from fleetgap.registry.gojson import dumps

# (deprecation notice rendered with, /package/ JSON, /search item)
Rendering = tuple[dict[str, Any] | None, bytes, bytes]

ITEM_INDENT = "  "  # a /search item sits one level inside the top-level array


def render_package(package: Package, earlier: Rendering | None = None) -> Rendering:
    """Set the package's documents; `earlier` (from the index cache) is reused when it was
    made for the same deprecation notice, the one thing other versions can change."""
    if earlier is not None and earlier[0] == package.deprecated:
        _, package.index_json, package.search_item = earlier
        return earlier
    model = package.manifest()
    package.index_json = dumps(schema.encode(schema.PACKAGE, model))
    package.search_item = render_search_item(schema.encode(schema.BASE_PACKAGE, model))
    return (package.deprecated, package.index_json, package.search_item)


def render_search_item(base: dict[str, Any]) -> bytes:
    """The object as it appears inside the /search array (indented, no trailing newline)."""
    return ITEM_INDENT.encode() + dumps(base, prefix=ITEM_INDENT).rstrip(b"\n")
