#!/usr/bin/env python3
"""A STAND-IN for the ``adb`` client, for tests only: no phone or emulator can run on these machines.

It answers the commands edgecompress's adb transport uses, with adb's own output formats and
exit statuses: ``[-s SERIAL] devices -l | get-state | push LOCAL REMOTE | pull REMOTE LOCAL |
shell CMD... | version``. Each fake device is a folder (its "root") holding ``data/local/tmp/``,
a sysfs-shaped ``sys/`` (battery, thermal zones, cpufreq: values written by the test), ``bin/``
(``getprop`` and whatever the test puts there) and ``system/bin/`` (the toybox-like tools a phone
has, linked from the host); PATH is just those two, so there is no Python unless a test adds one. ``shell`` runs the command in the
host's ``/bin/sh`` with ``/data/local/tmp`` and ``/sys/`` in the command line mapped to that
folder, and maps the folder back to device paths in the output.

State: ``$FAKE_ADB_STATE`` names a JSON file
``{"devices": {SERIAL: {"state": "device"|"unauthorized"|"offline", "root": DIR,
"legacy_shell": bool, "model": ..., "product": ..., "device": ...}}}``.
``legacy_shell: true`` behaves like adb against Android < 7 (no shell protocol v2): ``adb shell``
always exits 0 whatever the command's status, and output lines end in CRLF (the shell is on a pty).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

DEVICE_TMP = "/data/local/tmp"


def _state() -> dict:
    with open(os.environ["FAKE_ADB_STATE"]) as f:
        return json.load(f)


def _die(msg: str, rc: int = 1):
    sys.stderr.write(msg + "\n")
    sys.exit(rc)


def _pick(devices: dict, serial: str | None) -> tuple[str, dict]:
    if serial is None:
        serial = os.environ.get("ANDROID_SERIAL")
    if serial is None:
        if not devices:
            _die("adb: no devices/emulators found")
        if len(devices) > 1:
            _die("adb: more than one device/emulator")
        serial = next(iter(devices))
    if serial not in devices:
        _die(f"adb: device '{serial}' not found")
    dev = devices[serial]
    if dev.get("state", "device") == "unauthorized":
        _die("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
             "Try 'adb kill-server' if that seems wrong.\n"
             "Otherwise check for a confirmation dialog on your device.")
    if dev.get("state", "device") == "offline":
        _die("adb: device offline")
    return serial, dev


def _to_host(path: str, root: str) -> str:
    if path.startswith(DEVICE_TMP):
        return root + path
    if path.startswith("/sys/"):
        return root + path
    return path


def _map_cmd(cmd: str, root: str) -> str:
    return cmd.replace(DEVICE_TMP, root + DEVICE_TMP).replace("/sys/", root + "/sys/")


def _unmap(text: str, root: str) -> str:
    return text.replace(root, "")


def main(argv: list[str]) -> int:
    serial = None
    while argv and argv[0] in ("-s", "-t", "-d", "-e"):
        if argv[0] == "-s":
            serial = argv[1]
            argv = argv[2:]
        else:
            argv = argv[1:]
    if not argv:
        _die("adb: usage: adb [-s SERIAL] COMMAND")
    cmd, args = argv[0], argv[1:]
    devices = _state()["devices"]
    if cmd == "version":
        print("Android Debug Bridge version 1.0.41\nVersion 34.0.5-stand-in (edgecompress tests)")
        return 0
    if cmd in ("start-server", "kill-server"):
        return 0
    if cmd == "devices":
        print("List of devices attached")
        for s, d in devices.items():
            extra = ""
            if "-l" in args and d.get("state", "device") == "device":
                extra = (f" usb:1-1 product:{d.get('product', 'p')} model:{d.get('model', 'm')} "
                         f"device:{d.get('device', 'd')} transport_id:1")
            print(f"{s:<22} {d.get('state', 'device')}{extra}")
        print()
        return 0
    if cmd == "get-state":
        _, dev = _pick(devices, serial)
        print(dev.get("state", "device"))
        return 0
    serial, dev = _pick(devices, serial)
    root = dev["root"]
    if cmd == "push":
        local, remote = args[0], args[1]
        if not os.path.exists(local):
            _die(f"adb: error: cannot stat '{local}': No such file or directory")
        dest = _to_host(remote, root)
        if os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(local))
        if not os.path.isdir(os.path.dirname(dest)):
            _die(f"adb: error: failed to copy '{local}' to '{remote}': remote couldn't create file: "
                 "No such file or directory")
        t0 = time.monotonic()
        shutil.copyfile(local, dest)
        os.chmod(dest, os.stat(local).st_mode & 0o777)
        n = os.path.getsize(dest)
        dt = max(time.monotonic() - t0, 1e-6)
        print(f"{local}: 1 file pushed, 0 skipped. {n / dt / 1e6:.1f} MB/s ({n} bytes in {dt:.3f}s)")
        return 0
    if cmd == "pull":
        remote, local = args[0], args[1]
        src = _to_host(remote, root)
        if not os.path.exists(src):
            _die(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
        shutil.copyfile(src, local)
        print(f"{remote}: 1 file pulled, 0 skipped.")
        return 0
    if cmd == "shell":
        line = " ".join(args) if args else "true"
        env = dict(os.environ)
        # like a phone: its own bin/ and a toybox-like system/bin, not the host's PATH (no Python)
        env["PATH"] = os.path.join(root, "bin") + os.pathsep + os.path.join(root, "system", "bin")
        env["HOME"] = "/"
        env["ANDROID_DATA"] = "/data"
        p = subprocess.Popen(["/bin/sh", "-c", _map_cmd(line, root)], cwd=root, env=env,
                             stdin=None if sys.stdin is None or sys.stdin.isatty() else sys.stdin,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        errs: list[bytes] = []
        t = threading.Thread(target=lambda: errs.append(p.stderr.read()), daemon=True)
        t.start()
        crlf = dev.get("legacy_shell")                # pre-v2 adb: the shell runs on a pty (CRLF)
        for raw in iter(p.stdout.readline, b""):      # streamed: `adb shell` output arrives as it comes
            text = _unmap(raw.decode("utf-8", "replace"), root)
            sys.stdout.write(text.replace("\n", "\r\n") if crlf else text)
            sys.stdout.flush()
        rc = p.wait()
        t.join()
        sys.stderr.write(_unmap(b"".join(errs).decode("utf-8", "replace"), root))
        return 0 if dev.get("legacy_shell") else rc
    _die(f"adb: unknown command {cmd}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
