"""`run --farm` / `bench --farm` with the options a direct run has: --ops, --resume, --as-is (and a
given .tflite), bench's --delegate/--op-profiling. A real Redis, a real PostgreSQL, `farm worker`
processes serving lab SSH devices, the trained digits CNN and real MNIST digits."""
from __future__ import annotations

import json

import numpy as np
import pytest

import io_models as M
from cli_helpers import cli
from edgecompress.device import ops as device_ops
from edgecompress.results import ResultsStore

pytestmark = [pytest.mark.lab, pytest.mark.slow]
QUICK = ("--runs", "3", "--warmup", "1", "--min-seconds", "0")


def _run_farm(farm_model, farm_data, targets, broker, db, out, *extra):
    model, weights = farm_model
    return cli("run", model, "--weights", weights, "--data", farm_data, "--eval-samples", "40",
               *[a for t in targets for a in ("--target", t)], "--farm", broker, "--db", db, "--out", out,
               *QUICK, "--json", *extra)


def _graph(path):
    """([(name, op_type, outputs, inputs)] of the file's graph, its initializer names)."""
    import onnx

    g = onnx.load(str(path)).graph
    return [(n.name, n.op_type, list(n.output), list(n.input)) for n in g.node], {i.name for i in g.initializer}


def _assert_profile_is_the_models(path, executed):
    """As tests/device/test_ops.py: every node of the ONNX file ran in an executed node or, fed only
    constants (a weight's DequantizeLinear, a bias Reshape the quantizer leaves unnamed), was folded
    away by ORT; and every executed node comes from the model or is a layout change ORT inserts."""
    nodes, inits = _graph(path)
    assert executed and all(set(o) >= {"name", "op_type", "ms", "where"} for o in executed)
    cover = device_ops.onnx_coverage(nodes, executed)
    assert set(cover) == {n[0] for n in nodes}

    def constant(n):
        return all(i in inits for i in n[3] if i)

    if ".dynamic." not in path.name:   # (ORT fuses a dynamic MatMul's quantize..Add chain into one node,
        assert all(cover[n[0]] for n in nodes if n[0] and not constant(n)), (path.name, cover)   # ending in
        folded = [n for n in nodes if not n[0] or cover[n[0]] is None]                        # an output:
        assert all(constant(n) for n in folded), (path.name, folded)          # onnx_coverage cannot place it)
    ran = {v for v in cover.values() if v}
    # exactly the nodes ORT runs for this file here on the host, with the optimizations the device has
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape],
                                                   dtype=np.float32) for i in sess.get_inputs()}
    host = device_ops.profile_onnx(str(path), feed, runs=3)
    assert sorted((o["name"], o["op_type"]) for o in executed) == sorted((o["name"], o["op_type"]) for o in host)
    model_names = {n[0] for n in nodes} | {t for n in nodes for t in n[2]}
    unexplained = [o for o in executed if o["name"] not in ran and not any(o["name"].startswith(m)
                                                                          for m in model_names)]
    assert all(o["op_type"] in ("Transpose", "ReorderInput", "ReorderOutput") for o in unexplained), unexplained
    assert sum(o["ms"] for o in executed) > 0


def test_run_on_the_farm_with_ops_profiles_every_node_of_each_artifact(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, tmp_path):
    farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wops").wait_ready()
    out = tmp_path / "out"
    rc, text, err = _run_farm(farm_model, farm_data, ["farm-a"], redis_server.url, pg_url, out, "--ops")
    assert rc == 0, err[-3000:]
    res = json.loads(text)
    results = res["targets"]["farm-a"]["results"]
    assert len(results) == 3
    (folder,) = {p.parent for p in out.rglob("manifest.json")}
    for r in results:
        key = f"{r['artifact']['precision']}.{r['artifact']['format']}"
        assert r["status"] == "ok" and r["farm"]["worker"] == "wops.farm-a", (key, r.get("error"))
        assert r["ops_source"] == "onnxruntime profiler"
        _assert_profile_is_the_models(folder / f"model.{key}", r["ops"])
    with ResultsStore(pg_url) as store:                   # kept in the shared database too
        rows = store.results(res["run_id"])
        assert store.run(res["run_id"]).options["ops"] is True
    assert sorted(len(r["result"].ops) for r in rows) == sorted(len(r["ops"]) for r in results)


