"""Command-line flags that add compression passes to ``compress`` (and ``run``).

Each flag appends a pass spec (the same mapping a profile's ``passes:`` list holds) to
``args.passes``, in the order the flags are given; modifier flags (``--finetune-epochs``,
``--student`` …) set keys on the pass they belong to, whatever their position. The specs are
validated with the passes' schemas before any work, like a profile's.

    --fuse                       fold BatchNorm into Conv/Linear (PyTorch)
    --prune METHOD:AMOUNT        global:0.8 | local:0.5 | structured:0.5
    --prune-macs FRACTION        structured pruning down to FRACTION of the MACs
    --prune-ignore NAME          a layer never pruned (repeatable; the classifier never is)
    --finetune-epochs N / --finetune-lr X    fine-tuning after prune / cluster (labelled --data)
    --distill                    distil into the input model shrunk by --distill-shrink (0.5)
    --distill-from TEACHER       a teacher model (repeatable: an ensemble is averaged)
    --student FACTORY            the student (file.py:factory); --student-weights FILE
    --distill-epochs N / --distill-temperature T / --distill-alpha A
    --cluster N                  k-means weight sharing to N values per layer
    --merge CKPT [CKPT ...]      average checkpoints into the model; --merge-method greedy|uniform
    --qat                        quantization-aware training (Keras); --qat-epochs N
"""
from __future__ import annotations

import argparse

from ..passes.specs import MERGE_METHODS, PRUNE_METHODS


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (exclusive), got {text}")
    return v


def _prune(text: str) -> dict:
    method, sep, amount = text.partition(":")
    if not sep:
        method, amount = "global", text
    if method not in PRUNE_METHODS:
        from ..registry import suggest

        raise argparse.ArgumentTypeError(f"unknown pruning method {method!r}{suggest(method, PRUNE_METHODS)}; "
                                         f"valid: {', '.join(PRUNE_METHODS)} (e.g. structured:0.5)")
    return {"pass": "prune", "method": method, "amount": _fraction(amount)}


def _spec(ns, name: str, create: bool = True) -> dict | None:
    """The spec of pass ``name`` in ``ns.passes`` (the last one), created when missing."""
    for spec in reversed(ns.passes):
        if spec["pass"] == name:
            return spec
    if not create:
        return None
    spec = {"pass": name}
    _add(ns, spec)
    return spec


def _add(ns, spec: dict) -> None:
    """Append ``spec``, with the modifiers given earlier for its pass applied."""
    for key, (names, value) in dict(getattr(ns, "_pass_modifiers", {})).items():
        if spec["pass"] in names:
            spec[key] = value
    ns.passes.append(spec)


class _PassAction(argparse.Action):
    """Append a new spec built from the value; pending modifiers for that pass are applied."""

    def __init__(self, *a, build=None, **kw):
        self.build = build
        super().__init__(*a, **kw)

    def __call__(self, parser, ns, values, option_string=None):
        ns.passes = list(ns.passes)
        _add(ns, self.build(values))


class _SetAction(argparse.Action):
    """Set ``key`` on the pass named ``pass_name`` (creating it when ``create``)."""

    def __init__(self, *a, pass_name: str = "", key: str = "", create: bool = True, append: bool = False,
                 also: tuple = (), **kw):
        self.pass_name, self.key, self.create, self.append_, self.also = pass_name, key, create, append, also
        super().__init__(*a, **kw)

    def __call__(self, parser, ns, values, option_string=None):
        ns.passes = list(ns.passes)
        names = (self.pass_name,) + tuple(self.also)
        if not self.create:            # a modifier: remember it for passes given later, too
            mods = dict(getattr(ns, "_pass_modifiers", {}))
            mods[self.key] = (names, values)
            ns._pass_modifiers = mods
            for spec in ns.passes:
                if spec["pass"] in names:
                    spec[self.key] = values
            return
        spec = _spec(ns, self.pass_name)
        if self.append_:
            spec[self.key] = list(spec.get(self.key, [])) + ([values] if not isinstance(values, list) else values)
        elif self.key:
            spec[self.key] = values


