"""Data streams of a package: `data_stream/<name>/manifest.yml` and what it implies.

spec: epr-api §5.6.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import yaml

from fleetgap.packages import schema
from fleetgap.packages.fs import PackageFS
from fleetgap.packages.model import PackageError
from fleetgap.packages.tables import INGESTION_METHODS
from fleetgap.packages.yamlcfg import ManifestLoader, load_yaml, read_yaml_object

VALID_TYPES = ("logs", "metrics", "synthetics", "traces")
DEFAULT_PIPELINE_FILES = ("default.json", "default.yml")
REQUIRED_FIELDS = (
    ("data_stream.type", "constant_keyword"),
    ("data_stream.dataset", "constant_keyword"),
    ("data_stream.namespace", "constant_keyword"),
    ("@timestamp", "date"),
)


def data_stream_paths(fs: PackageFS) -> list[str]:
    """`data_stream/<name>` for every data stream manifest, in file-system order."""
    return [posixpath.dirname(p) for p in fs.glob("data_stream/*/manifest.yml")]


def read_data_stream(
    fs: PackageFS, base: str, package: str, package_release: str, validate: bool
) -> dict[str, Any]:
    name = posixpath.basename(base)
    manifest = read_yaml_object(fs, f"{base}/manifest.yml")
    stream = schema.decode(schema.DATA_STREAM, manifest, f"data stream {name}")
    stream["package"] = package
    stream["path"] = name
    if validate:
        _validate(fs, base, stream)
    if not stream.get("dataset"):
        stream["dataset"] = f"{package}.{name}"
    if not stream.get("release"):
        stream["release"] = package_release
    for item in stream.get("streams", []):
        item.setdefault("enabled", True)
        if not item.get("template_path"):
            item["template_path"] = "stream.yml.hbs"
        method = INGESTION_METHODS.get(item.get("input", ""))
        if method:
            item["ingestion_method"] = method
    if stream["release"] not in ("experimental", "beta", "ga"):
        raise PackageError(f'data stream {name}: invalid release: "{stream["release"]}"')
    _set_pipeline(fs, base, stream)
    return stream


def _set_pipeline(fs: PackageFS, base: str, stream: dict[str, Any]) -> None:
    pipelines = fs.glob(f"{base}/elasticsearch/ingest_pipeline/*")
    has_default = any(posixpath.basename(p) in DEFAULT_PIPELINE_FILES for p in pipelines)
    elasticsearch = stream.get("elasticsearch")
    if elasticsearch is not None and not elasticsearch.get("ingest_pipeline.name"):
        if has_default:
            elasticsearch["ingest_pipeline.name"] = "default"
            stream["ingest_pipeline"] = "default"
    elif not stream.get("ingest_pipeline") and has_default:
        stream["ingest_pipeline"] = "default"
    if not stream.get("ingest_pipeline") and pipelines:
        raise PackageError(
            f"unused pipelines in the package (dataset: {stream.get('dataset', '')}): "
            + ",".join(pipelines)
        )


def _validate(fs: PackageFS, base: str, stream: dict[str, Any]) -> None:
    where = f"data stream {posixpath.basename(base)}"
    if "-" in stream.get("dataset", ""):
        raise PackageError(f"{where}: name is not allowed to contain `-`")
    if stream.get("type", "") not in VALID_TYPES:
        raise PackageError(f"{where}: type is not valid: {stream.get('type', '')}")
    pipeline = stream.get("ingest_pipeline")
    if pipeline:
        _validate_pipeline(fs, f"{base}/elasticsearch/ingest_pipeline", pipeline, where)
    _validate_required_fields(fs, f"{base}/fields", where)
    for item in stream.get("streams", []):
        has_input, has_package = bool(item.get("input")), bool(item.get("package"))
        if has_input == has_package:
            raise PackageError(
                f"{where}: stream {item.get('title', '')} must have a input or package"
                + (", but not both" if has_input else "")
            )


def _validate_pipeline(fs: PackageFS, directory: str, name: str, where: str) -> None:
    found = False
    for ext in (".json", ".yml"):
        path = f"{directory}/{name}{ext}"
        if fs.stat(path) is None:
            continue
        body = fs.read(path)
        try:
            parsed = json.loads(body) if ext == ".json" else load_yaml(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise PackageError(f"{where}: invalid ingest pipeline {path}: {exc}") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise PackageError(f"{where}: ingest pipeline {path} is not an object")
        found = True
    if not found:
        raise PackageError(f"{where}: defined ingest_pipeline does not exist: {directory}/{name}")


def _validate_required_fields(fs: PackageFS, directory: str, where: str) -> None:
    entries: list[_Entry] = []
    for path in fs.glob(f"{directory}/*"):
        info = fs.stat(path)
        if info is None or info.is_dir:
            raise PackageError(f"{where}: reading file failed (path: {path})")
        try:
            entries.extend(_field_entries(fs.read(path)))
        except (yaml.YAMLError, ValueError) as exc:
            reason = " ".join(str(exc).split())
            raise PackageError(
                f"{where}: unmarshaling file failed (path: {path}): {reason}"
            ) from None
    for name, expected in REQUIRED_FIELDS:
        found = _find_field(entries, name)
        if found is None:
            found = _find_nested_field(entries, name)
        if found is None:
            raise PackageError(
                f"{where}: validating required fields failed: field '{name}' not found"
            )
        if found == "":
            raise PackageError(f"{where}: field '{name}' found, but type is undefined")
        if found != expected:
            raise PackageError(
                f"{where}: wrong field type for '{name}' (expected: {expected}, got: {found})"
            )


# A fields entry reduced to what the check reads: whether it has a `name` key, its `name`
# and `type` when they are strings (None otherwise), and the nodes of its `fields` list.
_Entry = tuple[bool, str | None, str | None, list | None]
_STR = "tag:yaml.org,2002:str"


def _field_entries(data: bytes) -> list[_Entry]:
    """The top-level entries of a fields file, read from the YAML node tree.

    Fields files are the largest YAML in a package and only four names are looked up,
    so the document is composed but not constructed into Python objects.
    """
    root = yaml.compose(data, Loader=ManifestLoader)  # noqa: S506 - a SafeLoader subclass
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise ValueError("expected a list of fields")
    return [_entry(item) for item in root.value]


def _entry(node: yaml.Node) -> _Entry:
    if not isinstance(node, yaml.MappingNode):
        raise ValueError("expected a field definition object")
    has_name, name, kind, children = False, None, None, None
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        is_text = isinstance(value, yaml.ScalarNode) and value.tag == _STR
        if key.value == "name":
            has_name, name = True, value.value if is_text else None
        elif key.value == "type":
            kind = value.value if is_text else None
        elif key.value == "fields":
            children = value.value if isinstance(value, yaml.SequenceNode) else None
    return has_name, name, kind, children


def _find_field(entries: list[_Entry], name: str) -> str | None:
    """The type of the field called `name`; "" when it has no type; None when absent.

    As in Go, an entry without a `name` key makes the lookup fail.
    """
    for has_name, entry_name, kind, _ in entries:
        if not has_name:
            return None
        if entry_name == name:
            return kind or ""
    return None


def _find_nested_field(entries: list[_Entry], name: str) -> str | None:
    """`data_stream.type` declared as a group `data_stream` with `fields: [{name: type}]`."""
    *groups, last = name.split(".")
    current = entries
    for group in groups:
        for has_name, entry_name, _, children in current:
            if not has_name:
                return None
            if entry_name == group:
                if children is None:
                    return None
                try:
                    current = [_entry(child) for child in children]
                except ValueError:
                    return None
                break
        else:
            return None
    return _find_field(current, last)
