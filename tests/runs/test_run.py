"""`edgecompress run` end to end: real compressor, real `local` device and a real-sshd lab device,
real digits; results in SQLite as they arrive; one dead target never loses the others."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import cli
from edgecompress.results import ResultsStore

pytestmark = pytest.mark.lab


def run_args(digits_model, digits_npz, run_targets, out, *targets):
    spec, weights = digits_model
    args = ["run", spec, "--weights", weights, "--data", digits_npz, "--targets", run_targets,
            "--out", out / "out", "--db", out / "results.db", "--eval-samples", "100"]
    for t in targets:
        args += ["--target", t]
    return args


@pytest.fixture(scope="module")
def two_targets(digits_model, digits_npz, run_targets, tmp_path_factory):
    out = tmp_path_factory.mktemp("run2")
    rc, stdout, stderr = cli(*run_args(digits_model, digits_npz, run_targets, out, "local", "lab"))
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "db": out / "results.db", "out": out / "out"}


def test_run_over_local_and_lab_device_stores_plausible_rows(two_targets):
    assert two_targets["rc"] == 0, two_targets["stderr"][-3000:]
    with ResultsStore(two_targets["db"]) as store:
        run = store.latest_run()
        assert run.state == "ok" and run.targets == ["local", "lab"]
        rows = store.results(run.id)
        arts = {(a["profile"], a["key"]): a for a in store.artifacts(run.id)}
        targets = {t["target"]: t for t in store.targets(run.id)}
    assert {(r["target"], r["artifact_key"]) for r in rows} == {
        (t, a) for t in ("local", "lab") for a in ("fp32.onnx", "int8.onnx", "dynamic.onnx")}
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["max_ms"]
        assert len(r["samples"]) == r["runs"] >= 20
        art = arts[("tiny-x86", r["artifact_key"])]
        assert r["size_bytes"] == art["size_bytes"] == Path(art["path"]).stat().st_size
        assert r["artifact_sha256"] == art["sha256"]
        assert r["energy_method"] == "estimated" and r["mj_per_inference"] > 0   # no power sensor here
        assert r["peak_rss_mb"] > 0
        # fidelity on the device against the host reference, with labels: real digits
        assert r["fid_samples"] == 100 and r["fid_top1_agreement"] >= 0.9
        assert 0.85 <= r["fid_accuracy"] <= 1.0 and r["fid_reference_accuracy"] >= 0.85
    assert targets["lab"]["device"]["runtimes"]["onnxruntime"]
    assert targets["lab"]["transport"] == "ssh" and targets["local"]["transport"] == "local"


def test_run_prints_the_comparison_and_the_report(two_targets):
    out = two_targets["stdout"]
    assert "p50_ms" in out and "energy_mj" in out
    report = Path(out.split("report: ")[-1].strip())
    assert report.exists() and report.parent == two_targets["out"]
    html = report.read_text()
    assert "http://" not in html and "https://" not in html
    for t in ("local", "lab"):
        for a in ("fp32.onnx", "int8.onnx", "dynamic.onnx"):
            # (the recommended artifact's cell carries a star after its name)
            assert f"<td>{t}</td><td>{a}</td>" in html or f"<td>{t}</td><td>{a} <span class='star'" in html
    # progress was shown per target as plain lines (stderr is not a terminal here)
    err = two_targets["stderr"]
    assert "local: [3/3]" in err and "lab: [3/3]" in err and "lab: connected" in err


def test_history_lists_the_run(two_targets):
    rc, out, _ = cli("history", "--db", two_targets["db"], "--json")
    runs = json.loads(out)
    assert rc == 0 and runs[0]["state"] == "ok" and runs[0]["n_results"] == 6


def test_an_unreachable_target_fails_alone(digits_model, digits_npz, run_targets, tmp_path):
    t0 = time.monotonic()
    rc, out, err = cli(*run_args(digits_model, digits_npz, run_targets, tmp_path, "local", "dead"), "--json")
    assert rc == 1, err[-3000:]
    doc = json.loads(out)
    assert doc["status"] == "partial" and doc["succeeded"] == ["local"] and doc["failed"] == ["dead"]
    dead = doc["targets"]["dead"]
    assert dead["status"] == "failed" and "127.0.0.1" in dead["error"]
    assert len(doc["targets"]["local"]["results"]) == 3
    with ResultsStore(tmp_path / "results.db") as store:
        run = store.latest_run()
        assert run.state == "partial"
        assert {r["target"] for r in store.results(run.id)} == {"local"}
        assert {t["target"]: t["status"] for t in store.targets(run.id)} == {"local": "ok", "dead": "failed"}
    rc, out, _ = cli("compare", "--db", tmp_path / "results.db")
    assert rc == 0 and "dead" in out and "failed" in out
    assert time.monotonic() - t0 < 120


def test_a_run_killed_midway_keeps_what_it_finished(digits_model, digits_npz, run_targets, tmp_path):
    """SIGKILL the `edgecompress run` process once the first results are in the database."""
    args = run_args(digits_model, digits_npz, run_targets, tmp_path, "local", "lab")
    args += ["--runs", "400", "--min-seconds", "1.5"]         # slow enough to be killed half-way
    db = tmp_path / "results.db"
    proc = subprocess.Popen([sys.executable, "-m", "edgecompress", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        n = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
                    with contextlib.suppress(sqlite3.OperationalError):
                        n = c.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            if n >= 1:
                break
            time.sleep(0.2)
        assert n >= 1 and proc.poll() is None, f"no result before the run ended: {proc.stderr.read()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with ResultsStore(db) as store:
        run = store.latest_run()
        rows = store.results(run.id)
        assert run.state == "incomplete" and 1 <= len(rows) < 6
        assert all(r["status"] == "ok" and r["p50_ms"] > 0 and r["samples"] for r in rows)
    rc, out, _ = cli("compare", "--db", db)
    assert rc == 0 and rows[0]["artifact_key"] in out


def test_a_slow_target_does_not_hold_up_the_others(digits_model, digits_npz, lab_sshd, tiny_profile, tmp_path):
    """`slow` is the real lab sshd behind the lab's TCP fault proxy (400 ms per chunk each way);
    with --target-timeout it is given up and marked failed while `local` finishes and is kept."""
    import yaml

    from edgecompress.lab.proxy import FaultProxy, LinkProfile

    with FaultProxy((lab_sshd.host, lab_sshd.port), LinkProfile(delay_ms=400)) as proxy:
        known = tmp_path / "known_hosts"                   # the device's host key, under the proxy's port
        key = Path(lab_sshd.known_hosts).read_text().split(f"[{lab_sshd.host}]:{lab_sshd.port} ", 1)[1]
        known.write_text(f"[127.0.0.1]:{proxy.port} {key.splitlines()[0]}\n")
        slow = dict(lab_sshd.target_dict(), name="slow", profile=str(tiny_profile),
                    host=f"{lab_sshd.user}@127.0.0.1:{proxy.port}", known_hosts=str(known),
                    workdir=f"{lab_sshd.workdir}/slow")          # its own device lock
        local = {"name": "local", "profile": str(tiny_profile), "transport": "local",
                 "workdir": str(tmp_path / "dev")}
        targets = tmp_path / "targets.yaml"
        targets.write_text(yaml.safe_dump({"targets": [local, slow]}))
        t0 = time.monotonic()
        rc, out, err = cli(*run_args(digits_model, digits_npz, targets, tmp_path, "local", "slow"),
                           "--target-timeout", "12", "--json")
        took = time.monotonic() - t0
        assert proxy.stats.connections >= 1                  # it really went through the slow link
    assert rc == 1, err[-2000:]
    doc = json.loads(out)
    assert doc["targets"]["local"]["status"] == "ok" and len(doc["targets"]["local"]["results"]) == 3
    assert doc["targets"]["slow"]["status"] == "failed" and "timed out" in doc["targets"]["slow"]["error"]
    assert took < 90
    with ResultsStore(tmp_path / "results.db") as store:
        run = store.latest_run()
        assert run.state == "partial" and len(store.results(run.id)) == 3
