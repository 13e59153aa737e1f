"""Samples for a model, keyed by its INPUT NAMES: ``.npz``, ``.npy`` or a folder of images.

* ``.npz`` keyed by input names: the leading axis is the sample axis. A sample of the input's
  full rank is one whole input tensor; an array one rank short gets a batch axis of 1 (at the
  input's batch dim); an array of ONE sample is used for every sample (a constant such as a
  sample rate). Optional ``y``: integer labels (N,) or one-hot (N, C). For a single-input
  model the samples may be called ``x``.
* ``.npy``: the samples of a single-input model (as ``x`` above); no labels.
* a folder of images (png/jpg/bmp/gif/webp) for a model with one 4-D image input: converted to
  grayscale or RGB to match its channels, resized (bilinear) to its height and width and scaled
  to [0, 1]; images in sub-folders get the sub-folder's index (sorted names) as label.

Dtypes are kept: integer and bool inputs get integer/bool data (an integer array of another
width is converted where every value fits); float data for an integer input, or a wrong key,
dtype or shape, is a :class:`~edgecompress.errors.DataError` naming the input, what was given
and what the model takes. ``Dataset.preprocessing`` says in words what was done.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VALID_DATA = ".npz (one array per input name, optional y), .npy / .npz x (single-input models) or a folder of images"


@dataclass
class Dataset:
    """``x``: (N, ...) samples of a single input without their batch axis (the old form), or
    ``inputs``: {input name: (N, *whole input tensor)}. ``ordered``: samples are a sequence
    (recurrent state is fed back), so splits keep their order."""

    x: Optional[np.ndarray]
    y: Optional[np.ndarray]
    source: str
    preprocessing: str
    inputs: Optional[dict] = None
    ordered: bool = False

    def __post_init__(self):
        if self.x is None and not self.inputs:
            raise DataError(f"{self.source}: no samples")
        if self.x is None and len(self.inputs) == 1:
            (v,) = self.inputs.values()
            if v.ndim >= 2 and v.shape[1] == 1:
                self.x = v[:, 0]

    def __len__(self) -> int:
        if self.inputs:
            return max(len(v) for v in self.inputs.values())
        return len(self.x)

    def samples(self, model) -> dict:
        """{input name: (N, *whole input tensor)} for ``model``."""
        if self.inputs:
            return self.inputs
        if len(model.inputs) != 1:
            raise DataError(f"{self.source}: one array of samples for a model with {len(model.inputs)} inputs "
                            f"({', '.join(t.name for t in model.inputs)}); key them by input name in an .npz")
        return {model.inputs[0].name: np.asarray(self.x)[:, None]}

    @property
    def sha256(self) -> str:
        """Content hash of the samples and labels (a cache key part)."""
        h = hashlib.sha256()
        parts = sorted(self.inputs.items()) if self.inputs else [("x", self.x)]
        for name, a in parts:
            a = np.ascontiguousarray(a)
            h.update(f"{name}\0{a.dtype}\0{a.shape}\0".encode())
            h.update(a.tobytes())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()

    def subset(self, idx) -> "Dataset":
        """The samples at ``idx`` (a slice, indices or a boolean mask); broadcast inputs stay as they are."""
        idx = idx if isinstance(idx, slice) else np.asarray(idx)
        ins = None
        if self.inputs:
            ins = {k: (v if len(v) == 1 and len(self) > 1 else v[idx]) for k, v in self.inputs.items()}
        return Dataset(None if self.x is None or ins else self.x[idx], None if self.y is None else self.y[idx],
                       self.source, self.preprocessing, ins, self.ordered)

    def split(self, calib: int, eval: int) -> tuple["Dataset", "Dataset"]:
        """(calibration, evaluation): disjoint, the same for the same data every time.

        With fewer than ``calib + eval`` samples both shrink in proportion (each keeps one at least).
        Ordered samples (feedback) are split into a first and a second run, each in order.
        """
        n = len(self)
        if n < 2:
            raise DataError(f"{self.source}: {n} sample(s); need at least 2 (some to calibrate, some to evaluate)")
        if calib + eval > n:
            c = min(n - 1, max(1, round(n * calib / (calib + eval))))
            calib, eval = c, n - c
        order = np.arange(n) if self.ordered else np.random.default_rng(0).permutation(n)
        return self.subset(order[:calib]), self.subset(order[calib:calib + eval])


def load_data(path: str | Path, model, *, ordered: bool = False) -> Dataset:
    """Samples for ``model`` (a LoadedModel) from ``path``; DataError if missing or not fitting."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data not found; --data is {VALID_DATA}")
    if path.is_dir():
        if len(model.inputs) != 1:
            raise DataError(f"{path}: an image folder feeds a single image input; this model has "
                            f"{len(model.inputs)} inputs ({', '.join(t.name for t in model.inputs)}): give an "
                            f".npz with one array per input name")
        ds = _load_images(path, model)
        ds.ordered = ordered
        return ds
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; --data is {VALID_DATA}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: cannot read as {suffix} ({type(e).__name__}: {str(e)[:200]})") from e
    names = [t.name for t in model.inputs]
    if suffix == ".npy":
        if len(names) != 1:
            raise DataError(f"{path}: a .npy holds one array; the model has {len(names)} inputs "
                            f"({', '.join(names)}): give an .npz with one array per input name")
        arrays, y, what = {names[0]: loaded}, None, "npy x"
    else:
        keys = list(loaded.keys())
        arrays = {n: loaded[n] for n in names if n in keys}
        if len(names) == 1 and not arrays and "x" in keys:
            arrays = {names[0]: loaded["x"]}
        missing = [n for n in names if n not in arrays]
        if missing:
            have = ", ".join(keys) or "nothing"
            expect = ", ".join(f"{t.name} {_want(model, t)} {t.dtype}" for t in model.inputs)
            x_hint = " (or 'x' for a single-input model)" if len(names) == 1 else ""
            raise DataError(f"{path}: no array for input {', '.join(map(repr, missing))}: the .npz has {have}; "
                            f"the model takes {expect}{x_hint}, optional integer labels in 'y'")
        extra = [k for k in keys if k not in names and k not in ("x", "y")]
        if extra:
            raise DataError(f"{path}: array(s) {', '.join(map(repr, extra))} are not inputs of the model; its inputs: "
                            f"{', '.join(names)} (and optional labels 'y')")
        y = loaded["y"] if "y" in keys else None
        what = "npz " + ", ".join(arrays) if len(names) > 1 else "npz x"
    notes = []
    fitted = {t.name: fit_input(np.asarray(arrays[t.name]), t, model, path, notes) for t in model.inputs}
    from .device.execute import IOError_, samples_from

    try:
        _, n = samples_from(fitted)
    except IOError_ as e:
        raise DataError(f"{path}: {e}") from e
    prep = f"{what} as-is" + (f" ({'; '.join(notes)})" if notes else "")
    return Dataset(None, _labels(y, n, path), str(path), prep, fitted, ordered)


