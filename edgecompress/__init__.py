"""edgecompress: compress a trained model for edge devices and measure how it runs there.

The public verbs (imported lazily, so ``import edgecompress`` stays light)::

    load_profile(name_or_path)            -> DeviceProfile
    load_target(name, targets_file=None)  -> Target
    compress(model, profile, data=None, out="out") -> Manifest
    compress_many(model, profiles, data=None, out="out") -> {profile: Manifest}  (shared steps once)
    load_model(spec, weights=None, input_shape=None) -> LoadedModel
    benchmark(target, artifacts, ...)     -> list[dict]   (benchmark results, DESIGN.md)
    run(model, targets, ...)              -> RunResult    (compress + deploy + measure + store)
    compare(run_ids=None, db=None)        -> Comparison   (rows, recommendations, checks)
    tune(model, targets, data=..., trials=20) -> TuneResult (per target: candidates, Pareto, recommended)
"""
from __future__ import annotations

from ._version import __version__
from .errors import EdgeCompressError

_VERBS = {
    "load_profile": "edgecompress.profiles",
    "load_target": "edgecompress.targets",
    "compress": "edgecompress.compress",
    "compress_many": "edgecompress.compress",
    "load_model": "edgecompress.models",
    "benchmark": "edgecompress.deploy",
    "run": "edgecompress.runs",
    "compare": "edgecompress.report",
    "tune": "edgecompress.tune",
}


def __getattr__(name: str):
    if name in _VERBS:
        import importlib

        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'edgecompress' has no attribute {name!r}")


__all__ = ["__version__", "EdgeCompressError", *_VERBS]
