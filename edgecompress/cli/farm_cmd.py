"""``edgecompress farm worker|status``: a team's device farm (Celery workers beside the devices).

worker: serve the queues of the targets in ``--targets FILE`` (or those named with --target)
from this machine; results go straight to ``--db``. status: workers, the targets each serves,
queue depths, running jobs and their age.
"""
from __future__ import annotations

from .common import add_targets_file_arg, print_json, table


def add(sub) -> None:
    p = sub.add_parser("farm", help="a team's device farm: workers beside the devices, status")
    fsub = p.add_subparsers(dest="farm_command", metavar="worker|status")
    fsub.required = True
    w = fsub.add_parser("worker", help="serve some targets' job queues from this machine")
    add_targets_file_arg(w)
    w.add_argument("--target", action="append", default=[], metavar="NAME", dest="target_names",
                   help="serve only this target of the inventory; repeat for several (default: all but local)")
    w.add_argument("--broker", required=True, metavar="URL", help="the farm's Redis, e.g. redis://broker:6379/0")
    w.add_argument("--db", required=True, metavar="URL", help="the shared results database, e.g. "
                                                              "postgresql://edgecompress@dbhost/results")
    w.add_argument("--name", metavar="NODE", help="this worker's name in `farm status` (default: HOST-PID)")
    w.add_argument("--visibility-timeout", type=float, default=3600, metavar="S",
                   help="seconds after which the job of a worker that died is delivered again (default 3600; "
                        "jobs are capped just below it)")
    w.add_argument("--trust-new-host", action="store_true",
                   help="accept and record the host key of an SSH device seen for the first time")
    w.set_defaults(func=_worker)
    s = fsub.add_parser("status", help="workers, targets, queue depths, running jobs")
    s.add_argument("--broker", required=True, metavar="URL", help="the farm's Redis URL")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=_status)


def _worker(args) -> int:
    from ..errors import UsageError
    from ..farm.worker import serve

    if args.visibility_timeout < 10:
        raise UsageError(f"--visibility-timeout {args.visibility_timeout:g}: must be >= 10 s")
    return serve(args.targets_file, args.target_names, args.broker, args.db, node=args.name,
                 visibility_s=args.visibility_timeout, trust_new_host=args.trust_new_host)


def _status(args) -> int:
    from ..farm.status import status

    st = status(args.broker)
    if args.json:
        print_json(st)
        return 0
    rows = [(w["node"], w["host"], ", ".join(f"{t} ({p})" for t, p in w["targets"].items()), f"{w['up_s']:.0f}")
            for w in st["workers"]]
    print(table(["worker", "host", "targets (profile)", "up_s"], rows) if rows else "no farm workers are running")
    print()
    running = {j["target"]: j for j in st["running"]}
    rows = [(t, n, running[t]["run_id"] if t in running else "", f"{running[t]['age_s']:.0f}" if t in running else "")
            for t, n in st["queues"].items()]
    if rows:
        print(table(["target", "queued", "running_run", "running_s"], rows))
    return 0


def add_farm_args(p) -> None:
    """``--farm URL`` and its companions, for ``run`` and ``bench``."""
    g = p.add_argument_group("device farm")
    g.add_argument("--farm", metavar="URL", help="send the measuring to farm workers through this Redis broker "
                                                 "(e.g. redis://broker:6379/0) instead of connecting from here")
    g.add_argument("--artifact-store", default="db", metavar="db|file:///DIR",
                   help="where the farm workers fetch artifacts by sha256 (default: the results database)")
    g.add_argument("--farm-wait", type=float, default=10.0, metavar="S",
                   help="how long a target may have no farm worker before it is marked failed (default 10)")


def farm_options(args) -> dict:
    return {"farm": args.farm, "artifact_store": args.artifact_store, "worker_wait_s": args.farm_wait}



def bench_on_farm(target, artifacts, *, farm, artifact_store="db", worker_wait_s=10.0, targets_file=None, runs=None,
                  warmup=None, threads=None, min_seconds=None, delegate=None, op_profiling=False, store=True,
                  db=None, ops=False, input_shapes=None, trust_new_host=False):
    """``bench --farm``: the arguments of :func:`edgecompress.deploy.benchmark`, measured by a farm worker
    (``--trust-new-host`` is the worker's own setting: ``farm worker --trust-new-host``)."""
    import sys

    from ..errors import UsageError
    from ..farm.submit import bench_on_farm as submit

    if trust_new_host:
        raise UsageError("--trust-new-host cannot be used with --farm: a farm worker keeps its own known hosts; "
                         "start it with `edgecompress farm worker --trust-new-host` instead")
    if not store:
        raise UsageError("--no-store cannot be used with --farm: farm results reach you through the database")

    def progress(t, event, info):
        if event in ("connected", "failed", "waiting"):
            print(f"{t}: {event} {info.get('error') or info.get('text') or ''}".rstrip(), file=sys.stderr)

    return submit(target, artifacts, farm=farm, targets_file=targets_file, db=db,
                  measure={"runs": runs, "warmup": warmup, "threads": threads, "min_seconds": min_seconds},
                  artifact_store=artifact_store, worker_wait_s=worker_wait_s, progress=progress,
                  delegate=delegate, op_profiling=op_profiling, ops=ops, input_shapes=input_shapes)
