"""`run --farm` with models of several inputs (float32 + int64) and several outputs: the held-out
samples travel by input name with their dtypes, the reference by output name, each artifact's I/O
map in the job; the workers' device fidelity per output matches the same comparison made here on
the host with onnxruntime."""
from __future__ import annotations

import json

import numpy as np
import pytest

import io_models as M
from cli_helpers import cli
from edgecompress.results import ResultsStore

EVAL = 40


def _held_out(m) -> dict:
    """The held-out samples, picked as `run` documents it (the last EVAL of a seed-0 permutation)."""
    z = np.load(m.data)
    n = len(z["y"])
    idx = np.random.default_rng(0).permutation(n)[n - EVAL:]
    return {k: z[k][idx] for k in z.files}


def _host_outputs(path, held: dict, names) -> dict:
    """Each held-out sample through ``path`` on the host, one at a time (batch 1, as on the device)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    per = [sess.run(None, {k: held[k][i:i + 1] for k in names}) for i in range(EVAL)]
    outs = [o.name for o in sess.get_outputs()]
    return {o: np.concatenate([p[j] for p in per]) for j, o in enumerate(outs)}


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.parametrize("name", ["two_inputs", "two_heads"])
def test_run_on_the_farm_moves_named_inputs_and_outputs(
        name, farm_targets, redis_server, pg_url, farm_worker, tmp_path):
    m = getattr(M, name)()
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, f"wio-{name}")
    a.wait_ready()
    out = tmp_path / "out"
    rc, text, err = cli("run", m.onnx, "--data", m.data, "--eval-samples", EVAL, "--target", "farm-a",
                        "--targets", farm_targets, "--farm", redis_server.url, "--db", pg_url, "--out", out,
                        "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json")
    assert rc == 0, err[-3000:]
    res = json.loads(text)
    assert res["status"] == "ok" and res["succeeded"] == ["farm-a"]
    (folder,) = {p.parent for p in out.rglob("manifest.json")}
    held = _held_out(m)
    assert {k: str(held[k].dtype) for k in m.inputs} == m.inputs        # float32 image + int64 category
    reference = _host_outputs(m.onnx, held, list(m.inputs))
    assert sorted(reference) == sorted(m.outputs)
    results = res["targets"]["farm-a"]["results"]
    assert len(results) == 3
    with ResultsStore(pg_url) as store:
        rows = {r["artifact_key"]: r for r in store.results(res["run_id"])}
    for r in results:
        key = f"{r['artifact']['precision']}.{r['artifact']['format']}"
        assert r["status"] == "ok", (key, r.get("error"))
        assert r["farm"]["worker"] == f"wio-{name}.farm-a"
        dev = {o["name"]: o for o in r["fidelity"]["outputs"]}
        assert sorted(dev) == sorted(m.outputs), key                   # one entry per model output, by name
        host = _host_outputs(folder / f"model.{key}", held, list(m.inputs))
        for o in m.outputs:
            want = _cosine(host[o], reference[o])
            assert abs(dev[o]["cosine"] - want) < 1e-4, (key, o, dev[o]["cosine"], want)
            if key == "fp32.onnx":
                assert dev[o]["cosine"] > 0.9999 and dev[o]["max_abs"] < 1e-3, (o, dev[o])
        assert r["fidelity"]["samples"] == EVAL
        # labels travelled too: the class output's accuracy on the device is the host's
        host_acc = float((host["logits"].argmax(1) == held["y"]).mean())
        assert abs(dev["logits"]["accuracy"] - host_acc) < 1e-9, (key, dev["logits"])
        assert rows[key]["status"] == "ok" and rows[key]["fid_samples"] == EVAL


@pytest.mark.lab
@pytest.mark.slow
def test_a_build_below_the_quality_floor_stays_degraded_on_the_farm(
        farm_targets, redis_server, pg_url, farm_worker, tmp_path):
    """`broken`: per-tensor INT8 wipes the ink head. The worker judges the device's outputs with the
    profile's floor (and keeps the host's verdict), exactly as a direct run does."""
    m = M.broken()
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wio-broken")
    a.wait_ready()
    rc, text, err = cli("run", m.onnx, "--data", m.data, "--eval-samples", EVAL, "--target", "farm-a",
                        "--targets", farm_targets, "--farm", redis_server.url, "--db", pg_url,
                        "--out", tmp_path / "out", "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json")
    res = json.loads(text)
    assert rc == 1 and res["status"] == "partial", err[-3000:]
    by = {f"{r['artifact']['precision']}.{r['artifact']['format']}": r for r in res["targets"]["farm-a"]["results"]}
    bad = by["int8.onnx"]
    assert bad["status"] == "degraded" and "device: output 'ink': cosine" in bad["error"]
    assert bad["fidelity"]["host"]["status"] == "degraded" and bad["latency_ms"]["p50"] > 0
    ink = {o["name"]: o for o in bad["fidelity"]["outputs"]}["ink"]
    assert ink["cosine"] < 0.95                                        # below tiny-x86's floor (0.95)
    assert by["fp32.onnx"]["status"] == "ok"
    with ResultsStore(pg_url) as store:
        rows = {r["artifact_key"]: r for r in store.results(res["run_id"])}
    assert rows["int8.onnx"]["status"] == "degraded" and rows["fp32.onnx"]["status"] == "ok"


def test_job_io_maps_and_quality_are_validated_strictly():
    from edgecompress.farm.jobs import JobRejected, parse_job

    tensor = {"name": "image", "shape": ["batch", 1, 8, 8], "dtype": "float32", "model_name": None,
              "scale": None, "zero_point": None}
    io = {"model_inputs": [tensor], "model_outputs": [dict(tensor, name="logits", shape=["batch", 10])],
          "input_map": {"image": "image"}, "output_map": {"logits": "logits"}, "source_layout": "NCHW",
          "feedback": {}}
    art = {"sha256": "a" * 64, "format": "onnx", "precision": "fp32", "size_bytes": 10, "io": io,
           "host": {"status": "ok", "cosine": 1.0, "reasons": []}}
    good = {"v": 1, "run_id": "20261202-004400-abcd", "target": "t", "profile": "p", "artifacts": [art],
            "inputs": "b" * 64, "reference": "c" * 64, "quality": {"min_cosine": 0.99}, "time_limit_s": 60}
    job = parse_job(good, own_targets={"t": "p"})
    assert job.artifacts[0].io.model_dump() == io and job.quality == {"min_cosine": 0.99}
    assert job.ops is False and job.keep == [] and job.delegate is None       # a direct run's defaults
    job = parse_job(dict(good, ops=True, keep=["d" * 64], delegate="xnnpack", op_profiling=True,
                         input_shapes=["x=1,1,8,8"], artifacts=[dict(art, precision="as-is")]), own_targets={"t": "p"})
    assert job.ops and job.keep == ["d" * 64] and job.delegate == "xnnpack" and job.op_profiling
    assert job.input_shapes == ["x=1,1,8,8"] and job.artifacts[0].precision == "as-is"
    for bad, said in ((dict(good, artifacts=[dict(art, io=dict(io, extra=1))]), "artifacts.0.io.extra"),
                      (dict(good, artifacts=[dict(art, io=dict(io, model_inputs=[dict(tensor, dtype="x y")]))]),
                       "dtype"),
                      (dict(good, artifacts=[dict(art, host={"status": "failed"})]), "artifacts.0.host.status"),
                      (dict(good, quality={"min_cosine": 7}), "quality"),
                      (dict(good, quality={"min_cos": 0.9}), "quality"),
                      (dict(good, artifacts=[dict(art, io=None)]), "io map"),
                      (dict(good, reference=None), "reference"),
                      (dict(good, keep=["not-a-sha"]), "keep"),
                      (dict(good, delegate="gpu; rm -rf /"), "delegate"),
                      (dict(good, ops="yes please"), "ops"),
                      (dict(good, input_shapes=["x=1,a"]), "input_shapes"),
                      (dict(good, artifacts=[dict(art, precision="int4")]), "precision")):
        with pytest.raises(JobRejected, match=said):
            parse_job(bad, own_targets={"t": "p"})


@pytest.mark.lab
@pytest.mark.slow
def test_feedback_state_is_fed_back_on_the_farm_worker(farm_targets, redis_server, pg_url, farm_worker, tmp_path):
    """`recurrent` with --feedback state_out=state: the held-out steps stay in order and each step's
    state output is fed back on the device, as the host does here."""
    import onnxruntime as ort

    m = M.recurrent()
    a = farm_worker(farm_targets, ["farm-a"], redis_server.url, pg_url, "wio-rec")
    a.wait_ready()
    out = tmp_path / "out"
    rc, text, err = cli("run", m.onnx, "--data", m.data, "--eval-samples", EVAL, "--target", "farm-a",
                        "--targets", farm_targets, "--farm", redis_server.url, "--db", pg_url, "--out", out,
                        "--feedback", "state_out=state", "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                        "--json")
    assert rc == 0, err[-3000:]
    res = json.loads(text)
    z = np.load(m.data)
    rows = z["chunk"][len(z["chunk"]) - EVAL:]                     # ordered split: the last steps, in order
    (folder,) = {p.parent for p in out.rglob("manifest.json")}

    def steps(path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        state, got = z["state"][0], {"logits": [], "state_out": []}
        for r in rows:
            logits, state = sess.run(None, {"chunk": r[None], "state": state})
            got["logits"].append(logits)
            got["state_out"].append(state)
        return {k: np.concatenate(v) for k, v in got.items()}

    reference = steps(m.onnx)
    results = res["targets"]["farm-a"]["results"]
    assert len(results) == 3
    for r in results:
        key = f"{r['artifact']['precision']}.{r['artifact']['format']}"
        assert r["status"] == "ok", (key, r.get("error"))
        dev = {o["name"]: o for o in r["fidelity"]["outputs"]}
        assert sorted(dev) == ["logits", "state_out"]
        host = steps(folder / f"model.{key}")
        for o in ("logits", "state_out"):
            want = _cosine(host[o], reference[o])
            assert abs(dev[o]["cosine"] - want) < 1e-4, (key, o, dev[o]["cosine"], want)
        if key == "fp32.onnx":
            assert min(dev[o]["cosine"] for o in dev) > 0.9999
