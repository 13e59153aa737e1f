"""Fixtures for the on-device runner: a clean device Python and the runner zipapp."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def device_python():
    """A venv WITHOUT system site-packages holding only numpy, onnxruntime and ai-edge-litert
    (built once from the system Python, pip resolving the pinned wheels offline; cached)."""
    from edgecompress import lab

    base = "/usr/bin/python3"
    if not os.path.exists(base):
        pytest.skip("no system /usr/bin/python3 to build a clean device Python from")
    return lab.device_python(base)


@pytest.fixture(scope="session")
def runner_pyz():
    from edgecompress.device.package import build_runner

    return build_runner()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """The digits CNN, untrained, as ONNX: for tests about measuring, not about accuracy."""
    import torch

    from edgecompress.examples.digits import factory

    path = tmp_path_factory.mktemp("tiny") / "model.fp32.onnx"
    torch.onnx.export(factory().eval(), (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"])
    return path


def run_runner(python, pyz, *args, env=None, timeout=120):
    """Run the zipapp isolated (-I: no user site, no PYTHON* env); -> (json doc, CompletedProcess)."""
    res = subprocess.run([str(python), "-I", str(pyz), *map(str, args)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    lines = res.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be exactly one JSON line: {res.stdout[:300]!r} {res.stderr[-500:]}"
    return json.loads(lines[0]), res


def write_exe(path: Path, text: str) -> Path:
    """A fake device tool (e.g. ``vcgencmd``): a real executable script written by the test."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
    return path
