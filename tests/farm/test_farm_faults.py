"""Farm faults, each on the real parts: a worker SIGKILLed mid-job, the broker restarted mid-run, the
database down for a while, two submitters at once, and jobs that must not run."""
from __future__ import annotations

import json
import time

import pytest

from cli_helpers import cli

from edgecompress.results import ResultsStore

from .conftest import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]
QUICK = ("--runs", "10", "--warmup", "1")


def _rows(db, run_id=None):
    with ResultsStore(db) as s:
        run_id = run_id or s.latest_run().id
        return s.results(run_id)


def _latest_run(db):
    with ResultsStore(db) as s:
        runs = s.runs(limit=1)
        return runs[0].id if runs else None


def _assert_measured_once(rows, targets, n=3):
    for t in targets:
        mine = [r for r in rows if r["target"] == t]
        assert len(mine) == n, (t, [r["artifact_key"] for r in mine])
        assert len({r["artifact_sha256"] for r in mine}) == n          # each artifact once, none twice
    assert len({r["result_key"] for r in rows}) == len(rows)


def test_worker_killed_mid_job_redelivered_to_its_successor_or_fails_after_timeout(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, submit):
    a1 = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "a1", visibility_s=25)
    b1 = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "b1", visibility_s=25)
    a1.wait_ready()
    b1.wait_ready()
    sub = submit(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                 extra=(*QUICK, "--min-seconds", "1.5", "--target-timeout", "75"), targets_file=farm_targets)

    def first_results():
        run = _latest_run(pg_url)
        rows = _rows(pg_url, run) if run else []
        return run if {r["target"] for r in rows} == {"farm-a", "farm-b"} else None

    run_id = wait_for(first_results, 150, "a first result from each target")
    rc, out, err = cli("farm", "status", "--broker", redis_server.url, "--json")     # mid-job, both busy
    assert rc == 0, err
    st = json.loads(out)
    assert {w["node"]: w["targets"] for w in st["workers"]} == {"a1": {"farm-a": "tiny-x86"},
                                                                "b1": {"farm-b": "tiny-x86"}}
    assert {j["target"]: j["run_id"] for j in st["running"]} == {"farm-a": run_id, "farm-b": run_id}
    assert all(0 < j["age_s"] < 150 for j in st["running"]) and st["queues"] == {"farm-a": 0, "farm-b": 0}
    rc, out, _ = cli("farm", "status", "--broker", redis_server.url)
    assert rc == 0 and "a1" in out and "farm-a (tiny-x86)" in out and run_id in out
    a1.kill()                     # SIGKILL the whole farm worker mid-job (its Celery processes die with it)
    b1.kill()
    kept = {(r["target"], r["artifact_sha256"]) for r in _rows(pg_url, run_id)}
    assert len(kept) < 6
    a2 = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "a2", visibility_s=25)
    a2.wait_ready()               # farm-b gets no new worker: it must fail after --target-timeout
    rc, res = sub.wait(240)
    assert rc == 1 and res["run_id"] == run_id and res["status"] == "partial"
    assert res["targets"]["farm-a"]["status"] == "ok"
    b = res["targets"]["farm-b"]
    assert b["status"] in ("partial", "failed") and "timed out" in b["error"] and "lost mid-job" in b["error"]
    rows = _rows(pg_url, run_id)
    _assert_measured_once([r for r in rows if r["target"] == "farm-a"], ["farm-a"])
    assert kept <= {(r["target"], r["artifact_sha256"]) for r in rows}           # finished results kept
    workers = {r["result"].extra["farm"]["worker"] for r in rows if r["target"] == "farm-a"}
    assert workers == {"a1.farm-a", "a2.farm-a"}          # the rest measured by the worker that came back
    assert 1 <= len([r for r in rows if r["target"] == "farm-b"]) < 3


def test_broker_restart_mid_run_loses_no_job(farm_targets, farm_model, farm_data, redis_server, pg_url,
                                             farm_worker, submit):
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "ra", visibility_s=30)
    a.wait_ready()
    # farm-b's job waits in Redis for a worker that is started only after the broker restarted
    sub = submit(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                 extra=(*QUICK, "--min-seconds", "0.5", "--farm-wait", "120"), targets_file=farm_targets)
    run_id = wait_for(lambda: (lambda r: r if r and _rows(pg_url, r) else None)(_latest_run(pg_url)), 150,
                      "the first result")
    from edgecompress.farm.app import queue_depth, redis_client

    r = redis_client(redis_server.url)
    wait_for(lambda: queue_depth(r, "farm-b") == 1, 30, "farm-b's job queued")
    redis_server.restart()        # SIGTERM (append-only file flushed) and start again, same port and folder
    r = redis_client(redis_server.url)
    assert queue_depth(r, "farm-b") == 1                 # the queued job survived the restart
    b = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "rb", visibility_s=30)
    b.wait_ready()
    rc, res = sub.wait(240)
    assert rc == 0, res
    assert res["status"] == "ok" and sorted(res["succeeded"]) == ["farm-a", "farm-b"]
    _assert_measured_once(_rows(pg_url, run_id), ["farm-a", "farm-b"])


