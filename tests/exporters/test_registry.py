"""The capability table and the exporter registry."""
from __future__ import annotations

import pytest

from edgecompress.errors import ProfileError, UnknownNameError
from edgecompress.exporters import CAPABILITIES, EXPORTERS, check_supported, find_capability
from edgecompress.profiles import ArtifactSpec


def test_every_source_gets_every_format_and_precision():
    for source in ("torch", "onnx", "keras"):
        for fmt in ("onnx", "tflite"):
            for prec in ("fp32", "fp16", "dynamic", "int8"):
                cap = find_capability(source, fmt, prec)
                assert cap is not None and cap.exporter in EXPORTERS
    assert find_capability("keras", "tflite", "int8").exporter == "keras-tflite"
    assert find_capability("torch", "tflite", "int8").exporter == "onnx2tf"
    assert len({(c.source, c.format, c.precision) for c in CAPABILITIES}) == len(CAPABILITIES)


def test_unsupported_combination_is_refused_before_work_with_what_is_supported():
    with pytest.raises(ProfileError) as e:
        check_supported("tflite", [ArtifactSpec(format="onnx", precision="int8")], "profile p")
    assert "profile p: cannot build int8.onnx from a tflite model" in str(e.value)


def test_unknown_exporter_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'onnx2tf'"):
        EXPORTERS.get("onnx2tflite")


def test_registering_is_lazy():
    """Looking at the table imports no converter (TensorFlow, onnx2tf, torch)."""
    import subprocess
    import sys

    code = ("import sys, edgecompress.exporters as e, edgecompress.compress; "
            "print(sorted(m for m in ('tensorflow', 'onnx2tf', 'torch', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
