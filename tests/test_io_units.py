"""Fast checks of the named-I/O pieces: data rules, --input-shape, the executor's loop, umask."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from edgecompress.data import load_data
from edgecompress.device.execute import resolve_by_values, run_samples
from edgecompress.errors import DataError, ModelError
from edgecompress.manifest import TensorSpec, atomic_write_json
from edgecompress.models import LoadedModel, _apply_shapes, parse_shapes


def _vad():
    """The shape of a voice-activity detector: audio [batch, seq], state [2, batch, 128], an int64 scalar."""
    ins = [TensorSpec("audio", ["batch", "sequence"]), TensorSpec("state", [2, "batch", 128]),
           TensorSpec("sr", [], "int64")]
    return LoadedModel("onnx", None, ins, [TensorSpec("prob", ["batch", 1])], "NCHW", "vad.onnx", "0")


def test_npz_rules_rank_short_one_sample_broadcast_and_dtypes(tmp_path):
    m = _vad()
    np.savez(tmp_path / "d.npz", audio=np.zeros((7, 512), np.float32), state=np.zeros((1, 2, 1, 128), np.float32),
             sr=np.array([16000], np.int32))
    d = load_data(tmp_path / "d.npz", m)
    s = d.samples(m)
    assert s["audio"].shape == (7, 1, 512)           # one rank short: a batch axis of 1
    assert s["state"].shape == (1, 2, 1, 128)        # one sample, used for every sample
    assert s["sr"].dtype == np.int64 and s["sr"].shape == (1,)   # int32 -> int64 (fits), never float
    assert len(d) == 7 and "sr: int32 -> int64" in d.preprocessing
    np.savez(tmp_path / "f.npz", audio=np.zeros((7, 512), np.float32), state=np.zeros((1, 2, 1, 128), np.float32),
             sr=np.array([16000.0]))
    with pytest.raises(DataError, match="input 'sr' takes int64; the data is float64"):
        load_data(tmp_path / "f.npz", m)
    np.savez(tmp_path / "s.npz", audio=np.zeros((7, 512), np.float32), state=np.zeros((7, 2, 128), np.float32),
             sr=np.array([16000]))
    assert load_data(tmp_path / "s.npz", m).samples(m)["state"].shape == (7, 2, 1, 128)   # batch axis where 'batch' is
    np.savez(tmp_path / "w.npz", audio=np.zeros((7, 512), np.float32), state=np.zeros((7, 2, 64), np.float32),
             sr=np.array([16000]))
    with pytest.raises(DataError, match=r"input 'state': samples have shape \[7, 2, 64\] but the model's input "
                                        r"'state' is \[2, 'batch', 128\]"):
        load_data(tmp_path / "w.npz", m)


def test_input_shape_flags_name_the_input_and_the_fix():
    assert parse_shapes(["audio=1,512", "state=2,1,128"]) == {"audio": (1, 512), "state": (2, 1, 128)}
    with pytest.raises(ModelError, match="only for a single-input model"):
        parse_shapes(["1,512", "state=2,1,128"])
    m = _vad()
    with pytest.raises(ModelError, match=r"--input-shape audio=1,512"):
        _apply_shapes(m, {None: (1, 512)})
    with pytest.raises(ModelError, match=r"fixed dims must match"):
        _apply_shapes(_vad(), {"state": (2, 1, 64)})
    with pytest.raises(ModelError, match=r"--input-shape audio=1,SEQUENCE \(a number for each name\)"):
        _vad().concrete_shape("audio", "random calibration")
    m = _apply_shapes(_vad(), {"audio": (1, 256)})
    assert m.concrete_shape("audio") == (1, 256) and m.shape_source == {"audio": "--input-shape"}


def test_feedback_runs_in_order_and_records_what_was_fed():
    def cell(feed):          # state' = state + x; out = 2 * state'
        new = feed["state"] + feed["x"]
        return {"out": 2 * new, "state_out": new}

    x = np.arange(1, 5, dtype=np.float32).reshape(4, 1, 1)
    fed: dict = {}
    got = run_samples(cell, {"x": x, "state": np.zeros((1, 1, 1), np.float32)}, feedback={"state_out": "state"},
                      record=fed)
    assert got["out"].ravel().tolist() == [2, 6, 12, 20]          # cumulative sums, doubled
    assert fed["state"].ravel().tolist() == [0, 1, 3, 6]          # the state each step really saw


def test_outputs_with_the_same_shape_are_paired_by_closeness_not_position():
    rng = np.random.default_rng(0)
    ref = {"boxes": rng.normal(size=(50, 4)), "scores": rng.normal(size=(50, 4))}
    raw = {"PartitionedCall:0": ref["scores"] + 0.01, "PartitionedCall:1": ref["boxes"] - 0.01}
    assert resolve_by_values(raw, ref, {}) == {"PartitionedCall:0": "scores", "PartitionedCall:1": "boxes"}


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == mode
