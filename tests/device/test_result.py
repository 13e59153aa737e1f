"""The one BenchmarkResult type: JSON contract kept, protocol checked on receipt, fields typed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgecompress.device.result import PROTOCOL, BenchmarkResult, Latency, ResultError

DESIGN_KEYS = {"target", "artifact", "device", "latency_ms", "memory_mb", "energy", "thermal", "runs", "status",
               "error"}


def test_real_runner_output_reads_back_with_the_design_keys(digits_artifacts, runner_pyz):
    """The runner zipapp run as the device runs it gives a document that reads back as a
    BenchmarkResult, and writing that back gives the same JSON (extras such as latency_ms.import kept)."""
    proc = subprocess.run([sys.executable, str(runner_pyz), "bench", "--model",
                           str(digits_artifacts["onnx"]), "--runs", "15", "--warmup", "1", "--min-seconds", "0",
                           "--energy", "none"], capture_output=True, text=True, timeout=120)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = BenchmarkResult.from_dict(doc, require_protocol=True)
    assert res.ok and res.protocol == PROTOCOL == doc["protocol"] and res.mode == "python"
    assert res.runs >= 15 and len(res.latency_ms.samples) == res.runs
    assert 0 < res.latency_ms.min <= res.latency_ms.p50 <= res.latency_ms.max
    assert res.latency_ms.get("import") == doc["latency_ms"]["import"] > 0     # extra key kept
    assert res.device.get("cpu_count") == doc["device"]["cpu_count"]
    assert DESIGN_KEYS <= set(doc) and res.to_dict() == {**doc, "target": None}


def test_failed_result_has_every_key_and_null_blocks():
    d = BenchmarkResult.failed("pi", None, "step 'lock' timed out").to_dict()
    assert DESIGN_KEYS <= set(d)
    assert d["status"] == "failed" and d["latency_ms"] is None and d["runs"] == 0 and d["notes"] == []


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(ResultError, match=r"protocol 7 is not supported .* speaks 1"):
        BenchmarkResult.from_dict({"protocol": 7, "status": "ok"})
    with pytest.raises(ResultError, match="no 'protocol' field"):
        BenchmarkResult.from_dict({"status": "ok"}, require_protocol=True)


@pytest.mark.parametrize("doc, msg", [
    ({"status": "done"}, "status 'done' is not one of ok, degraded, failed"),
    ({"latency_ms": [1, 2]}, "latency_ms must be an object"),
    ({"latency_ms": {"p50": "fast"}}, r"latency_ms.p50 must be a number"),
    ({"runs": 2.5}, "runs must be an integer"),
    ({"energy": {"method": "guessed"}}, "method 'guessed' is not one of measured, estimated, unavailable"),
])
def test_bad_fields_name_the_field_and_the_valid_values(doc, msg):
    with pytest.raises(ResultError, match=msg):
        BenchmarkResult.from_dict(doc)


def test_stored_single_note_reads_as_notes_and_new_fields_are_optional():
    r = BenchmarkResult.from_dict({"status": "ok", "note": "recovered a stale device lock", "ops": [1]})
    assert r.notes == ["recovered a stale device lock"]
    d = r.to_dict()
    assert "note" not in d and d["notes"] == ["recovered a stale device lock"] and d["ops"] == [1]
    assert "fidelity" not in d                      # optional fields appear only when set
    r.latency_ms = Latency(p50=1.5)
    assert r.to_dict()["latency_ms"]["p50"] == 1.5 and r.to_dict()["latency_ms"]["samples"] is None
