"""Battery, charging, thermal and CPU-frequency readings on a phone with no Python: shell on the
device, arithmetic on the host. Standard library only.

The device side is POSIX ``sh`` that Android's ``mksh`` + toybox run (``cat``, ``sleep`` with
fractions, ``read`` from ``/proc/uptime``); every path is under ``sysfs_root`` (``/`` on a phone;
tests point it at a folder they write).

The shell is in files shipped with the package (``deploy/scripts/battery.sh``: ``ec_probe``,
``ec_sample``; ``deploy/scripts/native_bench.sh``), sent as ``sh -c`` text with arguments:

* :func:`probe_argv` prints one line per fact (``ONLINE usb 1``, ``STATUS Discharging``,
  ``BAT <current_now> <voltage_now>``, ``TZ <zone> <type> <temp>``, ``CF <cpu> <cur> <max> <hwmax>``);
  :func:`parse_probe` reads them back.
* :func:`bench_argv` runs a command with the battery loop in the background: every
  ``interval_s`` it appends ``<uptime_s> <current_now> <voltage_now>`` to a file until a stop file
  appears; it runs for a short idle window just before the benchmark too.
  :func:`battery_energy` turns those samples into the DESIGN.md ``energy`` block, the idle power
  subtracted per inference.

Units and signs (the kernel ABI says µA and µV; vendors differ): a current whose median magnitude
is below 20 000 is taken as mA (a phone under load draws 100–3000 mA, i.e. 1e5–3e6 µA; the
same rule as the Python runner's ``android-battery`` meter), a voltage
below 100 as V, below 100 000 as mV. Discharge is negative on some phones (Pixel) and positive on
others (many Samsung/Qualcomm); on battery the magnitude is what the phone draws, so the sign is
recorded and the magnitude used. Power is whole-phone power (screen, radios included) integrated
over the samples (trapezoids on ``/proc/uptime`` time stamps); energy per inference is what the run
adds over the idle power measured just before it; the result says so.
"""
from __future__ import annotations

import statistics
from typing import Any, Optional

from ..device import meters

def _scripts() -> str:
    from .agents import script

    return script("battery.sh")


def probe_argv(sysfs_root: str = "/") -> list[str]:
    """The command that prints the phone's facts (``deploy/scripts/battery.sh``'s ``ec_probe``)."""
    return ["sh", "-c", _scripts() + 'ec_probe "$1"\n', "ec-probe", sysfs_root]


def bench_argv(sysfs_root: str, workdir: str, tag: str, sample: bool, interval_s: float, idle_s: float,
               mark: str, command: list[str]) -> list[str]:
    """``command`` between an idle and a loaded battery window (``deploy/scripts/native_bench.sh``)."""
    from .agents import script

    return ["sh", "-c", _scripts() + script("native_bench.sh"), "ec-bench", sysfs_root, workdir, tag,
            "1" if sample else "0", f"{interval_s:g}", f"{idle_s:g}", mark, *command]


def _int(s: str) -> Optional[int]:
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


def parse_probe(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"online": {}, "status": None, "current_raw": None, "voltage_raw": None,
                           "zones": [], "cpus": []}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        tag, rest = parts[0], parts[1:]
        if tag == "ONLINE" and len(rest) == 2:
            out["online"][rest[0]] = _int(rest[1])
        elif tag == "STATUS":
            out["status"] = " ".join(rest) or None
        elif tag == "BAT":
            out["current_raw"] = _int(rest[0]) if rest else None
            out["voltage_raw"] = _int(rest[1]) if len(rest) > 1 else None
        elif tag == "TZ" and len(rest) >= 3 and _int(rest[-1]) is not None:
            out["zones"].append({"zone": rest[0], "type": rest[1], "temp_c": temp_c(_int(rest[-1]))})
        elif tag == "CF" and len(rest) >= 2:
            cur, smax, hwmax = (_int(x) for x in (rest[1:] + [None, None, None])[:3])
            out["cpus"].append({"cpu": rest[0], "cur_khz": cur, "max_khz": smax, "hw_max_khz": hwmax})
    return out


def temp_c(raw: int) -> float:
    """thermal_zone temp: m°C by the ABI; some vendors print °C (values under 200)."""
    return round(raw / 1000.0, 3) if abs(raw) >= 200 else float(raw)


def charging_reason(probe: dict) -> Optional[str]:
    """Why the fuel gauge cannot measure the benchmark (charging, no gauge), or None if it can.
    The charging rules are the Python runner's (:func:`edgecompress.device.meters.charging_reason`)."""
    reason = meters.charging_reason(probe["online"], probe.get("status"))
    if reason is not None:
        return reason
    if probe.get("current_raw") is None or probe.get("voltage_raw") is None:
        return "no battery fuel gauge readable (power_supply/battery/current_now, voltage_now)"
    return None


def parse_samples(text: str) -> list[tuple[float, int, int]]:
    samples = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
        except ValueError:
            continue
    return samples


def _units(samples) -> tuple[float, str, float, str]:
    cur = statistics.median(abs(s[1]) for s in samples)
    volt = statistics.median(abs(s[2]) for s in samples)
    i_scale, i_unit = (1e-3, "mA") if 0 < cur < 20_000 else (1e-6, "uA")
    if volt < 100:
        v_scale, v_unit = 1.0, "V"
    elif volt < 100_000:
        v_scale, v_unit = 1e-3, "mV"
    else:
        v_scale, v_unit = 1e-6, "uV"
    return i_scale, i_unit, v_scale, v_unit


