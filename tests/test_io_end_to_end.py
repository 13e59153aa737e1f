"""Each I/O model through `run` on `local` and on a real-sshd lab device, `bench` and `compare`:
device fidelity per output, computed by the same executor as the host's, and `degraded` shown
everywhere for an artifact whose one output quantization broke."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import io_models as M
from cli_helpers import cli
import digits_artifacts as D

pytestmark = [pytest.mark.slow, pytest.mark.lab]
QUICK = ["--runs", "3", "--warmup", "1", "--min-seconds", "0", "--eval-samples", "40"]


@pytest.fixture(scope="module")
def lab_env(lab_sshd, tmp_path_factory):
    root = tmp_path_factory.mktemp("io-e2e")
    profile = D.profile_yaml("io-e2e", D.ALL_ARTIFACTS)
    lab = dict(lab_sshd.target_dict(), name="lab", profile=str(profile))
    local = {"name": "local", "profile": str(profile), "transport": "local", "workdir": str(root / "localdev")}
    targets = root / "targets.yaml"
    targets.write_text(yaml.safe_dump({"targets": [local, lab]}, sort_keys=False))
    return {"root": root, "targets": targets, "profile": profile}


def _run(env, m, *extra):
    root = env["root"] / m.name
    args = ["run", m.onnx, "--target", "local", "--target", "lab", "--targets", env["targets"], "--data", m.data,
            "--out", root / "out", "--db", root / "results.db", "--cache", env["root"] / "cache", "--json", *QUICK,
            *extra]
    for o, i in m.feedback.items():
        args += ["--feedback", f"{o}={i}"]
    rc, out, err = cli(*args)
    return rc, (json.loads(out) if out.strip().startswith("{") else None), err, root


@pytest.mark.parametrize("name", sorted(M.ALL))
def test_run_bench_compare_per_output(lab_env, name):
    m = M.ALL[name]()
    rc, doc, err, root = _run(lab_env, m)
    assert doc is not None, err[-3000:]
    assert rc == 0, (doc["status"], {t: o["error"] for t, o in doc["targets"].items()})
    from edgecompress.manifest import Manifest

    man = Manifest.read(root / "out" / "io-e2e")
    host = {f"{a.precision}.{a.format}": {o.name: o for o in a.fidelity.outputs} for a in man.artifacts}
    for tname in ("local", "lab"):
        results = doc["targets"][tname]["results"]
        assert len(results) == len(D.ALL_ARTIFACTS)
        for r in results:
            key = f"{r['artifact']['precision']}.{r['artifact']['format']}"
            assert r["status"] == "ok", (tname, key, r.get("error"))
            dev = {o["name"]: o for o in r["fidelity"]["outputs"]}
            assert set(dev) == set(m.outputs), (tname, key)
            for o in m.outputs:
                # the device ran the held-out samples through the same executor: same closeness
                assert dev[o]["cosine"] >= 0.95, (tname, key, dev[o])
                if key in ("fp32.onnx", "fp32.tflite"):
                    assert dev[o]["cosine"] > 0.9999 and host[key][o].cosine > 0.9999
    # compare: a quality for every row, the worst output's cosine, Pareto among ok rows only
    rc, out, err = cli("compare", "--db", root / "results.db", "--json")
    assert rc == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 2 * len(D.ALL_ARTIFACTS)
    for row in rows:
        assert row["status"] == "ok" and row["cosine"] is not None and row["cosine"] >= 0.95
        q = row["accuracy"] if row["accuracy"] is not None else (
            row["top1_agreement"] if row["top1_agreement"] is not None else row["cosine"])
        assert q is not None
    assert any(r["pareto"] for r in rows if r["target"] == "local")
    rc, table, _ = cli("compare", "--db", root / "results.db")
    assert rc == 0 and ("agree " in table or "cos " in table or "%" in table)
    # bench the manifest folder on the lab device
    rc, out, err = cli("bench", root / "out" / "io-e2e", "--target", "lab", "--targets", lab_env["targets"],
                       "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json")
    assert rc == 0, err[-2000:]
    assert [r["status"] for r in json.loads(out)] == ["ok"] * len(D.ALL_ARTIFACTS)


def test_bench_raw_file_with_dynamic_dims_is_labelled_by_name(lab_env):
    m = M.dynamic_hw()
    rc, out, err = cli("bench", m.onnx, "--target", "local", "--targets", lab_env["targets"], "--runs", "3",
                       "--warmup", "1", "--min-seconds", "0", "--input-shape", "image=1,1,32,24")
    assert rc == 0, err[-2000:]
    assert "dynamic_hw.onnx" in out and "?.onnx" not in out
    rc, out, _ = cli("bench", m.onnx, "--target", "local", "--targets", lab_env["targets"], "--runs", "3",
                     "--warmup", "1", "--min-seconds", "0", "--input-shape", "image=1,1,32,24", "--json")
    (r,) = json.loads(out)
    assert r["inputs"][0]["shape"] == [1, 1, 32, 24] and r["status"] == "ok"
    assert len(r["output_tensors"]) == 1 and r["latency_ms"]["p50"] > 0


def test_run_given_tflite_and_as_is_onnx(lab_env, tmp_path):
    """A .tflite (or --as-is .onnx) is measured as given; device fidelity against the same file on the host."""
    m = M.two_heads()
    rc, doc, err, root = _run(lab_env, m)            # gives us a real TFLite file to hand in
    assert rc == 0, err[-2000:]
    tfl = root / "out" / "io-e2e" / "model.int8.tflite"
    data = tmp_path / "pixels.npz"
    np.savez(data, pixels=np.load(m.data)["pixels"])
    for model, extra in ((tfl, []), (m.onnx, ["--as-is"])):
        rc, out, err = cli("run", model, "--target", "local", "--target", "lab", "--targets", lab_env["targets"],
                           "--data", data, "--out", tmp_path / f"given-{model.suffix}", "--db", tmp_path / "r.db",
                           "--json", *QUICK, *extra)
        assert rc == 0, err[-2000:]
        doc = json.loads(out)
        for t in ("local", "lab"):
            (r,) = doc["targets"][t]["results"]
            assert r["status"] == "ok" and r["artifact"]["format"] == model.suffix.lstrip(".")
            for o in r["fidelity"]["outputs"]:
                assert o["cosine"] > 0.99999 and o["max_abs"] < 1e-4, (t, o)    # same file, same executor


def test_degraded_shows_everywhere(lab_env, tmp_path):
    m = M.broken()
    rc, doc, err, root = _run(lab_env, m)
    assert rc == 1 and doc["status"] == "partial", err[-2000:]
    res = {(t, f"{r['artifact']['precision']}.{r['artifact']['format']}"): r
           for t in ("local", "lab") for r in doc["targets"][t]["results"]}
    bad = res[("local", "int8.onnx")]
    assert bad["status"] == "degraded" and "output 'ink': cosine" in bad["error"]
    assert bad["latency_ms"]["p50"] > 0                                   # still measured
    assert res[("lab", "int8.onnx")]["status"] == "degraded"
    assert res[("local", "fp32.onnx")]["status"] == "ok"
    db = root / "results.db"
    rc, out, _ = cli("compare", "--db", db, "--json")
    rows = {(r["target"], r["artifact"]): r for r in json.loads(out)["rows"]}
    assert rows[("local", "int8.onnx")]["status"] == "degraded" and not rows[("local", "int8.onnx")]["pareto"]
    assert rows[("local", "int8.onnx")]["cosine"] < 0.9
    rc, table, _ = cli("compare", "--db", db)
    line = next(ln for ln in table.splitlines() if ln.startswith("local") and "int8.onnx" in ln)
    assert "degraded" in line and " * " not in line
    rc, md, _ = cli("compare", "--db", db, "--markdown")
    assert any("int8.onnx" in ln and "degraded" in ln for ln in md.splitlines())
    html = tmp_path / "r.html"
    cli("compare", "--db", db, "--html", html)
    assert "degraded" in html.read_text()
    rc, out, _ = cli("bench", root / "out" / "io-e2e", "--target", "local", "--targets", lab_env["targets"],
                     "--runs", "2", "--warmup", "0", "--min-seconds", "0")
    assert rc == 1
    assert any("int8.onnx" in ln and "degraded" in ln for ln in out.splitlines())
