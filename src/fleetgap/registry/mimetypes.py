"""Content-Type of a served file, as the Go registry in its Docker image decides it
(spec: epr-api §7): the extension table first, then content sniffing.

Go's ``mime.TypeByExtension`` starts from a small built-in table, overlays the system's
``/etc/mime.types`` (the registry image installs mailcap), and the registry then registers
four types of its own. ``_TABLE`` below is that result, written out by us; it never reads
the host's mime files, so the answer does not depend on the machine fleetgap runs on.
"""

from __future__ import annotations

__all__ = ["content_type", "extension", "sniff", "type_by_extension"]

# Types in the system table: a curated mailcap-like list. Go adds "; charset=utf-8" to every
# text/* type that comes from there without a charset (mime.setExtensionType).
_SYSTEM = {
    ".asc": "text/plain",
    ".bin": "application/octet-stream",
    ".bmp": "image/bmp",
    ".bz2": "application/x-bzip2",
    ".conf": "text/plain",
    ".csv": "text/csv",
    ".doc": "application/msword",
    ".eot": "application/vnd.ms-fontobject",
    ".exe": "application/octet-stream",
    ".gz": "application/gzip",
    ".ics": "text/calendar",
    ".jpe": "image/jpeg",
    ".log": "text/plain",
    ".mp3": "audio/mpeg",
    ".mp4": "video/mp4",
    ".otf": "font/otf",
    ".rpm": "application/x-rpm",
    ".rtf": "application/rtf",
    ".sh": "application/x-sh",
    ".sig": "application/pgp-signature",  # spec: epr-api §3.8
    ".tar": "application/x-tar",
    ".text": "text/plain",
    ".tgz": "application/gzip",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".tsv": "text/tab-separated-values",
    ".ttf": "font/ttf",
    ".txt": "text/plain",
    ".webm": "video/webm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".xhtml": "application/xhtml+xml",
    ".xz": "application/x-xz",
    ".yaml": "application/yaml",
}

# Go's built-in table (mime/type.go), exact strings.
_GO_BUILTIN = {
    ".avif": "image/avif",
    ".css": "text/css; charset=utf-8",
    ".gif": "image/gif",
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
}

# Registered by the registry at start-up (mime.AddExtensionType), so they win; exact case.
_REGISTRY = {
    ".zip": "application/zip",
    ".ico": "image/x-icon",
    ".md": "text/markdown; charset=utf-8",
    ".yml": "text/yaml; charset=UTF-8",
}


def _with_charset(media_type: str) -> str:
    if media_type.startswith("text/") and "charset=" not in media_type:
        return media_type + "; charset=utf-8"
    return media_type


_TABLE = {ext: _with_charset(t) for ext, t in _SYSTEM.items()} | _GO_BUILTIN | _REGISTRY


def extension(name: str) -> str:
    """Go ``filepath.Ext``: from the last dot of the last path element, or ``""``."""
    for index in range(len(name) - 1, -1, -1):
        char = name[index]
        if char == ".":
            return name[index:]
        if char == "/":
            break
    return ""


def type_by_extension(ext: str) -> str | None:
    """Go ``mime.TypeByExtension`` (case-sensitive, then lower-case lookup); None if unknown."""
    found = _TABLE.get(ext)
    if found is None:
        found = _TABLE.get(ext.lower())
    return found


def content_type(name: str, head: bytes | None) -> str | None:
    """Type for file ``name``: by extension, else by sniffing ``head`` (the first 512 bytes).
    Returns None only when the extension is unknown and ``head`` is None (not read yet)."""
    found = type_by_extension(extension(name))
    if found is not None or head is None:
        return found
    return sniff(head)


SNIFF_LENGTH = 512

_HTML_TAGS = tuple(
    tag.encode()
    for tag in (
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    )
)

# (prefix, type), tried in order after the HTML/XML checks: the WHATWG signatures Go uses.
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"OggS\x00", "application/ogg"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
)

_BOMS = (
    (b"\xfe\xff", "text/plain; charset=utf-16be"),
    (b"\xff\xfe", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf", "text/plain; charset=utf-8"),
)

_WHITESPACE = b"\t\n\x0c\r "
# Bytes that make data binary for the text check (WHATWG "binary data byte").
_BINARY = frozenset(range(0x00, 0x09)) | {0x0B} | frozenset(range(0x0E, 0x1B))
_BINARY |= frozenset(range(0x1C, 0x20))


def sniff(data: bytes) -> str:
    """Go ``http.DetectContentType`` for the cases a package holds: HTML, XML, PDF, images,
    archives, text (``text/plain; charset=utf-8``), else ``application/octet-stream``."""
    data = data[:SNIFF_LENGTH]
    body = data.lstrip(_WHITESPACE)
    for tag in _HTML_TAGS:
        end = len(tag)
        if len(body) > end and body[:end].upper() == tag and body[end : end + 1] in (b" ", b">"):
            return "text/html; charset=utf-8"
    if body.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    if len(data) >= 4:  # Go's byte-order-mark signatures are 4-byte masks
        for bom, media_type in _BOMS:
            if data.startswith(bom):
                return media_type
    for prefix, media_type in _MAGIC:
        if data.startswith(prefix):
            return media_type
    if data[:4] == b"RIFF" and data[8:14] == b"WEBPVP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wave"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/avi"
    if _is_mp4(data):
        return "video/mp4"
    if not any(byte in _BINARY for byte in body):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_mp4(data: bytes) -> bool:
    if len(data) < 12 or data[4:8] != b"ftyp":
        return False
    box_size = int.from_bytes(data[:4], "big")
    if box_size % 4 != 0 or len(data) < box_size:
        return False
    return any(data[at : at + 3] == b"mp4" for at in range(8, box_size, 4) if at != 12)
