"""Battery/thermal arithmetic of the Python-free path (edgecompress.deploy.android_sysfs), on known numbers
(the battery samples are stand-ins written here: no phone can run on this machine)."""
from __future__ import annotations

import pytest

from edgecompress.deploy import android_sysfs as sysfs


def test_energy_is_the_time_integral_of_current_times_voltage():
    # 1 s at 1.0 A then a linear ramp to 2.0 A over 1 s, at 4.0 V (uA, uV, negative while discharging)
    samples = [(100.0, -1_000_000, 4_000_000), (101.0, -1_000_000, 4_000_000), (102.0, -2_000_000, 4_000_000)]
    idle = [(98.0, -250_000, 4_000_000), (98.5, -250_000, 4_000_000), (99.0, -250_000, 4_000_000)]  # 1 W
    e = sysfs.battery_energy(samples, mean_latency_ms=10.0, idle_samples=idle)
    assert e["joules"] == pytest.approx(4.0 + 6.0)           # 4 W x 1 s + mean(4, 8) W x 1 s
    assert e["avg_power_w"] == pytest.approx(5.0) and e["seconds"] == pytest.approx(2.0)
    assert e["idle_power_w"] == pytest.approx(1.0) and e["baseline_subtracted"] is True
    assert e["mj_per_inference"] == pytest.approx(40.0)       # (5 W - 1 W idle) x 10 ms
    assert e["units"] == {"current": "uA", "voltage": "uV"}
    # without an idle baseline: whole-phone power x latency, and the result says so
    bare = sysfs.battery_energy(samples, mean_latency_ms=10.0, idle_samples=idle[:1])
    assert bare["mj_per_inference"] == pytest.approx(50.0) and bare["baseline_subtracted"] is False
    assert bare["idle_power_w"] is None and "too few idle samples" in bare["note"]


def test_small_idle_current_is_read_in_the_run_units():
    """An idle draw of 15 mA reads 15000 in µA: below the mA/µA threshold alone, so the idle samples
    take the run's units (µA), not 15 A."""
    run = [(0.0, -600_000, 4_000_000), (1.0, -600_000, 4_000_000)]
    idle = [(-1.0, -15_000, 4_000_000), (-0.5, -15_000, 4_000_000)]
    e = sysfs.battery_energy(run, mean_latency_ms=100.0, idle_samples=idle)
    assert e["idle_power_w"] == pytest.approx(0.06) and e["mj_per_inference"] == pytest.approx(234.0)


def test_vendor_units_and_mixed_signs_are_reported():
    e = sysfs.battery_energy([(0.0, 500, 3900), (1.0, -500, 3900)], mean_latency_ms=None)
    assert e["units"] == {"current": "mA", "voltage": "mV"} and e["avg_power_w"] == pytest.approx(1.95)
    assert e["sign_convention"].startswith("mixed signs") and e["mj_per_inference"] is None
    assert sysfs.battery_energy([(0.0, 1, 3_900_000)], 1.0)["method"] == "unavailable"


def test_probe_parsing_charging_and_soc_temperature():
    text = ("ONLINE usb 0\nONLINE ac 0\nONLINE wireless 1\nSTATUS Discharging\nBAT -300000 3800000\n"
            "TZ thermal_zone0 battery 31000\nTZ thermal_zone1 cpu-1-0-usr 47500\nTZ thermal_zone2 skin 38\n"
            "CF cpu0 300000 1804800 1804800\nCF cpu7 3187200 2419200 3187200\n")
    probe = sysfs.parse_probe(text)
    assert "wireless online = 1" in sysfs.charging_reason(probe)
    assert sysfs.soc_temp_c(probe["zones"]) == pytest.approx(47.5)
    th = sysfs.thermal_block(probe, probe)
    assert th["throttled"] is True and "cpu7 capped at 2419200 kHz of 3187200 kHz (76 %)" in th["throttle_detail"][0]
    probe["online"]["wireless"] = 0
    assert sysfs.charging_reason(probe) is None
    probe["status"] = "Full"
    assert "'Full'" in sysfs.charging_reason(probe)
