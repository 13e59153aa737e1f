"""Validated settings of each compression pass (one small schema per pass, unknown keys refused).

A pass spec is a mapping such as ``{pass: prune, method: structured, amount: 0.5}`` from a
profile's ``passes:`` list or from the command line. :func:`parse_spec` turns it into the
pass's schema object or raises with the key path, the bad value and the valid values.
This module needs only pydantic: validating never imports torch or TensorFlow.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Type

from pydantic import Field, model_validator

from ..errors import PassError
from ..schema import Strict, format_errors

#: the one list of each (the CLI's --prune / --merge-method read them too)
PRUNE_METHODS = ("global", "local", "structured")
MERGE_METHODS = ("greedy", "uniform")


class Training(Strict):
    """Training settings shared by passes that fine-tune or train (labelled data needed)."""

    epochs: int = Field(3, ge=0, description="epochs of training / fine-tuning (0: none)")
    lr: float = Field(1e-3, gt=0, lt=1, description="learning rate (Adam, cosine decay)")
    batch_size: int = Field(64, ge=1)
    seed: int = 0


class FuseSpec(Strict):
    """``fuse``: fold BatchNorm into the preceding Conv/Linear (PyTorch)."""

    pass_: Literal["fuse"] = Field(alias="pass")


class PruneSpec(Training):
    """``prune``: magnitude pruning.

    ``global``/``local``: unstructured (weights set to zero; the file stays dense, gzip shrinks).
    ``structured``: channels removed through Torch-Pruning's dependency graph (MACs drop),
    either ``amount`` of channels per layer or down to ``macs_target`` × the original MACs.
    Fine-tuning (``epochs`` > 0) runs when labelled data is given.
    """

    pass_: Literal["prune"] = Field(alias="pass")
    method: Literal[PRUNE_METHODS] = "global"
    amount: Optional[float] = Field(None, gt=0, lt=1, description="fraction of weights/channels removed")
    macs_target: Optional[float] = Field(None, gt=0, lt=1,
                                         description="structured: keep at most this fraction of MACs")
    ignore: list[str] = Field(default_factory=list,
                              description="module/layer names never pruned (the classifier always is)")
    schedule: Literal["constant", "polynomial"] = "polynomial"
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="Keras polynomial schedule start")
    epochs: int = Field(5, ge=0, description="fine-tuning epochs after pruning (0: none)")
    lr: float = Field(3e-3, gt=0, lt=1, description="fine-tuning learning rate")

    @model_validator(mode="after")
    def _amount_or_macs(self):
        if self.macs_target is not None and self.method != "structured":
            raise ValueError("macs_target works only with method 'structured'")
        if self.amount is None and self.macs_target is None:
            raise ValueError("give 'amount' (fraction in (0, 1)) or, for method 'structured', 'macs_target'")
        if self.amount is not None and self.macs_target is not None:
            raise ValueError("give either 'amount' or 'macs_target', not both")
        return self


class DistillSpec(Training):
    """``distill``: train a student on soft targets of one or more teachers.

    Loss = alpha · KL(student/T ‖ teacher/T) · T² + (1 − alpha) · cross-entropy(labels).
    Teachers: ``teachers`` (model specs, averaged) or, when none, the input model.
    Student: ``student`` (``file.py:factory``); else, when ``teachers`` are given, the input
    model; else the input model shrunk by structured pruning of ``shrink`` of its channels.
    """

    pass_: Literal["distill"] = Field(alias="pass")
    teachers: list[str] = Field(default_factory=list)
    student: Optional[str] = None
    student_weights: Optional[str] = None
    shrink: float = Field(0.5, gt=0, lt=1, description="channel fraction removed from the teacher")
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the soft-target loss")
    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-2, gt=0, lt=1)


class ClusterSpec(Training):
    """``cluster``: k-means weight sharing per layer (Deep Compression); ``epochs`` > 0 fine-tunes
    the shared centroids when labelled data is given."""

    pass_: Literal["cluster"] = Field(alias="pass")
    clusters: int = Field(16, ge=2, le=256)
    init: Literal["linear", "density", "random"] = "linear"
    min_params: int = Field(64, ge=1, description="layers with fewer weights are left alone")
    epochs: int = Field(1, ge=0)
    lr: float = Field(1e-4, gt=0, lt=1)


class MergeSpec(Strict):
    """``merge``: average the weights of checkpoints of the same architecture.

    ``uniform``: all of them; ``greedy``: model soup — add checkpoints best-first while the
    held-out accuracy does not drop (needs labelled data).
    """

    pass_: Literal["merge"] = Field(alias="pass")
    checkpoints: list[str] = Field(min_length=1, description="state-dict / model files")
    method: Literal[MERGE_METHODS] = "greedy"
    include_input: bool = True


class QatSpec(Training):
    """``qat``: quantization-aware training of a Keras (tf_keras) model with tfmot."""

    pass_: Literal["qat"] = Field(alias="pass")
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-4, gt=0, lt=1)


SPECS: dict[str, Type[Strict]] = {
    "fuse": FuseSpec, "prune": PruneSpec, "distill": DistillSpec,
    "cluster": ClusterSpec, "merge": MergeSpec, "qat": QatSpec,
}


def parse_spec(spec: dict[str, Any], source: str = "passes", index: int = 0,
               error: Type[Exception] = PassError) -> Strict:
    """Validate one pass spec; the error names ``source``, ``passes[index].key`` and valid values."""
    from pydantic import ValidationError

    if not isinstance(spec, dict):
        raise error(f"{source}: passes[{index}]: expected a mapping like "
                    f"{{pass: prune, amount: 0.5}}, got {type(spec).__name__}")
    model = SPECS[spec["pass"]]
    try:
        return model.model_validate(spec)
    except ValidationError as e:
        text = format_errors(model, e, source, prefix=("passes", index))
        raise error(text.replace("pass_", "pass").replace("Value error, ", "")) from None


def settings(spec: Strict) -> dict[str, Any]:
    """The spec as a plain dict for the manifest (``pass`` key first)."""
    return spec.model_dump(by_alias=True, mode="json")