def _want(model, t) -> list:
    return list(model.shapes.get(t.name, t.shape))


def _batch_axis(shape) -> int:
    for i, d in enumerate(shape):
        if isinstance(d, str) and "batch" in d.lower():
            return i
    if shape and (not isinstance(shape[0], int) or shape[0] == 1):
        return 0
    for i, d in enumerate(shape):
        if not isinstance(d, int) or d == 1:
            return i
    return 0


def fit_input(a: np.ndarray, t, model, path, notes: list) -> np.ndarray:
    """``a`` as (N, *whole input tensor) of ``t``'s dtype; DataError naming the input otherwise."""
    from .device.execute import dims_fit

    want = _want(model, t)
    rank = len(want)
    if a.dtype.kind not in "fiub":
        raise DataError(f"{path}: input {t.name!r}: array of dtype {a.dtype}; the model takes {t.dtype} {want}")
    if a.ndim == rank + 1:
        samples = a
    elif a.ndim == rank and rank > 0:
        samples = np.expand_dims(a, _batch_axis(want) + 1)
    elif rank == 0 and a.ndim == 0:
        samples = a.reshape(1)
    else:
        samples = None
    spec = [d if isinstance(d, int) else 0 for d in want]
    if samples is None or not dims_fit(samples.shape[1:], spec) or len(samples) == 0:
        hint = _hint(a, want)
        raise DataError(f"{path}: input {t.name!r}: samples have shape {list(a.shape)} but the model's input "
                        f"{t.name!r} is {want} (samples along a first axis N: N x {want}, or one rank short for a "
                        f"batch of 1){hint}")
    kind = np.dtype(t.dtype).kind if t.dtype in np.sctypeDict else "f"
    if kind in "iu":
        if samples.dtype.kind == "f":
            raise DataError(f"{path}: input {t.name!r} takes {t.dtype}; the data is {samples.dtype} (integer inputs "
                            f"are fed as integers, never cast from float): save it as {t.dtype}")
        if samples.dtype != np.dtype(t.dtype):
            info = np.iinfo(np.dtype(t.dtype))
            if samples.size and (samples.min() < info.min or samples.max() > info.max):
                raise DataError(f"{path}: input {t.name!r} takes {t.dtype}; values {samples.min()}..{samples.max()} "
                                f"do not fit")
            notes.append(f"{t.name}: {samples.dtype} -> {t.dtype}")
            samples = samples.astype(t.dtype)
    elif kind == "b":
        if samples.dtype.kind != "b" and not np.isin(samples, (0, 1)).all():
            raise DataError(f"{path}: input {t.name!r} takes bool; the data is {samples.dtype} with values other "
                            f"than 0 and 1")
        samples = samples.astype(bool)
    elif samples.dtype != np.dtype(t.dtype):
        notes.append(f"{t.name}: {samples.dtype} -> {t.dtype}, no scaling")
        samples = samples.astype(t.dtype)
    return samples


