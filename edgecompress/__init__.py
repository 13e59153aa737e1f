"""edgecompress: compress a trained model for edge devices and measure how it runs there.

The public verbs (imported lazily, so ``import edgecompress`` stays light)::

    load_profile(name_or_path)            -> DeviceProfile
    load_target(name, targets_file=None)  -> Target
    compress(model, profile, data=None, out="out") -> Manifest
    compress_many(model, profiles, data=None, out="out") -> {profile: Manifest}  (shared steps once)
    load_model(spec, weights=None, input_shape=None) -> LoadedModel
    benchmark(target, artifacts, ...)     -> [BenchmarkResult]  (a Manifest, records or paths; stored as a run)
    check_target(target, targets_file=None) -> dict    (what the device is, what to install)
    run(model, targets, RunConfig(...))   -> RunResult    (compress + deploy + measure + store)
    compare(run_ids=None, db=None)        -> Comparison   (rows, recommendations, checks)
    tune(model, targets, data=..., trials=20) -> TuneResult (per target: candidates, Pareto, recommended)

    m = compress("model.onnx", "x86-64-host", data="digits.npz")
    res = benchmark("local", m)           # compare() now shows res (res.run_id)

Bad arguments raise :class:`UsageError` (exit code 2) before any work.
"""
from __future__ import annotations

import sys as _sys
import types as _types

from ._version import __version__
from .errors import EdgeCompressError, UsageError

_VERBS = {
    "load_profile": "edgecompress.profiles",
    "load_target": "edgecompress.targets",
    "compress": "edgecompress.compress",
    "compress_many": "edgecompress.compress",
    "load_model": "edgecompress.models",
    "benchmark": "edgecompress.deploy",
    "check_target": "edgecompress.deploy",
    "BenchmarkResult": "edgecompress.device.result",
    "run": "edgecompress.runs",
    "RunConfig": "edgecompress.runs",
    "compare": "edgecompress.report",
    "tune": "edgecompress.tune",
}


def __getattr__(name: str):
    if name in _VERBS:
        import importlib

        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'edgecompress' has no attribute {name!r}")


class _Package(_types.ModuleType):
    """``edgecompress.compress`` is the verb even after the submodule of that name was imported
    (importing ``edgecompress.compress`` binds the module onto the package otherwise)."""

    def __getattribute__(self, name: str):
        value = super().__getattribute__(name)
        if name in _VERBS and isinstance(value, _types.ModuleType):
            return getattr(value, name)
        return value


_sys.modules[__name__].__class__ = _Package


__all__ = ["__version__", "EdgeCompressError", "UsageError", *_VERBS]
