"""Calibration / evaluation samples for a model: ``.npy``, ``.npz`` or a folder of images.

* ``.npy``: an array ``x`` of samples (N, ...) in the model's input layout; no labels.
* ``.npz``: ``x`` as above and an optional ``y`` (N,) of integer labels (or one-hot (N, C)).
* a folder of images (png/jpg/bmp/gif/webp): each image is converted to grayscale or RGB to
  match the model's channels, resized (bilinear) to the model's height and width and scaled
  to [0, 1]; images in sub-folders get the sub-folder's index (sorted names) as label.

The samples must fit the model's input shape (batch dimension aside); otherwise
:class:`~edgecompress.errors.DataError` names both shapes. ``Dataset.preprocessing``
says in words what was done; the manifest records it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
VALID_DATA = ".npy (x), .npz (x and optional y) or a folder of images"


@dataclass
class Dataset:
    x: np.ndarray
    y: Optional[np.ndarray]
    source: str
    preprocessing: str

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sha256(self) -> str:
        """Content hash of the samples and labels (a cache key part)."""
        h = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
        h.update(str(self.x.shape).encode())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()

    def subset(self, idx) -> "Dataset":
        return Dataset(self.x[idx], None if self.y is None else self.y[idx], self.source, self.preprocessing)

    def split(self, calib: int, eval: int) -> tuple["Dataset", "Dataset"]:
        """(calibration, evaluation): disjoint, the same for the same data every time.

        With fewer than ``calib + eval`` samples both shrink in proportion (each keeps one at least).
        """
        n = len(self.x)
        if n < 2:
            raise DataError(f"{self.source}: {n} sample(s); need at least 2 (some to calibrate, some to evaluate)")
        if calib + eval > n:
            c = min(n - 1, max(1, round(n * calib / (calib + eval))))
            calib, eval = c, n - c
        order = np.random.default_rng(0).permutation(n)
        return self.subset(order[:calib]), self.subset(order[calib:calib + eval])


def load_data(path: str | Path, model) -> Dataset:
    """Samples for ``model`` (a LoadedModel) from ``path``; DataError if missing or not fitting."""
    path = Path(path)
    if len(model.inputs) != 1:
        raise DataError(f"{path}: the model has {len(model.inputs)} inputs; --data supports "
                        f"single-input models only")
    if not path.exists():
        raise DataError(f"{path}: data not found; --data is {VALID_DATA}")
    if path.is_dir():
        return _load_images(path, model)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; --data is {VALID_DATA}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: cannot read as {suffix} ({type(e).__name__}: {str(e)[:200]})") from e
    if suffix == ".npy":
        x, y, what = loaded, None, "npy x"
    else:
        keys = list(loaded.keys())
        if "x" not in keys:
            raise DataError(f"{path}: the .npz has no array 'x' (it has: {', '.join(keys) or 'nothing'}); "
                            f"put the samples in 'x' and optional integer labels in 'y'")
        x, y, what = loaded["x"], (loaded["y"] if "y" in keys else None), "npz x"
    x = check_fits(np.asarray(x), model, path)
    prep = f"{what} as-is ({x.dtype} -> float32, no scaling)" if x.dtype != np.float32 else f"{what} as-is"
    return Dataset(x.astype(np.float32), _labels(y, len(x), path), str(path), prep)


def random_data(model, n: int, seed: int = 0) -> Dataset:
    """``n`` uniform [0, 1) samples of the model's input shape (INT8 accuracy is then unknown)."""
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).random((n, *shape), dtype=np.float32)
    return Dataset(x, None, "random", f"random uniform [0, 1), seed {seed}: INT8 accuracy unknown")


def check_fits(x: np.ndarray, model, path) -> np.ndarray:
    """``x`` if its samples fit ``model``'s input; DataError naming both shapes (and a likely fix) if not."""
    want = list(model.inputs[0].shape)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: x has dtype {x.dtype}; expected numbers")
    if list(x.shape[1:]) != want[1:]:
        hint = ""
        if x.ndim == 4 and len(want) == 4 and list(x.shape[1:]) == [want[2], want[3], want[1]]:
            hint = " (the samples look channels-last, NHWC; the model takes NCHW: transpose to (0, 3, 1, 2))"
        elif x.ndim == 4 and len(want) == 4 and list(x.shape[1:]) == [want[3], want[1], want[2]]:
            hint = " (the samples look channels-first, NCHW; the model takes NHWC: transpose to (0, 2, 3, 1))"
        elif list(x.shape) == want[1:]:
            hint = " (a single sample without a batch dimension: add one with x[None])"
        raise DataError(f"{path}: samples have shape {list(x.shape)} but the model's input "
                        f"{model.inputs[0].name!r} is {want} (N, {', '.join(map(str, want[1:]))}){hint}")
    if len(x) == 0:
        raise DataError(f"{path}: no samples")
    return x


def _labels(y, n: int, path) -> Optional[np.ndarray]:
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        y = y.argmax(1)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: labels y have shape {list(y.shape)}; expected ({n},) integer labels, "
                        f"one per sample in x")
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DataError(f"{path}: labels y have dtype {y.dtype}; expected integer class indices")
    return y.astype(np.int64)


def _load_images(folder: Path, model) -> Dataset:
    from PIL import Image

    shape = list(model.inputs[0].shape)
    if len(shape) != 4:
        raise DataError(f"{folder}: an image folder needs a model with a 4-D image input; "
                        f"this one takes {shape}")
    nhwc = model.layout == "NHWC"
    h, w, c = (shape[1], shape[2], shape[3]) if nhwc else (shape[2], shape[3], shape[1])
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
