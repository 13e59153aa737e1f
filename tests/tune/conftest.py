"""A trained model with ONE quantization-sensitive layer, for `tune`.

An MLP (64-64-64-10) trained on sklearn's real 8x8 digits; then the second layer's first unit
is scaled up 3000x and the last layer's weights from it down 3000x. ReLU is positively
homogeneous, so the float model computes the same function (same accuracy), but that layer's
activations now span a range 3000x wider than their information: one per-tensor INT8 scale
for them rounds every other unit to zero, and fully quantized accuracy collapses. Keeping
the layers around that tensor in float (mixed precision) restores it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

TINY = Path(__file__).resolve().parents[1] / "runs" / "tiny-x86.yaml"
OUTLIER = 3000.0


@pytest.fixture(scope="session")
def sensitive_mlp(tmp_path_factory):
    import torch
    import torch.nn as nn
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(m(xt), yt).backward()
        opt.step()
    with torch.no_grad():
        before = (m(torch.from_numpy(x[1200:])).argmax(1).numpy() == y[1200:]).mean()
        m[2].weight[0] *= OUTLIER
        m[2].bias[0] *= OUTLIER
        m[4].weight[:, 0] /= OUTLIER
        after = (m(torch.from_numpy(x[1200:])).argmax(1).numpy() == y[1200:]).mean()
    assert before > 0.9 and abs(before - after) < 0.01        # the same function in float
    root = tmp_path_factory.mktemp("mlp")
    path = root / "mlp.onnx"
    torch.onnx.export(m.eval(), (torch.zeros(1, 64),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"])
    data = root / "digits64.npz"
    np.savez(data, x=x, y=y)
    targets = root / "targets.yaml"
    targets.write_text(yaml.safe_dump({"targets": [{"name": "local", "profile": str(TINY), "transport": "local",
                                                     "workdir": str(root / "dev")}]}))
    return {"model": path, "data": data, "targets": targets, "root": root, "float_accuracy": float(after)}
