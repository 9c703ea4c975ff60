"""One indexed package: what filtering needs, typed, plus its JSON documents.

The JSON-ready objects (`base`, `full`) are built at load time; `index.py` renders them
to bytes once the whole index is known (deprecation notices cross versions).
"""

from __future__ import annotations

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
    signature_file: Path | None
    model: dict[str, Any] = field(repr=False)  # the decoded manifest with derived fields
    remote: bool = False  # proxy mode: known only from an upstream registry's answer
    # set by render.py once the index is known (deprecation notices cross versions)
    base: dict[str, Any] = field(default_factory=dict, repr=False)  # BasePackage (/search)
    index_json: bytes = field(default=b"", repr=False)  # Package (/package/<n>/<v>/)
    search_item: bytes = field(default=b"", repr=False)

    @property
    def deprecated(self) -> dict[str, Any] | None:
        return self.model.get("deprecated")

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def is_prerelease(self) -> bool:
        return self.semver.is_prerelease

    @property
    def is_tech_preview(self) -> bool:
        return self.semver.major < 1
