"""In-framework transforms applied before export (fuse, prune, distill, cluster, merge).

Each pass is registered by name in ``PASSES`` (lazily, so torch / TensorFlow load only
when a pass runs). ``validate_pass_specs`` checks a profile's or the CLI's pass list
before any work starts.
"""
from __future__ import annotations

from typing import Any, Type

from ..errors import ConfigError, PassError
from ..registry import Registry, suggest

PASSES: Registry = Registry("pass")


def validate_pass_specs(specs: list[dict[str, Any]], source: str = "passes",
                        error: Type[Exception] = PassError) -> None:
    """Raise ``error`` naming the source and index of the first bad pass spec."""
    for i, spec in enumerate(specs):
        name = spec.get("pass")
        if name not in PASSES:
            valid = ", ".join(PASSES.names()) or "(none yet)"
            raise error(f"{source}: passes[{i}].pass: unknown pass {name!r}"
                        f"{suggest(name, PASSES.names())}; valid: {valid}")