def add_pass_arguments(p) -> None:
    """Add the pass flags to parser ``p``; the specs land in ``args.passes``."""
    g = p.add_argument_group("compression passes (applied in the order given, before export)")
    g.add_argument("--fuse", nargs=0, action=_PassAction, build=lambda v: {"pass": "fuse"},
                   help="fold BatchNorm into the Conv/Linear before it (PyTorch)")
    g.add_argument("--prune", metavar="METHOD:AMOUNT", type=_prune, action=_PassAction, build=dict,
                   help="magnitude pruning: global:0.8, local:0.5 (unstructured) or structured:0.5 "
                        "(remove that fraction of channels)")
    g.add_argument("--prune-macs", metavar="FRACTION", type=_fraction, action=_PassAction,
                   build=lambda v: {"pass": "prune", "method": "structured", "macs_target": v},
                   help="structured pruning until MACs <= FRACTION of the original")
    g.add_argument("--prune-ignore", metavar="LAYER", action=_SetAction, pass_name="prune", key="ignore",
                   append=True, help="a layer never pruned (repeatable; the classifier never is)")
    g.add_argument("--finetune-epochs", metavar="N", type=int, action=_SetAction, pass_name="prune",
                   key="epochs", create=False, also=("cluster",),
                   help="fine-tuning epochs after prune/cluster (needs labelled --data; 0: none)")
    g.add_argument("--finetune-lr", metavar="LR", type=float, action=_SetAction, pass_name="prune",
                   key="lr", create=False, also=("cluster",), help="fine-tuning learning rate")
    g.add_argument("--distill", nargs=0, action=_SetAction, pass_name="distill",
                   help="distil the model into itself shrunk by --distill-shrink (structured pruning)")
    g.add_argument("--distill-from", metavar="TEACHER", action=_SetAction, pass_name="distill",
                   key="teachers", append=True,
                   help="teacher model (repeatable; several are averaged); the student is --student "
                        "or the input MODEL")
    g.add_argument("--student", metavar="FACTORY", action=_SetAction, pass_name="distill", key="student",
                   help="student model, file.py:factory")
    g.add_argument("--student-weights", metavar="FILE", action=_SetAction, pass_name="distill",
                   key="student_weights", help="initial state_dict for --student")
    g.add_argument("--distill-shrink", metavar="FRACTION", type=_fraction, action=_SetAction,
                   pass_name="distill", key="shrink", help="channels removed from the teacher for the student")
    g.add_argument("--distill-epochs", metavar="N", type=int, action=_SetAction, pass_name="distill",
                   key="epochs", create=False, help="distillation epochs (default 10)")
    g.add_argument("--distill-temperature", metavar="T", type=float, action=_SetAction, pass_name="distill",
                   key="temperature", create=False, help="softmax temperature T (default 2)")
    g.add_argument("--distill-alpha", metavar="A", type=float, action=_SetAction, pass_name="distill",
                   key="alpha", create=False, help="weight of the soft-target loss (0..1)")
    g.add_argument("--cluster", metavar="N", type=int, action=_PassAction,
                   build=lambda v: {"pass": "cluster", "clusters": v},
                   help="k-means weight sharing: N values per layer")
    g.add_argument("--merge", metavar="CKPT", nargs="+", action=_PassAction,
                   build=lambda v: {"pass": "merge", "checkpoints": list(v)},
                   help="average these checkpoints (same architecture) into the model")
    g.add_argument("--merge-method", choices=list(MERGE_METHODS), action=_SetAction, pass_name="merge",
                   key="method", create=False, help="greedy model soup (default) or uniform average")
    g.add_argument("--qat", nargs=0, action=_PassAction, build=lambda v: {"pass": "qat"},
                   help="quantization-aware training (Keras, tfmot; needs labelled --data)")
    g.add_argument("--qat-epochs", metavar="N", type=int, action=_SetAction, pass_name="qat", key="epochs",
                   create=False, help="quantization-aware training epochs (default 2)")
    p.set_defaults(passes=[])
