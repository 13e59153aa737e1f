"""In-framework transforms applied before export (fuse, prune, distill, cluster, merge, qat).

Each pass is registered by name in ``PASSES`` (lazily, so torch / TensorFlow load only
when a pass runs) and has a small settings schema in ``specs.py``. ``validate_pass_specs``
checks a profile's or the CLI's pass list before any work starts; ``apply_passes`` runs them
in order and returns one report per pass for the manifest (``ArtifactRecord.passes``):
``{"pass": name, "settings": {...}, "measured": {...}, "seconds": s}``.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional, Type

from ..errors import EdgeCompressError, PassError
from ..registry import Registry, suggest

log = logging.getLogger(__name__)

PASSES: Registry = Registry("pass")
for _name in ("fuse", "prune", "distill", "cluster", "merge", "qat"):
    PASSES.register(_name, f"{__name__}.{_name}:run", _place=f"{__file__}")


def validate_pass_specs(specs: list[dict[str, Any]], source: str = "passes",
                        error: Type[Exception] = PassError) -> list:
    """Check every pass spec; raise ``error`` naming the source, ``passes[i].key`` and valid values.

    Returns the validated settings objects (one per spec).
    """
    from .specs import parse_spec

    if not isinstance(specs, list):
        raise error(f"{source}: passes: expected a list of passes, got {type(specs).__name__}")
    parsed = []
    for i, spec in enumerate(specs):
        name = spec.get("pass") if isinstance(spec, dict) else None
        if name not in PASSES:
            valid = ", ".join(PASSES.names()) or "(none yet)"
            raise error(f"{source}: passes[{i}].pass: unknown pass {name!r}"
                        f"{suggest(name, PASSES.names())}; valid: {valid}")
        parsed.append(parse_spec(spec, source, i, error))
    return parsed


def apply_passes(model, specs: list[dict[str, Any]], data=None, *, train_data=None, eval_data=None,
                 holdout: float = 0.2,
                 progress: Optional[Callable[[str], None]] = None) -> tuple[Any, list[dict]]:
    """Run ``specs`` in order on ``model`` (a ``models.LoadedModel``).

    ``data`` (a ``data.Dataset``; labelled for passes that train) is used to fine-tune and to
    measure accuracy: without ``train_data`` its last ``holdout`` fraction is held out for
    measuring and the rest is trained on; with ``eval_data`` (a subset of ``data``, e.g. the
    samples compress measures fidelity on) those are held out and the other samples of ``data``
    are trained on; with ``train_data`` (another Dataset) that set is trained on and all of
    ``data`` (or ``eval_data``) is held out. Returns ``(model', reports)``; ``model'`` has a
    new sha256 (old sha256 + settings). A pass that needs labelled data and gets none raises
    :class:`PassError` (exit 2); a pass that fails while running raises PassError (exit 1).
    """
    from .base import PassContext
    from .specs import settings

    parsed = validate_pass_specs(list(specs), "passes")
    if not parsed:
        return model, []
    if eval_data is not None and train_data is None and data is not None:
        ctx = PassContext.excluding(data.x, data.y, eval_data.x, eval_data.y)
    else:
        held = eval_data if eval_data is not None else data
        ctx = PassContext.from_arrays(
            getattr(held, "x", None), getattr(held, "y", None),
            train_x=getattr(train_data, "x", None), train_y=getattr(train_data, "y", None),
            holdout=holdout)
    if train_data is not None and getattr(train_data, "y", None) is None:
        raise PassError(f"train data {getattr(train_data, 'source', '')!r} has no labels (y); "
                        f"passes train on labelled data")
    reports = []
    for i, spec in enumerate(parsed):
        name = spec.pass_
        if progress:
            progress(f"pass {i + 1}/{len(parsed)}: {name}")
        t0 = time.perf_counter()
        try:
            model, measured = PASSES.get(name)(model, spec, ctx)
        except EdgeCompressError:
            raise
        except Exception as e:  # noqa: BLE001 - a framework failure becomes a clear PassError
            err = PassError(f"pass {name!r} (passes[{i}]) failed: {type(e).__name__}: {e}")
            err.exit_code = 1
            raise err from e
        seconds = round(time.perf_counter() - t0, 2)
        log.info("pass %s done in %.1f s", name, seconds)
        reports.append({"pass": name, "settings": settings(spec), "measured": _plain(measured),
                        "seconds": seconds, "data": ctx.data_summary()})
    return model, reports


def _plain(obj):
    """Reports as JSON-ready Python values (numpy scalars → float/int)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float):
        return round(obj, 6)
    return obj
