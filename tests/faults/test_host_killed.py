"""The host process is SIGKILLed in the middle of `edgecompress run`: what finished is in the results
database, the database opens cleanly, the runner it left measuring on the device is killed by the next
session, and `run --resume RUN_ID` finishes the run without measuring again what was done."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from profile_yaml import write_profile
import yaml

from edgecompress.cli import main
from edgecompress.results import ResultsStore

from .conftest import wait_for
from .test_device_lock import runners_on

pytestmark = pytest.mark.lab


def test_sigkill_mid_run_keeps_results_and_resume_does_not_redo_them(make_device, fault_artifacts, mnist, tmp_path,
                                                                     caplog, outcome):
    dev = make_device("hkill")
    profile = write_profile(tmp_path / "two-onnx.yaml", "two-onnx", [("onnx", "fp32"), ("onnx", "dynamic")])
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump({"targets": [{**dev.target_dict(), "profile": str(profile)}]}))
    data = tmp_path / "d.npz"
    np.savez(data, x=mnist[2][:80], y=mnist[3][:80])
    db = tmp_path / "results.db"
    args = ["run", str(fault_artifacts["digits"]), "--target", dev.name, "--targets", str(tf), "--data", str(data),
            "--out", str(tmp_path / "out"), "--db", str(db), "--cache", str(tmp_path / "cache"),
            "--eval-samples", "20", "--runs", "5", "--min-seconds", "6"]

    proc = subprocess.Popen([sys.executable, "-m", "edgecompress", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        def one_result_and_measuring_the_next():
            if proc.poll() is not None or not db.exists():
                return proc.poll() is not None and "ended"
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
                with contextlib.suppress(sqlite3.OperationalError):
                    if c.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 1 and runners_on(dev, "bench"):
                        return "measuring"
            return None

        state = wait_for(one_result_and_measuring_the_next, 240, "the first result", interval=0.1)
        assert state == "measuring", f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        time.sleep(1.5)           # into the measuring loop, where the runner writes nothing for seconds
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with ResultsStore(db) as store:
        killed = store.latest_run()
        before = store.results(killed.id)
    assert killed.state in ("incomplete", "running") and len(before) == 1 and before[0]["status"] == "ok"

    left = runners_on(dev, "bench")             # still measuring for the dead host
    for p in left:                              # frozen: hung until the next session kills it (a runner that
        p.suspend()                             # finished on its own before that would leave nothing to check)
    orphans = len(left)
    assert orphans >= 1
    caplog.set_level(logging.WARNING, logger="edgecompress")
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*args, "--resume", killed.id[:15]])
    took = time.monotonic() - t0
    assert rc == 0, err.getvalue()[-3000:]
    with ResultsStore(db) as store:
        run = store.run(killed.id)
        after = store.results(killed.id)
        assert len(store.runs()) == 1
    assert run.state == "ok"
    keys = sorted(r["artifact_key"] for r in after)
    assert keys == ["dynamic.onnx", "fp32.onnx"]                       # one row each: nothing measured twice
    kept = next(r for r in after if r["id"] == before[0]["id"])
    assert kept["p50_ms"] == before[0]["p50_ms"] and kept["samples"] == before[0]["samples"]
    assert all(r["status"] == "ok" and r["runs"] >= 5 and r["fid_top1_agreement"] >= 0.9 for r in after)
    assert "killed benchmark process" in caplog.text, caplog.text[-2000:]
    assert all(str(p.pid) in caplog.text for p in left)
    assert runners_on(dev, "bench") == []
    outcome(expected="finished results kept; DB clean; resume skips finished work",
            observed=f"1 result kept, integrity ok, {orphans} orphan runner killed; resume measured 1 more "
                     f"in {took:.1f} s")