def test_database_down_for_a_while_results_are_retried_and_none_lost(
        farm_targets, farm_model, farm_data, redis_server, postgres, pg_url, farm_worker, submit):
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "da")
    b = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "db")
    a.wait_ready()
    b.wait_ready()
    sub = submit(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                 extra=(*QUICK, "--min-seconds", "1"), targets_file=farm_targets)
    run_id = wait_for(lambda: (lambda r: r if r and _rows(pg_url, r) else None)(_latest_run(pg_url)), 150,
                      "the first result")
    postgres.stop()
    time.sleep(6)                 # artifacts measured meanwhile wait in the workers' retries
    postgres.start()
    rc, res = sub.wait(240)
    assert rc == 0, res
    assert res["status"] == "ok"
    _assert_measured_once(_rows(pg_url, run_id), ["farm-a", "farm-b"])
    logs = a.log.read_text() + b.log.read_text()
    assert "unreachable" in logs and "retrying" in logs


def test_two_submitters_at_once_both_complete_and_device_runs_never_overlap(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, submit):
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "sa")
    b = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "sb")
    a.wait_ready()
    b.wait_ready()
    subs = [submit(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                   extra=(*QUICK, "--min-seconds", "0.3"), targets_file=farm_targets) for _ in range(2)]
    outs = [s.wait(300) for s in subs]
    assert [rc for rc, _ in outs] == [0, 0], outs
    run_ids = [res["run_id"] for _, res in outs]
    assert len(set(run_ids)) == 2
    spans = {"farm-a": [], "farm-b": []}
    for run_id in run_ids:
        rows = _rows(pg_url, run_id)
        _assert_measured_once(rows, ["farm-a", "farm-b"])
        for r in rows:
            f = r["result"].extra["farm"]
            spans[r["target"]].append((f["started_at"], f["finished_at"], run_id))
    for target, s in spans.items():
        s.sort()
        assert len(s) == 6
        for (s0, e0, _), (s1, _, _) in zip(s, s[1:]):
            assert s1 >= e0, f"{target}: two measurements overlapped"


def test_malformed_foreign_and_tampered_jobs_never_reach_the_device(
        farm_targets, farm_devices, redis_server, pg_url, farm_worker, tmp_path):
    import hashlib

    from edgecompress.farm.app import BENCH_TASK, make_app, queue_for

    cache = tmp_path / "cache"
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "va", cache=cache)
    a.wait_ready()
    dev = farm_devices[0]
    logins = dev.accepted_logins()
    with ResultsStore(pg_url) as store:
        run_id = store.start_run(targets=["farm-a"])
    good = {"v": 1, "run_id": run_id, "target": "farm-a", "profile": "tiny-x86", "store": f"file://{tmp_path}",
            "artifacts": [{"sha256": "a" * 64, "format": "onnx", "precision": "fp32", "size_bytes": 10}],
            "measure": {"runs": 5}, "time_limit_s": 60}
    app = make_app(redis_server.url)
    for bad in ({"hello": "world"},                                   # not a job
                dict(good, target="farm-b"),                          # a target this worker does not own
                dict(good, artifacts=[{"sha256": "../../etc/passwd", "format": "onnx", "precision": "fp32",
                                       "size_bytes": 1}]),            # not a sha256
                dict(good, measure={"runs": -3}),                     # invalid measure settings
                dict(good, profile="raspberry-pi-4"),                 # built for another profile
                dict(good, store="http://evil.example/")):            # not a store we read from
        app.send_task(BENCH_TASK, args=[bad], queue=queue_for("farm-a"))
    wait_for(lambda: a.log.read_text().count("REJECTED") >= 6, 60, "six rejections in the worker log")
    log = a.log.read_text()
    assert "not in this worker's inventory" in log and "artifacts.0.sha256" in log and "measure" in log
    assert "built for profile 'raspberry-pi-4'" in log and "valid: db, file:///FOLDER" in log
    # a well-formed job whose artifact bytes do not match their sha256 (tampered in the shared folder)
    payload = b"not the model you are looking for"
    claimed = hashlib.sha256(b"the real model").hexdigest()
    (tmp_path / claimed).write_bytes(payload)
    app.send_task(BENCH_TASK, args=[dict(good, artifacts=[dict(good["artifacts"][0], sha256=claimed)])],
                  queue=queue_for("farm-a"))

    def failed():
        with ResultsStore(pg_url) as s:
            t = s.target(run_id, "farm-a")
            return t if t and t["status"] == "failed" else None

    t = wait_for(failed, 60, "the tampered job to fail")
    assert "refused" in t["error"] and claimed[:12] in t["error"]
    assert not (cache / "edgecompress" / "farm" / claimed).exists() and not list(
        (cache / "edgecompress" / "farm").glob(claimed + "*"))
    with ResultsStore(pg_url) as s:
        assert s.results(run_id) == []
    assert dev.accepted_logins() == logins                # nothing ran on the device, not even a login
