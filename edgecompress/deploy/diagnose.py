"""Target diagnosis: ``check_target(name)`` — can this device run what its profile asks for?

Connects like a benchmark would (without taking the device lock) and reports what the device
is and what to install or set. Targets reached over ``adb`` are diagnosed without Python on the
phone (ABI, Android version, whether the ``benchmark_model`` binary's ABI matches, delegates,
energy); every other target through its agent's facts (arch, OS, Python, numpy, runtimes, free
disk, energy meters, thermal sensors).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError


def check_target(target, targets_file=None, *, trust_new_host: bool = False) -> dict:
    """A report: ``target``, ``ok`` (ready to benchmark), ``error`` (could not connect), ``facts``,
    ``advice`` (what to install or set), and for adb targets ``android`` and ``attached``."""
    from ..targets import load_target
    from .session import DeviceSession

    t = load_target(target, targets_file)
    rep = {"target": t.name, "ok": False, "error": None, "facts": None, "advice": []}
    try:
        if t.transport == "adb":           # phones over adb: no Python needed there
            from ..transports.adb import describe_attached

            rep["android"], rep["attached"] = android_report(t), describe_attached()
            rep["advice"], rep["ok"] = rep["android"]["problems"], rep["android"]["ok"]
        else:
            with DeviceSession(t, trust_new_host=trust_new_host, lock=False) as s:
                facts = s.facts()
                profile = s.profile
            rep["facts"], rep["advice"] = facts, advice(facts, profile)
            missing = [a for a in rep["advice"] if "missing" in a or a.startswith(("no TFLite", "no ONNX"))]
            rep["ok"] = not missing
    except EdgeCompressError as e:
        rep["error"] = str(e)
    return rep


def advice(facts: dict, profile) -> list[str]:
    """What to install or set on the device, from its facts and the profile's runtimes."""
    tips = []
    rt = facts.get("runtimes", {})
    if not facts.get("numpy"):
        tips.append("numpy is missing: pip install numpy")
    if "tflite" in profile.runtimes and not (rt.get("ai-edge-litert") or rt.get("tflite-runtime")
                                              or rt.get("tensorflow")):
        tips.append("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime on older OS images)")
    if "onnxruntime" in profile.runtimes and not rt.get("onnxruntime"):
        tips.append("no ONNX runtime: pip install onnxruntime")
    if facts.get("emulated"):
        tips.append("emulated CPU (qemu): artifacts load and compute here as on a real aarch64 board, but "
                    "timings mean nothing for one, energy is unavailable, and its memory and cores are "
                    "the host's")
    elif not facts.get("energy_meters"):
        tips.append("no energy meter found: energy will be 'estimated' from the profile's power model; "
                    "for measured energy use RAPL (make energy_uj readable), a Pi 5 (vcgencmd), a Jetson "
                    "(INA3221) or an external meter (target 'energy: command' + 'energy_command')")
    if (facts.get("free_disk_mb") or 0) < 200:
        tips.append(f"only {facts.get('free_disk_mb')} MB free in the work folder")
    return tips


def android_report(target, *, adb: Optional[str] = None) -> dict:
    """What an ``adb`` target is and what can run there: ABI, Android version, model, Python,
    benchmark_model (and whether its ABI matches), delegates, energy. Raises TransportError
    when the phone cannot be reached."""
    from ..profiles import load_profile
    from ..transports.adb import AdbTransport, binary_abi
    from . import android_sysfs as sysfs

    t = AdbTransport.from_target(target, adb=adb)
    props = t.properties()
    abi = props.get("ro.product.cpu.abi")
    py = t.run(["sh", "-c", f"command -v {shlex.quote(target.python)} || true"], timeout=30).stdout.strip()
    probe = sysfs.parse_probe(t.run(sysfs.probe_argv(target.sysfs_root), timeout=30).stdout)
    profile = load_profile(target.profile)
    can_run, problems = [], []
    if target.benchmark_model:
        bm = Path(target.benchmark_model).expanduser()
        if not bm.is_file():
            problems.append(f"benchmark_model {bm} does not exist on this host")
        else:
            built = binary_abi(bm)
            if built and abi and built != abi and not (built == "armeabi-v7a" and abi == "arm64-v8a"):
                problems.append(f"benchmark_model {bm} is built for {built}, the phone is {abi}")
            else:
                can_run.append(f"native: benchmark_model runs .tflite ({', '.join(profile.delegates)} delegates)")
    else:
        problems.append("no `benchmark_model:` in the target: native mode needs LiteRT's benchmark_model "
                        f"for {abi or 'the phone ABI'} (android_aarch64_benchmark_model for arm64-v8a)")
    if py:
        can_run.append(f"python: {py} (mode: python, the edgecompress runner)")
    elif target.mode == "python":
        problems.append(f"mode: python but {target.python!r} is not on the adb shell's PATH; use mode: native, "
                        f"or reach Termux's Python over SSH (port 8022)")
    reason = sysfs.charging_reason(probe)
    return {
        "name": target.name, "transport": "adb", "serial": t.serial, "abi": abi,
        "android": props.get("ro.build.version.release"), "sdk": props.get("ro.build.version.sdk"),
        "model": props.get("ro.product.model"), "manufacturer": props.get("ro.product.manufacturer"),
        "soc": props.get("ro.soc.model"), "mode": target.mode, "python": py or None,
        "delegates": list(profile.delegates), "can_run": can_run, "problems": problems,
        "energy": "battery fuel gauge (on battery)" if reason is None else f"unavailable: {reason}",
        "thermal_zones": len(probe["zones"]), "cpufreq_cpus": len(probe["cpus"]),
        "ok": not problems,
    }
