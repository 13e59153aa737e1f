"""A given artifact measured as it is (``run FILE.tflite``, ``run FILE.onnx --as-is``): no compression.

:func:`as_is_model` wraps the file so ``runs.run`` treats it like a model: its inputs and outputs
are the file's own (names, dtypes, dims; ``--input-shape`` fixes dynamic ones), the reference is
the SAME file run on the host through THE executor, and ``as_is(profile, ...)`` writes a
one-artifact manifest ``OUT/<profile>/`` for it -- so device fidelity compares the device's
run of the file with the host's run of the same file.
"""
from __future__ import annotations

import datetime
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ._version import __version__
from .errors import ModelError
from .manifest import ArtifactRecord, Manifest, TensorSpec, sha256_file
from .models import LoadedModel, _apply_shapes, _shape_dict


class GivenArtifact(LoadedModel):
    def call(self, feeds: dict) -> dict:
        raise NotImplementedError     # run() goes through the executor as a whole

    @property
    def batchable(self) -> bool:
        return False

    def run(self, samples: dict, feedback: Optional[dict] = None, record: Optional[dict] = None) -> dict:
        return self._runner.run_raw(samples, feedback)

    def as_is(self, profile, held, feedback, progress) -> Manifest:
        fmt = self.source_path.suffix.lstrip(".")
        folder = self.out / profile.name
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"given.{fmt}"
        shutil.copyfile(self.source_path, dst)
        ins, outs = self._describe()
        rec = ArtifactRecord(path=dst.name, format=fmt, precision="as-is", layout=self.layout,
                             size_bytes=dst.stat().st_size, sha256=sha256_file(dst), inputs=ins, outputs=outs,
                             notes=["measured as given (not compressed); device fidelity is against this file run "
                                    "on the host"])
        progress(f"[{profile.name}] {dst.name}: measured as given")
        m = Manifest(model={"source": self.source, "sha256": self.sha256, "kind": "artifact", "layout": self.layout,
                            "inputs": [asdict(t) for t in self.inputs], "outputs": [asdict(t) for t in self.outputs],
                            "feedback": dict(feedback or {})},
                     profile=profile.name, artifacts=[rec], edgecompress_version=__version__,
                     created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        m.write(folder / "manifest.json")
        return m

    def _describe(self):
        from .exporters.execute import describe

        own = {t.name: t.name for t in self.inputs}
        return describe(self._runner, {t.name: t.name for t in self.outputs}, own)


def as_is_model(path, out, input_shape=None) -> GivenArtifact:
    from .exporters.execute import ArtifactRunner

    path = Path(path)
    if not path.is_file() or path.suffix not in (".onnx", ".tflite"):
        raise ModelError(f"{path}: a file measured as is must be an existing .onnx or .tflite file")
    try:
        runner = ArtifactRunner(path, layout="NHWC" if path.suffix == ".tflite" else "NCHW",
                                source_layout="NHWC" if path.suffix == ".tflite" else "NCHW")
    except Exception as e:
        raise ModelError(f"{path}: cannot load ({type(e).__name__}: {str(e)[:300]})") from e

    def spec(t):
        return TensorSpec(t.name, list(t.full_shape), "float32" if t.quantized else t.dtype.name)

    m = GivenArtifact("artifact", None, [spec(t) for t in runner.model.inputs],
                      [spec(t) for t in runner.model.outputs], runner.model.layout, str(path), sha256_file(path))
    m._runner, m.source_path, m.out = runner, path, Path(out)
    _apply_shapes(m, _shape_dict(input_shape))
    for name, dims in m.shapes.items():
        runner.model.set_shape(name, dims)
    return m
