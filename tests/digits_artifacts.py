"""Trained digits models and their compressed outputs, built once per test session.

Shared by tests/test_models.py, tests/test_compress.py, tests/test_cli_compress.py and
tests/exporters/: each function memoizes its result in this module, so a test file's fixture
is a thin wrapper and nothing is trained or converted twice in one session.

The models are the digits CNN of ``edgecompress/examples/digits.py`` at width 32 (94 k
parameters), trained on 4,000 real MNIST digits; at width 16 (24 k parameters) a file's fixed
overhead (graph, per-channel scales) alone keeps INT8 files above 0.3x FP32.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

WIDTH = 32
EXAMPLE_FACTORY = str(Path(__file__).resolve().parent.parent / "edgecompress" / "examples" / "digits.py") + ":factory"

#: every artifact the tools can build
ALL_ARTIFACTS = [(f, p) for f in ("onnx", "tflite") for p in ("fp32", "fp16", "dynamic", "int8")]


@functools.lru_cache(maxsize=None)
def root() -> Path:
    path = Path(tempfile.mkdtemp(prefix="edgecompress-digits-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def profile_yaml(name: str, artifacts, calibration: str = "minmax") -> Path:
    """A profile file asking for ``artifacts`` [(format, precision)]."""
    lines = [f"name: {name}", "hardware: {arch: x86_64, cores: 2, memory_mb: 4096, peak_gflops: 50, memory_gbps: 10}",
             "power: {idle_w: 5, load_w: 15}", "runtimes: [onnxruntime, tflite]", "artifacts:"]
    for fmt, prec in artifacts:
        cal = f", calibration: {calibration}" if (fmt, prec) == ("onnx", "int8") else ""
        lines.append(f"  - {{format: {fmt}, precision: {prec}{cal}}}")
    path = root() / "profiles" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@functools.lru_cache(maxsize=None)
def torch_model():
    """(trained nn.Module, weights path, mnist data) — width 32."""
    import torch

    from edgecompress.examples.digits import factory, load_mnist, train_torch

    data = load_mnist()
    torch.manual_seed(0)  # the initial weights too: the suite's order must not change the model
    model = train_torch(factory(WIDTH), data[0], data[1])
    weights = root() / "digits32.pt"
    torch.save(model.state_dict(), weights)
    return model, weights, data


@functools.lru_cache(maxsize=None)
def data_files() -> tuple[Path, Path]:
    """(NCHW .npz, NHWC .npz): 300 held-out digits with labels (not used in training)."""
    _, _, (_, _, xte, yte) = torch_model()
    nchw, nhwc = root() / "digits_nchw.npz", root() / "digits_nhwc.npz"
    np.savez(nchw, x=xte[:300], y=yte[:300])
    np.savez(nhwc, x=xte[:300].transpose(0, 2, 3, 1), y=yte[:300])
    return nchw, nhwc


@functools.lru_cache(maxsize=None)
def onnx_file() -> Path:
    """The trained torch model as a plain ONNX file (legacy exporter, BatchNorm kept unfolded)."""
    import torch

    model = torch_model()[0]
    path = root() / "digits32.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"], do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return path


@functools.lru_cache(maxsize=None)
def torchscript_file() -> Path:
    import torch

    path = root() / "digits32.torchscript.pt"
    torch.jit.trace(torch_model()[0], torch.zeros(1, 1, 28, 28)).save(str(path))
    return path


@functools.lru_cache(maxsize=None)
def keras_file() -> Path:
    """The Keras twin, trained the same way, saved as ``.keras`` and ``.h5``."""
    from edgecompress.examples.digits import trained_keras

    model, _ = trained_keras(width=WIDTH, epochs=4)
    path = root() / "digits32.keras"
    model.save(path)
    model.save(root() / "digits32.h5")
    return path


@functools.lru_cache(maxsize=None)
def factory_spec() -> str:
    """``file.py:factory`` for the width-32 CNN: a user's own model file, as users write them."""
    path = root() / "digits32.py"
    path.write_text("from edgecompress.examples.digits import factory as _digits\n\n"
                    "INPUT_SHAPE = (1, 1, 28, 28)\n\n\n"
                    f"def factory():\n    return _digits(width={WIDTH})\n")
    return f"{path}:factory"


SOURCES = {
    "factory": lambda: dict(model=factory_spec(), weights=torch_model()[1], data=data_files()[0]),
    "onnx": lambda: dict(model=onnx_file(), weights=None, data=data_files()[0]),
    "keras": lambda: dict(model=keras_file(), weights=None, data=data_files()[1]),
}


@functools.lru_cache(maxsize=None)
def compressed(source: str):
    """The manifest of compressing ``source`` (a SOURCES key) with every artifact; one cache."""
    from edgecompress.compress import compress
    from edgecompress.models import load_model

    s = SOURCES[source]()
    model = load_model(s["model"], weights=s["weights"])
    return compress(model, profile_yaml("everything", ALL_ARTIFACTS), s["data"], root() / f"out-{source}",
                    cache_dir=root() / "cache")
