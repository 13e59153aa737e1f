"""Bad configuration and bad files through the command line: exit 2 with a message that names the file
and says what to change — or, for a model op one format cannot take, that artifact failed (exit 1)
with the op named while the others are built."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_helpers import cli as run_cli

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def cli(*argv) -> tuple[int, str]:
    """(exit code, stdout + stderr)."""
    rc, out, err = run_cli(*argv)
    return rc, out + err


def profile_text(**edits) -> str:
    doc = yaml.safe_load((PROFILES / "x86-64-host.yaml").read_text())
    for key, value in edits.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return yaml.safe_dump(doc)


CASES = {
    # name: (file name, content, command (FILE = the file), strings the message must hold)
    "malformed YAML": ("p.yaml", "name: p\nhardware: [unclosed\n", ["profiles", "validate", "FILE"],
                       ["malformed YAML", "line 3"]),
    "wrong type": ("p.yaml", profile_text(measure={"runs": "many"}), ["profiles", "validate", "FILE"],
                   ["measure.runs", "'many'", "valid integer"]),
    "unknown key": ("p.yaml", profile_text(artifact=[{"format": "onnx", "precision": "fp32"}]),
                    ["profiles", "validate", "FILE"], ["unknown key 'artifact'", "did you mean 'artifacts'"]),
    "bad enum value": ("p.yaml", profile_text(artifacts=[{"format": "onnx", "precision": "int4"}]),
                       ["profiles", "validate", "FILE"], ["artifacts[0].precision", "'int4'", "fp32"]),
    "unknown target key": ("t.yaml", yaml.safe_dump({"targets": [{"name": "a", "profile": "x86-64-host",
                                                                  "host": "a@b", "prot": 22}]}),
                           ["targets", "list", "--targets", "FILE"], ["targets[0].prot", "did you mean 'port'"]),
    "target without host": ("t.yaml", yaml.safe_dump({"targets": [{"name": "a", "profile": "x86-64-host"}]}),
                            ["targets", "list", "--targets", "FILE"], ["needs 'host'", "user@host:port"]),
    "unknown profile in target": ("t.yaml", yaml.safe_dump({"targets": [{"name": "a", "profile": "rasberry-pi-4",
                                                                         "host": "a@b"}]}),
                                  ["targets", "list", "--targets", "FILE"],
                                  ["targets[0].profile", "did you mean", "raspberry-pi-4"]),
    "missing targets file": (None, None, ["targets", "list", "--targets", "FILE"], ["file not found"]),
    "missing profile file": (None, None, ["profiles", "validate", "FILE"], ["profile file not found"]),
    "missing model": (None, None, ["compress", "FILE", "--profile", "x86-64-host"], ["model not found",
                                                                                      "file.onnx"]),
    "corrupt model": ("m.onnx", b"\x08\x07garbage" * 300, ["compress", "FILE", "--profile", "x86-64-host"],
                      ["not a valid ONNX model"]),
    "missing artifact": (None, None, ["bench", "FILE", "--target", "local"], ["not found", ".onnx/.tflite"]),
    "artifact of unknown kind": ("a.bin", b"x", ["bench", "FILE", "--target", "local"],
                                 ["unknown artifact kind", ".onnx, .tflite"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_naming_the_file_and_the_fix(case, tmp_path, outcome):
    name, content, argv, needles = CASES[case]
    path = tmp_path / (name or "does-not-exist.yaml")
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    rc, msg = cli(*[path if a == "FILE" else a for a in argv])
    assert rc == 2, msg
    assert path.name in msg, msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert "Traceback" not in msg
    outcome(expected="exit 2 naming file and fix", observed=f"exit 2: {msg.strip().splitlines()[-1][:80]}")


def test_data_that_does_not_fit_the_model_is_refused_with_both_shapes(fault_artifacts, tmp_path, outcome):
    data = tmp_path / "faces.npz"
    np.savez(data, x=np.zeros((8, 3, 32, 32), np.float32))
    rc, msg = cli("compress", fault_artifacts["digits"], "--profile", "x86-64-host", "--data", data,
                  "--out", tmp_path / "out")
    assert rc == 2, msg
    assert "faces.npz" in msg and "3, 32, 32" in msg and "1, 28, 28" in msg, msg
    outcome(expected="exit 2 with both shapes", observed=f"exit 2: {msg.strip().splitlines()[-1][:80]}")


@pytest.mark.slow
def test_an_op_one_format_cannot_take_fails_that_artifact_only(fault_artifacts, tmp_path, outcome):
    """The digits classifier with an LpPool(p=2, 1x1) in front (the identity on pixels >= 0):
    onnxruntime runs it, onnx2tf has no LpPool — the TFLite artifact fails naming the op, the ONNX
    artifact is built and agrees with the source (exit 1: some artifacts failed)."""
    from onnx import TensorProto, helper, numpy_helper

    from .models import _save

    graph = helper.make_graph(
        [helper.make_node("LpPool", ["x"], ["lp"], kernel_shape=[1, 1], p=2),
         helper.make_node("Flatten", ["lp"], ["f"], axis=1), helper.make_node("MatMul", ["f", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["logits"])],
        "digits_lp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(fault_artifacts["w"], "w"), numpy_helper.from_array(fault_artifacts["b"], "b")])
    model = _save(graph, tmp_path / "digits_lp.onnx")
    data = tmp_path / "d.npz"
    np.savez(data, x=fault_artifacts["x"], y=fault_artifacts["y"])
    profile = tmp_path / "p.yaml"
    profile.write_text(profile_text(name="lp-test", runtimes=["onnxruntime", "tflite"],
                                    artifacts=[{"format": "onnx", "precision": "fp32"},
                                               {"format": "tflite", "precision": "fp32"}]))
    rc, msg = cli("compress", model, "--profile", profile, "--data", data, "--out", tmp_path / "out",
                  "--cache", tmp_path / "cache", "--json", "--quiet")
    assert rc == 1, msg
    manifest = json.loads((tmp_path / "out" / "lp-test" / "manifest.json").read_text())
    arts = {f"{a['precision']}.{a['format']}": a for a in manifest["artifacts"]}
    assert arts["fp32.onnx"]["status"] == "ok" and arts["fp32.onnx"]["fidelity"]["top1_agreement"] == 1.0
    assert arts["fp32.tflite"]["status"] == "failed" and "LpPool" in arts["fp32.tflite"]["error"]
    outcome(expected="that artifact failed, op named; others built",
            observed=f"exit 1; fp32.tflite failed: {arts['fp32.tflite']['error'][:60]}...; fp32.onnx ok")
