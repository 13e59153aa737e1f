"""Small models of our own, one per shape of I/O, trained here in seconds on real data, exported to ONNX.

Each builder returns an ``IOModel``: the ONNX file, an ``.npz`` of real samples keyed by input
name (with ``y`` labels where the task has them), the ``--feedback`` it needs and how its
outputs should be checked. Memoized per session (``functools.lru_cache``).

* ``two_inputs``: an 8x8 digit image (float32) + an int64 category (the digit's parity) -> 10 logits
* ``recurrent``: streaming, one image row per step + state [2, batch, 16] in and out -> logits
* ``two_heads``: 64 pixels -> class logits (~±10) and the ink total (~0..300): very different ranges
* ``tokens``: int64 character ids + int64 attention mask [batch, 32] -> which licence text
  (Apache-2.0 or GPL-3 from /usr/share/common-licenses; Python sources where that is missing)
* ``opset12``: a digits CNN exported at ONNX opset 12
* ``dynamic_hw``: a fully convolutional per-pixel "ink" segmenter with dynamic H and W
* ``broken``: ``two_heads`` whose ink head reads, beside its features, a 1000x larger tensor
  through one Concat: per-tensor INT8 of that Concat wipes the features -> the ink head degrades
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class IOModel:
    name: str
    onnx: Path
    data: Path
    feedback: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)     # name -> dtype
    outputs: list = field(default_factory=list)


@functools.lru_cache(maxsize=None)
def root() -> Path:
    path = Path(tempfile.mkdtemp(prefix="edgecompress-io-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.lru_cache(maxsize=None)
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)          # (1797, 8, 8) in [0, 1]
    return x, d.target.astype(np.int64)


def _train(model, loss_fn, steps=300, lr=0.01):
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)             # the same weights every time (threaded reductions vary)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return model.eval()


def _export(model, args, path, inputs, outputs, dynamic=None, opset=17):
    import torch

    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset, input_names=inputs,
                      output_names=outputs, dynamic_axes=dynamic)
    return path


@functools.lru_cache(maxsize=None)
def two_inputs() -> IOModel:
    import torch
    from torch import nn

    x, y = digits()
    cat = (y % 2).astype(np.int64)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
            self.emb = nn.Embedding(2, 8)
            self.fc = nn.Linear(8 * 64 + 8, 10)

        def forward(self, image, category):
            return self.fc(torch.cat([self.conv(image), self.emb(category)], 1))

    torch.manual_seed(0)
    net = Net()
    xt, ct, yt = torch.from_numpy(x[:1400, None]), torch.from_numpy(cat[:1400]), torch.from_numpy(y[:1400])
    _train(net, lambda: nn.functional.cross_entropy(net(xt, ct), yt))
    path = _export(net, (xt[:1], ct[:1]), root() / "two_inputs.onnx", ["image", "category"], ["logits"],
                   {"image": {0: "batch"}, "category": {0: "batch"}, "logits": {0: "batch"}})
    data = root() / "two_inputs.npz"
    np.savez(data, image=x[1400:, None], category=cat[1400:], y=y[1400:])
    return IOModel("two_inputs", path, data, inputs={"image": "float32", "category": "int64"}, outputs=["logits"])


@functools.lru_cache(maxsize=None)
def recurrent() -> IOModel:
    """Each sample is one row of an 8x8 digit; after the 8th row of a digit, ``logits`` name it."""
    import torch
    from torch import nn

    x, y = digits()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.GRUCell(8, 16), nn.GRUCell(16, 16)
            self.fc = nn.Linear(16, 10)

        def forward(self, chunk, state):
            h1 = self.c1(chunk, state[0])
            h2 = self.c2(h1, state[1])
            return self.fc(h2), torch.stack([h1, h2])

    torch.manual_seed(0)
    net = Net()
    xt, yt = torch.from_numpy(x[:1000]), torch.from_numpy(y[:1000])

    def loss():
        s = torch.zeros(2, len(xt), 16)
        for r in range(8):
            out, s = net(xt[:, r], s)
        return nn.functional.cross_entropy(out, yt)

    _train(net, loss, steps=150)
    path = _export(net, (xt[:1, 0], torch.zeros(2, 1, 16)), root() / "recurrent.onnx", ["chunk", "state"],
                   ["logits", "state_out"], {"chunk": {0: "batch"}, "state": {1: "batch"}, "logits": {0: "batch"},
                                             "state_out": {1: "batch"}})
    rows = x[1000:1100].reshape(-1, 8)              # 100 digits, 8 rows each, in order: 800 steps
    data = root() / "recurrent.npz"
    np.savez(data, chunk=rows, state=np.zeros((1, 2, 1, 16), np.float32))
    return IOModel("recurrent", path, data, feedback={"state_out": "state"},
                   inputs={"chunk": "float32", "state": "float32"}, outputs=["logits", "state_out"])


@functools.lru_cache(maxsize=None)
def _two_heads_net():
    import torch
    from torch import nn

    x, y = digits()
    flat = x.reshape(len(x), 64)
    total = flat.sum(1, keepdims=True)
    ink = (total - total.mean()) / total.std() * 50.0          # centred, ~±100 (logits are ~±10)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
            self.cls = nn.Linear(32, 10)
            self.ink = nn.Linear(32, 1)

        def forward(self, pixels):
            h = self.body(pixels)
            return self.cls(h), self.ink(h)

    torch.manual_seed(0)
    net = Net()
    xt, yt, it = torch.from_numpy(flat[:1400]), torch.from_numpy(y[:1400]), torch.from_numpy(ink[:1400])
    _train(net, lambda: nn.functional.cross_entropy(net(xt)[0], yt) + ((net(xt)[1] - it) ** 2).mean() / 1000,
           steps=400)
    return net, flat, y


def _broken_net(net):
    """The same trained heads; the ink head now reads its features through one Concat with a tensor
    1e5 x their range (weight 0 on it: FP32 outputs unchanged). Per-tensor INT8 of that Concat
    rounds the features away."""
    import torch
    from torch import nn

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.cls = net.body, net.cls
            self.big = nn.Linear(64, 1)
            self.ink = nn.Linear(33, 1)
            with torch.no_grad():
                self.ink.weight.copy_(torch.cat([net.ink.weight, torch.zeros(1, 1)], 1))
                self.ink.bias.copy_(net.ink.bias)

        def forward(self, pixels):
            h = self.body(pixels)
            wide = torch.cat([h, 1.0e5 * torch.sigmoid(self.big(pixels))], 1)
            return self.cls(h), self.ink(wide)

    torch.manual_seed(1)
    return Broken().eval()


@functools.lru_cache(maxsize=None)
def two_heads(broken: bool = False) -> IOModel:
    import torch

    net, flat, y = _two_heads_net()
    if broken:
        net = _broken_net(net)
    name = "broken" if broken else "two_heads"
    path = _export(net, (torch.from_numpy(flat[:1]),), root() / f"{name}.onnx", ["pixels"], ["logits", "ink"],
                   {"pixels": {0: "batch"}, "logits": {0: "batch"}, "ink": {0: "batch"}})
    data = root() / f"{name}.npz"
    np.savez(data, pixels=flat[1400:], y=y[1400:])
    return IOModel(name, path, data, inputs={"pixels": "float32"}, outputs=["logits", "ink"])


def broken() -> IOModel:
    return two_heads(True)


def _texts() -> list[str]:
    lic = Path("/usr/share/common-licenses")
    pairs = [lic / "Apache-2.0", lic / "GPL-3"]
    if all(p.exists() for p in pairs):
        return [p.read_text(errors="replace") for p in pairs]
    import json
    import os

    return [Path(json.__file__).read_text(), Path(os.__file__).read_text()]


@functools.lru_cache(maxsize=None)
def tokens() -> IOModel:
    import torch
    from torch import nn

    seq = 32
    xs, ys, masks = [], [], []
    rng = np.random.default_rng(0)
    for label, text in enumerate(_texts()):
        words = text.split()
        for i in range(0, len(words) - 8, 6):
            chunk = " ".join(words[i:i + 8])[:seq]
            ids = np.array([min(ord(c), 127) for c in chunk], np.int64)
            pad = seq - len(ids)
            xs.append(np.concatenate([ids, np.zeros(pad, np.int64)]))
            masks.append(np.concatenate([np.ones(len(ids), np.int64), np.zeros(pad, np.int64)]))
            ys.append(label)
    order = rng.permutation(len(xs))
    ids, mask, y = np.stack(xs)[order], np.stack(masks)[order], np.array(ys)[order]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(128, 16)
            self.fc = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))

        def forward(self, input_ids, attention_mask):
            m = attention_mask.unsqueeze(-1).to(torch.float32)
            pooled = (self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.fc(pooled)

    torch.manual_seed(0)
    net = Net()
    n = int(len(ids) * 0.7)
    it, mt, yt = torch.from_numpy(ids[:n]), torch.from_numpy(mask[:n]), torch.from_numpy(y[:n])
    _train(net, lambda: nn.functional.cross_entropy(net(it, mt), yt), steps=300, lr=0.02)
    path = _export(net, (it[:1], mt[:1]), root() / "tokens.onnx", ["input_ids", "attention_mask"], ["logits"],
                   {"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "logits": {0: "batch"}})
    data = root() / "tokens.npz"
    np.savez(data, input_ids=ids[n:], attention_mask=mask[n:], y=y[n:])
    return IOModel("tokens", path, data, inputs={"input_ids": "int64", "attention_mask": "int64"},
                   outputs=["logits"])


@functools.lru_cache(maxsize=None)
def opset12() -> IOModel:
    import torch
    from torch import nn

    x, y = digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 64, 10))
    xt, yt = torch.from_numpy(x[:1400, None]), torch.from_numpy(y[:1400])
    _train(net, lambda: nn.functional.cross_entropy(net(xt), yt), steps=200)
    path = _export(net, (xt[:1],), root() / "opset12.onnx", ["image"], ["logits"],
                   {"image": {0: "batch"}, "logits": {0: "batch"}}, opset=12)
    data = root() / "opset12.npz"
    np.savez(data, image=x[1400:, None], y=y[1400:])
    return IOModel("opset12", path, data, inputs={"image": "float32"}, outputs=["logits"])


@functools.lru_cache(maxsize=None)
def dynamic_hw() -> IOModel:
    """Per-pixel 2-class logits (ink or not) of digits upsampled to 16x16; H and W dynamic."""
    import torch
    from torch import nn

    x, _ = digits()
    img = np.kron(x, np.ones((2, 2), np.float32))[:, None]           # (N, 1, 16, 16)
    target = (img[:, 0] > 0.4).astype(np.int64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))
    xt, tt = torch.from_numpy(img[:1000]), torch.from_numpy(target[:1000])
    _train(net, lambda: nn.functional.cross_entropy(net(xt), tt), steps=150)
    path = _export(net, (xt[:1],), root() / "dynamic_hw.onnx", ["image"], ["mask"],
                   {"image": {0: "batch", 2: "height", 3: "width"}, "mask": {0: "batch", 2: "height", 3: "width"}})
    data = root() / "dynamic_hw.npz"
    np.savez(data, image=img[1000:1300])
    return IOModel("dynamic_hw", path, data, inputs={"image": "float32"}, outputs=["mask"])


ALL = {"two_inputs": two_inputs, "recurrent": recurrent, "two_heads": two_heads, "tokens": tokens,
       "opset12": opset12, "dynamic_hw": dynamic_hw}
