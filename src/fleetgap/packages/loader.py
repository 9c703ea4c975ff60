"""Read one package (directory or zip) into a `Package`, as the Go registry's NewPackage does.

spec: epr-api §5.2–§5.6. Raises `PackageError` with the reason when the package cannot be
served; the index logs it and goes on with the other packages.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from fleetgap.packages import datastream, schema
from fleetgap.packages.fs import DirectoryFS, PackageFS, PackageFSError, ZipFS
from fleetgap.packages.model import Package, PackageError
from fleetgap.packages.tables import CATEGORIES, INGESTION_METHODS
from fleetgap.packages.yamlcfg import read_yaml_object
from fleetgap.semver import Constraints, SemverError, Version

log = logging.getLogger("fleetgap.packages")

RELEASES = ("experimental", "beta", "ga")
AGENTLESS_RELEASES = ("beta", "ga")


def open_package_fs(path: Path) -> PackageFS:
    if path.suffix == ".zip" and path.is_file():
        return ZipFS(path)
    return DirectoryFS(path)


class Summary(NamedTuple):
    name: str
    version: str
    release: str
    type: str
    categories: tuple[str, ...]
    template_categories: tuple[tuple[str, ...] | None, ...]
    kibana: str | None  # conditions.kibana.version
    agent: str | None  # conditions.agent.version
    capabilities: tuple[str, ...] | None
    format_version: str
    discovery_fields: tuple[str, ...]
    discovery_datasets: tuple[str, ...]
    signed: bool  # a .sig lies beside the package
    deprecated: dict[str, Any] | None


@dataclass(frozen=True)
class LoadedModel:
    """What reading a package yields before it becomes a `Package` (plain data: it crosses
    process boundaries when several workers load, and is what the index cache keeps)."""

    model: dict[str, Any] | bytes  # bytes: packed with marshal (from the index cache)
    summary: Summary
    is_zip: bool
    warnings: tuple[str, ...] = ()
    rendering: tuple | None = None  # an earlier render.Rendering, from the index cache


def read_package(path: Path, *, validate: bool = True) -> Package:
    """Load the package at `path` (a version directory or a .zip file)."""
    loaded = read_model(path, validate=validate)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return package_from_model(path, loaded)


def read_model(path: Path, *, validate: bool = True) -> LoadedModel:
    """Read and check the package at `path`; raises PackageError with the reason."""
    try:
        fs = open_package_fs(path)
    except PackageFSError as exc:
        raise PackageError(str(exc)) from exc
    try:
        model, warnings = _read(path, fs, validate)
        return LoadedModel(model, summarize(model), isinstance(fs, ZipFS), tuple(warnings))
    except (PackageFSError, schema.SchemaError, yaml.YAMLError) as exc:
        raise PackageError(_one_line(exc)) from exc
    except OSError as exc:
        raise PackageError(f"cannot read package: {exc.strerror or exc}") from exc
    finally:
        fs.close()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _read(path: Path, fs: PackageFS, validate: bool) -> tuple[dict[str, Any], list[str]]:
    model = schema.decode(schema.MANIFEST, read_yaml_object(fs, "manifest.yml"))
    name = model.get("name", "")
    version = model.get("version", "")
    if validate:
        _validate_manifest(model, path, fs)
    prefix = posixpath.join("/package", name, version)

    templates = model.get("policy_templates", [])
    for template in templates:
        template.setdefault("multiple", True)
        _set_image_paths(template.get("icons", []), prefix)
        _set_image_paths(template.get("screenshots", []), prefix)
        readme = f"docs/{template.get('name', '')}.md"
        info = fs.stat(readme)
        if info is not None:
            if info.is_dir:
                raise PackageError(f"{template.get('name', '')}.md is a directory")
            template["readme"] = posixpath.join(prefix, readme)
        if model.get("type") == "input" and template.get("input"):
            method = INGESTION_METHODS.get(template["input"])
            if method:
                template["ingestion_method"] = method
        _check_agentless_release(template)

    model.setdefault("type", "integration")
    if not model.get("license"):
        subscription = model.get("conditions", {}).get("elastic", {}).get("subscription")
        model["license"] = subscription or "basic"

    semver, _, _, _ = _typed(model)

    _set_image_paths(model.get("icons", []), prefix)
    _set_image_paths(model.get("screenshots", []), prefix)
    if not model.get("release"):
        model["release"] = default_release(semver)
    if model["release"] not in RELEASES:
        raise PackageError(f'invalid release: "{model["release"]}"')

    readme = fs.stat("docs/README.md")
    if readme is None:
        raise PackageError("no readme file found, README.md is required")
    if readme.is_dir:
        raise PackageError("README.md is a directory")
    model["readme"] = posixpath.join(prefix, "docs/README.md")
    model["download"] = posixpath.join("/epr", name, f"{name}-{version}.zip")
    model["path"] = prefix
    model["assets"] = _assets(fs, name, prefix)
    model["data_streams"] = [
        datastream.read_data_stream(fs, ds_path, name, model["release"], validate)
        for ds_path in datastream.data_stream_paths(fs)
    ]

    if Path(str(path) + ".sig").is_file():
        model["signature_path"] = model["download"] + ".sig"

    categories = model.get("categories", [])
    model["categories"] = [c for c in categories if c in CATEGORIES]
    warnings = [
        f"package {name}-{version} uses an unknown category, will be ignored: {c}"
        for c in categories
        if c not in CATEGORIES
    ]
    return model, warnings


def summarize(model: dict[str, Any]) -> Summary:
    """What a `Package` is built from besides the model itself (plain data)."""
    conditions = model.get("conditions", {})
    discovery = model.get("discovery", {})
    capabilities = conditions.get("elastic", {}).get("capabilities")
    return Summary(
        name=model.get("name", ""),
        version=model.get("version", ""),
        release=model["release"],
        type=model["type"],
        categories=tuple(model["categories"]),
        template_categories=tuple(
            tuple(t["categories"]) if "categories" in t else None
            for t in model.get("policy_templates", [])
        ),
        kibana=conditions.get("kibana", {}).get("version"),
        agent=conditions.get("agent", {}).get("version"),
        capabilities=tuple(capabilities) if capabilities is not None else None,
        format_version=model.get("format_version", ""),
        discovery_fields=tuple(f["name"] for f in discovery.get("fields", [])),
        discovery_datasets=tuple(d["name"] for d in discovery.get("datasets", [])),
        signed="signature_path" in model,
        deprecated=model.get("deprecated"),
    )


def package_from_model(path: Path, loaded: LoadedModel) -> Package:
    """The typed `Package` of a model `read_model` accepted."""
    s = loaded.summary
    spec = None
    if s.format_version:
        format_version = Version.parse_strict(s.format_version)
        spec = Version.parse_strict(f"{format_version.major}.{format_version.minor}.0")
    return Package(
        name=s.name,
        version=s.version,
        semver=Version.parse_strict(s.version),
        release=s.release,
        type=s.type,
        categories=s.categories,
        template_categories=s.template_categories,
        kibana=Constraints.parse(s.kibana) if s.kibana is not None else None,
        agent=Constraints.parse(s.agent) if s.agent is not None else None,
        capabilities=s.capabilities,
        spec=spec,
        discovery_fields=s.discovery_fields,
        discovery_datasets=s.discovery_datasets,
        base_path=path,
        is_zip=loaded.is_zip,
        signed=s.signed,
        model=loaded.model,
        own_deprecated=s.deprecated,
        deprecated=s.deprecated,
    )


def _typed(
    model: dict[str, Any],
) -> tuple[Version, Constraints | None, Constraints | None, Version | None]:
    """Version, Kibana and agent constraints, and the spec version (major.minor.0)."""
    semver = _strict(model.get("version", ""), "invalid package version")
    kibana = _constraint(model, "kibana", "Kibana")
    agent = _constraint(model, "agent", "Agent")
    spec = None
    if model.get("format_version"):
        format_version = _strict(model["format_version"], "invalid format spec version")
        spec = Version.parse_strict(f"{format_version.major}.{format_version.minor}.0")
    return semver, kibana, agent, spec


def default_release(version: Version) -> str:
    if version.is_prerelease or version.major < 1:
        return "beta"
    return "ga"


def _strict(value: str, message: str) -> Version:
    try:
        return Version.parse_strict(value)
    except SemverError as exc:
        raise PackageError(f"{message} '{value}': {exc}") from None


def _constraint(model: dict[str, Any], key: str, label: str) -> Constraints | None:
    condition = model.get("conditions", {}).get(key)
    if condition is None:
        return None
    text = condition.get("version", "")
    try:
        return Constraints.parse(text)
    except SemverError as exc:
        raise PackageError(f"invalid {label} versions range {text}: {exc}") from None


def _set_image_paths(images: list[dict[str, Any]], prefix: str) -> None:
    for image in images:
        image["path"] = posixpath.normpath(posixpath.join(prefix, image.get("src", "").lstrip("/")))


def _check_agentless_release(template: dict[str, Any]) -> None:
    release = template.get("deployment_modes", {}).get("agentless", {}).get("release")
    if release and release not in AGENTLESS_RELEASES:
        raise PackageError(
            f'policy template "{template.get("name", "")}": invalid agentless release: "{release}"'
        )


def _assets(fs: PackageFS, name: str, prefix: str) -> list[str]:
    """Breadth by depth (`*`, `*/*`, …), file-system order within a level."""
    assets: list[str] = []
    pattern = "*"
    while True:
        matches = fs.glob(pattern)
        if not matches:
            return assets
        for match in matches:
            if ".DS_Store" in match:
                continue
            info = fs.stat(match)
            if info is None:
                raise PackageError(f"asset {match} cannot be read")
            if info.is_dir:
                if "-" in posixpath.basename(match.rstrip("/")):
                    raise PackageError(f"directory name inside package {name} contains -: {match}")
                continue
            assets.append(posixpath.join(prefix, match))
        pattern += "/*"


def _validate_manifest(model: dict[str, Any], path: Path, fs: PackageFS) -> None:
    """The checks `-disable-package-validation` turns off (spec §5.3)."""
    format_version = model.get("format_version", "")
    if not format_version:
        raise PackageError("no format_version set")
    _strict(format_version, "invalid format_version")
    version = _strict(model.get("version", ""), "invalid package version")
    if not model.get("title"):
        raise PackageError(f"no title set for package: {model.get('name', '')}")
    if not model.get("description"):
        raise PackageError("no description set")
    for image in model.get("icons", []) + model.get("screenshots", []):
        if fs.stat(image.get("src", "")) is None:
            raise PackageError(f"image {image.get('src', '')} not found in package")
    if path.suffix != ".zip":
        try:
            directory_version = Version.parse(path.name)
        except SemverError:
            directory_version = None
        if directory_version is not None and directory_version.compare(version) != 0:
            raise PackageError(
                "version in manifest file is not consistent with path: inconsistent versions "
                f"(path: {directory_version}, manifest: {version})"
            )
    for template in model.get("policy_templates", []):
        for item in template.get("inputs", []):
            has_type, has_package = bool(item.get("type")), bool(item.get("package"))
            if has_type == has_package:
                raise PackageError(
                    f"input {item.get('title', '')} in policy template "
                    f"{template.get('name', '')} must have a type or package"
                    + (", but not both" if has_type else "")
                )
