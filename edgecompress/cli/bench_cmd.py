"""``edgecompress bench ARTIFACT|MANIFEST... --target NAME [--targets FILE] [--runs N] ...``"""
from __future__ import annotations

from .common import add_targets_file_arg, print_json, table


def add(sub) -> None:
    p = sub.add_parser("bench", help="deploy artifacts to a target and measure them there")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT|MANIFEST",
                   help=".onnx/.tflite files, manifest.json files or folders holding one (all ok artifacts)")
    p.add_argument("--target", required=True, help="target name ('local' is this machine)")
    add_targets_file_arg(p)
    p.add_argument("--runs", type=int, help="at least this many timed inferences (profile's measure.runs)")
    p.add_argument("--warmup", type=int, help="untimed inferences first (profile's measure.warmup)")
    p.add_argument("--threads", type=int, help="runtime threads (profile's measure.threads)")
    p.add_argument("--min-seconds", type=float, help="time the runs for at least this long")
    p.add_argument("--trust-new-host", action="store_true",
                   help="trust and record an unknown host key (a changed key is always refused)")
    p.add_argument("--delegate", metavar="NAME",
                   help="native mode (benchmark_model): delegate to use, one of the profile's delegates or "
                        "'cpu' (default: the profile's first)")
    p.add_argument("--op-profiling", action="store_true",
                   help="native mode (benchmark_model): per-op-type timings in the result's op_profile")
    p.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]DIMS",
                   help="dims for a dynamic input of a raw file (repeatable), e.g. input_ids=1,128")
    p.add_argument("--ops", action="store_true",
                   help="also profile each artifact per operator on the device (result 'ops'; top ops printed)")
    p.add_argument("--db", metavar="PATH", help="results database the results are stored in as a run (default: "
                                                "$EDGECOMPRESS_DB or $XDG_DATA_HOME/edgecompress/results.db)")
    p.add_argument("--no-store", action="store_true", help="do not store the results")
    p.add_argument("--json", action="store_true", help="print the list of benchmark results as JSON")
    from .farm_cmd import add_farm_args

    add_farm_args(p)
    p.set_defaults(func=_bench)


def _num(v, fmt="{:.3f}"):
    return "" if v is None else fmt.format(v)


def _bench(args) -> int:
    from ..deploy import benchmark
    from .compress_cmd import quiet_frameworks

    quiet_frameworks(args)

    if getattr(args, "farm", None):
        import functools

        from .farm_cmd import bench_on_farm, farm_options

        benchmark = functools.partial(bench_on_farm, **farm_options(args))
    results = benchmark(args.target, args.artifacts, targets_file=args.targets_file, runs=args.runs,
                        warmup=args.warmup, threads=args.threads, min_seconds=args.min_seconds,
                        trust_new_host=args.trust_new_host, delegate=args.delegate,
                        op_profiling=args.op_profiling, store=not args.no_store, db=args.db, ops=args.ops,
                        input_shapes=_shapes(args.input_shape))
    failed = [r for r in results if not r.ok]         # failed or degraded
    if args.json:
        print_json([r.to_dict() for r in results])
        return 1 if failed else 0
    from ..device.result import Energy, Latency, Memory

    rows = []
    for r in results:
        a = r.artifact
        lat, mem, en = r.latency_ms or Latency(), r.memory_mb or Memory(), r.energy or Energy()
        energy = "" if en.mj_per_inference is None else f"{en.mj_per_inference:.3f} ({en.method})"
        status = f"{r.status} (emulated)" if r.emulated else r.status
        rows.append((_label(a), status, _num(lat.p50),
                     _num(lat.mean), _num(lat.p90), r.runs or "", _num(mem.peak_rss, "{:.1f}"),
                     energy, (r.error or "")[:90]))
    print(f"target {args.target}" + (f"  (stored as run {results.run_id} in {results.db})" if results.run_id else ""))
    print(table(["artifact", "status", "p50_ms", "mean_ms", "p90_ms", "runs", "peak_mb", "mJ/inference", "error"], rows))
    for r in results:
        lat = r.latency_ms
        if r.ok and lat is not None and lat.p50_ci:
            stab = "stable" if r.stable else "UNSTABLE: " + "; ".join((r.stability or {}).get("reasons") or ["?"])
            print(f"{r.key}: p50 95% CI {lat.p50_ci[0]:.4g}-{lat.p50_ci[1]:.4g} ms, cv {lat.cv or 0:.2f}, {stab}, "
                  f"{'valid' if r.valid else 'NOT valid'}")
        if args.ops and r.ops:
            from .common import ops_lines

            print("\n".join(ops_lines(r.to_dict())))
    bad = [r for r in results if r.status == "failed"]
    if results and len(bad) == len(results):
        print(f"every artifact failed ({len(bad)}): nothing was measured")
    elif failed:
        print(f"{len(bad)} failed, {len(failed) - len(bad)} degraded of {len(results)}")
    return 1 if failed else 0


def _label(a) -> str:
    """precision.format for a manifest's artifacts; the file name for a raw file."""
    from pathlib import Path

    if a is None:
        return "?"
    if a.precision:
        return f"{a.precision}.{a.format}"
    return Path(a.path or "?").name


def _shapes(texts) -> list:
    from ..models import parse_shapes

    parse_shapes(texts)             # a bad flag is exit 2 before connecting
    return list(texts or [])
