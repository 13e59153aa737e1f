"""Native mode (no Python on the phone) over the adb transport, against STAND-INS.

No phone can run here and no wheel ships LiteRT's ``benchmark_model`` for this machine, so:
the phone is ``edgecompress/testing/fake_adb.py`` over a folder with a sysfs-shaped battery/thermal/
cpufreq tree of known values (the battery is a stand-in: files the test writes); ``benchmark_model``
is a stand-in executable that records its arguments, runs for a moment (so the battery loop samples
it), can play the phone's load step on the stand-in battery, and prints a REAL captured output
(fixtures/benchmark_model/, sources noted there). Everything between — pushing by hash, the
device shell script, the idle and run battery shell loops, parsing, the result — is the real code path.
"""
from __future__ import annotations

import json

import pytest

from edgecompress.deploy import DeviceSession
from edgecompress.deploy.native import NativeAgent, benchmark_flags
from edgecompress.profiles import load_profile
from edgecompress.targets import Target
from edgecompress.transports.adb import DEVICE_ROOT

from .conftest import stand_in_benchmark_model

WATTS = 0.450 * 3.850          # the stand-in battery: 450 mA at 3.85 V
LOAD_UA = -1_200_000           # what the stand-in benchmark_model makes it draw while it runs
LOAD_WATTS = 1.200 * 3.850


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "model.int8.tflite"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 8)
    return p


def _bench(tmp_path, phone, fixture="info_percentiles_exponent.txt", *, profile="pixel-8",
           sleep_s=0.6, exit_code=0, script=None, load_ua=None, **target_kw):
    binary = tmp_path / "benchmark_model"
    load = (phone.path("/sys/class/power_supply/battery"), load_ua) if load_ua is not None else None
    binary.write_text(script or stand_in_benchmark_model(fixture, sleep_s=sleep_s, exit_code=exit_code, load=load))
    binary.chmod(0o755)
    target = Target(name="pixel", profile=profile, transport="adb", serial=phone.serial,
                    mode="native", benchmark_model=str(binary), **target_kw)
    s = DeviceSession(target, lock=False)       # the session every mode uses; its agent is native
    s.open()
    assert isinstance(s.agent, NativeAgent)
    return s


def _assert_load_power(e):
    """Every sample of the run window reads the load power, except that a sample at either edge may
    catch the step (this machine may start the stand-in late under load, as a phone never would);
    energy per inference is the power the run added over the measured idle baseline x latency."""
    n = e["samples"]
    floor = (LOAD_WATTS * (n - 2) + 2 * WATTS) / n
    assert floor * 0.99 <= e["avg_power_w"] <= LOAD_WATTS * 1.01, (e["avg_power_w"], n)
    assert e["mj_per_inference"] == pytest.approx((e["avg_power_w"] - e["idle_power_w"]) * 1240.27, rel=0.01)


def _argv(phone):
    """The stand-in binary's argv, with the stand-in phone's folder mapped back to device paths."""
    text = phone.path(f"{DEVICE_ROOT}/blobs/last_argv.json").read_text()
    return json.loads(text.replace(str(phone.root), ""))


def test_flags_follow_the_profile_measure_settings_and_delegate():
    m = load_profile("galaxy-s24-snapdragon").measure
    flags = benchmark_flags("/d/m.tflite", m, delegate="gpu", op_profiling=True)
    assert flags[:6] == ["--graph=/d/m.tflite", "--num_threads=4", "--warmup_runs=10", "--num_runs=100",
                         "--min_secs=2", "--max_secs=480"]
    assert "--use_gpu=true" in flags and "--enable_op_profiling=true" in flags
    assert "--report_peak_memory_footprint=true" in flags
    assert "--use_nnapi=true" in benchmark_flags("g", m, delegate="nnapi")
    assert "--use_xnnpack=false" in benchmark_flags("g", m, delegate="cpu")
    assert "--run_delay=0.5" in benchmark_flags("g", m.model_copy(update={"cooldown_s": 0.5}))
    assert not any(f.startswith("--run_delay") for f in flags)


