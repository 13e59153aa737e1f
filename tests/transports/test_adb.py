"""The adb transport against a STAND-IN adb client (edgecompress/testing/fake_adb.py).

No phone or emulator can run here. The stand-in is an executable that speaks adb's command-line
interface (``devices -l``, ``get-state``, ``push``, ``pull``, ``shell``, ``-s SERIAL``) over a
folder standing for the phone and the local ``/bin/sh``; the transport runs it exactly as it
runs the real client (through ``$EDGECOMPRESS_ADB``).
"""
from __future__ import annotations

import hashlib
import time

import pytest

from edgecompress.errors import TransportError
from edgecompress.targets import Target
from edgecompress.transports import open_transport
from edgecompress.transports.adb import DEVICE_ROOT, AdbTransport, list_devices


def _target(serial=None, **kw):
    return Target(name="phone", profile="pixel-8", transport="adb", serial=serial, **kw)


def test_devices_listed_with_model_and_state(fake_adb):
    fake_adb.phone("35091FDH2000ZX")
    fake_adb.phone("R5CW70ABCDE", model="SM_S921U", state="unauthorized")
    devs = {d["serial"]: d for d in list_devices()}
    assert devs["35091FDH2000ZX"]["state"] == "device" and devs["35091FDH2000ZX"]["model"] == "Pixel_8"
    assert devs["R5CW70ABCDE"]["state"] == "unauthorized"


def test_registry_builds_adb_transport_for_target(fake_phone):
    t = open_transport(_target(fake_phone.serial))
    assert isinstance(t, AdbTransport) and t.serial == fake_phone.serial
    assert t.expand("~/.cache/edgecompress/runner") == f"{DEVICE_ROOT}/runner"


@pytest.mark.parametrize("legacy", [False, True], ids=["shell-v2", "legacy-shell-exit-0"])
def test_exit_status_stdout_stderr_even_when_adb_hides_the_status(fake_adb, legacy):
    phone = fake_adb.phone(legacy_shell=legacy)
    t = AdbTransport(phone.serial)
    res = t.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (res.exit_code, res.stdout, res.stderr.strip()) == (7, "out\n", "err")
    assert t.run(["true"]).ok
    # output without a final newline is kept byte for byte
    assert t.run(["printf", "%s", "no newline"]).stdout == "no newline"


def test_arguments_are_quoted_env_exported_stdin_fed(fake_phone):
    t = AdbTransport(fake_phone.serial)
    tricky = "a b; rm -rf / 'q' \"d\" $HOME `x`"
    assert t.run(["printf", "%s", tricky]).stdout == tricky
    assert t.run(["sh", "-c", 'printf %s "$EC_X"'], env={"EC_X": "v a l"}).stdout == "v a l"
    assert t.run(["wc", "-c"], stdin=b"12345").stdout.strip() == "5"


def test_killed_by_signal_and_time_out(fake_phone):
    t = AdbTransport(fake_phone.serial)
    res = t.run(["sh", "-c", "kill -9 $$"])
    assert res.signal == "SIGKILL" and res.exit_code is None and not res.ok
    start = time.monotonic()
    res = t.run(["sleep", "30"], timeout=1.0)
    assert res.timed_out and res.exit_code is None and time.monotonic() - start < 10


