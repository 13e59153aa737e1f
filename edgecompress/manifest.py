"""The manifest: what ``compress`` built for one profile (``OUT/<profile>/manifest.json``).

Field names are a stable contract (DESIGN.md); scripts and users read them. Writes are
atomic (temporary file, then rename) so a half-written manifest is never read.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


@dataclass
class TensorSpec:
    name: str
    shape: list
    dtype: str = "float32"


@dataclass
class Fidelity:
    max_abs: Optional[float] = None
    cosine: Optional[float] = None
    top1_agreement: Optional[float] = None
    accuracy: Optional[float] = None
    reference_accuracy: Optional[float] = None
    sqnr_db: Optional[float] = None
    samples: int = 0


@dataclass
class ArtifactRecord:
    path: str                      # relative to the manifest's folder
    format: str                    # onnx | tflite
    precision: str                 # fp32 | fp16 | dynamic | int8
    layout: str = "NCHW"           # input layout the artifact takes
    size_bytes: int = 0
    sha256: Optional[str] = None
    status: str = "ok"             # ok | failed
    error: Optional[str] = None
    fidelity: Fidelity = field(default_factory=Fidelity)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    passes: list[dict[str, Any]] = field(default_factory=list)
    gzip_size_bytes: Optional[int] = None
    seconds: Optional[float] = None
    calibration: Optional[str] = None   # int8: how activation ranges were calibrated

    @classmethod
    def from_dict(cls, d: dict) -> "ArtifactRecord":
        d = dict(d)
        d["fidelity"] = Fidelity(**(d.get("fidelity") or {}))
        d["inputs"] = [TensorSpec(**t) for t in d.get("inputs") or []]
        d["outputs"] = [TensorSpec(**t) for t in d.get("outputs") or []]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Manifest:
    model: dict[str, Any]
    profile: str
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    edgecompress_version: str = ""
    created: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)   # cache steps: step, key, cached, seconds
    path: Optional[Path] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return d

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        self.path = path
        return path

    @classmethod
    def read(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        d = json.loads(path.read_text())
        m = cls(model=d["model"], profile=d["profile"],
                artifacts=[ArtifactRecord.from_dict(a) for a in d.get("artifacts", [])],
                data=d.get("data", {}), edgecompress_version=d.get("edgecompress_version", ""),
                created=d.get("created", ""), steps=d.get("steps", []))
        m.path = path
        return m

    @property
    def folder(self) -> Path:
        """The folder the manifest was written to or read from (its artifacts' paths are relative to it)."""
        if self.path is None:
            from .errors import UsageError

            raise UsageError(f"manifest of profile {self.profile!r} has no folder: it was never written or read; "
                             f"call .write(PATH) first, or use Manifest.read(PATH)")
        return self.path.parent

    def ok_artifacts(self) -> list[ArtifactRecord]:
        return [a for a in self.artifacts if a.status == "ok"]
