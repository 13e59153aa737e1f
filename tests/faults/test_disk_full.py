"""The device's disk fills up: its work folder is a 2 MB tmpfs (``mount -t tmpfs -o size=2m``), and a
2 MB artifact cannot fit. The upload fails at once with the free and needed sizes, nothing partial
stays on the device, and the artifacts that fit are measured and kept."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgecompress.deploy import benchmark
from edgecompress.targets import Target

from .conftest import tmpfs, umount

pytestmark = pytest.mark.lab


def test_full_disk_fails_one_artifact_cleanly_and_keeps_the_rest(make_device, fault_artifacts, outcome):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    dev = make_device("dfull")
    disk = tmpfs(Path(dev.root) / "small-disk", "2m", dev.user)
    try:
        target = Target(**{**dev.target_dict(), "workdir": str(disk / "work")})
        arts = [fault_artifacts["small"], fault_artifacts["big"], fault_artifacts["digits"]]
        results = benchmark(target, arts, runs=5, warmup=1, min_seconds=0)
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file())
        free_mb = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize / 1e6
    finally:
        umount(disk)
    by_name = {Path(r.artifact.path).name: r for r in results}
    assert [r.status for r in results] == ["ok", "failed", "ok"], [r.error for r in results]
    err = by_name["big.fp32.onnx"].error
    assert "disk is full" in err and "MB free in" in err and "needs 2.10 MB" in err and "step 'upload'" in err, err
    assert by_name["big.fp32.onnx"].latency_ms is None
    assert not [f for f in left if f.endswith(".part") or f.startswith("work/io/")], left
    assert not any(fault_artifacts["big"].name in f or f.endswith(by_name["big.fp32.onnx"].artifact.sha256
                                                                     + ".onnx") for f in left), left
    assert by_name["small.fp32.onnx"].runs >= 5 and by_name["digits.fp32.onnx"].runs >= 5
    outcome(expected="clear error; no partial file; others kept",
            observed=f"2 ok, 1 failed ({err.split(': ', 2)[-1][:60]}...); {free_mb:.1f} MB free after, no .part")
