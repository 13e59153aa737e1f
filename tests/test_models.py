"""load_model: every MODEL kind, and the messages users get when one is wrong."""
from __future__ import annotations

import numpy as np
import pytest

import digits_artifacts as D
from edgecompress.errors import ModelError
from edgecompress.models import load_model, parse_shape


def test_factory_with_weights_reproduces_the_trained_model():
    import torch

    trained, weights, (_, _, xte, _) = D.torch_model()
    m = load_model(D.factory_spec(), weights=weights)
    assert m.kind == "torch" and m.layout == "NCHW" and m.inputs[0].shape == [1, 1, 28, 28]   # from INPUT_SHAPE
    assert m.outputs[0].shape == [1, 10]
    with torch.no_grad():
        want = trained(torch.from_numpy(xte[:50])).numpy()
    assert np.allclose(m.predict(xte[:50]), want, atol=1e-5)
    untrained = load_model(D.factory_spec())
    assert untrained.sha256 != m.sha256            # the weights are part of the model's identity


def test_the_example_factory_with_input_shape(torch_digits, tmp_path):
    """``edgecompress/examples/digits.py:factory`` + --weights, the way the README shows it."""
    import torch

    model, (_, _, xte, _) = torch_digits
    torch.save(model.state_dict(), tmp_path / "w.pt")
    m = load_model(D.EXAMPLE_FACTORY, weights=tmp_path / "w.pt", input_shape=(1, 1, 28, 28))
    with torch.no_grad():
        assert np.allclose(m.predict(xte[:20]), model(torch.from_numpy(xte[:20])).numpy(), atol=1e-5)


def test_onnx_keeps_its_symbolic_batch_by_name():
    m = load_model(D.onnx_file())
    assert m.kind == "onnx" and m.inputs[0].name == "image" and m.inputs[0].shape == ["batch", 1, 28, 28]
    assert m.concrete_shape("image") == (1, 1, 28, 28)
    _, _, (_, _, xte, _) = D.torch_model()
    import torch

    with torch.no_grad():
        want = D.torch_model()[0](torch.from_numpy(xte[:30])).numpy()
    assert np.allclose(m.predict(xte[:30]), want, atol=1e-4)


def test_torchscript_needs_an_input_shape():
    with pytest.raises(ModelError, match="does not record its input shape; give it with --input-shape"):
        load_model(D.torchscript_file())
    m = load_model(D.torchscript_file(), input_shape=(1, 1, 28, 28))
    assert m.kind == "torch" and m.outputs[0].shape == [1, 10]
    with pytest.raises(ModelError, match=r"running the model on an input of shape \[1, 3, 28, 28\] failed"):
        load_model(D.torchscript_file(), input_shape=(1, 3, 28, 28))


def test_bad_model_arguments_say_what_is_valid(tmp_path):
    with pytest.raises(ModelError, match="model not found; MODEL is one of: file.onnx"):
        load_model(tmp_path / "missing.onnx")
    (tmp_path / "m.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="m.onnx: not a valid ONNX model"):
        load_model(tmp_path / "m.onnx")
    (tmp_path / "m.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a TorchScript model.*use file.py:factory --weights"):
        load_model(tmp_path / "m.pt")
    (tmp_path / "m.keras").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot load as a Keras model"):
        load_model(tmp_path / "m.keras")
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model file type '.tflite'"):
        load_model(tmp_path / "m.tflite")
    with pytest.raises(ModelError, match="has no callable 'factroy' \\(did you mean 'factory'\\?\\)"):
        load_model(D.EXAMPLE_FACTORY.replace(":factory", ":factroy"), input_shape=(1, 1, 28, 28))
    with pytest.raises(ModelError, match="cannot import module 'no_such_pkg.models'"):
        load_model("no_such_pkg.models:build")
    with pytest.raises(ModelError, match="--input-shape 'a,b': expected \\[NAME=\\]positive integers"):
        parse_shape("a,b")


def test_weights_that_do_not_fit(torch_digits, tmp_path):
    import torch

    torch.save(torch_digits[0].state_dict(), tmp_path / "w16.pt")           # width 16 into width 32
    with pytest.raises(ModelError, match="does not fit") as e:
        load_model(D.factory_spec(), weights=tmp_path / "w16.pt")
    assert "size mismatch for 0.weight" in str(e.value)
    with pytest.raises(ModelError, match="--weights is only for a file.py:factory model"):
        load_model(D.onnx_file(), weights=tmp_path / "w16.pt")


@pytest.mark.slow
def test_keras_files_and_saved_model_load_with_their_own_shape(tmp_path):
    k = load_model(D.keras_file())
    h5 = load_model(D.keras_file().with_suffix(".h5"))
    k.obj.export(str(tmp_path / "saved"))                      # a TensorFlow SavedModel folder
    sm = load_model(tmp_path / "saved")
    _, _, (_, _, xte, _) = D.torch_model()
    x = xte[:20].transpose(0, 2, 3, 1)
    for m in (k, h5, sm):
        assert m.kind == "keras" and m.layout == "NHWC" and m.inputs[0].shape == [None, 28, 28, 1]
        assert np.allclose(m.predict(x), k.predict(x), atol=1e-5)
    assert len({k.sha256, sm.sha256}) == 2