def test_native_result_from_real_capture_with_measured_battery_energy(tmp_path, fake_phone, model):
    """The stand-in battery draws 450 mA idle; the stand-in benchmark_model raises it to 1.2 A while
    it runs: energy per inference is the power the run adds over the idle baseline x latency."""
    nb = _bench(tmp_path, fake_phone, load_ua=LOAD_UA)
    r = nb.bench(model)
    assert r.status == "ok", r.error
    assert r.mode == "native" and r.artifact.precision == "int8"
    assert r.device.arch == "arm64-v8a" and r.device.os == "Android 14 (API 34)"
    assert r.device.extra["delegate"] == "xnnpack"        # first of pixel-8's delegates
    lat = r.latency_ms.to_dict()
    assert lat["mean"] == pytest.approx(1240.27) and lat["p50"] == pytest.approx(1239.807)
    assert lat["p90"] is None and lat["p99"] is None and lat["samples"] is None
    assert lat["p95"] == pytest.approx(1247.415) and lat["load"] == pytest.approx(5.579)
    assert r.memory_mb.delta == pytest.approx(109.832) and r.runs == 50
    assert any("p90 and p99 are null" in n for n in r.notes)
    assert any("samples is null" in n for n in r.notes)
    # the flags reached the binary, the graph was the pushed artifact
    argv = _argv(fake_phone)
    assert argv[0].startswith(f"--graph={DEVICE_ROOT}/blobs/") and argv[0].endswith(".tflite")
    assert "--num_threads=4" in argv and "--use_xnnpack=true" in argv
    # energy: the shell loop sampled the idle stand-in battery (-450000 uA, 3850000 uV) for a moment,
    # then the run (-1200000 uA while the stand-in binary ran); the idle power is subtracted
    e = r.energy.to_dict()
    assert e["method"] == "measured" and e["source"] == "android-battery"
    assert e["idle_power_w"] == pytest.approx(WATTS, rel=0.01) and e["idle_samples"] >= 5
    _assert_load_power(e)
    assert e["baseline_subtracted"] is True
    assert e["samples"] >= 3 and e["units"] == {"current": "uA", "voltage": "uV"}
    assert e["sign_convention"] == "negative while discharging"
    assert r.thermal.temp_c_before == pytest.approx(41.0) and r.thermal.throttled is False


def test_vendor_units_and_sign_give_the_same_watts(tmp_path, fake_phone, model):
    fake_phone.set_battery(current_now=450, voltage_now=3850, status="Discharging")   # mA, mV, positive
    r = _bench(tmp_path, fake_phone, load_ua=1200).bench(model)                       # 1200 mA under load
    e = r.energy.to_dict()
    assert e["units"] == {"current": "mA", "voltage": "mV"}
    assert e["sign_convention"] == "positive while discharging"
    assert e["idle_power_w"] == pytest.approx(WATTS, rel=0.01)
    _assert_load_power(e)
    # the stand-in benchmark_model restored the idle draw when done
    assert fake_phone.path("/sys/class/power_supply/battery/current_now").read_text().strip() == "450"


@pytest.mark.parametrize("how", ["usb-online", "status-charging"])
def test_energy_unavailable_while_charging(tmp_path, fake_phone, model, how):
    if how == "usb-online":
        fake_phone.set_power_online(usb=1, ac=0)
    else:
        fake_phone.set_battery(current_now=900000, voltage_now=4300000, status="Charging")
    r = _bench(tmp_path, fake_phone, sleep_s=0.1).bench(model)
    assert r.status == "ok"
    assert r.energy.method == "unavailable" and r.energy.avg_power_w is None
    assert ("usb online = 1" in r.energy.extra["reason"]) if how == "usb-online" else \
        ("'Charging'" in r.energy.extra["reason"])
    assert r.latency_ms.mean == pytest.approx(1240.27)       # latency still measured


def test_throttling_flagged_from_cpu_frequency_caps(tmp_path, fake_phone, model):
    fake_phone.set_cpufreq([(1704000, 1704000, 1704000)] * 4 + [(1180000, 1180000, 2367000)] * 4)
    fake_phone.set_thermal([("cpu-1-0-usr", 78500), ("battery", 36000)])
    r = _bench(tmp_path, fake_phone, "info_peak_memory.txt", sleep_s=0.1).bench(model)
    th = r.thermal.to_dict()
    assert th["throttled"] is True and th["temp_c_before"] == pytest.approx(78.5)
    assert any("cpu4 capped at 1180000 kHz of 2367000 kHz (50 %)" in d for d in th["throttle_detail"])
    assert r.memory_mb.peak_rss == pytest.approx(93.2383)


