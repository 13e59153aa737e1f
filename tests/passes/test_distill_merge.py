"""Knowledge distillation and checkpoint merging (uniform and greedy soup) on the digits CNN
trained on real MNIST."""
from __future__ import annotations

import numpy as np
import pytest

from edgecompress.errors import PassError
from edgecompress.passes import apply_passes


def test_distill_into_the_shrunk_teacher(torch_model, torch_accuracy, digits_sets):
    train, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "distill", "shrink": 0.6}], test, train_data=train)
    m = rep["measured"]
    assert m["student_params"] <= m["teacher_params"] / 4
    assert sum(p.numel() for p in out.obj.parameters()) == m["student_params"]
    assert m["teacher_accuracy"] == [pytest.approx(torch_accuracy)]
    assert m["accuracy_after"] >= torch_accuracy - 0.03
    assert m["accuracy_after"] > m["accuracy_before"] + 0.3          # training did the work
    assert "structured pruning" in m["student"]


@pytest.mark.slow
def test_distill_an_ensemble_into_a_factory_student(torch_model, digits_checkpoints, digits_sets, tmp_path):
    student = tmp_path / "student.py"
    student.write_text("from edgecompress.examples.digits import factory\n"
                       "def small():\n    return factory(width=8)\n")
    train, test = digits_sets
    spec = {"pass": "distill", "teachers": digits_checkpoints[:2], "student": f"{student}:small",
            "epochs": 8}
    out, (rep,) = apply_passes(torch_model, [spec], test, train_data=train)
    m = rep["measured"]
    assert len(m["teacher_accuracy"]) == 2
    assert m["params_ratio"] < 0.3
    assert m["accuracy_after"] >= min(m["teacher_accuracy"]) - 0.04   # from scratch, 8 epochs
    assert rep["settings"]["teachers"] == digits_checkpoints[:2]


def test_distill_without_labels_is_an_error(torch_model, digits_sets):
    from edgecompress.data import Dataset

    with pytest.raises(PassError, match="'distill' trains the student, so it needs labelled training data"):
        apply_passes(torch_model, [{"pass": "distill"}], Dataset(digits_sets[1].x[:10], None, "x.npy", ""))


def test_greedy_soup_is_not_worse_than_the_best_checkpoint(torch_model, digits_checkpoints, digits_sets):
    """As compress runs it: the soup is chosen on 600 held-out digits (never trained on by any
    checkpoint) and judged on 400 others. On the selection digits it is never worse than the best
    checkpoint (by construction); on the other 400 it is within half a point."""
    _, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "merge", "checkpoints": digits_checkpoints,
                                              "method": "greedy"}], test, eval_data=test.subset(slice(600, None)))
    m = rep["measured"]
    assert len(m["accuracy_single"]) == 4 and m["chosen"]
    assert m["selection_samples"] == 600 and rep["data"]["eval_samples"] == 400
    assert m["selection_accuracy_soup"] >= max(m["selection_accuracy"].values())
    assert m["accuracy_after"] >= max(m["accuracy_single"].values()) - 0.005
    assert m["selection_data"] == "train part"


def test_uniform_average_of_checkpoints(torch_model, digits_checkpoints, digits_sets):
    import torch

    _, test = digits_sets
    out, (rep,) = apply_passes(torch_model, [{"pass": "merge", "checkpoints": digits_checkpoints,
                                              "method": "uniform", "include_input": False}], test)
    states = [torch.jit.load(p).state_dict() for p in digits_checkpoints]
    mean = sum(s["0.weight"] for s in states) / 3
    assert torch.allclose(out.obj.state_dict()["0.weight"], mean, atol=1e-6)
    assert rep["measured"]["accuracy_after"] >= min(rep["measured"]["accuracy_single"].values()) - 0.01


def test_merge_refuses_a_different_architecture(torch_model, tmp_path):
    import torch

    from edgecompress.examples.digits import factory

    path = tmp_path / "wide.pt"
    torch.save(factory(width=32).state_dict(), path)
    with pytest.raises(PassError, match="does not fit the model's architecture"):
        apply_passes(torch_model, [{"pass": "merge", "checkpoints": [str(path)], "method": "uniform"}], None)
    same = tmp_path / "same.pt"
    torch.save(torch_model.obj.state_dict(), same)
    with pytest.raises(PassError, match="greedy.*needs labelled data"):
        apply_passes(torch_model, [{"pass": "merge", "checkpoints": [str(same)]}], None)


def test_keras_uniform_merge_of_weight_files(tfk_model, tmp_path):
    """Two tf_keras checkpoints (the trained weights shifted by +d and -d) average back to them."""
    from edgecompress.passes import _keras as K

    base = tfk_model.obj.get_weights()
    paths = []
    for sign in (1, -1):
        m = K.to_tf_keras(tfk_model.obj)
        m.set_weights([w + sign * 0.01 if w.dtype.kind == "f" else w for w in base])
        paths.append(str(tmp_path / f"ckpt{sign}.weights.h5"))
        m.save_weights(paths[-1])
    out, (rep,) = apply_passes(tfk_model, [{"pass": "merge", "checkpoints": paths, "method": "uniform",
                                            "include_input": False}], None)
    for got, want in zip(out.obj.get_weights(), base):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert rep["measured"]["chosen"] == paths
