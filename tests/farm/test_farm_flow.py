"""`run --farm` end to end: a real Redis broker, a real PostgreSQL results store, two `farm worker`
processes each serving one lab SSH device, the trained digits CNN and real MNIST digits."""
from __future__ import annotations

import json

import pytest

from cli_helpers import cli
from edgecompress.results import ResultsStore

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _run_farm(farm_model, farm_data, targets, broker, db, out, *extra):
    model, weights = farm_model
    return cli("run", model, "--weights", weights, "--data", farm_data, "--eval-samples", "60",
               *[a for t in targets for a in ("--target", t)], "--farm", broker, "--db", db, "--out", out,
               "--runs", "10", "--warmup", "1", "--json", *extra)


def test_run_on_the_farm_measures_every_target_and_reports_like_a_local_run(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, tmp_path):
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wa")
    b = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "wb")
    a.wait_ready()
    b.wait_ready()
    rc, out, err = _run_farm(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                             tmp_path / "out")
    assert rc == 0, err[-3000:]
    res = json.loads(out)
    assert res["status"] == "ok" and sorted(res["succeeded"]) == ["farm-a", "farm-b"]
    with ResultsStore(pg_url) as store:
        rows = store.results(res["run_id"])
        targets = {t["target"]: t for t in store.targets(res["run_id"])}
    assert len(rows) == 6 and {r["target"] for r in rows} == {"farm-a", "farm-b"}
    assert len({r["result_key"] for r in rows}) == 6            # every row keyed, none twice
    for r in rows:
        assert r["status"] == "ok" and r["runs"] >= 10 and r["p50_ms"] > 0
        assert r["result"].extra["farm"]["worker"].startswith(("wa.", "wb."))
        assert r["result"].extra["farm"]["worker"].split(".")[1] == r["target"]
        # device outputs compared with the torch reference on the held-out digits, as a local run does
        assert r["fid_samples"] == 60 and r["fid_top1_agreement"] >= 0.9 and r["fid_accuracy"] >= 0.8
    assert {t: v["status"] for t, v in targets.items()} == {"farm-a": "ok", "farm-b": "ok"}
    assert targets["farm-a"]["device"]["farm_worker"] == "wa.farm-a"
    # the same comparison from the shared database
    # progress said where each job went and what came back
    assert "farm-a: connecting (farm queue edgecompress.t.farm-a)" in err
    assert "farm-b: [3/3]" in err
    rc, table, _ = cli("compare", res["run_id"], "--db", pg_url)
    assert rc == 0 and "farm-a" in table and "farm-b" in table


def test_a_target_no_worker_serves_fails_after_a_short_wait(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, tmp_path):
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wa2")
    a.wait_ready()
    import time

    t0 = time.monotonic()
    rc, out, err = _run_farm(farm_model, farm_data, ["farm-a", "farm-ghost"], redis_server.url, pg_url,
                             tmp_path / "out", "--farm-wait", "3")
    res = json.loads(out)
    assert rc == 1 and res["status"] == "partial"
    assert res["succeeded"] == ["farm-a"] and res["failed"] == ["farm-ghost"]
    ghost = res["targets"]["farm-ghost"]
    assert "no farm worker serves target 'farm-ghost'" in ghost["error"] and "farm-a" in ghost["error"]
    assert time.monotonic() - t0 < 120


def test_bench_on_the_farm_stores_a_run_and_prints_the_results(
        farm_targets, digits_artifacts, redis_server, pg_url, farm_worker, tmp_path):
    a = farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "wbench")
    a.wait_ready()
    rc, out, err = cli("bench", digits_artifacts["onnx"], "--target", "farm-b", "--farm", redis_server.url,
                       "--db", pg_url, "--artifact-store", f"file://{tmp_path / 'shared'}", "--runs", "15",
                       "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert len(res) == 1 and res[0]["status"] == "ok" and res[0]["runs"] >= 15
    assert res[0]["farm"]["worker"] == "wbench.farm-b" and res[0]["latency_ms"]["p50"] > 0
    from edgecompress.manifest import sha256_file

    sha = sha256_file(digits_artifacts["onnx"])
    assert (tmp_path / "shared" / sha).read_bytes() == digits_artifacts["onnx"].read_bytes()   # folder store
    assert res[0]["artifact"]["sha256"] == sha
    rc, out, err = cli("bench", digits_artifacts["onnx"], "--target", "farm-ghost", "--farm", redis_server.url,
                       "--db", pg_url, "--farm-wait", "1")
    assert rc == 1 and "no farm worker serves target 'farm-ghost'" in err


def test_farm_usage_errors_name_what_is_valid(tmp_path):
    rc, out, err = cli("farm", "status", "--broker", "amqp://guest:hunter2@h//")
    assert rc == 2 and "not a Redis URL" in err and "hunter2" not in err
    rc, out, err = cli("farm", "worker", "--broker", "redis://127.0.0.1:1/0", "--db", str(tmp_path / "r.db"))
    assert rc == 2 and "needs --targets FILE" in err
