"""The benchmark_model output parser on REAL captured outputs (fixtures name their sources)."""
from __future__ import annotations

import pytest

from edgecompress.deploy.benchmark_model import parse

from .conftest import capture


def test_old_format_without_info_prefix_and_op_profiling():
    r = parse(capture("old_plain_op_profiling.txt"))
    assert r["format"] == "old"
    assert r["init_ms"] == pytest.approx(18.764)
    assert r["mean_ms"] == pytest.approx(394.183)          # count=50 ... avg=394183 (us)
    assert r["warmup_mean_ms"] == pytest.approx(395.037)
    assert r["first_ms"] == pytest.approx(393.5)           # first warm-up run
    assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx((389.982, 417.669, 4.373))
    assert r["count"] == 50 and r["warmup_count"] == 2 and r["threads"] == 2
    assert r["p50_ms"] is None and r["p95_ms"] is None   # this build prints no percentiles
    assert r["peak_memory_mb"] is None and r["memory_overall_mb"] is None
    ops = {o["node_type"]: o for o in r["op_profile"]}
    assert list(ops) == ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SOFTMAX", "RESHAPE"]
    assert ops["CONV_2D"]["count"] == 15 and ops["CONV_2D"]["avg_ms"] == pytest.approx(322.055)
    assert ops["CONV_2D"]["percent"] == pytest.approx(81.730)
    assert sum(o["percent"] for o in r["op_profile"]) == pytest.approx(100.0, abs=0.01)


def test_middle_format_peak_memory_and_regular_run_profile():
    r = parse(capture("mid_plain_peak_op_profiling.txt"))
    assert r["format"] == "middle"
    assert (r["init_ms"], r["first_ms"], r["warmup_mean_ms"]) == pytest.approx((0.243, 28.285, 11.6103))
    assert r["mean_ms"] == pytest.approx(11.0404)
    assert r["count"] == 90 and r["threads"] == 4 and r["model_size_mb"] == pytest.approx(16.9008)
    assert (r["memory_init_mb"], r["memory_overall_mb"]) == pytest.approx((4.87109, 41.4102))
    # two "Summary by node type" tables (init, then regular runs): the regular runs' one is kept
    types = [o["node_type"] for o in r["op_profile"]]
    assert "AllocateTensors" not in types and types[0] == "CONV_2D"
    assert r["op_profile"][0]["avg_ms"] == pytest.approx(8.342)


def test_new_format_info_prefix_percentiles_and_exponent_times():
    r = parse(capture("info_percentiles_exponent.txt"))
    assert r["format"] == "new"
    assert r["mean_ms"] == pytest.approx(1240.27)           # avg=1.24027e+06 us
    assert r["warmup_mean_ms"] == pytest.approx(1357.6)     # Warmup (avg): 1.3576e+06
    assert (r["p5_ms"], r["p50_ms"], r["p95_ms"]) == pytest.approx((1238.753, 1239.807, 1247.415))
    assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx((1238.588, 1252.566, 2.565))
    assert r["first_ms"] == pytest.approx(1357.602) and r["init_ms"] == pytest.approx(5.579)
    assert (r["memory_init_mb"], r["memory_overall_mb"]) == pytest.approx((6.36328, 109.832))
    assert r["count"] == 50 and r["warmup_count"] == 1 and r["op_profile"] is None


def test_new_format_peak_memory_via_periodic_monitoring_and_delegate():
    r = parse(capture("info_peak_memory.txt"))
    assert r["peak_memory_mb"] == pytest.approx(93.2383)
    assert r["mean_ms"] == pytest.approx(56.2658) and r["count"] == 1061
    assert r["first_ms"] == pytest.approx(81.913) and r["warmup_count"] == 9
    assert r["delegates"] == ["XNNPACK"]


def test_benchmark_app_logcat_line():
    # the Android benchmark APK logs through logcat (TFLite performance docs' example line)
    r = parse("... tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n")
    assert (r["mean_ms"], r["init_ms"], r["warmup_mean_ms"]) == pytest.approx((80.6601, 4.108, 91.471))


def test_output_without_timings_is_an_error_naming_the_last_lines():
    with pytest.raises(ValueError, match="no inference timings.*Failed to load model"):
        parse("INFO: STARTING!\nERROR: Failed to load model /data/local/tmp/x.tflite\n")
