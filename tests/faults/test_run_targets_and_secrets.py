"""One `edgecompress -v run` over three targets — a device reached with an ENCRYPTED key whose
passphrase comes from $EDGECOMPRESS_SSH_PASSPHRASE, a device that refuses our login (its
authorized_keys lacks our key), and one nobody listens on — with a fake token in the environment
and a target name that is HTML. The good target finishes; the two failures are in the result, the
database and the HTML report with their reasons; no secret appears in the logs, the database, the
manifest or the report; the HTML is escaped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from profile_yaml import write_profile
import yaml

from edgecompress.results import ResultsStore

from .conftest import free_port

pytestmark = pytest.mark.lab

PASSPHRASE = "pass-Phr4se-7c1e9a0b-never-log-me"
TOKEN = "tok-EC-TEST-5d2f88a1c0-secret"
HTML_NAME = 'enc<img src=x onerror="alert(1)">'


@pytest.fixture(scope="module")
def three_target_run(tmp_path_factory, fault_artifacts, mnist):
    from edgecompress import lab

    reason = lab.why_not()
    if reason:
        pytest.skip(f"lab device unavailable: {reason}")
    tmp = tmp_path_factory.mktemp("three")
    good = lab.start_device("rgood", tmp / "good")
    refusing = lab.start_device("rrefuse", tmp / "refuse")
    try:
        key = tmp / "encrypted_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True)
        Path(good.root, "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        Path(refusing.root, "authorized_keys").write_text("")           # accepts no key at all
        profile = write_profile(tmp / "fp32.yaml", "fp32-only")
        targets = [
            {**good.target_dict(), "name": HTML_NAME, "identity_file": str(key), "profile": str(profile)},
            {**refusing.target_dict(), "name": "refusing", "profile": str(profile), "connect_timeout_s": 3},
            {**good.target_dict(), "name": "gone", "host": f"{good.user}@127.0.0.1:{free_port()}",
             "profile": str(profile), "connect_timeout_s": 2},
        ]
        tf = tmp / "targets.yaml"
        tf.write_text(yaml.safe_dump({"targets": targets}))
        data = tmp / "d.npz"
        np.savez(data, x=mnist[2][:60], y=mnist[3][:60])
        out, db = tmp / "out", tmp / "results.db"
        env = {**os.environ, "EDGECOMPRESS_SSH_PASSPHRASE": PASSPHRASE, "EDGECOMPRESS_TEST_TOKEN": TOKEN,
               "HOME": str(tmp / "home")}       # no ~/.ssh keys or agent of this machine's user
        env.pop("SSH_AUTH_SOCK", None)
        res = subprocess.run([sys.executable, "-m", "edgecompress", "-v", "run", str(fault_artifacts["digits"]),
                              "--targets", str(tf), "--data", str(data), "--out", str(out), "--db", str(db),
                              "--cache", str(tmp / "cache"), "--eval-samples", "20", "--json"],
                             capture_output=True, text=True, env=env, timeout=300)
        yield {"rc": res.returncode, "stdout": res.stdout, "stderr": res.stderr, "out": out, "db": db, "tmp": tmp,
               "doc": json.loads(res.stdout) if res.stdout.strip().startswith("{") else None}
    finally:
        lab.stop_device(good)
        lab.stop_device(refusing)


def test_one_bad_target_never_loses_the_others(three_target_run, outcome):
    r = three_target_run
    assert r["rc"] == 1 and r["doc"], r["stderr"][-3000:]
    doc = r["doc"]
    assert doc["status"] == "partial" and doc["succeeded"] == [HTML_NAME]
    assert sorted(doc["failed"]) == ["gone", "refusing"]
    [good] = doc["targets"][HTML_NAME]["results"]
    assert good["status"] == "ok" and good["runs"] >= 5 and good["fidelity"]["top1_agreement"] == 1.0
    refused = doc["targets"]["refusing"]["error"]
    gone = doc["targets"]["gone"]["error"]
    assert "authentication to" in refused and "failed" in refused, refused
    assert "cannot connect" in gone and "after 3 attempts" in gone, gone
    with ResultsStore(r["db"]) as store:
        run = store.latest_run()
        status = {t["target"]: (t["status"], t["error"]) for t in store.targets(run.id)}
    assert status[HTML_NAME][0] == "ok" and status["refusing"][0] == "failed" and status["gone"][0] == "failed"
    assert "authentication" in status["refusing"][1]
    html = Path(doc["report"]).read_text()
    assert "refusing" in html and "gone" in html and "authentication to" in html and "cannot connect" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html          # the target name is escaped
    outcome(expected="others finish; failures in result and report",
            observed="1 ok, 'refusing' (auth) and 'gone' (connect) failed with reasons in JSON, DB and HTML")


def test_no_secret_in_logs_results_database_manifest_or_report(three_target_run, outcome):
    r = three_target_run
    assert r["doc"] and r["doc"]["succeeded"] == [HTML_NAME], r["stderr"][-3000:]   # the passphrase was used
    assert "DEBUG paramiko" in r["stderr"] or "DEBUG edgecompress" in r["stderr"]   # -v logs were on
    places = {"stdout": r["stdout"].encode(), "stderr (-v logs)": r["stderr"].encode()}
    files = [p for p in r["out"].rglob("*") if p.is_file()]
    files += [p for p in r["db"].parent.glob("results.db*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.name == "manifest.json" for p in files)
    for p in files:
        places[str(p)] = p.read_bytes()
    for secret in (PASSPHRASE, TOKEN):
        leaked = [name for name, blob in places.items() if secret.encode() in blob]
        assert not leaked, f"{secret} found in {leaked}"
    outcome(expected="no secret anywhere",
            observed=f"passphrase and token absent from {len(places)} logs/files (DB+WAL, manifest, report)")


def test_encrypted_key_without_passphrase_says_how_to_unlock_it(make_device, tmp_path, monkeypatch, outcome):
    from edgecompress.errors import TransportError
    from edgecompress.targets import Target
    from edgecompress.transports import open_transport

    dev = make_device("rpass")
    key = tmp_path / "encrypted_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)], check=True)
    Path(dev.root, "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    monkeypatch.delenv("EDGECOMPRESS_SSH_PASSPHRASE", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    target = Target(**{**dev.target_dict(), "identity_file": str(key)})
    with pytest.raises(TransportError, match="encrypted: add it to ssh-agent or put its passphrase in "
                                             r"\$EDGECOMPRESS_SSH_PASSPHRASE") as e:
        open_transport(target).run(["true"])
    assert PASSPHRASE not in str(e.value)
    monkeypatch.setenv("EDGECOMPRESS_SSH_PASSPHRASE", PASSPHRASE)
    with open_transport(target) as t:
        assert t.run(["id", "-un"]).stdout.strip() == dev.user
    outcome(expected="encrypted key: clear hint; works with the passphrase env var",
            observed="refused with the env var named; logged in once it was set")
