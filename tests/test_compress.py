"""compress(): every artifact from every source kind, on a CNN trained on real MNIST digits.

Each artifact is run again here in its own runtime (ONNX Runtime / LiteRT) on held-out digits
that were not used for training, and checked against the labels and the source model.
"""
from __future__ import annotations

import json

import pytest

import digits_artifacts as D
from edgecompress.exporters.execute import ArtifactRunner
from edgecompress.manifest import Manifest, sha256_file


@pytest.fixture(scope="module", params=["factory", "onnx", pytest.param("keras", marks=pytest.mark.slow)])
def manifest(request):
    return D.compressed(request.param)


def _held_out(manifest):
    """Held-out digits in the source model's layout (the last 300 of the 1,000 test digits)."""
    _, _, (_, _, xte, yte) = D.torch_model()
    x = xte[-300:]
    return (x.transpose(0, 2, 3, 1) if manifest.model["layout"] == "NHWC" else x), yte[-300:]


def test_every_artifact_is_built_and_recorded(manifest):
    got = {(a.format, a.precision): a for a in manifest.artifacts}
    assert sorted(got) == sorted(D.ALL_ARTIFACTS)
    for a in manifest.artifacts:
        assert a.status == "ok", a.error
        path = manifest.folder / a.path
        assert a.path == f"model.{a.precision}.{a.format}"
        assert a.size_bytes == path.stat().st_size > 0 and a.sha256 == sha256_file(path)
        assert a.tools and all(v != "not installed" for v in a.tools.values())
        assert a.fidelity.samples > 0 and a.fidelity.max_abs is not None
    # what a user reads back from disk is the same as what was returned
    assert Manifest.read(manifest.folder).to_dict() == json.loads((manifest.folder / "manifest.json").read_text())
    assert manifest.data["labels"] and manifest.data["calibration_samples"] > 0
    assert not [p for p in manifest.folder.parent.iterdir() if ".building-" in p.name]


def test_artifacts_run_in_their_runtime_and_agree_with_the_reference(manifest):
    x, y = _held_out(manifest)
    fp32_acc = {}
    for a in manifest.artifacts:
        runner = ArtifactRunner(manifest.folder / a.path, layout=a.layout, source_layout=manifest.model["layout"])
        out = runner.run(x)
        acc = float((out.argmax(1) == y).mean())
        if a.precision == "fp32":
            fp32_acc[a.format] = acc
        assert acc > 0.94, (a.path, acc)
        # the manifest's own fidelity (on its evaluation split) says the same
        assert a.fidelity.top1_agreement >= (0.99 if a.precision in ("fp32", "fp16") else 0.97), a.path
        assert a.fidelity.cosine > (0.9999 if a.precision in ("fp32", "fp16") else 0.995), a.path
        assert a.fidelity.reference_accuracy > 0.94
    for a in manifest.artifacts:
        if a.precision == "int8":
            x_acc = float((ArtifactRunner(manifest.folder / a.path, layout=a.layout,
                                          source_layout=manifest.model["layout"]).run(x).argmax(1) == y).mean())
            assert x_acc >= fp32_acc[a.format] - 0.01, (a.path, x_acc, fp32_acc[a.format])
            assert a.fidelity.accuracy >= a.fidelity.reference_accuracy - 0.01, a.path


def test_int8_files_are_at_most_0_3_of_fp32(manifest):
    size = {(a.format, a.precision): a.size_bytes for a in manifest.artifacts}
    for fmt in ("onnx", "tflite"):
        assert size[(fmt, "int8")] <= 0.3 * size[(fmt, "fp32")], (fmt, size)
        assert size[(fmt, "dynamic")] <= 0.3 * size[(fmt, "fp32")], (fmt, size)
        assert size[(fmt, "fp16")] <= 0.55 * size[(fmt, "fp32")], (fmt, size)
    assert manifest.model["fp32_size_bytes"] == {"onnx": size[("onnx", "fp32")], "tflite": size[("tflite", "fp32")]}


def test_layouts_and_integer_io_are_recorded(manifest):
    by = {(a.format, a.precision): a for a in manifest.artifacts}
    src_layout = manifest.model["layout"]
    assert src_layout == ("NHWC" if manifest.model["kind"] == "keras" else "NCHW")
    for a in manifest.artifacts:
        assert a.layout == (src_layout if a.format == "onnx" else "NHWC")
        want = [1, 28, 28, 1] if a.layout == "NHWC" else [1, 1, 28, 28]
        # a dynamic batch (named by the source, e.g. 'batch' or tf2onnx's 'unk__62') is kept in ONNX
        # artifacts; TFLite fixes batch 1
        shape = a.inputs[0].shape
        assert shape[1:] == want[1:] and (shape[0] == 1 or (a.format == "onnx" and not isinstance(shape[0], int)))
    assert by[("tflite", "int8")].inputs[0].dtype == "int8" and by[("tflite", "int8")].outputs[0].dtype == "int8"
    assert by[("onnx", "int8")].calibration == "minmax"
    assert by[("tflite", "fp32")].inputs[0].dtype == "float32"


