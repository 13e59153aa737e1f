"""Artifact resolution: what ``benchmark`` and ``run`` accept, as records with absolute paths.

Accepted: a :class:`~edgecompress.manifest.Manifest` (its ``ok`` artifacts), an
:class:`~edgecompress.manifest.ArtifactRecord` (a relative path is taken from the manifest it
came with, or the working folder), a ``.onnx``/``.tflite`` path, a ``manifest.json`` path or its
folder, or a list of any of these. Relative paths are made absolute here, once.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

from ..device.result import ArtifactInfo
from ..errors import UsageError
from ..exporters import CAPABILITIES
from ..manifest import ArtifactRecord, Manifest, sha256_file

PRECISIONS = tuple(dict.fromkeys(c.precision for c in CAPABILITIES))
_HASHES: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def record_for_file(path: Path) -> ArtifactRecord:
    """An :class:`ArtifactRecord` for a bare ``.onnx``/``.tflite`` file (precision from ``*.int8.tflite``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    parts = path.name.split(".")
    precision = parts[-2] if len(parts) >= 3 and parts[-2] in PRECISIONS else None
    return ArtifactRecord(path=str(path.resolve()), format=fmt, precision=precision,
                          layout="NHWC" if fmt == "tflite" else "NCHW", size_bytes=path.stat().st_size,
                          sha256=file_sha256(path))


def located(rec: ArtifactRecord, folder: Optional[Path]) -> ArtifactRecord:
    """A copy of ``rec`` whose path is absolute (relative paths are relative to ``folder``)."""
    p = Path(rec.path)
    if not p.is_absolute():
        p = (Path(folder) if folder is not None else Path.cwd()) / p
    return dataclasses.replace(rec, path=str(p.resolve()))


def manifest_artifacts(m: Manifest, include_failed: bool = False) -> list[ArtifactRecord]:
    """The manifest's built (``ok`` and ``degraded``) artifacts with absolute paths (``m.folder`` says
    when it has none); ``include_failed``: the failed ones too (``bench`` lists them, never runs them)."""
    recs = m.artifacts if include_failed else m.ok_artifacts()
    if all(Path(r.path).is_absolute() for r in recs):
        return [located(r, None) for r in recs]
    return [located(r, m.folder) for r in recs]


def expand_artifacts(specs) -> list[ArtifactRecord]:
    """Artifact records (absolute paths) from any mix of what the module docstring lists.

    A missing file or an unknown kind is a :class:`~edgecompress.errors.UsageError` (exit 2)
    naming it and what is valid.
    """
    if isinstance(specs, (str, Path, ArtifactRecord, Manifest)):
        specs = [specs]
    out: list[ArtifactRecord] = []
    for spec in specs:
        if isinstance(spec, Manifest):
            out += manifest_artifacts(spec, include_failed=True)
            continue
        if isinstance(spec, ArtifactRecord):
            out.append(located(spec, None))
            continue
        if isinstance(spec, (list, tuple)):
            out += expand_artifacts(spec)
            continue
        if not isinstance(spec, (str, Path)):
            raise UsageError(f"cannot benchmark a {type(spec).__name__}: give a Manifest, ArtifactRecord(s), "
                             f".onnx/.tflite paths, a manifest.json or its folder")
        p = Path(spec)
        if p.is_dir():
            p = p / "manifest.json"
        if not p.exists():
            raise UsageError(f"{spec}: not found; give a .onnx/.tflite file, a manifest.json or its folder")
        if p.suffix == ".json":
            try:
                m = Manifest.read(p)
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{p}: not a readable manifest: {e}") from e
            out += [located(r, p.parent) for r in m.ok_artifacts()]
        elif p.suffix.lower() in (".onnx", ".tflite"):
            out.append(record_for_file(p))
        else:
            raise UsageError(f"{spec}: unknown artifact kind {p.suffix!r}; valid: .onnx, .tflite, manifest.json "
                             f"or a folder holding one")
    return out


def artifact_info(rec: ArtifactRecord) -> ArtifactInfo:
    """The result's ``artifact`` block for a record (what the host knows of the file)."""
    return ArtifactInfo(sha256=rec.sha256, format=rec.format, precision=rec.precision, layout=rec.layout,
                        path=rec.path, size_bytes=rec.size_bytes)


Spec = Union[str, Path, ArtifactRecord, Manifest]
