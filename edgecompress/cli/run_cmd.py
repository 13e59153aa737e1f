"""``edgecompress run MODEL --target A --target B ...``: compress, deploy, measure, store, compare.

Progress goes to stderr (a rich bar per target on a terminal, plain lines otherwise); the
comparison table and the report's path (or, with ``--json``, the whole result) go to stdout.
Exit 0 when every target and artifact succeeded, 1 when any failed (the rest are kept,
stored and reported), 2 on bad input.
"""
from __future__ import annotations

import functools
import sys

import os

from .common import add_budget_args, add_targets_file_arg, budget_kwargs, print_json
from .compress_cmd import _stdout_to_stderr, add_io_arguments, add_pass_arguments, quality_flags, quiet_frameworks


def add(sub) -> None:
    p = sub.add_parser("run", help="compress for each target's profile, deploy, measure, store and compare")
    p.add_argument("model", metavar="MODEL", help="file.onnx | file.keras | file.pt | file.py:factory | file.tflite "
                                                  "(a .tflite, or an .onnx with --as-is, is measured as given)")
    p.add_argument("--as-is", action="store_true", help="measure the given .onnx as it is (no compression); "
                                                        "device fidelity against the same file on the host")
    p.add_argument("--target", action="append", default=[], metavar="NAME", dest="target_names",
                   help="a target to run on; repeat for several (default: local, or every target of --targets)")
    add_targets_file_arg(p)
    p.add_argument("--data", metavar="PATH", help="calibration + held-out data (.npy/.npz with x[,y], image folder)")
    p.add_argument("--out", default="out", metavar="DIR", help="artifacts and report folder (default: out)")
    p.add_argument("--db", metavar="URL|PATH", help="results database: sqlite:///PATH, postgresql://USER@HOST/DB "
                                                    "or a file (default: $EDGECOMPRESS_DB or "
                                                    "$XDG_DATA_HOME/edgecompress/results.db)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--html", metavar="FILE", help="write the HTML report here (default: OUT/report-RUNID.html)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an earlier run of the same model and settings "
                                                     "(killed or partly failed): what it measured ok is kept, "
                                                     "not measured again")
    g = p.add_argument_group("compress options")
    add_io_arguments(g, budget_flags=True)
    g.add_argument("--weights", metavar="FILE", help="weights for a file.py:factory model")
    g.add_argument("--random-calibration", action="store_true",
                   help="allow calibrating on random inputs when no --data is given")
    g.add_argument("--cache", metavar="DIR", help="cache of compression intermediates (default: "
                                                  "$EDGECOMPRESS_CACHE_DIR or OUT/.cache)")
    add_pass_arguments(g)
    g = p.add_argument_group("device options")
    g.add_argument("--trust-new-host", action="store_true",
                   help="accept and record the host key of an SSH device seen for the first time")
    g.add_argument("--runs", type=int, metavar="N", help="timed runs per artifact (overrides the profile)")
    g.add_argument("--warmup", type=int, metavar="N", help="warm-up runs per artifact")
    g.add_argument("--min-seconds", type=float, metavar="S", help="time each artifact at least S seconds")
    g.add_argument("--threads", type=int, metavar="N", help="runtime threads on the device")
    g.add_argument("--eval-samples", type=int, default=200, metavar="N",
                   help="held-out samples for the on-device fidelity check (default 200)")
    g.add_argument("--target-timeout", type=float, metavar="S",
                   help="give up on a target still busy S seconds after compression (marked failed)")
    g.add_argument("--ops", action="store_true", help="also profile every artifact per operator on the device")
    add_budget_args(p)
    from .farm_cmd import add_farm_args

    add_farm_args(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..errors import UsageError
    from ..report import compare, render_table
    from ..targets import load_targets
    from .progress import RunProgress

    for name in ("runs", "warmup", "threads", "eval_samples"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "warmup" else 1):
            raise UsageError(f"--{name.replace('_', '-')} {v}: must be {'>= 0' if name == 'warmup' else '>= 1'}")
    names = args.target_names
    if not names:
        names = [n for n in load_targets(args.targets_file) if n != "local"] if args.targets_file else ["local"]
    quiet_frameworks(args)
    with RunProgress(names, sys.stderr) as progress, _stdout_to_stderr():   # stdout carries only our result
        result = _call_run(args, names, progress)
    comp = compare([result.run_id], result.db, **budget_kwargs(args))
    if args.json:
        d = result.to_dict()
        d["recommendations"] = [r.to_dict() for r in comp.recommendations]
        d["diagnoses"] = [r.diagnosis for r in comp.rows if r.diagnosis]
        print_json(d)
        return result.exit_code
    print(render_table(comp))
    for name in result.failed:
        t = result.targets[name]
        print(f"{t.status.upper()}: {name}: {t.error}")
    print(f"run {result.run_id} ({result.status}) stored in {result.db}")
    print(f"report: {result.report}")
    return result.exit_code


def _call_run(args, names, progress):
    from ..compress import parse_feedback
    from ..models import parse_shapes
    from ..runs import run, run_farm

    if getattr(args, "farm", None):
        from .farm_cmd import farm_options

        run = functools.partial(run_farm, **farm_options(args))
    return run(args.model, names, targets_file=args.targets_file, data=args.data, out=args.out, db=args.db,
               input_shape=parse_shapes(args.input_shape) or None, weights=args.weights,
               feedback=parse_feedback(args.feedback), metric=args.metric, quality=quality_flags(args, budget_flags=True),
               as_is=args.as_is,
               allow_random_calibration=args.random_calibration, trust_new_host=args.trust_new_host,
               measure={"runs": args.runs, "warmup": args.warmup, "min_seconds": args.min_seconds,
                        "threads": args.threads},
               eval_samples=args.eval_samples, target_timeout_s=args.target_timeout,
               html=args.html or True, progress=progress, passes=list(args.passes), cache_dir=args.cache,
               resume=args.resume, ops=args.ops)
