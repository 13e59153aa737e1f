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
    p.add_argument("--data", metavar="PATH", help=".npy, .npz (x, optional y labels) or a folder of images")
    p.add_argument("--input-shape", metavar="N,C,H,W", help="input shape where the model cannot tell (PyTorch)")
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


def add_pass_arguments(p) -> None:
    """Flags that add compression passes (e.g. --prune): each appends a spec dict to ``args.passes``."""
    from .pass_args import add_pass_arguments as add

    add(p)


def run(args) -> int:
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # TensorFlow's C++ INFO/WARNING lines
    with _stdout_to_stderr():        # converters print to stdout; it must carry only our result
        manifests = _compress(args)
    failed = any(a.status != "ok" for m in manifests.values() for a in m.artifacts)
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
    from ..compress import compress_many
    from ..models import load_model, parse_shape

    start = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    shape = parse_shape(args.input_shape) if args.input_shape else None
    from ..profiles import load_profile

    profiles = [load_profile(p) for p in args.profile]        # bad profiles stop before any loading
    model = load_model(args.model, weights=args.weights, input_shape=shape)
    return compress_many(model, profiles, args.data, args.out, passes=list(args.passes),
                         allow_random_calibration=args.random_calibration, cache_dir=args.cache,
                         progress=progress)


def render(manifest) -> str:
    """The artifact table for one manifest, with its folder as a title."""
    from ..compress import size_ratio

    rows = []
    for a in manifest.artifacts:
        ratio = size_ratio(manifest, a)
        rows.append((a.path, _size(a.size_bytes) if a.status == "ok" else "",
                     f"{ratio:.2f}x" if ratio is not None else "", _fidelity(a.fidelity) if a.status == "ok" else "",
                     a.status if a.status == "ok" else f"FAILED: {_short(a.error)}"))
    title = f"{manifest.profile}: {manifest.folder if manifest.path else ''}"
    return title + "\n" + table(["artifact", "size", "vs fp32", "fidelity", "status"], rows) + "\n"


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
