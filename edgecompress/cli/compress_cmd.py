"""``edgecompress compress MODEL --profile NAME|FILE [--profile ...] [--data PATH] ...``

Progress goes to stderr line by line; the result is a table (artifact, size, ratio to FP32,
fidelity, status) or, with ``--json``, the manifest (a list of manifests for several
profiles). Exit 0 when every artifact was built, 1 when some failed, 2 for bad input.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

from .common import print_json, table


def add(sub) -> None:
    p = sub.add_parser("compress", help="build a device profile's artifacts (ONNX / TFLite) with fidelity")
    p.add_argument("model", metavar="MODEL",
                   help="file.onnx, file.keras|.h5|SavedModel-folder, file.pt (TorchScript), "
                        "file.py:factory or package.module:factory")
    p.add_argument("--profile", "-p", action="append", required=True, metavar="NAME|FILE",
                   help="device profile name or YAML file (repeat for several; shared steps run once)")
    p.add_argument("--data", metavar="PATH", help=".npz keyed by input names (optional y labels), .npy / .npz x "
                                                  "for a single input, or a folder of images")
    add_io_arguments(p)
    p.add_argument("--weights", metavar="FILE", help="state_dict for a file.py:factory model")
    p.add_argument("--random-calibration", action="store_true",
                   help="without --data, calibrate on random samples (INT8 accuracy is then unknown)")
    p.add_argument("--out", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--cache", metavar="DIR", help="cache of intermediates (default: $EDGECOMPRESS_CACHE_DIR "
                                                  "or OUT/.cache)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    add_pass_arguments(p)
    p.set_defaults(func=run)


def add_io_arguments(p, quality: bool = True, budget_flags: bool = False) -> None:
    """--input-shape (repeatable), --feedback, --metric and the quality floor flags."""
    p.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]DIMS",
                   help="dims of an input (repeatable; NAME= for models with several inputs), e.g. 1,3,224,224 or "
                        "input_ids=1,128; otherwise taken from --data")
    if not quality:
        return
    p.add_argument("--feedback", action="append", default=[], metavar="OUTPUT=INPUT",
                   help="recurrent state: feed each sample's OUTPUT as the next sample's INPUT (repeatable)")
    p.add_argument("--metric", metavar="MODULE:FUNCTION",
                   help="task metric called with (reference, outputs) dicts by output name (and labels)")
    if not budget_flags:        # `run` has --min-cosine / --max-accuracy-drop as recommendation budgets
        p.add_argument("--min-cosine", type=float, metavar="C",
                       help="quality floor: every output's cosine (default 0.95)")
        p.add_argument("--max-accuracy-drop", type=float, metavar="PTS",
                       help="quality floor: accuracy points below the source (default 5)")
    p.add_argument("--min-sqnr-db", type=float, metavar="DB", help="quality floor: every output's SQNR")
    p.add_argument("--min-top1", type=float, metavar="F", help="quality floor: top-1 agreement of class scores "
                                                               "(default 0.9)")


def quality_flags(args, budget_flags: bool = False) -> dict:
    """The quality-floor overrides given on the command line (``run``'s --min-cosine and
    --max-accuracy-drop are recommendation budgets, not floors: the profile's ``quality:`` applies)."""
    q = {"min_sqnr_db": args.min_sqnr_db, "min_top1_agreement": args.min_top1}
    if not budget_flags:
        q.update(min_cosine=args.min_cosine, max_accuracy_drop=args.max_accuracy_drop)
    return {k: v for k, v in q.items() if v is not None}


def quiet_frameworks(args) -> None:
    """TensorFlow / CUDA / LiteRT start-up noise off unless -v (:mod:`edgecompress.quiet`)."""
    from ..quiet import quiet_frameworks as quiet

    quiet(getattr(args, "verbose", False))


def add_pass_arguments(p) -> None:
    """Flags that add compression passes (e.g. --prune): each appends a spec dict to ``args.passes``."""
    from .pass_args import add_pass_arguments as add

    add(p)


def run(args) -> int:
    quiet_frameworks(args)
    with _stdout_to_stderr():        # converters print to stdout; it must carry only our result
        manifests = _compress(args)
    failed = any(a.status != "ok" for m in manifests.values() for a in m.artifacts)   # failed or degraded
    if args.json:
        docs = [m.to_dict() for m in manifests.values()]
        print_json(docs[0] if len(docs) == 1 else docs)
    else:
        for m in manifests.values():
            print(render(m))
    return 1 if failed else 0


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _compress(args) -> dict:
    from ..compress import compress_many, parse_feedback
    from ..models import load_model, parse_shapes

    start = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    shapes = parse_shapes(args.input_shape) or None
    feedback = parse_feedback(args.feedback)
    from ..profiles import load_profile

    profiles = [load_profile(p) for p in args.profile]        # bad profiles stop before any loading
    model = load_model(args.model, weights=args.weights, input_shape=shapes)
    return compress_many(model, profiles, args.data, args.out, passes=list(args.passes),
                         allow_random_calibration=args.random_calibration, cache_dir=args.cache,
                         progress=progress, feedback=feedback, metric=args.metric, quality=quality_flags(args))


def render(manifest) -> str:
    """The artifact table for one manifest, with its folder as a title."""
    from ..compress import size_ratio

    rows = []
    for a in manifest.artifacts:
        ratio = size_ratio(manifest, a)
        built = a.status != "failed"
        status = {"ok": "ok", "failed": f"FAILED: {_short(a.error)}",
                  "degraded": f"DEGRADED: {_short('; '.join(a.fidelity.reasons))}"}.get(a.status, a.status)
        rows.append((a.path, _size(a.size_bytes) if built else "",
                     f"{ratio:.2f}x" if ratio is not None else "", _fidelity(a.fidelity) if built else "", status))
        if built and len(a.fidelity.outputs) > 1:
            for o in a.fidelity.outputs:
                rows.append((f"  {o.name}", "", "", _fidelity(o), ""))
    title = f"{manifest.profile}: {manifest.folder if manifest.path else ''}"
    notes = "".join(f"note: {n}\n" for n in manifest.notes)
    return title + "\n" + table(["artifact", "size", "vs fp32", "fidelity", "status"], rows) + "\n" + notes


def _short(text: str, n: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _fidelity(f) -> str:
    parts = []
    if f.top1_agreement is not None:
        parts.append(f"top1 {f.top1_agreement:.1%}")
    if f.accuracy is not None:
        parts.append(f"acc {f.accuracy:.1%} (fp32 {f.reference_accuracy:.1%})")
    if f.cosine is not None:
        parts.append(f"cos {f.cosine:.4f}")
    if f.sqnr_db is not None:
        parts.append(f"sqnr {f.sqnr_db:.0f} dB")
    return ", ".join(parts)
