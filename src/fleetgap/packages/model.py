"""One indexed package: what filtering needs, typed, plus its rendered JSON documents.

The decoded manifest (`model`) is kept packed with `marshal` once the index is built: the
rendered bytes answer every request, and the dict is only unpacked on the rare paths that
need it (a category match on policy templates only, proxy mode).
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetgap.semver import Constraints, Version


class PackageError(ValueError):
    """A package that cannot be served, with the reason."""


@dataclass(eq=False)
class Package:
    name: str
    version: str
    semver: Version
    release: str
    type: str
    categories: tuple[str, ...]
    # per policy template: its categories, or None when the manifest has none
    template_categories: tuple[tuple[str, ...] | None, ...]
    kibana: Constraints | None
    agent: Constraints | None
    capabilities: tuple[str, ...] | None
    spec: Version | None  # format_version reduced to major.minor.0
    discovery_fields: tuple[str, ...]
    discovery_datasets: tuple[str, ...]
    base_path: Path  # the version directory, or the .zip file
    is_zip: bool
    signed: bool  # a .sig lies beside the package
    # the decoded manifest with derived fields; marshal bytes once packed
    model: dict[str, Any] | bytes = field(repr=False)
    # the manifest's own deprecation notice, and the one in effect (the newest version's)
    own_deprecated: dict[str, Any] | None = None
    deprecated: dict[str, Any] | None = None
    remote: bool = False  # proxy mode: known only from an upstream registry's answer
    # set by render.py once the index is known (deprecation notices cross versions)
    index_json: bytes = field(default=b"", repr=False)  # Package (/package/<n>/<v>/)
    search_item: bytes = field(default=b"", repr=False)  # BasePackage, inside /search

    def manifest(self) -> dict[str, Any]:
        """The model as a dict, with the deprecation notice in effect."""
        model = marshal.loads(self.model) if isinstance(self.model, bytes) else dict(self.model)
        if self.deprecated is None:
            model.pop("deprecated", None)
        else:
            model["deprecated"] = self.deprecated
        return model

    @property
    def base(self) -> dict[str, Any]:
        """The BasePackage object (/search), derived from the model when needed."""
        from fleetgap.packages import schema

        return schema.encode(schema.BASE_PACKAGE, self.manifest())

    @property
    def signature_file(self) -> Path | None:
        return Path(f"{self.base_path}.sig") if self.signed else None

    def pack(self) -> None:
        if isinstance(self.model, dict):
            self.model = marshal.dumps(self.model)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def is_prerelease(self) -> bool:
        return self.semver.is_prerelease

    @property
    def is_tech_preview(self) -> bool:
        return self.semver.major < 1