def test_bench_on_the_farm_with_ops_delegate_and_op_profiling(
        farm_targets, digits_artifacts, redis_server, pg_url, farm_worker, tmp_path):
    farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "wbops").wait_ready()
    onnx_path = digits_artifacts["onnx"]
    rc, text, err = cli("bench", onnx_path, "--target", "farm-b", "--farm", redis_server.url, "--db", pg_url,
                        *QUICK, "--ops", "--delegate", "cpu", "--op-profiling", "--json")
    assert rc == 0, err[-3000:]
    (r,) = json.loads(text)
    assert r["status"] == "ok" and r["farm"]["worker"] == "wbops.farm-b" and r["runs"] >= 3
    _assert_profile_is_the_models(onnx_path, r["ops"])
    # the lab device runs the Python runner: it says the native-only settings reached it and did not apply
    assert any("delegate / op profiling apply to native mode" in n for n in r["notes"]), r["notes"]
    rc, text, err = cli("bench", onnx_path, "--target", "farm-b", "--farm", redis_server.url, "--db", pg_url,
                        "--ops")                              # the table prints the top ops
    assert rc == 0 and "top ops of" in text and "Conv" in text, err[-2000:]
    rc, _, err = cli("bench", onnx_path, "--target", "farm-b", "--farm", redis_server.url, "--db", pg_url,
                     "--delegate", "gpu-bogus")
    assert rc == 2 and "delegate 'gpu-bogus'" in err and "valid: cpu, xnnpack" in err
    # a raw file with dynamic dims: --input-shape travels in the job and sets them on the device
    m = M.dynamic_hw()
    rc, text, err = cli("bench", m.onnx, "--target", "farm-b", "--farm", redis_server.url, "--db", pg_url,
                        *QUICK, "--input-shape", "image=1,1,32,24", "--json")
    assert rc == 0, err[-3000:]
    (r,) = json.loads(text)
    assert r["status"] == "ok" and r["farm"]["worker"] == "wbops.farm-b"
    assert r["inputs"][0]["name"] == "image" and r["inputs"][0]["shape"] == [1, 1, 32, 24]
    assert not any("timed at 1" in n for n in r["notes"]), r["notes"]


def test_resume_of_a_farm_run_keeps_its_results_and_measures_only_the_missing_target(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, tmp_path):
    wa = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wres-a").wait_ready()
    targets = ["farm-a", "farm-ghost"]
    rc, text, err = _run_farm(farm_model, farm_data, targets, redis_server.url, pg_url, tmp_path / "out",
                              "--farm-wait", "2")
    first = json.loads(text)
    assert rc == 1 and first["status"] == "partial" and first["failed"] == ["farm-ghost"], err[-3000:]
    with ResultsStore(pg_url) as store:
        before = {r["id"]: (r["target"], r["artifact_key"], r["p50_ms"]) for r in store.results(first["run_id"])}
    assert len(before) == 3 and {t for t, _, _ in before.values()} == {"farm-a"}
    # a worker for the missing target comes; the run is resumed through the farm under its own id
    farm_worker(farm_targets, ["farm-ghost"], redis_server.url, pg_url, "wres-g").wait_ready()
    rc, text, err = _run_farm(farm_model, farm_data, targets, redis_server.url, pg_url, tmp_path / "out",
                              "--resume", first["run_id"])
    again = json.loads(text)
    assert rc == 0 and again["run_id"] == first["run_id"] and again["status"] == "ok", err[-3000:]
    with ResultsStore(pg_url) as store:
        rows = store.results(first["run_id"])
        run = store.run(first["run_id"])
        states = {t["target"]: t["status"] for t in store.targets(first["run_id"])}
    assert run.state == "ok" and states == {"farm-a": "ok", "farm-ghost": "ok"}
    assert len(rows) == 6 and len({r["result_key"] for r in rows}) == 6
    kept = {r["id"]: (r["target"], r["artifact_key"], r["p50_ms"]) for r in rows if r["target"] == "farm-a"}
    assert kept == before                                   # same rows, same values: not measured again
    new = [r for r in rows if r["target"] == "farm-ghost"]
    assert sorted(r["artifact_key"] for r in new) == sorted(k for _, k, _ in before.values())
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 and r["fid_samples"] == 40 for r in new)
    assert all(r["result"].extra["farm"]["worker"] == "wres-g.farm-ghost" for r in new)
    said = wa.log.read_text(errors="replace")                # the device was not asked again
    assert f"job {first['run_id']}/farm-a: 3 artifact(s) to measure, 0 kept" in said
    assert f"job {first['run_id']}/farm-a: 0 artifact(s) to measure, 3 kept" in said
    # the report of the resumed run has both targets' results
    assert len(again["targets"]["farm-a"]["results"]) == 3 and len(again["targets"]["farm-ghost"]["results"]) == 3
    # resuming with other measure settings is refused before anything is sent
    rc, _, err = _run_farm(farm_model, farm_data, targets, redis_server.url, pg_url, tmp_path / "out",
                           "--resume", first["run_id"], "--runs", "7")
    assert rc == 2 and "cannot resume run" in err and "measure settings" in err


