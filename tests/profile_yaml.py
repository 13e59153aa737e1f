"""Shared profile YAML for the tests: a small x86 host profile with quick measure settings,
overridable key by key (``write_profile(path, "fp32-only", [("onnx", "fp32")], runtimes=[...])``)."""
from __future__ import annotations

from pathlib import Path

import yaml

HARDWARE = {"arch": "x86_64", "cores": 2, "memory_mb": 4096, "peak_gflops": 50, "memory_gbps": 10}
QUICK_MEASURE = {"warmup": 1, "runs": 5, "min_seconds": 0, "threads": 1}


def profile_dict(name: str, artifacts=(("onnx", "fp32"),), **over) -> dict:
    """A profile document asking for ``artifacts`` [(format, precision)]; ``over`` replaces keys."""
    doc = {"name": name, "hardware": dict(HARDWARE), "power": {"idle_w": 5, "load_w": 15},
           "runtimes": ["onnxruntime"], "artifacts": [{"format": f, "precision": p} for f, p in artifacts],
           "measure": dict(QUICK_MEASURE)}
    doc.update(over)
    return doc


def write_profile(path: str | Path, name: str, artifacts=(("onnx", "fp32"),), **over) -> Path:
    """Write :func:`profile_dict` to ``path`` (folders made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile_dict(name, artifacts, **over)))
    return path