def _hint(x, want) -> str:
    if x.ndim == 4 and len(want) == 4 and list(x.shape[1:]) == [want[2], want[3], want[1]]:
        return " (the samples look channels-last, NHWC; the model takes NCHW: transpose to (0, 3, 1, 2))"
    if x.ndim == 4 and len(want) == 4 and list(x.shape[1:]) == [want[3], want[1], want[2]]:
        return " (the samples look channels-first, NCHW; the model takes NHWC: transpose to (0, 2, 3, 1))"
    return ""


def random_data(model, n: int, seed: int = 0) -> Dataset:
    """``n`` random samples of every input (floats uniform [0, 1), integers 0/1): accuracy is unknown."""
    rng = np.random.default_rng(seed)
    ins = {}
    for t in model.inputs:
        shape = model.concrete_shape(t.name, "random calibration")
        kind = np.dtype(t.dtype).kind
        if kind == "f":
            ins[t.name] = rng.random((n, *shape), dtype=np.float32).astype(t.dtype)
        elif kind == "b":
            ins[t.name] = rng.integers(0, 2, (n, *shape)).astype(bool)
        else:
            ins[t.name] = rng.integers(0, 2, (n, *shape)).astype(t.dtype)
    return Dataset(None, None, "random", f"random uniform [0, 1) (integers 0/1), seed {seed}: "
                                         f"INT8 accuracy unknown", ins)


def check_fits(x, model, path):
    """A Dataset or array fits ``model``'s inputs (DataError naming the input if not)."""
    if isinstance(x, Dataset):
        samples = x.samples(model)
    else:
        samples = Dataset(np.asarray(x), None, str(path), "").samples(model)
    notes: list = []
    for t in model.inputs:
        if t.name not in samples:
            raise DataError(f"{path}: no samples for input {t.name!r}; have: {', '.join(samples)}")
        fit_input(np.asarray(samples[t.name]), t, model, path, notes)
    return x


def _labels(y, n: int, path) -> Optional[np.ndarray]:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        y = y.argmax(1)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: labels y have shape {list(y.shape)}; expected ({n},) integer labels, "
                        f"one per sample")
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DataError(f"{path}: labels y have dtype {y.dtype}; expected integer class indices")
    return y.astype(np.int64)


def _load_images(folder: Path, model) -> Dataset:
    from PIL import Image

    t = model.inputs[0]
    shape = _want(model, t)
    if len(shape) != 4:
        raise DataError(f"{folder}: an image folder needs a model with a 4-D image input; "
                        f"this one takes {shape}")
    nhwc = model.layout == "NHWC"
    h, w, c = (shape[1], shape[2], shape[3]) if nhwc else (shape[2], shape[3], shape[1])
    if not all(isinstance(d, int) for d in (h, w, c)):
        raise DataError(f"{folder}: input {t.name!r} has dims {shape}; images need a fixed size: give "
                        f"--input-shape {t.name}=1,{'H,W,3' if nhwc else '3,H,W'} with numbers")
    if c not in (1, 3):
        raise DataError(f"{folder}: the model's input has {c} channels; images give 1 (grayscale) or 3 (RGB)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    classes = sorted({p.parent.relative_to(folder).parts[0] for p in files if p.parent != folder})
    labelled = classes and all(p.parent != folder for p in files)
    xs, ys = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                a = np.asarray(im, dtype=np.float32) / 255.0
        except Exception as e:
            raise DataError(f"{p}: cannot read image ({type(e).__name__}: {e})") from e
        a = a[..., None] if c == 1 else a
        xs.append(a if nhwc else a.transpose(2, 0, 1))
        if labelled:
            ys.append(classes.index(p.relative_to(folder).parts[0]))
    mode = "grayscale" if c == 1 else "RGB"
    prep = (f"image folder: {mode}, resize {w}x{h} (bilinear), /255 to [0, 1], "
            f"{'NHWC' if nhwc else 'NCHW'}")
    prep += f", labels from {len(classes)} sub-folders (sorted names)" if labelled else ", no labels"
    return Dataset(np.stack(xs).astype(np.float32), np.array(ys, np.int64) if labelled else None,
                   str(folder), prep)
