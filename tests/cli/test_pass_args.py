"""Pass flags of ``edgecompress compress``: parsed into the same specs a profile holds, validated
like a profile, and run end to end on the digits CNN trained on real MNIST."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgecompress.cli import build_parser, main


def _passes(argv: str) -> list:
    return build_parser().parse_args(["compress", "m.onnx", "-p", "x86-64-host", *argv.split()]).passes


def test_flags_become_pass_specs_in_the_order_given():
    assert _passes("--finetune-epochs 4 --prune structured:0.5 --cluster 16 --finetune-lr 0.01") == [
        {"pass": "prune", "method": "structured", "amount": 0.5, "epochs": 4, "lr": 0.01},
        {"pass": "cluster", "clusters": 16, "epochs": 4, "lr": 0.01}]
    assert _passes("--distill-epochs 3 --distill-from a.pt --distill-from b.pt --student s.py:f --fuse") == [
        {"pass": "distill", "epochs": 3, "teachers": ["a.pt", "b.pt"], "student": "s.py:f"}, {"pass": "fuse"}]
    assert _passes("--merge a.pt b.pt --merge-method uniform --prune-macs 0.4 --prune-ignore 8 --qat") == [
        {"pass": "merge", "checkpoints": ["a.pt", "b.pt"], "method": "uniform"},
        {"pass": "prune", "method": "structured", "macs_target": 0.4, "ignore": ["8"]}, {"pass": "qat"}]
    assert _passes("--prune 0.8 --distill") == [{"pass": "prune", "method": "global", "amount": 0.8},
                                                {"pass": "distill"}]


@pytest.mark.parametrize("argv, message", [
    ("--prune structred:0.5", "unknown pruning method 'structred' (did you mean 'structured'?)"),
    ("--prune local:1.5", "expected a fraction between 0 and 1"),
    ("--prune-macs 0", "expected a fraction between 0 and 1"),
])
def test_bad_flags_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        _passes(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bad_pass_settings_stop_before_any_work(capsys, tmp_path):
    code = main(["compress", "edgecompress/examples/digits.py:factory", "--input-shape", "1,1,28,28",
                 "-p", "x86-64-host", "--cluster", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "command line: passes[0].clusters: bad value 1" in err


@pytest.mark.slow
def test_compress_with_structured_pruning_from_the_command_line(torch_digits, tmp_path, capsys):
    import torch

    model, (_, _, xte, yte) = torch_digits
    weights = tmp_path / "digits.pt"
    torch.save(model.state_dict(), weights)
    data = tmp_path / "digits.npz"
    np.savez(data, x=xte, y=yte)
    profile = tmp_path / "int8.yaml"
    profile.write_text("name: int8-host\nhardware: {arch: x86_64, cores: 2, memory_mb: 4096, peak_gflops: 50, "
                       "memory_gbps: 10}\npower: {idle_w: 5, load_w: 15}\nruntimes: [onnxruntime]\n"
                       "artifacts: [{format: onnx, precision: fp32}, {format: onnx, precision: int8}]\n")
    code = main(["compress", "edgecompress/examples/digits.py:factory", "--weights", str(weights),
                 "--input-shape", "1,1,28,28", "-p", str(profile), "--data", str(data), "--out", str(tmp_path / "o"),
                 "--prune", "structured:0.5", "--finetune-epochs", "5", "--finetune-lr", "0.01", "--json", "-q",
                 "--max-accuracy-drop", "15"])   # 600 fine-tuning samples: 4-8 points below the source (init seeds 0-3)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    fp32, int8 = doc["artifacts"]
    (rep,) = int8["passes"]
    assert rep["settings"]["method"] == "structured" and rep["settings"]["epochs"] == 5
    assert rep["measured"]["macs_after"] <= 0.6 * rep["measured"]["macs_before"]
    assert rep["data"]["train_samples"] == 600 and rep["data"]["eval_samples"] == 400
    assert int8["fidelity"]["accuracy"] >= rep["measured"]["accuracy_after"] - 0.03
    assert fp32["fidelity"]["accuracy"] == pytest.approx(rep["measured"]["accuracy_after"], abs=0.003)
