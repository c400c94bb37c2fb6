"""Evidence files: which uploads are accepted, how they are checked, how they are served.

One set of rules for every place that takes evidence (manual work items, compensating-control
evidence). An upload is accepted by its extension *and* its content: binary formats must start
with their magic bytes, text formats must be text, and nothing that a browser would run (HTML,
SVG, scripts) or an operating system would execute passes under any name. Files are always
served as attachments with the content type that belongs to their extension, never the one
the uploader claimed.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass

from governance.core.errors import DomainError

MAX_EVIDENCE_BYTES = 10 * 1024 * 1024
# Extension -> (content type it is served with, leading bytes it must have).
EVIDENCE_TYPES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".csv": ("text/csv", ()),
    ".txt": ("text/plain", ()),
    ".json": ("application/json", ()),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        (b"PK\x03\x04",),
    ),
    ".docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        (b"PK\x03\x04",),
    ),
}
ACCEPTED_LABEL = "PDF, CSV, TXT, JSON, PNG, JPG, XLSX or DOCX"
# Office files are ZIP archives: the part that makes them what their extension says.
_OFFICE_PART = {".xlsx": "xl/", ".docx": "word/"}
# Leading bytes of executables (PE, ELF, Mach-O, Java class / fat Mach-O) and scripts.
_EXECUTABLE_MAGIC = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
# Markup a browser would render or run, looked for near the start of text files.
_MARKUP = (b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<iframe")
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class CheckedUpload:
    name: str
    extension: str
    content_type: str
    size: int
    sha256: str


def content_type_for(name: str) -> str:
    """The content type a stored evidence file is served with (by its extension)."""
    ext = os.path.splitext(name)[1].lower()
    return EVIDENCE_TYPES.get(ext, ("application/octet-stream", ()))[0]


def _read_head(upload) -> bytes:
    upload.seek(0)
    head = upload.read(_SNIFF_BYTES)
    upload.seek(0)
    return head


def _is_office_file(upload, ext: str) -> bool:
    try:
        upload.seek(0)
        with zipfile.ZipFile(upload) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        upload.seek(0)
    return "[Content_Types].xml" in names and any(n.startswith(_OFFICE_PART[ext]) for n in names)


def check_evidence_upload(upload, *, field: str = "file") -> CheckedUpload:
    """Check an uploaded evidence file; raise :class:`DomainError` (naming ``field``) with a
    message a person can act on, or return what was found (type, size, SHA-256)."""
    name = os.path.basename(getattr(upload, "name", "") or "")
    ext = os.path.splitext(name)[1].lower()
    if ext not in EVIDENCE_TYPES:
        raise DomainError(
            f"This file type is not accepted as evidence. Upload a {ACCEPTED_LABEL} file.",
            field=field,
        )
    size = upload.size or 0
    if size > MAX_EVIDENCE_BYTES:
        raise DomainError(
            f"The file is {size / 1024 / 1024:.1f} MB; evidence files may be at most "
            f"{MAX_EVIDENCE_BYTES // (1024 * 1024)} MB.",
            field=field,
        )
    if size == 0:
        raise DomainError("The file is empty; upload the export or screenshot itself.", field=field)
    head = _read_head(upload)
    label = ext[1:].upper()
    magic = EVIDENCE_TYPES[ext][1]
    if magic and not any(head.startswith(m) for m in magic):
        raise DomainError(
            f"The file's content is not a {label} file; upload the original export or screenshot.",
            field=field,
        )
    if ext in _OFFICE_PART and not _is_office_file(upload, ext):
        raise DomainError(
            f"The file's content is not a {label} document; upload the original file.",
            field=field,
        )
    if not magic:
        if b"\x00" in head:
            raise DomainError(
                f"The file's content is not {label} text; upload the original export.",
                field=field,
            )
        if head.startswith(_EXECUTABLE_MAGIC):
            raise DomainError(
                "The file is a program or script, not evidence; upload an export.", field=field
            )
        lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if any(tag in lowered for tag in _MARKUP):
            raise DomainError(
                f"The file contains web-page markup (HTML or SVG), which is not accepted as "
                f"{label} evidence.",
                field=field,
            )
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in iter(lambda: upload.read(64 * 1024), b""):
        digest.update(chunk)
    upload.seek(0)
    return CheckedUpload(
        name=name,
        extension=ext,
        content_type=EVIDENCE_TYPES[ext][0],
        size=size,
        sha256=digest.hexdigest(),
    )
