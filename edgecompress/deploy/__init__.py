"""Deployment: the device session (lock, sync by hash, retries, time-outs; the same for every
mode), the agents that measure on a device (the Python runner, native ``benchmark_model``),
artifact resolution, target diagnosis, and the ``benchmark`` verb.

Names are imported lazily, so the schemas can read the agents' capabilities (``delegates``)
without importing the session.
"""
from __future__ import annotations

_NAMES = {
    "DeviceSession": "session", "DeviceAgent": "agents", "PythonAgent": "agents", "NativeAgent": "native",
    "BenchResults": "bench", "benchmark": "bench", "check_target": "diagnose",
    "expand_artifacts": "artifacts", "file_sha256": "artifacts",
}


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
