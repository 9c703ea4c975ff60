"""Render a package's JSON documents once, at index time (spec: epr-api §8, §9)."""

from __future__ import annotations

from typing import Any

from fleetgap.packages import schema
from fleetgap.packages.gojson import dumps
from fleetgap.packages.model import Package

# (deprecation notice rendered with, /package/ JSON, /search item)
Rendering = tuple[dict[str, Any] | None, bytes, bytes]

ITEM_INDENT = "  "  # a /search item sits one level inside the top-level array


def render_package(package: Package, earlier: Rendering | None = None) -> Rendering:
    """Set the package's documents; `earlier` (made when the package was read, or kept in
    the index cache) is reused when it was made for the same deprecation notice, the one
    thing other versions of the package can change."""
    if earlier is None or earlier[0] != package.deprecated:
        earlier = render_model(package.manifest())
    _, package.index_json, package.search_item = earlier
    return earlier


def render_model(model: dict[str, Any]) -> Rendering:
    """The documents of a model, with the deprecation notice it holds."""
    index_json = dumps(schema.encode(schema.PACKAGE, model))
    search_item = render_search_item(schema.encode(schema.BASE_PACKAGE, model))
    return (model.get("deprecated"), index_json, search_item)


def render_search_item(base: dict[str, Any]) -> bytes:
    """The object as it appears inside the /search array (indented, no trailing newline)."""
    return ITEM_INDENT.encode() + dumps(base, prefix=ITEM_INDENT).rstrip(b"\n")