def test_put_get_round_trip_is_atomic_and_exact(fake_phone, tmp_path):
    t = AdbTransport(fake_phone.serial)
    data = bytes(range(256)) * 4000
    src = tmp_path / "model.int8.tflite"
    src.write_bytes(data)
    remote = f"{DEVICE_ROOT}/blobs/model.tflite"
    moved = t.put(src, remote)
    assert moved.bytes == len(data) and moved.remote == remote
    on_phone = fake_phone.path(remote)
    assert on_phone.read_bytes() == data
    assert not [p for p in on_phone.parent.iterdir() if ".part" in p.name]     # no temporary left behind
    sha = t.run(["sha256sum", remote]).stdout.split()
    assert sha == [hashlib.sha256(data).hexdigest(), remote]
    back = tmp_path / "back.bin"
    assert t.get(remote, back).bytes == len(data) and back.read_bytes() == data
    with pytest.raises(TransportError, match="pull .*missing"):
        t.get(f"{DEVICE_ROOT}/missing", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unauthorised_missing_and_ambiguous_devices_say_what_to_do(fake_adb):
    fake_adb.phone("AAA", state="unauthorized")
    with pytest.raises(TransportError, match="'AAA'.*unauthorized.*Allow USB debugging"):
        AdbTransport("AAA").run(["true"])
    with pytest.raises(TransportError, match="'ZZZ'.*not found.*attached: AAA"):
        AdbTransport("ZZZ").run(["true"])
    fake_adb.phone("BBB")
    with pytest.raises(TransportError, match="more than one.*serial"):
        AdbTransport(None).run(["true"])


def test_properties_and_spawned_process_reads_stdin_until_closed(fake_phone):
    t = AdbTransport(fake_phone.serial)
    props = t.properties()
    assert props["ro.product.cpu.abi"] == "arm64-v8a" and props["ro.build.version.sdk"] == "34"
    proc = t.spawn(["sh", "-c", "echo ready; cat >/dev/null; echo released"])
    assert proc.readline(10) == "ready"
    assert proc.alive()
    proc.close()
    assert not proc.alive()


def test_targets_check_lists_abi_android_model_and_what_can_run(fake_adb, tmp_path):
    from edgecompress.deploy import check_target
    from edgecompress.transports.adb import describe_attached

    phone = fake_adb.phone("35091FDH2000ZX")
    fake_adb.phone("R5CW70ABCDE", state="unauthorized")
    rows = {r["serial"]: r for r in describe_attached()}
    assert rows["35091FDH2000ZX"] | {} == {"serial": "35091FDH2000ZX", "state": "device", "model": "Pixel 8",
                                           "abi": "arm64-v8a", "android": "14", "sdk": "34"}
    assert "Allow USB debugging" in rows["R5CW70ABCDE"]["error"]

    arm64 = tmp_path / "android_aarch64_benchmark_model"       # an ELF header for AArch64 (e_machine 183)
    arm64.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little") + bytes(44))
    rep = check_target(_target(phone.serial, mode="native", benchmark_model=str(arm64)))["android"]
    assert (rep["abi"], rep["android"], rep["model"], rep["soc"]) == ("arm64-v8a", "14", "Pixel 8", "Tensor G3")
    assert rep["ok"] and rep["python"] is None and rep["delegates"] == ["xnnpack", "gpu", "nnapi"]
    assert rep["can_run"] == ["native: benchmark_model runs .tflite (xnnpack, gpu, nnapi delegates)"]
    assert rep["energy"] == "battery fuel gauge (on battery)"

    x86 = tmp_path / "linux_x86-64_benchmark_model"
    x86.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little") + bytes(44))
    phone.set_power_online(usb=1, ac=0)
    rep = check_target(_target(phone.serial, mode="native", benchmark_model=str(x86)))["android"]
    assert not rep["ok"] and "built for x86_64, the phone is arm64-v8a" in rep["problems"][0]
    assert rep["energy"].startswith("unavailable: the phone is on external power (usb online = 1)")
    rep = check_target(_target(phone.serial))["android"]      # mode: python, and no Python in adb shell
    assert any("not on the adb shell's PATH" in p for p in rep["problems"])


def test_cli_targets_check_for_an_adb_target(fake_adb, tmp_path, capsys):
    import json

    import yaml

    from edgecompress.cli import main

    phone = fake_adb.phone("35091FDH2000ZX")
    inv = tmp_path / "targets.yaml"
    inv.write_text(yaml.safe_dump({"targets": [{"name": "p8", "profile": "pixel-8", "transport": "adb",
                                                "serial": phone.serial}]}))
    assert main(["targets", "check", "p8", "--targets", str(inv)]) == 1      # mode python, no Python there
    out = capsys.readouterr().out
    assert "adb 35091FDH2000ZX: Google Pixel 8 (Tensor G3), arm64-v8a, Android 14 (API 34)" in out
    assert "attached: 35091FDH2000ZX device Pixel 8 arm64-v8a Android 14" in out
    assert main(["targets", "check", "p8", "--targets", str(inv), "--json"]) == 1
    [rep] = json.loads(capsys.readouterr().out)
    assert rep["android"]["abi"] == "arm64-v8a" and rep["attached"][0]["serial"] == phone.serial


def test_phone_gone_mid_command_is_connection_lost(fake_adb):
    from edgecompress.errors import ConnectionLost

    phone = fake_adb.phone("35091FDH2000ZX")
    t = AdbTransport(phone.serial)
    assert t.run(["true"]).ok                          # connected once
    phone.info["state"] = "offline"                    # cable pulled
    phone.register()
    with pytest.raises(ConnectionLost, match="offline.*reconnect"):
        t.run(["true"])
