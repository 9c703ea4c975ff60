"""Small valid packages written by the tests, and ways to break them."""

from __future__ import annotations

import zipfile
from pathlib import Path

FIELDS = """\
- name: data_stream.type
  type: constant_keyword
- name: data_stream.dataset
  type: constant_keyword
- name: data_stream.namespace
  type: constant_keyword
- name: '@timestamp'
  type: date
"""


def manifest(name: str, version: str, fields: dict[str, str | None] | None = None) -> str:
    lines = {
        "format_version": "3.0.0",
        "name": name,
        "title": f"{name.title()} Integration",
        "version": version,
        "description": f"Collects {name} data.",
        "type": "integration",
        "categories": "[web]",
        "conditions.kibana.version": '"^8.13.0 || ^9.0.0"',
        "owner.github": "fleetgap/tests",
        "owner.type": "elastic",
    }
    lines.update(fields or {})
    return "".join(f"{k}: {v}\n" for k, v in lines.items() if v is not None)


def package_files(
    name: str, version: str, fields: dict[str, str | None] | None = None
) -> dict[str, str]:
    return {
        "manifest.yml": manifest(name, version, fields),
        "docs/README.md": f"# {name}\n",
        "data_stream/logs/manifest.yml": "title: Logs\ntype: logs\n",
        "data_stream/logs/fields/base-fields.yml": FIELDS,
    }


def write_dir_package(
    base: Path, name: str, version: str, files: dict[str, str] | None = None
) -> Path:
    root = base / name / version
    for relative, text in (files or package_files(name, version)).items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def write_zip_package(
    base: Path, name: str, version: str, files: dict[str, str] | None = None
) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{name}-{version}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, text in (files or package_files(name, version)).items():
            archive.writestr(f"{name}-{version}/{relative}", text)
    return path
