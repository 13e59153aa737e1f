"""Hostile input through the command line: unknown and changed host keys, and names built to be
executed — spaces, quotes, ``$()``, backticks, ``;`` and newlines in the model file name, the data
file, the output folder, the profile file's folder, the targets file, target names and the device's
work folder. Canary files (``EC_CANARY_*`` in /tmp, the current folder and the homes of this user
and the device user) must never appear, and the commands must work with those names as plain names."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from profile_yaml import write_profile
import yaml

from cli_helpers import cli

from .conftest import device_host_key

pytestmark = pytest.mark.lab


def fp(pub: str) -> str:
    blob = base64.b64decode(pub.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def hostile(tag: str) -> str:
    """A file name (no slash) that runs `touch EC_CANARY_<tag>...` in the current folder of whatever shell
    is ever handed it unquoted (the canary fixture looks there, in /tmp and in the homes)."""
    return (f"x $(touch EC_CANARY_{tag}_dollar) `touch EC_CANARY_{tag}_tick`; touch EC_CANARY_{tag}_semi; "
            f"echo 'q' \"d\"\ntouch EC_CANARY_{tag}_newline")


def write_targets(path: Path, *targets: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"targets": list(targets)}, sort_keys=False))
    return path


def test_unknown_host_key_is_refused_with_how_to_trust_it(make_device, fault_artifacts, tmp_path, outcome):
    dev = make_device("hkeyu")
    known = tmp_path / "ssh" / "known_hosts"
    tf = write_targets(tmp_path / "t.yaml", {**dev.target_dict(), "known_hosts": str(known)})
    logins = dev.accepted_logins()
    rc, out, err = cli("bench", fault_artifacts["digits"], "--target", dev.name, "--targets", tf, "--runs", 5,
                       "--warmup", 1, "--min-seconds", 0, "--json")
    res = json.loads(out)[0]
    assert rc == 1 and res["status"] == "failed" and res["latency_ms"] is None
    assert "unknown host key" in res["error"] and "--trust-new-host" in res["error"]
    assert fp(device_host_key(dev)) in res["error"] and str(known) in res["error"]
    assert not known.exists() and dev.accepted_logins() == logins          # nothing was sent
    rc, out, err = cli("bench", fault_artifacts["digits"], "--target", dev.name, "--targets", tf, "--runs", 5,
                       "--warmup", 1, "--min-seconds", 0, "--json", "--trust-new-host")
    assert rc == 0 and json.loads(out)[0]["status"] == "ok"
    assert device_host_key(dev) in known.read_text()
    outcome(expected="refused, says how to trust; trusted with the flag",
            observed="refused with fingerprint + --trust-new-host hint; flag recorded the key; bench ok")


def test_changed_host_key_is_refused_even_with_the_trust_flag(make_device, fault_artifacts, tmp_path, outcome):
    dev = make_device("hkeyc")
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    old_pub = other.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{dev.host}]:{dev.port} {old_pub[0]} {old_pub[1]}\n")
    before = known.read_text()
    tf = write_targets(tmp_path / "t.yaml", {**dev.target_dict(), "known_hosts": str(known)})
    logins = dev.accepted_logins()
    rc, out, err = cli("bench", fault_artifacts["digits"], "--target", dev.name, "--targets", tf,
                       "--trust-new-host", "--json")
    res = json.loads(out)[0]
    assert rc == 1 and res["status"] == "failed" and res["latency_ms"] is None
    msg = res["error"]
    assert "CHANGED" in msg and fp(" ".join(old_pub)) in msg and fp(device_host_key(dev)) in msg, msg
    assert "never overrides a changed key" in msg and "ssh-keygen -R" in msg
    assert known.read_text() == before and dev.accepted_logins() == logins
    outcome(expected="refused even with --trust-new-host; old and new fingerprints named",
            observed="refused; both fingerprints in the error; known_hosts unchanged; no login")


def test_hostile_names_are_plain_names_everywhere(make_device, fault_artifacts, mnist, tmp_path, canary_tag,
                                                  outcome):
    """compress then bench on `local` and on an ssh device, every name hostile; nothing executes."""
    dev = make_device("hname")
    evil = hostile(canary_tag)
    base = tmp_path / evil
    base.mkdir()
    model = shutil.copyfile(fault_artifacts["digits"], base / f"model {evil}.onnx")
    data = base / f"data {evil}.npz"
    np.savez(data, x=mnist[2][:120], y=mnist[3][:120])
    profile = write_profile(base / "profiles" / "hostile-fp32.yaml", "hostile-fp32")
    out = base / f"out {evil}"
    rc, stdout, stderr = cli("compress", model, "--profile", profile, "--data", data, "--out", out,
                             "--cache", base / "cache", "--json", "--quiet")
    assert rc == 0, stderr[-2000:]
    manifest = out / "hostile-fp32" / "manifest.json"
    assert json.loads(manifest.read_text())["model"]["source"].endswith(f"model {evil}.onnx")

    workdir = f"{dev.root}/work/{evil}"
    local_dir = base / f"local {evil}"
    tf = write_targets(base / f"targets {evil}.yaml",
                       {**dev.target_dict(), "name": f"dev {evil}", "profile": str(profile), "workdir": workdir},
                       {"name": f"loc {evil}", "profile": str(profile), "transport": "local",
                        "workdir": str(local_dir)})
    for name in (f"dev {evil}", f"loc {evil}"):
        rc, stdout, stderr = cli("bench", manifest, "--target", name, "--targets", tf, "--json")
        assert rc == 0, stderr[-2000:]
        [res] = json.loads(stdout)
        assert res["status"] == "ok" and res["target"] == name and res["runs"] >= 5 and res["latency_ms"]["p50"] > 0
    assert any(p.suffix == ".onnx" for p in (Path(workdir) / "blobs").iterdir())   # the folder, by its plain name
    assert any(p.suffix == ".onnx" for p in (local_dir / "blobs").iterdir())
    outcome(expected="handled as plain names; nothing executed",
            observed="compress + bench (local, ssh) ok with hostile paths/names; no canary file")


def test_hostile_profile_name_is_rejected_not_run(tmp_path, canary_tag, outcome):
    """A profile's name becomes a folder name, so it is limited to [A-Za-z0-9._-]: a name with `$()`
    is bad input (exit 2) that names the file and the allowed form; nothing runs."""
    bad = tmp_path / "bad.yaml"
    write_profile(bad, f"p$(touch /tmp/EC_CANARY_{canary_tag}_prof)")
    rc, out, err = cli("profiles", "validate", bad)
    assert rc == 2
    assert str(bad) in err + out and "name" in err + out and "A-Za-z0-9" in err + out, err + out
    outcome(expected="exit 2 naming file and allowed form", observed="exit 2; message names file, key and pattern")
