"""--data: .npy, .npz and image folders, checked against the model's input."""
from __future__ import annotations

import numpy as np
import pytest

from edgecompress.data import load_data, random_data
from edgecompress.errors import DataError
from edgecompress.manifest import TensorSpec
from edgecompress.models import LoadedModel


def _model(shape=(1, 1, 28, 28), layout="NCHW"):
    """A model description (what load_data reads: the input spec and layout)."""
    return LoadedModel("onnx", None, [TensorSpec("x", list(shape))], [TensorSpec("y", [1, 10])], layout, "m", "0")


def test_npz_with_labels_and_a_deterministic_disjoint_split(tmp_path, mnist):
    x, y = mnist[2][:300], mnist[3][:300]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = load_data(tmp_path / "d.npz", _model())
    assert d.x.dtype == np.float32 and d.x.shape == (300, 1, 28, 28) and np.array_equal(d.y, y)
    assert "npz x as-is" in d.preprocessing
    cal, ev = d.split(100, 400)                                   # fewer than asked: shrink in proportion
    assert len(cal) + len(ev) == 300 and len(cal) == 60
    cal2, _ = d.split(100, 400)
    assert np.array_equal(cal.x, cal2.x)
    seen = {a.tobytes() for a in cal.x}
    assert not any(a.tobytes() in seen for a in ev.x)


def test_npy_and_uint8(tmp_path):
    np.save(tmp_path / "d.npy", np.zeros((5, 1, 28, 28), np.uint8))
    d = load_data(tmp_path / "d.npy", _model())
    assert d.y is None and d.x.dtype == np.float32 and "uint8 -> float32, no scaling" in d.preprocessing


def test_wrong_shape_names_both_shapes_and_the_likely_fix(tmp_path):
    np.savez(tmp_path / "nhwc.npz", x=np.zeros((10, 28, 28, 1), np.float32))
    with pytest.raises(DataError) as e:
        load_data(tmp_path / "nhwc.npz", _model())
    msg = str(e.value)
    assert "[10, 28, 28, 1]" in msg and "[1, 1, 28, 28]" in msg and "transpose to (0, 3, 1, 2)" in msg
    np.save(tmp_path / "small.npy", np.zeros((10, 1, 8, 8), np.float32))
    with pytest.raises(DataError, match=r"samples have shape \[10, 1, 8, 8\] but the model's input 'x' is"):
        load_data(tmp_path / "small.npy", _model())


def test_bad_files_and_labels(tmp_path):
    with pytest.raises(DataError, match="data not found"):
        load_data(tmp_path / "nope.npz", _model())
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(DataError, match="unknown data format '.csv'"):
        load_data(tmp_path / "d.csv", _model())
    np.savez(tmp_path / "k.npz", images=np.zeros((3, 1, 28, 28)))
    with pytest.raises(DataError, match="no array for input 'x': the .npz has images"):
        load_data(tmp_path / "k.npz", _model())
    np.savez(tmp_path / "y.npz", x=np.zeros((3, 1, 28, 28)), y=np.zeros(4, int))
    with pytest.raises(DataError, match=r"labels y have shape \[4\]; expected \(3,\)"):
        load_data(tmp_path / "y.npz", _model())
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="cannot read as .npy"):
        load_data(tmp_path / "broken.npy", _model())


def test_image_folder_with_class_subfolders(tmp_path, mnist):
    """Real digits written as PNG files, one sub-folder per class, read back exactly."""
    from PIL import Image

    x, y = mnist[2][:40], mnist[3][:40]
    for i, (img, label) in enumerate(zip(x, y)):
        folder = tmp_path / "imgs" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img[0] * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    d = load_data(tmp_path / "imgs", _model())
    assert d.x.shape == (40, 1, 28, 28) and d.y is not None
    classes = sorted({str(v) for v in y})
    # same images, same labels (files are read in sorted order: class folder, then name)
    order = sorted(range(40), key=lambda i: (str(y[i]), f"{i:03d}"))
    assert np.array_equal(d.y, [classes.index(str(y[i])) for i in order])
    assert np.abs(d.x - x[order]).max() <= 0.5 / 255 + 1e-6
    assert d.preprocessing.startswith("image folder: grayscale, resize 28x28 (bilinear), /255")
    rgb = load_data(tmp_path / "imgs", _model((1, 32, 32, 3), "NHWC"))
    assert rgb.x.shape == (40, 32, 32, 3) and "RGB" in rgb.preprocessing


def test_random_data():
    d = random_data(_model(), 7)
    assert d.x.shape == (7, 1, 28, 28) and d.y is None and "INT8 accuracy unknown" in d.preprocessing