def test_fp32_onnx_has_batchnorm_folded():
    """The plain ONNX input keeps BatchNormalization nodes; the FP32 artifact has none."""
    import onnx

    src = onnx.load(str(D.onnx_file()))
    assert "BatchNormalization" in {n.op_type for n in src.graph.node}
    m = D.compressed("onnx")
    ops = {n.op_type for n in onnx.load(str(m.folder / "model.fp32.onnx")).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops
    # the user's input and output names survive the export
    art = next(a for a in m.artifacts if a.path == "model.fp32.onnx")
    assert art.inputs[0].name == "image" and art.outputs[0].name == "logits"


def test_second_profile_reuses_the_cache():
    """A profile asking for artifacts another profile already made runs no converter again."""
    from edgecompress.compress import compress

    D.compressed("factory")
    s = D.SOURCES["factory"]()
    m = compress(_loaded_factory(), D.profile_yaml("pi-like", [
        ("tflite", "int8"), ("tflite", "dynamic"), ("onnx", "int8"), ("onnx", "fp32")]),
        s["data"], D.root() / "out-factory", cache_dir=D.root() / "cache")
    assert all(a.status == "ok" for a in m.artifacts)
    assert m.steps and all(e["cached"] for e in m.steps), m.steps
    assert {e["step"] for e in m.steps} >= {"onnx-fp32", "onnx2tf", "onnx-int8"}
    first = {a.path: a.sha256 for a in D.compressed("factory").artifacts}
    assert all(first[a.path] == a.sha256 for a in m.artifacts)     # the very same files


def _loaded_factory():
    from edgecompress.models import load_model

    s = D.SOURCES["factory"]()
    return load_model(s["model"], weights=s["weights"])


def test_calibration_methods_are_applied_and_recorded(tmp_path):
    """The profile's calibration method changes the INT8 file; the manifest says which and how well.

    Percentile keeps accuracy; ORT's entropy (KL) ranges can cost accuracy on this CNN (2 to 20
    points, depending on the training run) — the fidelity numbers are there to show exactly that.
    """
    from edgecompress.compress import compress_many

    minmax = next(a for a in D.compressed("onnx").artifacts if a.path == "model.int8.onnx")
    profiles = [D.profile_yaml(f"cal-{c}", [("onnx", "int8")], calibration=c) for c in ("entropy", "percentile")]
    out = compress_many(D.onnx_file(), profiles, D.data_files()[0], tmp_path, cache_dir=D.root() / "cache")
    files = {minmax.sha256}
    for name, m in out.items():
        (a,) = m.artifacts
        assert a.status == "ok" and a.calibration == name.split("-")[1]
        files.add(a.sha256)
        assert a.fidelity.accuracy is not None and a.fidelity.top1_agreement is not None
    assert len(files) == 3                       # three methods, three different files
    (pct,) = out["cal-percentile"].artifacts
    assert pct.fidelity.accuracy >= pct.fidelity.reference_accuracy - 0.01
    steps = {e["step"] for m in out.values() for e in m.steps if not e["cached"]}
    assert steps == {"onnx-calibration", "onnx-int8"}     # the FP32 export came from the cache


def test_torchscript_source(tmp_path):
    from edgecompress.compress import compress
    from edgecompress.models import load_model

    model = load_model(D.torchscript_file(), input_shape=(1, 1, 28, 28))
    m = compress(model, D.profile_yaml("onnx-only", [("onnx", "fp32"), ("onnx", "int8")]), D.data_files()[0],
                 tmp_path, cache_dir=tmp_path / "cache")
    assert [a.status for a in m.artifacts] == ["ok", "ok"]
    assert m.artifacts[0].fidelity.top1_agreement == 1.0 and m.artifacts[0].fidelity.max_abs < 1e-4
    assert m.artifacts[1].fidelity.accuracy >= m.artifacts[1].fidelity.reference_accuracy - 0.01


def test_random_calibration_needs_consent_and_says_so(tmp_path):
    from edgecompress.compress import compress
    from edgecompress.errors import DataError

    profile = D.profile_yaml("onnx-int8", [("onnx", "int8")])
    with pytest.raises(DataError, match="--random-calibration"):
        compress(D.onnx_file(), profile, None, tmp_path)
    said = []
    m = compress(D.onnx_file(), profile, None, tmp_path, allow_random_calibration=True, progress=said.append,
                 cache_dir=D.root() / "cache")
    assert any("INT8 accuracy is unknown" in s for s in said)
    assert m.data["random"] is True and m.data["labels"] is False
    assert m.artifacts[0].status == "ok" and m.artifacts[0].fidelity.accuracy is None


def test_profiles_are_checked_before_any_work(tmp_path):
    from edgecompress.compress import compress_many
    from edgecompress.errors import ProfileError, UsageError

    p = D.profile_yaml("twice", [("onnx", "fp32")])
    with pytest.raises(UsageError, match="profile names must differ"):
        compress_many(D.onnx_file(), [p, p], D.data_files()[0], tmp_path)
    with pytest.raises(ProfileError, match="unknown profile 'no-such-board'"):
        compress_many(D.onnx_file(), [p, "no-such-board"], D.data_files()[0], tmp_path)
    assert not any(tmp_path.iterdir())
