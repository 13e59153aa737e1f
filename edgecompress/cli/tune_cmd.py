"""``edgecompress tune MODEL --target NAME... [--trials N] [--time-budget S] [--apply DIR] [--json]``.

Progress lines go to stderr; the Pareto set and the recommendation per target (or, with
``--json``, per target ``candidates`` and ``recommended``) to stdout. Exit 0 when every target
got a recommendation, 1 when one got none (nothing within budget), 2 on bad input.
"""
from __future__ import annotations

import sys

from .common import add_budget_args, add_targets_file_arg, budget_kwargs, print_json, table


def add(sub) -> None:
    p = sub.add_parser("tune", help="search per target for the artifact to ship, every candidate measured there")
    p.add_argument("model", metavar="MODEL", help="file.onnx | file.keras | file.pt | file.py:factory")
    p.add_argument("--target", action="append", default=[], metavar="NAME", dest="target_names",
                   help="a target to tune for; repeat for several (default: local)")
    add_targets_file_arg(p)
    p.add_argument("--data", required=True, metavar="PATH", help="samples (.npz with x and labels y, .npy, images)")
    p.add_argument("--weights", metavar="FILE", help="weights for a file.py:factory model")
    p.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]DIMS",
                   help="dims of an input (repeatable; NAME= for models with several inputs); otherwise from --data")
    p.add_argument("--feedback", action="append", default=[], metavar="OUTPUT=INPUT",
                   help="recurrent state: run samples in order, feeding OUTPUT back as the next sample's INPUT "
                        "(repeatable), on the host and on the device")
    p.add_argument("--eval-samples", type=int, default=200, metavar="N",
                   help="held-out samples each candidate's device fidelity is measured on")
    p.add_argument("--trials", type=int, default=20, metavar="N",
                   help="candidates in the study per target (a resumed study counts the ones it has; default 20)")
    p.add_argument("--time-budget", type=float, metavar="S", help="stop a target's search after S seconds")
    p.add_argument("--artifacts", metavar="P.F,...", help="limit format/precision, e.g. int8.onnx,fp32.onnx "
                                                          "(default: all the model and the profile allow)")
    p.add_argument("--no-passes", action="store_true", help="do not search pruning/clustering passes")
    p.add_argument("--runs", type=int, metavar="N", help="timed runs per candidate (profile's measure.runs)")
    p.add_argument("--min-seconds", type=float, metavar="S", help="time each candidate at least S seconds")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed (part of the study's name)")
    p.add_argument("--db", metavar="PATH", help="results database (path or URL); the study is kept in it (PostgreSQL: schema optuna) or, "
                        "for a SQLite file, in tune-studies.db beside it")
    p.add_argument("--out", default="tune-out", metavar="DIR", help="work folder (cache of built candidates)")
    p.add_argument("--cache", metavar="DIR", help="cache of compression intermediates (default: OUT/.cache)")
    p.add_argument("--apply", metavar="DIR", help="write the recommended artifact and a profile that rebuilds it "
                                                  "to DIR/TARGET/")
    p.add_argument("--trust-new-host", action="store_true")
    p.add_argument("--json", action="store_true", help="per target: candidates, recommended, pareto")
    add_budget_args(p)
    p.set_defaults(func=_tune)


def _tune(args) -> int:
    from ..compress import parse_feedback
    from ..models import parse_shapes
    from ..tune import tune
    from .compress_cmd import _stdout_to_stderr, quiet_frameworks

    quiet_frameworks(args)
    with _stdout_to_stderr():
        res = tune(args.model, args.target_names or ["local"], targets_file=args.targets_file, data=args.data,
                   trials=args.trials, time_budget_s=args.time_budget,
                   artifacts=[a.strip() for a in args.artifacts.split(",")] if args.artifacts else None,
                   passes=not args.no_passes, db=args.db, out=args.out, cache_dir=args.cache, apply=args.apply,
                   seed=args.seed, eval_samples=args.eval_samples,
                   measure={"runs": args.runs, "min_seconds": args.min_seconds},
                   input_shape=parse_shapes(args.input_shape) or None, weights=args.weights,
                   trust_new_host=args.trust_new_host, feedback=parse_feedback(args.feedback) or None,
                   progress=lambda m: print(m, file=sys.stderr, flush=True),
                   **budget_kwargs(args))
    if args.json:
        print_json(res.to_dict())
        return res.exit_code
    for name, t in res.targets.items():
        print(f"target {name}: {len(t.candidates)} candidates ({t.measured} measured now), study {t.study}")
        rows = []
        for c in sorted(t.candidates, key=lambda c: (c.status != "ok", c.p50_ms or 0)):
            q = c.quality
            rows.append((f"#{c.number}", c.label, c.status, "" if c.p50_ms is None else f"{c.p50_ms:.4g}",
                         "" if q is None else f"{q:.1%}", "" if c.size_bytes is None else f"{c.size_bytes / 1024:.1f}",
                         "*" if c.pareto else "", "R" if t.recommended is c else ""))
        print(table(["trial", "candidate", "status", "p50_ms", "quality", "size_kb", "pareto", "rec"], rows))
        print(f"recommended ({t.objective}): {t.reason}")
        if t.applied:
            print(f"applied: {t.applied}")
    print(f"study storage: {res.storage}")
    return res.exit_code