def _power(samples, units) -> tuple[float, float, float]:
    """(joules, seconds, average watts) of samples, trapezoids on their time stamps."""
    i_scale, _, v_scale, _ = units
    power = [(t, abs(i) * i_scale * abs(v) * v_scale) for t, i, v in samples]
    joules = sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(power, power[1:]))
    seconds = power[-1][0] - power[0][0]
    return joules, seconds, joules / seconds


def _enough(samples) -> bool:
    return len(samples) >= 2 and samples[-1][0] > samples[0][0]


def battery_energy(samples: list[tuple[float, int, int]], mean_latency_ms: Optional[float],
                   idle_samples: Optional[list[tuple[float, int, int]]] = None) -> dict[str, Any]:
    """The ``energy`` block from battery samples taken while the benchmark ran, and (``idle_samples``)
    just before it with the phone idle.

    Fields as the Python runner's ``energy_block``: ``avg_power_w`` (during the run),
    ``idle_power_w``, ``mj_per_inference`` = (avg − idle) W × mean latency ms, ``joules``,
    ``seconds``, ``baseline_subtracted``. Without two idle samples the idle power is null and
    ``mj_per_inference`` is the whole-phone avg × latency (``baseline_subtracted: false``).
    """
    if not _enough(samples):
        return unavailable(f"only {len(samples)} battery sample(s) during the run: the run was shorter "
                           f"than the sampling interval; raise measure.min_seconds")
    units = _units(samples)                 # the run's units for the idle samples too (idle draw is small)
    joules, seconds, avg_w = _power(samples, units)
    idle_w = _power(idle_samples, units)[2] if idle_samples and _enough(idle_samples) else None
    i_unit, v_unit = units[1], units[3]
    signs = {(i > 0) - (i < 0) for _, i, _ in samples} - {0}
    sign = ("negative while discharging" if signs == {-1} else
            "positive while discharging" if signs == {1} else "mixed signs (charger plugged in during the run?)")
    added_w = avg_w - (idle_w or 0.0)
    out = {"method": "measured", "source": "android-battery",
           "avg_power_w": round(avg_w, 6),
           "idle_power_w": round(idle_w, 6) if idle_w is not None else None,
           "mj_per_inference": round(added_w * mean_latency_ms, 6) if mean_latency_ms else None,
           "baseline_subtracted": idle_w is not None,
           "joules": round(joules, 6), "seconds": round(seconds, 3), "samples": len(samples),
           "idle_samples": len(idle_samples or []),
           "distinct_readings": len({s[1] for s in samples}),
           "units": {"current": i_unit, "voltage": v_unit}, "sign_convention": sign,
           "scope": "whole phone (screen, radios and the sampling loop included); the idle power "
                    "measured just before the run is subtracted per inference",
           "how": "shell loop on the device read power_supply/battery current_now x voltage_now "
                  "every ~0.1 s, idle for a moment and then during the run; trapezoidal integral "
                  "over /proc/uptime"}
    if idle_w is None:
        out["note"] = "too few idle samples before the run: mj_per_inference is whole-phone power x latency"
    elif out["distinct_readings"] == 1 and seconds > 2:
        out["note"] = "the fuel gauge reported one value for the whole run (it updates slowly on this phone)"
    return out


def unavailable(reason: str) -> dict[str, Any]:
    return {"method": "unavailable", "source": "android-battery", "avg_power_w": None,
            "mj_per_inference": None, "reason": reason}


_CPU_TYPES = ("cpu", "soc", "tsens", "cluster")
_NOT_SOC = ("battery", "usb", "charger", "skin", "bms", "modem")


def soc_temp_c(zones: list[dict]) -> Optional[float]:
    """Hottest CPU/SoC zone (by type), else hottest zone that is not battery/charger/skin."""
    def kind(z):
        return z["type"].lower()
    cpu = [z["temp_c"] for z in zones if any(k in kind(z) for k in _CPU_TYPES)
           and not any(k in kind(z) for k in _NOT_SOC)]
    rest = [z["temp_c"] for z in zones if not any(k in kind(z) for k in _NOT_SOC)]
    pick = cpu or rest
    return max(pick) if pick else None


def thermal_block(before: dict, after: dict) -> dict[str, Any]:
    """``thermal`` block: SoC temperature before/after and a throttling flag from the CPU caps.

    Throttled means some CPU's ``scaling_max_freq`` (the cap the thermal governor lowers) was
    under 95 % of its ``cpuinfo_max_freq`` (what the silicon can do) before or after the run.
    """
    capped = []
    for phase, probe in (("before", before), ("after", after)):
        for c in probe.get("cpus", []):
            if c["max_khz"] and c["hw_max_khz"] and c["max_khz"] < 0.95 * c["hw_max_khz"]:
                capped.append(f"{phase}: {c['cpu']} capped at {c['max_khz']} kHz of {c['hw_max_khz']} kHz "
                              f"({100 * c['max_khz'] / c['hw_max_khz']:.0f} %)")
    have_caps = any(c["max_khz"] and c["hw_max_khz"] for p in (before, after) for c in p.get("cpus", []))
    return {"temp_c_before": soc_temp_c(before.get("zones", [])),
            "temp_c_after": soc_temp_c(after.get("zones", [])),
            "throttled": bool(capped) if have_caps else None,
            "throttle_detail": capped,
            "cpu_khz_before": {c["cpu"]: c["cur_khz"] for c in before.get("cpus", [])},
            "cpu_khz_after": {c["cpu"]: c["cur_khz"] for c in after.get("cpus", [])}}