def test_pushes_by_hash_once_and_old_format_with_op_profiling(tmp_path, fake_phone, model):
    nb = _bench(tmp_path, fake_phone, "old_plain_op_profiling.txt", sleep_s=0.1)
    first = nb.bench(model, op_profiling=True, delegate="cpu")
    sent = nb.bytes_sent
    assert sent == model.stat().st_size + nb.agent.binary.stat().st_size
    second = nb.bench(model, op_profiling=True, delegate="cpu")
    assert nb.bytes_sent == sent                        # nothing sent twice
    assert first.latency_ms.mean == second.latency_ms.mean == pytest.approx(394.183)
    assert first.latency_ms.p50 is None
    assert any("prints no percentiles" in n for n in first.notes)
    assert first.extra["op_profile"][0] == {"node_type": "CONV_2D", "count": 15, "avg_ms": 322.055, "percent": 81.73,
                                      "cdf_percent": 81.73, "mem_kb": 0.0, "times_called": 15}
    assert "--enable_op_profiling=true" in _argv(fake_phone) and "--use_xnnpack=false" in _argv(fake_phone)
    blobs = sorted(p.name for p in fake_phone.path(f"{DEVICE_ROOT}/blobs").iterdir())
    assert len([b for b in blobs if b.endswith(".tflite")]) == 1 and not [b for b in blobs if ".part" in b]


def test_failures_become_failed_results(tmp_path, fake_phone, model):
    crash = "#!/bin/sh\necho 'INFO: STARTING!'\necho 'ERROR: Failed to load model' >&2\nexit 1\n"
    r = _bench(tmp_path, fake_phone, script=crash).bench(model)
    assert r.status == "failed" and "Failed to load model" in r.error
    onnx = tmp_path / "model.fp32.onnx"
    onnx.write_bytes(b"onnx")
    r = _bench(tmp_path, fake_phone).bench(onnx)
    assert r.status == "failed" and "runs .tflite files" in r.error


def test_older_binary_without_peak_memory_flag_is_rerun_without_it(tmp_path, fake_phone, model):
    from .conftest import capture

    picky = (f"#!/bin/sh\nfor a in \"$@\"; do case $a in --report_peak_memory_footprint*) "
             f"echo 'Unconsumed cmdline flags: --report_peak_memory_footprint=true'; exit 1;; esac; done\n"
             f"cat <<'EOF'\n{capture('mid_plain_peak_op_profiling.txt')}EOF\n")
    r = _bench(tmp_path, fake_phone, script=picky).bench(model)
    assert r.status == "ok", r.error
    assert r.latency_ms.mean == pytest.approx(11.0404)
    assert "--report_peak_memory_footprint=true" not in r.extra["command"]
    assert any("does not know --report_peak_memory_footprint" in n for n in r.notes)


def test_battery_loop_ends_when_its_shell_is_killed(tmp_path, fake_phone):
    """A time-out kills the benchmark's shell: the background battery loop must not outlive it."""
    import subprocess
    import time

    from edgecompress.deploy import android_sysfs as sysfs

    from edgecompress.deploy.agents import script

    text = script("battery.sh") + 'ec_sample "$1" "$2" "$3" 0.05; echo $SP; sleep 30\n'
    p = subprocess.Popen(["sh", "-c", text, "ec-test", str(fake_phone.root), f"{tmp_path}/s", f"{tmp_path}/stop"],
                         stdout=subprocess.PIPE, text=True)
    loop_pid = int(p.stdout.readline())
    time.sleep(0.3)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{loop_pid}/status") as f:
                if "State:\tZ" in f.read():
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the battery loop survived its shell")
    samples = sysfs.parse_samples((tmp_path / "s").read_text())
    assert len(samples) >= 2 and samples[0][1:] == (-450000, 3850000)


def test_shell_install_refuses_a_corrupt_upload_and_removes_it(tmp_path, fake_phone, model):
    """The native agent's file helper (deploy/scripts/blobs.sh) checks the sha256 ON the phone, as the
    Python agent's helper does: a truncated upload is deleted and never becomes a blob."""
    import hashlib

    from edgecompress.errors import BenchmarkError

    s = _bench(tmp_path, fake_phone)
    want = hashlib.sha256(model.read_bytes()).hexdigest()
    half = tmp_path / "half"
    half.write_bytes(model.read_bytes()[:100])
    part, final = f"{DEVICE_ROOT}/tmp/x.part", f"{DEVICE_ROOT}/blobs/{want}.tflite"
    s.transport.put(half, part)
    with pytest.raises(BenchmarkError, match=r"(?s)step 'verify upload' failed: .*bad .*expected " + want + r" \(partial or corrupt; removed\)"):
        s.step("verify upload", s.agent.files_argv("install", part, want, final))
    assert not fake_phone.path(part).exists() and not fake_phone.path(final).exists()
    s.transport.put(model, part)
    s.step("verify upload", s.agent.files_argv("install", part, want, final))
    assert fake_phone.path(final).read_bytes() == model.read_bytes()
    free = s.transport.run(s.agent.files_argv("free", f"{DEVICE_ROOT}/tmp")).stdout.strip()
    assert int(free) > 0
    s.close()
