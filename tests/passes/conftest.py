"""Fixtures for the pass tests: the digits models wrapped as LoadedModel, labelled data sets,
and a tf_keras digits CNN (tfmot works only with tf_keras models), all trained on real MNIST."""
from __future__ import annotations

import pytest


def loaded_torch(module, source: str = "digits"):
    """A trained ``nn.Module`` as the ``models.LoadedModel`` compress() would hand to the passes."""
    from edgecompress.manifest import TensorSpec
    from edgecompress.models import LoadedModel

    return LoadedModel("torch", module, [TensorSpec("x", [1, 1, 28, 28])], [TensorSpec("output", [1, 10])],
                       "NCHW", source, "0" * 64)


def loaded_keras(model, source: str = "digits-keras"):
    from edgecompress.manifest import TensorSpec
    from edgecompress.models import LoadedModel

    return LoadedModel("keras", model, [TensorSpec("x", [1, 28, 28, 1])], [TensorSpec("output", [1, 10])],
                       "NHWC", source, "0" * 64)


@pytest.fixture(scope="session")
def digits_sets(mnist):
    """(train Dataset: 4,000 digits, eval Dataset: 1,000 held-out digits), NCHW."""
    from edgecompress.data import Dataset

    xtr, ytr, xte, yte = mnist
    return (Dataset(xtr, ytr, "mnist train", "as-is"), Dataset(xte, yte, "mnist test", "as-is"))


@pytest.fixture(scope="session")
def digits_sets_nhwc(mnist):
    from edgecompress.data import Dataset

    xtr, ytr, xte, yte = mnist
    return (Dataset(xtr.transpose(0, 2, 3, 1).copy(), ytr, "mnist train", "NHWC"),
            Dataset(xte.transpose(0, 2, 3, 1).copy(), yte, "mnist test", "NHWC"))


@pytest.fixture(scope="session")
def torch_model(torch_digits):
    return loaded_torch(torch_digits[0])


@pytest.fixture(scope="session")
def torch_accuracy(torch_digits):
    from edgecompress.examples.digits import accuracy_torch

    model, (_, _, xte, yte) = torch_digits
    return accuracy_torch(model, xte, yte)


@pytest.fixture(scope="session")
def tfk_digits(digits_sets_nhwc):
    """(trained tf_keras digits CNN, its held-out accuracy) — same layers as examples.digits."""
    from edgecompress.passes import _keras as K

    tfk = K.tf_keras()
    tfk.utils.set_random_seed(0)
    L = tfk.layers
    model = tfk.Sequential([
        tfk.Input((28, 28, 1), name="x"),
        L.Conv2D(16, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(32, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(),
        L.GlobalAveragePooling2D(), L.Dense(10),
    ])
    train, test = digits_sets_nhwc
    K.compile_classifier(model, 1e-2, K.steps(len(train.x), 5, 64))
    model.fit(train.x, train.y, epochs=5, batch_size=64, verbose=0)
    return model, K.accuracy(model, test.x, test.y)


@pytest.fixture(scope="session")
def tfk_model(tfk_digits):
    """The tf_keras digits CNN as a LoadedModel."""
    return loaded_keras(tfk_digits[0])


@pytest.fixture(scope="session")
def digits_checkpoints(torch_digits, tmp_path_factory):
    """Three checkpoints of the digits CNN, each fine-tuned from the trained one for an epoch with a
    different seed and learning rate (as one training run's snapshots would be), saved as
    TorchScript files (loadable both as models and as state dicts)."""
    import copy

    import torch

    from edgecompress.passes._torch import train

    model, (xtr, ytr, _, _) = torch_digits
    folder = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed, lr in ((1, 2e-3), (2, 3e-3), (3, 1e-3)):
        m = train(copy.deepcopy(model), xtr[:2000], ytr[:2000], epochs=1, lr=lr, seed=seed)
        path = folder / f"digits-{seed}.pt"
        torch.jit.trace(m, torch.zeros(1, 1, 28, 28)).save(str(path))
        paths.append(str(path))
    return paths
