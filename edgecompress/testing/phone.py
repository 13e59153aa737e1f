"""A stand-in phone behind a stand-in ``adb`` client: a public test double (as Fabric ships its own).

No phone or emulator runs in CI, so :class:`FakePhone` builds what a phone exposes to adb —
``/data/local/tmp``, a sysfs-shaped ``/sys`` with known battery, thermal and cpufreq values,
``getprop``, the toybox tools — in a folder, and :class:`FakeAdb` writes an ``adb`` executable
(:mod:`edgecompress.testing.fake_adb`) that speaks adb's command line over those folders::

    adb = FakeAdb(tmp / "adb")                    # then: EDGECOMPRESS_ADB=adb.exe, FAKE_ADB_STATE=adb.state_file
    phone = adb.phone("35091FDH2000ZX")           # attached, authorised, on battery
    phone.set_battery(current_now=-900000, voltage_now=3850000)

:func:`use` sets those environment variables (pytest: ``monkeypatch.setenv``).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: what Android's toybox/mksh give an adb shell (linked from this host into the stand-in's system/bin)
TOYBOX = ("sh", "cat", "echo", "printf", "mkdir", "mv", "rm", "cp", "ls", "chmod", "touch", "sleep", "kill",
          "sha256sum", "md5sum", "wc", "tr", "head", "tail", "uname", "env", "true", "false", "id", "date",
          "basename", "dirname", "grep", "sed", "stat", "test", "[", "expr", "nproc", "df")
def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode:
        path.chmod(mode)


class FakePhone:
    """One stand-in device: ``root`` is its filesystem; values are written the way sysfs shows them."""

    def __init__(self, base: Path, serial: str, state_file: Path, **info):
        self.serial = serial
        self.root = base / serial
        self.state_file = state_file
        self.info = {"state": "device", "root": str(self.root), "legacy_shell": False,
                     "model": "Pixel_8", "product": "shiba", "device": "shiba", **info}
        (self.root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        system_bin = self.root / "system/bin"
        system_bin.mkdir(parents=True, exist_ok=True)
        for tool in TOYBOX:
            found = shutil.which(tool)
            if found and not (system_bin / tool).exists():
                (system_bin / tool).symlink_to(found)
        self.props = {"ro.product.cpu.abi": "arm64-v8a", "ro.build.version.release": "14",
                      "ro.build.version.sdk": "34", "ro.product.model": "Pixel 8",
                      "ro.product.manufacturer": "Google", "ro.soc.model": "Tensor G3",
                      "ro.hardware": "shiba"}
        self.write_props()
        self.set_battery(current_now=-450000, voltage_now=3850000, status="Discharging")
        self.set_power_online(usb=0, ac=0)
        self.set_thermal([("cpu-1-0-usr", 41000), ("battery", 30500)])
        self.set_cpufreq([(1704000, 1704000, 1704000)] * 4 + [(2367000, 2367000, 2367000)] * 4)
        self.register()

    def register(self) -> None:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {"devices": {}}
        state["devices"][self.serial] = self.info
        self.state_file.write_text(json.dumps(state))

    def path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def write_props(self) -> None:
        cases = "\n".join(f"  {k}) echo '{v}' ;;" for k, v in self.props.items())
        _write(self.root / "bin/getprop", f"#!/bin/sh\ncase \"$1\" in\n{cases}\n  *) echo '' ;;\nesac\n", 0o755)

    def set_battery(self, *, current_now, voltage_now, status="Discharging") -> None:
        b = self.root / "sys/class/power_supply/battery"
        _write(b / "current_now", f"{current_now}\n")
        _write(b / "voltage_now", f"{voltage_now}\n")
        _write(b / "status", f"{status}\n")
        _write(b / "present", "1\n")

    def set_power_online(self, *, usb: int, ac: int) -> None:
        _write(self.root / "sys/class/power_supply/usb/online", f"{usb}\n")
        _write(self.root / "sys/class/power_supply/ac/online", f"{ac}\n")

    def set_thermal(self, zones: list[tuple[str, int]]) -> None:
        for i, (kind, milli_c) in enumerate(zones):
            z = self.root / f"sys/class/thermal/thermal_zone{i}"
            _write(z / "type", kind + "\n")
            _write(z / "temp", f"{milli_c}\n")

    def set_cpufreq(self, cpus: list[tuple[int, int, int]]) -> None:
        """(scaling_cur_freq, scaling_max_freq, cpuinfo_max_freq) in kHz per CPU."""
        for i, (cur, smax, imax) in enumerate(cpus):
            c = self.root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
            _write(c / "scaling_cur_freq", f"{cur}\n")
            _write(c / "scaling_max_freq", f"{smax}\n")
            _write(c / "cpuinfo_max_freq", f"{imax}\n")

    def add_program(self, name: str, text: str) -> Path:
        """An executable on the phone's PATH (``bin/NAME``)."""
        p = self.root / "bin" / name
        _write(p, text, 0o755)
        return p


class FakeAdb:
    def __init__(self, base: Path):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.state_file = base / "adb-state.json"
        self.state_file.write_text(json.dumps({"devices": {}}))
        self.exe = base / "adb"
        _write(self.exe, f"#!/bin/sh\nexec {sys.executable} {HERE / 'fake_adb.py'} \"$@\"\n", 0o755)

    def phone(self, serial: str = "35091FDH2000ZX", **info) -> FakePhone:
        return FakePhone(self.base, serial, self.state_file, **info)


def use(adb: FakeAdb, setenv) -> FakeAdb:
    """Point edgecompress's adb transport at ``adb`` (``setenv(name, value)``, e.g. monkeypatch.setenv)."""
    setenv("FAKE_ADB_STATE", str(adb.state_file))
    setenv("EDGECOMPRESS_ADB", str(adb.exe))
    return adb
