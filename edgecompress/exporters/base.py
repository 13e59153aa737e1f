"""What every exporter gets (``ExportContext``) and gives back (``Built``).

An exporter's ``export(ctx, spec) -> Built`` builds one artifact for one
``profiles.ArtifactSpec`` inside the content-addressed cache (``ctx.cache.step``), so a second
profile asking for the same artifact reuses the file. It raises on failure; the caller marks
that artifact failed and goes on with the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..cache import Cache


@dataclass
class Built:
    path: Path                    # the artifact file (inside the cache: copy, don't move)
    layout: str                   # input layout the artifact takes
    tools: dict[str, str]         # tool versions that made it
    calibration: Optional[str] = None
    notes: list = field(default_factory=list)       # what the format / converter changed, in words
    float_ops: list = field(default_factory=list)   # op types left in float
    opset: Optional[dict] = None


@dataclass
class ExportContext:
    model: Any                    # models.LoadedModel (after passes)
    cache: Cache
    calib: Optional[Any] = None   # data.Dataset used for calibration (source layout)
    progress: Callable[[str], None] = lambda msg: None
    memo: dict = field(default_factory=dict)   # results shared between exporters in one run
    batch: Optional[int] = None                # profile's fixed batch for ONNX artifacts (None: keep the source's)

    def model_key(self) -> dict[str, Any]:
        """What identifies the model in every cache key."""
        m = self.model
        return {"model": m.sha256, "kind": m.kind, "layout": m.layout,
                "inputs": [(t.name, list(t.shape), t.dtype) for t in m.inputs],
                "shapes": sorted((k, list(v)) for k, v in m.shapes.items()), "batch": self.batch}

    def calib_key(self) -> str:
        return self.calib.sha256 if self.calib is not None else "none"

    def calib_x(self) -> np.ndarray:
        if self.calib is None:
            raise ValueError("calibration data is needed for this artifact")
        return self.calib.x

    def calib_samples(self) -> dict:
        """{input name: (N, *whole input tensor)} calibration samples."""
        if self.calib is None:
            raise ValueError("calibration data is needed for this artifact")
        return self.calib.samples(self.model)


class Exporter:
    """Base class: ``name`` as registered; ``export`` builds one artifact."""

    name = ""

    def export(self, ctx: ExportContext, spec) -> Built:  # pragma: no cover - interface
        raise NotImplementedError
