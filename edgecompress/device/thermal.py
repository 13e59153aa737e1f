"""CPU temperature, frequency and throttle flags, read under a sysfs root (standard library only).

- ``<root>/sys/class/thermal/thermal_zone*/temp`` in milli-°C (``type`` names the zone);
  the CPU zone is the first whose type names the CPU/package/SoC, else the hottest.
- ``<root>/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` in kHz (we report MHz, mean).
- Raspberry Pi: ``vcgencmd get_throttled`` (found on PATH) -> hex bit flags, decoded.
- Intel: ``.../cpu*/thermal_throttle/core_throttle_count`` (a rise during the run = throttled).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import Optional

CPU_ZONE = re.compile(r"cpu|x86_pkg|soc|package|tcpu|cpu-thermal|coretemp|k10temp", re.I)
PI_THROTTLE_BITS = {
    0: "under-voltage", 1: "arm-frequency-capped", 2: "throttled", 3: "soft-temperature-limit",
    16: "under-voltage-occurred", 17: "arm-frequency-capped-occurred", 18: "throttling-occurred",
    19: "soft-temperature-limit-occurred",
}


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def thermal_zones(root: str = "/") -> list[dict]:
    zones = []
    for d in sorted(glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*"))):
        temp = _read(os.path.join(d, "temp"))
        if temp is None or not temp.lstrip("-").isdigit():
            continue
        zones.append({"zone": os.path.basename(d), "type": _read(os.path.join(d, "type")) or "",
                      "temp_c": int(temp) / 1000.0})
    return zones


def cpu_temp_c(root: str = "/") -> Optional[float]:
    zones = thermal_zones(root)
    if not zones:
        return None
    for z in zones:
        if CPU_ZONE.search(z["type"]):
            return z["temp_c"]
    return max(z["temp_c"] for z in zones)


def cpu_freq_paths(root: str = "/") -> list[str]:
    return sorted(glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")))


def cpu_freq_mhz(root: str = "/") -> Optional[float]:
    values = [int(v) for v in (_read(p) for p in cpu_freq_paths(root)) if v and v.isdigit()]
    return sum(values) / len(values) / 1000.0 if values else None


def throttle_counts(root: str = "/") -> Optional[int]:
    paths = glob.glob(os.path.join(root, "sys/devices/system/cpu/cpu[0-9]*/thermal_throttle/core_throttle_count"))
    values = [int(v) for v in (_read(p) for p in paths) if v and v.isdigit()]
    return sum(values) if values else None


def pi_throttled() -> Optional[dict]:
    """``{"raw": "0x50005", "flags": [...]}`` from ``vcgencmd get_throttled``; None without vcgencmd."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"throttled=(0x[0-9a-fA-F]+)", out)
    if not m:
        return None
    value = int(m.group(1), 16)
    return {"raw": m.group(1), "flags": [name for bit, name in PI_THROTTLE_BITS.items() if value >> bit & 1]}


def snapshot(root: str = "/") -> dict:
    return {"temp_c": cpu_temp_c(root), "freq_mhz": cpu_freq_mhz(root), "throttle_count": throttle_counts(root),
            "pi": pi_throttled()}


def report(before: dict, after: dict) -> dict:
    """The result's ``thermal`` block: temperatures, frequencies and whether the CPU throttled.

    ``throttled`` is True when the Pi reports a current throttle flag after the run or the
    Intel throttle counter rose during it; False when such a source exists and says no;
    None when the device has no source.
    """
    throttled = None
    flags = None
    if after.get("pi") is not None:
        flags = after["pi"]["flags"]
        throttled = any(not f.endswith("-occurred") for f in flags)
    if before.get("throttle_count") is not None and after.get("throttle_count") is not None:
        rose = after["throttle_count"] > before["throttle_count"]
        throttled = bool(throttled) or rose
    return {"temp_c_before": before.get("temp_c"), "temp_c_after": after.get("temp_c"),
            "freq_mhz_before": before.get("freq_mhz"), "freq_mhz_after": after.get("freq_mhz"),
            "throttled": throttled, "throttle_flags": flags,
            "throttled_raw": (after.get("pi") or {}).get("raw")}
