"""Host fidelity (what ``compress`` writes in the manifest) and device fidelity (the runner's outputs
on a target, compared on the host) agree for the same artifact and the same inputs.

Written against the public paths only — ``compress``'s manifest, the runner on the ``local`` target
through ``DeviceSession.bench(inputs=...)``, ``fidelity.compare`` — so it holds whichever executor
adapts layouts and (de)quantizes on each side.
"""
from __future__ import annotations

import numpy as np
import pytest

from profile_yaml import write_profile

from edgecompress import compress
from edgecompress.compress import CALIB_SAMPLES, EVAL_SAMPLES
from edgecompress.data import load_data
from edgecompress.deploy import DeviceSession, expand_artifacts
from edgecompress.fidelity import compare
from edgecompress.models import load_model
from edgecompress.profiles import Measure

pytestmark = pytest.mark.slow


def test_host_and_device_fidelity_agree_per_artifact(tmp_path, torch_digits):
    import torch

    model, (_, _, x_test, y_test) = torch_digits
    onnx = tmp_path / "digits.onnx"
    torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(onnx), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"])
    data = tmp_path / "digits.npz"
    np.savez(data, x=x_test[:600], y=y_test[:600])
    profile = write_profile(tmp_path / "agree.yaml", "agree",
                            [("onnx", "fp32"), ("onnx", "int8"), ("onnx", "dynamic"), ("tflite", "fp32"),
                             ("tflite", "int8")], runtimes=["onnxruntime", "tflite"])
    manifest = compress(str(onnx), str(profile), data=str(data), out=tmp_path / "out")
    records = expand_artifacts(manifest)
    assert len(records) == 5, [(a.precision, a.format, a.error) for a in manifest.artifacts]

    loaded = load_model(str(onnx))
    _, held = load_data(data, loaded).split(CALIB_SAMPLES, EVAL_SAMPLES)   # the samples compress held out
    reference = np.asarray(loaded.predict(held.x))
    with DeviceSession("local") as s:
        for rec in records:
            res = s.bench(rec, measure=Measure(warmup=1, runs=5, min_seconds=0), inputs=held.x,
                          input_layout=loaded.layout)
            assert res.ok, (rec.precision, rec.format, res.error)
            device = compare(reference, res.outputs, held.y)
            host = rec.fidelity
            where = f"{rec.precision}.{rec.format}"
            assert device.samples == host.samples == len(held.x) == EVAL_SAMPLES, where
            assert device.top1_agreement == host.top1_agreement, where
            assert device.accuracy == host.accuracy and device.reference_accuracy == host.reference_accuracy, where
            assert device.cosine == pytest.approx(host.cosine, abs=1e-6), where
            assert device.max_abs == pytest.approx(host.max_abs, rel=1e-4, abs=1e-5), where
            assert host.accuracy >= 0.85, where                  # a real digits model, real fidelity
