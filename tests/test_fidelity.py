"""Fidelity numbers on outputs with known differences."""
from __future__ import annotations

import numpy as np
import pytest

from edgecompress.fidelity import SQNR_CAP_DB, compare


def test_identical_outputs():
    ref = np.array([[1.0, 2.0, 0.5], [0.1, 0.0, 3.0]], np.float32)
    f = compare(ref, ref.copy(), labels=np.array([1, 0]))
    assert f.max_abs == 0 and f.cosine == pytest.approx(1) and f.sqnr_db == SQNR_CAP_DB
    assert f.top1_agreement == 1 and f.accuracy == 0.5 and f.reference_accuracy == 0.5 and f.samples == 2


def test_known_noise_gives_known_sqnr_and_agreement():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1000, 10))
    noise = rng.normal(size=ref.shape) * 0.1                      # signal/noise power 100 -> 20 dB
    f = compare(ref, ref + noise)
    assert f.sqnr_db == pytest.approx(20, abs=0.3)
    assert f.max_abs == pytest.approx(np.abs(noise).max())
    flipped = ref.copy()
    flipped[:250] = -flipped[:250]                                  # a quarter of the samples upside down
    g = compare(ref, flipped)
    assert g.cosine == pytest.approx(0.5, abs=0.01) and g.top1_agreement < 0.76 and g.accuracy is None


def test_non_classification_outputs_have_no_top1():
    ref = np.ones((4, 3, 8, 8))
    f = compare(ref, ref * 1.01)
    assert f.top1_agreement is None and f.cosine == pytest.approx(1)
    with pytest.raises(ValueError, match="differs"):
        compare(ref, ref[:, :2])
