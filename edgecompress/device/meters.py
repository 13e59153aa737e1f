"""Energy meters, read under a sysfs root (standard library only).

A meter is either *cumulative* (``read()`` -> joules since it was opened, wrap-around
undone) or *instantaneous* (``read()`` -> watts now). :class:`Recorder` turns either into
energy over an interval: cumulative meters are read at start and stop (and polled in
between so no wrap is missed); power meters are sampled every ``interval_s`` and
integrated with the trapezoid rule.

Meters (``--energy``):
- ``rapl``: ``<root>/sys/class/powercap/intel-rapl:N/energy_uj`` (µJ; package domains summed;
  wraps at ``max_energy_range_uj``).
- ``pi5-pmic``: ``vcgencmd pmic_read_adc`` (found on PATH): ``NAME_A current(i)=xA`` and
  ``NAME_V volt(j)=yV`` lines; rails paired by name, power = Σ V·A.
- ``android-battery``: ``<root>/sys/class/power_supply/battery/{current_now,voltage_now}``;
  the kernel ABI says µA/µV but vendors report mA/mV and either sign: |current| < 20000 is
  taken as mA, voltage > 1e5 as µV, > 100 as mV, else V; the sign is dropped. A phone on
  external power (a ``power_supply/*/online`` = 1 other than the battery, or battery ``status``
  Charging/Full) cannot be measured: :meth:`Meter.unavailable_reason` says why (the fuel gauge
  then mixes charging current with load) and the runner reports ``"method": "unavailable"``.
- ``jetson-ina``: INA3221 hwmon ``in*_input`` (mV) × ``curr*_input`` (mA), paired by channel;
  when a channel labelled ``VDD_IN`` (the board input) exists it alone is used (the others are
  its sub-rails), else all channels are summed.
- ``command``: a user command printing watts (``12.5`` or ``12.5 W``/``mW``) or cumulative
  joules (``3.2 J``/``mJ``).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
import time
from typing import Callable, Optional

#: the meter names, in one place (the profile schema, the runner's --energy and registry.METERS read it)
METERS = ("rapl", "pi5-pmic", "android-battery", "jetson-ina", "command")


class MeterError(Exception):
    """A meter is missing or gives unreadable values."""


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError) as e:
        raise MeterError(f"cannot read {path}: {e}") from e


class Meter:
    name = "meter"
    cumulative = False

    def read(self) -> float:  # joules (cumulative) or watts
        raise NotImplementedError

    def details(self) -> dict:
        return {}

    def unavailable_reason(self) -> Optional[str]:
        """Why this meter cannot measure right now (e.g. a phone on its charger), or None."""
        return None


_CHARGING_STATUS = ("charging", "full")


def charging_reason(online: dict, status: Optional[str]) -> Optional[str]:
    """Why a battery fuel gauge cannot measure a benchmark, or None if it can.

    ``online``: power_supply folder name -> its ``online`` value (int or None); any supply other
    than ``battery`` at 1 (usb, ac, wireless, ...) means external power. ``status``: the battery's
    ``status`` text; ``Charging`` or ``Full`` (full on a charger) also rule a measurement out.
    Shared by this runner's ``android-battery`` meter and the Python-free adb path
    (:func:`edgecompress.deploy.android_sysfs.charging_reason`).
    """
    plugged = [name for name, v in online.items() if v == 1 and name != "battery"]
    if plugged:
        return (f"the phone is on external power ({', '.join(sorted(plugged))} online = 1): the battery "
                f"current then mixes charging with load; measure over Wi-Fi debugging (`adb tcpip`) "
                f"with the cable unplugged")
    if (status or "").strip().lower() in _CHARGING_STATUS:
        return (f"the battery status is {status.strip()!r}: energy cannot be measured while charging "
                f"(or when full on a charger); unplug the phone")
    return None


class RaplMeter(Meter):
    name = "rapl"
    cumulative = True

    def __init__(self, root: str = "/"):
        base = os.path.join(root, "sys/class/powercap")
        self.domains = sorted(d for d in glob.glob(os.path.join(base, "intel-rapl:*"))
                              if re.fullmatch(r"intel-rapl:\d+", os.path.basename(d))
                              and os.path.exists(os.path.join(d, "energy_uj")))
        if not self.domains:
            raise MeterError(f"no RAPL package domain under {base} (intel-rapl:N/energy_uj)")
        self.max_uj = [_read_int(os.path.join(d, "max_energy_range_uj")) if os.path.exists(
            os.path.join(d, "max_energy_range_uj")) else 2 ** 32 for d in self.domains]
        self.last = [self._raw(i) for i in range(len(self.domains))]
        self.total_uj = 0
        self.wraps = 0
        self._lock = threading.Lock()

    def _raw(self, i: int) -> int:
        return _read_int(os.path.join(self.domains[i], "energy_uj"))

    def read(self) -> float:
        with self._lock:
            for i in range(len(self.domains)):
                raw = self._raw(i)
                delta = raw - self.last[i]
                if delta < 0:  # the counter wrapped at max_energy_range_uj
                    delta += self.max_uj[i]
                    self.wraps += 1
                self.total_uj += delta
                self.last[i] = raw
            return self.total_uj / 1e6

    def details(self) -> dict:
        names = []
        for d in self.domains:
            try:
                with open(os.path.join(d, "name")) as f:
                    names.append(f.read().strip())
            except OSError:
                names.append(os.path.basename(d))
        return {"domains": names, "wraps": self.wraps}


_PMIC = re.compile(r"^\s*(\S+)\s+(current|volt)\(\d+\)=([-+0-9.eE]+)([AV])\s*$")


def parse_pmic(text: str) -> dict[str, float]:
    """Rail name -> watts from ``vcgencmd pmic_read_adc`` output (``X_A`` paired with ``X_V``)."""
    amps, volts = {}, {}
    for line in text.splitlines():
        m = _PMIC.match(line)
        if not m:
            continue
        name, kind, value = m.group(1), m.group(2), float(m.group(3))
        rail = re.sub(r"_[AV]$", "", name)
        (amps if kind == "current" else volts)[rail] = value
    return {rail: volts[rail] * amps[rail] for rail in sorted(amps) if rail in volts}


class Pi5PmicMeter(Meter):
    name = "pi5-pmic"

    def __init__(self, root: str = "/"):
        self.exe = shutil.which("vcgencmd")
        if not self.exe:
            raise MeterError("vcgencmd not found on PATH (Raspberry Pi firmware tools)")
        self.rails = parse_pmic(self._query())
        if not self.rails:
            raise MeterError("vcgencmd pmic_read_adc printed no paired *_A/*_V rails (not a Pi 5?)")

    def _query(self) -> str:
        try:
            res = subprocess.run([self.exe, "pmic_read_adc"], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MeterError(f"vcgencmd pmic_read_adc failed: {e}") from e
        if res.returncode != 0:
            raise MeterError(f"vcgencmd pmic_read_adc exited {res.returncode}: {res.stderr.strip()}")
        return res.stdout

    def read(self) -> float:
        self.rails = parse_pmic(self._query())
        return sum(self.rails.values())

    def details(self) -> dict:
        return {"rails": sorted(self.rails)}


class AndroidBatteryMeter(Meter):
    name = "android-battery"

    def __init__(self, root: str = "/"):
        base = os.path.join(root, "sys/class/power_supply")
        candidates = [os.path.join(base, "battery")] + sorted(glob.glob(os.path.join(base, "*")))
        self.dir = next((d for d in candidates if os.path.exists(os.path.join(d, "current_now"))
                         and os.path.exists(os.path.join(d, "voltage_now"))), None)
        if self.dir is None:
            raise MeterError(f"no battery fuel gauge under {base} (*/current_now and voltage_now)")
        self.units: dict = {}
        self.read()

    def read(self) -> float:
        current = _read_int(os.path.join(self.dir, "current_now"))
        voltage = _read_int(os.path.join(self.dir, "voltage_now"))
        amps, cu = (abs(current) / 1e3, "mA") if abs(current) < 20000 else (abs(current) / 1e6, "uA")
        if voltage > 1e5:
            volts, vu = voltage / 1e6, "uV"
        elif voltage > 100:
            volts, vu = voltage / 1e3, "mV"
        else:
            volts, vu = float(voltage), "V"
        self.units = {"current_unit": cu, "voltage_unit": vu, "current_sign": "negative" if current < 0 else "positive"}
        return amps * volts

    def _status(self) -> Optional[str]:
        try:
            with open(os.path.join(self.dir, "status")) as f:
                return f.read().strip() or None
        except OSError:
            return None

    def unavailable_reason(self) -> Optional[str]:
        online = {}
        for path in glob.glob(os.path.join(os.path.dirname(self.dir), "*", "online")):
            try:
                online[os.path.basename(os.path.dirname(path))] = _read_int(path)
            except MeterError:
                continue
        return charging_reason(online, self._status())

    def details(self) -> dict:
        return {"supply": os.path.basename(self.dir), **self.units, "status": self._status()}


class JetsonInaMeter(Meter):
    name = "jetson-ina"

    def __init__(self, root: str = "/"):
        dirs = glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*")) + \
            glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*"))
        seen, self.channels = set(), []
        for d in sorted(dirs):
            real = os.path.realpath(d)
            if real in seen:
                continue
            seen.add(real)
            try:
                with open(os.path.join(d, "name")) as f:
                    if "ina3221" not in f.read():
                        continue
            except OSError:
                continue
            for vin in sorted(glob.glob(os.path.join(d, "in*_input"))):
                n = re.search(r"in(\d+)_input$", vin).group(1)
                curr = os.path.join(d, f"curr{n}_input")
                if not os.path.exists(curr):
                    continue
                label = ""
                try:
                    with open(os.path.join(d, f"in{n}_label")) as f:
                        label = f.read().strip()
                except OSError:
                    pass
                self.channels.append((label or f"{os.path.basename(d)}/in{n}", vin, curr))
        if not self.channels:
            raise MeterError(f"no INA3221 hwmon (name 'ina3221', in*_input + curr*_input) under {root}")
        total = [c for c in self.channels if c[0].upper() in ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")]
        self.used = total[:1] or self.channels

    def read(self) -> float:
        return sum(_read_int(v) * _read_int(c) for _, v, c in self.used) / 1e6  # mV * mA = µW

    def details(self) -> dict:
        return {"rails": [c[0] for c in self.used]}


_NUMBER = re.compile(r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(mW|W|mJ|J|uJ)?\b")


class CommandMeter(Meter):
    name = "command"

    def __init__(self, command: str, root: str = "/"):
        if not command:
            raise MeterError("meter 'command' needs --energy-command (a command printing watts or joules)")
        self.command = command
        self.unit = None
        self.cumulative = self._parse(self._run())[1]
        self._base = self._parse(self._run())[0] if self.cumulative else 0.0

    def _run(self) -> str:
        try:
            res = subprocess.run(["sh", "-c", self.command], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise MeterError(f"energy command {self.command!r} failed: {e}") from e
        if res.returncode != 0:
            raise MeterError(f"energy command {self.command!r} exited {res.returncode}: {res.stderr.strip()[-200:]}")
        return res.stdout

    def _parse(self, text: str) -> tuple[float, bool]:
        m = _NUMBER.search(text)
        if not m:
            raise MeterError(f"energy command {self.command!r} printed no number: {text.strip()[:100]!r}")
        value, unit = float(m.group(1)), m.group(2) or "W"
        self.unit = unit
        scale = {"W": 1.0, "mW": 1e-3, "J": 1.0, "mJ": 1e-3, "uJ": 1e-6}[unit]
        return value * scale, unit.endswith("J")

    def read(self) -> float:
        value = self._parse(self._run())[0]
        return value - self._base if self.cumulative else value

    def details(self) -> dict:
        return {"command": self.command, "unit": self.unit}


FACTORIES: dict[str, Callable[..., Meter]] = {
    "rapl": RaplMeter, "pi5-pmic": Pi5PmicMeter, "android-battery": AndroidBatteryMeter,
    "jetson-ina": JetsonInaMeter,
}
AUTO_ORDER = ("pi5-pmic", "rapl", "jetson-ina", "android-battery")


def open_meter(which: str = "auto", root: str = "/", command: Optional[str] = None) -> Optional[Meter]:
    """The chosen meter; for ``auto`` the first one the device has (None if none)."""
    if which == "none":
        return None
    if which == "command":
        return CommandMeter(command or "", root)
    if which != "auto":
        if which not in FACTORIES:
            raise MeterError(f"unknown meter {which!r}; valid: auto, none, {', '.join(METERS)}")
        return FACTORIES[which](root)
    if command:
        return CommandMeter(command, root)
    for name in AUTO_ORDER:
        try:
            return FACTORIES[name](root)
        except MeterError:
            continue
    return None


def available(root: str = "/") -> list[str]:
    found = []
    for name in AUTO_ORDER:
        try:
            FACTORIES[name](root)
            found.append(name)
        except MeterError:
            pass
    return found


class Recorder:
    """Energy over an interval. ``start()``, work, ``stop()`` -> (joules, seconds, n_samples)."""

    def __init__(self, meter: Meter, interval_s: float = 0.1):
        self.meter = meter
        self.interval_s = interval_s
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        before = time.perf_counter()
        value = self.meter.read()
        # a slow meter (a command) measured somewhere in between: stamp the middle
        self._samples.append(((before + time.perf_counter()) / 2, value))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except MeterError:
                pass

    def start(self) -> None:
        self._samples = []
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[float, float, int]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        s = self._samples
        seconds = s[-1][0] - s[0][0]
        if self.meter.cumulative:
            joules = s[-1][1] - s[0][1]
        else:
            joules = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(s, s[1:]))
        return joules, seconds, len(s)


def energy_block(meter: Optional[Meter], *, load_j: float = 0.0, load_s: float = 0.0, idle_w: Optional[float],
                 n: int, mean_latency_s: float, model_idle_w: Optional[float] = None,
                 model_load_w: Optional[float] = None, note: Optional[str] = None,
                 unavailable: Optional[str] = None) -> dict:
    """The result's ``energy`` block: measured (idle baseline subtracted), estimated, or unavailable.

    ``unavailable``: the device has a meter that cannot measure now (a phone charging); the block
    then says ``"method": "unavailable"`` with that ``reason``, never an estimate in its place.
    """
    if unavailable is not None:
        return {"method": "unavailable", "source": meter.name if meter else None, "avg_power_w": None,
                "mj_per_inference": None, "reason": unavailable, "note": note}
    if meter is not None and load_s > 0:
        avg = load_j / load_s
        base = idle_w if idle_w is not None else 0.0
        mj = (load_j - base * load_s) / n * 1000.0
        return {"method": "measured", "source": meter.name, "avg_power_w": avg, "idle_power_w": idle_w,
                "mj_per_inference": mj, "joules": load_j, "seconds": load_s,
                "baseline_subtracted": idle_w is not None, "details": meter.details(), "note": note}
    if model_idle_w is not None and model_load_w is not None:
        mj = (model_load_w - model_idle_w) * mean_latency_s * 1000.0
        return {"method": "estimated", "source": "power-model", "avg_power_w": model_load_w,
                "idle_power_w": model_idle_w, "mj_per_inference": mj,
                "note": note or "no energy meter on this device: estimated from the profile's idle_w/load_w"}
    return {"method": "unavailable", "source": None, "avg_power_w": None, "mj_per_inference": None,
            "note": note or "no energy meter on this device and no power model given (--idle-w/--load-w)"}