def test_as_is_onnx_and_given_tflite_through_the_farm_have_device_fidelity_one(
        farm_targets, digits_artifacts, redis_server, pg_url, farm_worker, tmp_path):
    """Measured as given (not compressed): the device's outputs against the same file run on the host."""
    farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wasis").wait_ready()
    m = M.two_heads()
    pixels = tmp_path / "pixels.npy"                             # the Keras digits twin is NHWC
    np.save(pixels, np.ascontiguousarray(digits_artifacts["x"][:120].transpose(0, 2, 3, 1)))
    for model, data, extra, outputs in ((m.onnx, m.data, ["--as-is"], sorted(m.outputs)),
                                        (digits_artifacts["tflite"], pixels, [], None)):
        fmt = model.suffix.lstrip(".")
        rc, text, err = cli("run", model, "--data", data, "--eval-samples", "40", "--target", "farm-a",
                            "--farm", redis_server.url, "--db", pg_url, "--out", tmp_path / f"given-{fmt}",
                            *QUICK, "--json", *extra)
        assert rc == 0, err[-3000:]
        res = json.loads(text)
        (r,) = res["targets"]["farm-a"]["results"]
        assert r["status"] == "ok" and r["farm"]["worker"] == "wasis.farm-a"
        assert r["artifact"]["format"] == fmt and r["artifact"]["precision"] == "as-is"
        from edgecompress.manifest import sha256_file

        assert r["artifact"]["sha256"] == sha256_file(model)                 # the very file given
        fid = {o["name"]: o for o in r["fidelity"]["outputs"]}
        if outputs:
            assert sorted(fid) == outputs                                   # one entry per output, by name
        assert fid and r["fidelity"]["samples"] == 40
        for name, o in fid.items():
            assert o["cosine"] > 0.99999 and o["max_abs"] < 1e-4, (fmt, name, o)
        with ResultsStore(pg_url) as store:
            (row,) = store.results(res["run_id"])
        assert row["status"] == "ok" and row["precision"] == "as-is" and row["fid_cosine"] > 0.99999


def test_farm_options_that_cannot_travel_are_refused(farm_model, farm_data, tmp_path):
    rc, _, err = cli("run", farm_model[0], "--weights", farm_model[1], "--data", farm_data, "--target", "farm-a",
                     "--farm", "redis://127.0.0.1:1/0", "--db", tmp_path / "r.db", "--trust-new-host")
    assert rc == 2 and "--trust-new-host cannot be used with --farm" in err and "farm worker --trust-new-host" in err
    rc, _, err = cli("bench", farm_data, "--target", "farm-a", "--farm", "redis://127.0.0.1:1/0", "--no-store")
    assert rc == 2 and "--no-store cannot be used with --farm" in err


def test_a_direct_run_resumed_through_the_farm_keeps_its_results(
        farm_targets, farm_model, farm_data, redis_server, pg_url, farm_worker, tmp_path):
    """A direct run's rows carry no farm key: the job lists them in ``keep`` and the worker leaves them."""
    model, weights = farm_model
    rc, text, err = cli("run", model, "--weights", weights, "--data", farm_data, "--eval-samples", "40",
                        "--target", "farm-a", "--targets", farm_targets, "--db", pg_url, "--out", tmp_path / "out",
                        *QUICK, "--json")
    first = json.loads(text)
    assert rc == 0 and first["status"] == "ok", err[-3000:]
    with ResultsStore(pg_url) as store:
        before = {r["id"]: (r["target"], r["artifact_key"], r["p50_ms"]) for r in store.results(first["run_id"])}
    assert len(before) == 3
    wa = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wkeep-a").wait_ready()
    farm_worker(farm_targets, ["farm-b"], redis_server.url, pg_url, "wkeep-b").wait_ready()
    rc, text, err = _run_farm(farm_model, farm_data, ["farm-a", "farm-b"], redis_server.url, pg_url,
                              tmp_path / "out", "--resume", first["run_id"])
    again = json.loads(text)
    assert rc == 0 and again["run_id"] == first["run_id"] and again["status"] == "ok", err[-3000:]
    with ResultsStore(pg_url) as store:
        rows = store.results(first["run_id"])
    assert {r["id"]: (r["target"], r["artifact_key"], r["p50_ms"]) for r in rows if r["target"] == "farm-a"} == before
    assert sorted(r["artifact_key"] for r in rows if r["target"] == "farm-b") == sorted(
        k for _, k, _ in before.values())
    assert f"job {first['run_id']}/farm-a: 0 artifact(s) to measure, 3 kept" in wa.log.read_text(errors="replace")
