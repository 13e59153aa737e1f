"""``edgecompress compress``: exit codes, the table, --json, and the messages for bad input."""
from __future__ import annotations

import json
import textwrap

import pytest

import digits_artifacts as D
from edgecompress.cli import main


SPECTRAL = textwrap.dedent('''
    import torch

    INPUT_SHAPE = (1, 1, 28, 28)


    class Spectral(torch.nn.Module):
        """Digits from the magnitude spectrum of each image row: torch.fft -> ONNX DFT."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(28 * 15, 10)

        def forward(self, x):
            return self.fc(torch.fft.rfft(x[:, 0], dim=-1).abs().flatten(1))


    def factory():
        return Spectral()
''')


def _run(capsys, *argv):
    code = main(["compress", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_prints_progress_and_a_table(capsys, tmp_path):
    """A second profile over the same cache: every step comes from the cache, output as before."""
    D.compressed("factory")
    profile = D.profile_yaml("cli-pi", [("tflite", "int8"), ("onnx", "int8"), ("onnx", "fp32")])
    code, out, err = _run(capsys, D.factory_spec(), "--weights", D.torch_model()[1], "--profile", profile,
                          "--data", D.data_files()[0], "--out", tmp_path, "--cache", D.root() / "cache")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"cli-pi: {tmp_path / 'cli-pi'}"
    assert lines[1].split() == ["artifact", "size", "vs", "fp32", "fidelity", "status"]
    row = next(ln for ln in lines if ln.startswith("model.int8.tflite"))
    assert row.rstrip().endswith("ok") and "KiB" in row and "top1" in row and "acc" in row
    assert "onnx2tf (ONNX -> TFLite fp32, fp16, dynamic, int8): cached" in err
    assert "running" not in err


def test_json_prints_the_manifest(capsys, tmp_path):
    profile = D.profile_yaml("cli-json", [("onnx", "fp32"), ("onnx", "dynamic")])
    code, out, err = _run(capsys, D.onnx_file(), "-p", profile, "--data", D.data_files()[0], "--out", tmp_path,
                          "--json", "--quiet")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["profile"] == "cli-json" and doc["model"]["source"] == str(D.onnx_file())
    assert [a["path"] for a in doc["artifacts"]] == ["model.fp32.onnx", "model.dynamic.onnx"]
    assert doc == json.loads((tmp_path / "cli-json" / "manifest.json").read_text())
    assert doc["data"]["preprocessing"] == "npz x as-is"


def test_a_failing_artifact_exits_1_and_keeps_the_others(capsys, tmp_path):
    """ONNX has DFT, onnx2tf does not: the TFLite artifacts fail with that reason, the ONNX ones
    are built and checked; onnx2tf is tried once, not once per TFLite artifact; nothing
    half-made is left in the output or the cache."""
    from edgecompress.manifest import Manifest

    (tmp_path / "spectral.py").write_text(SPECTRAL)
    profile = D.profile_yaml("mixed", [("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")])
    code, out, err = _run(capsys, f"{tmp_path}/spectral.py:factory", "-p", profile, "--data", D.data_files()[0],
                          "--out", tmp_path / "out")
    assert code == 1
    m = Manifest.read(tmp_path / "out" / "mixed")
    status = {a.path: a for a in m.artifacts}
    assert status["model.fp32.onnx"].status == "ok" and status["model.fp32.onnx"].fidelity.top1_agreement == 1.0
    assert status["model.int8.onnx"].status == "ok"
    for name in ("model.fp32.tflite", "model.int8.tflite"):
        a = status[name]
        assert a.status == "failed" and "DFT" in a.error and a.sha256 is None and a.size_bytes == 0
        assert not (m.folder / name).exists()
        assert any(ln.startswith(name) and "FAILED: onnx2tf failed" in ln for ln in out.splitlines())
    assert err.count("onnx2tf (ONNX -> TFLite fp32, fp16, dynamic, int8): running") == 1
    assert sorted(p.name for p in m.folder.iterdir()) == ["manifest.json", "model.fp32.onnx", "model.int8.onnx"]
    assert not [p for p in (tmp_path / "out" / ".cache").iterdir() if "onnx2tf" in p.name]


@pytest.mark.parametrize("argv, message", [
    (["{onnx}", "--profile", "raspbery-pi-4", "--data", "{npz}"],
     "unknown profile 'raspbery-pi-4' (did you mean 'raspberry-pi-4'?)"),
    (["{onnx}", "--profile", "{bad_profile}", "--data", "{npz}"],
     "artifacts[0].precision: bad value 'int4'"),
    (["{tmp}/missing.onnx", "--profile", "raspberry-pi-4", "--data", "{npz}"],
     "missing.onnx: model not found; MODEL is one of:"),
    (["{corrupt}", "--profile", "raspberry-pi-4", "--data", "{npz}"], "corrupt.onnx: not a valid ONNX model"),
    (["{onnx}", "--profile", "raspberry-pi-4", "--data", "{nhwc}"],
     "samples have shape [300, 28, 28, 1] but the model's input 'image' is ['batch', 1, 28, 28]"),
    (["{onnx}", "--profile", "raspberry-pi-4"], "no calibration data: give samples with --data"),
    (["{onnx}", "--profile", "raspberry-pi-4", "--data", "{tmp}/none.npz"], "none.npz: data not found"),
    (["{ts}", "--profile", "raspberry-pi-4", "--data", "{npz}"], "give it with --input-shape"),
    (["{ts}", "--profile", "raspberry-pi-4", "--input-shape", "1,1,28,x"], "expected [NAME=]positive integers"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, tmp_path, argv, message):
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage")
    bad = tmp_path / "bad.yaml"
    bad.write_text(D.profile_yaml("bad", [("onnx", "fp32")]).read_text().replace("precision: fp32", "precision: int4"))
    subs = dict(onnx=D.onnx_file(), npz=D.data_files()[0], nhwc=D.data_files()[1], tmp=tmp_path,
                bad_profile=bad, corrupt=tmp_path / "corrupt.onnx", ts=D.torchscript_file())
    code, out, err = _run(capsys, *[a.format(**subs) for a in argv], "--out", tmp_path / "out")
    assert code == 2 and out == ""
    assert err.startswith("edgecompress: error: ") and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())   # no work was done
