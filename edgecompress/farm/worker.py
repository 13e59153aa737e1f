"""``edgecompress farm worker``: serve some targets' queues from the machine that reaches them.

:func:`serve` is the supervisor: it checks the inventory, starts one Celery worker process per
target (:func:`child_main`: queue ``edgecompress.t.<target>``, solo pool, prefetch 1, late
acks), restarts one that dies, and writes the worker's beat to Redis every second. The child
processes die with the supervisor (``PR_SET_PDEATHSIG``), so a killed worker leaves nothing
running; its unacknowledged job goes back to the queue after the visibility time-out.

A job runs under its time limit (``time_limit_s`` from the submitter's measure settings, capped
below the visibility time-out): past it the target is marked failed with the reason and the
child exits (the supervisor starts a fresh one).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional

from ..errors import UsageError
from .app import (BEAT_S, BEAT_TTL_S, BENCH_TASK, DEFAULT_VISIBILITY_S, PING_TASK, WORKER_KEY, make_app,
                  queue_for, redis_client)

log = logging.getLogger(__name__)


def inventory(targets_file, names: list[str]) -> dict[str, str]:
    """{target: profile name} this worker serves (every target of the file but ``local``, or ``names``)."""
    import re

    from ..profiles import load_profile
    from ..targets import load_target, load_targets
    from .jobs import NAME

    if not targets_file:
        raise UsageError("farm worker needs --targets FILE: the inventory of the devices this machine reaches")
    inv = load_targets(targets_file)
    chosen = names or [n for n in inv if n != "local"]
    if not chosen:
        raise UsageError(f"{targets_file}: no targets to serve (only 'local'); add devices or name them with --target")
    out = {}
    for n in chosen:
        t = load_target(n, targets_file)
        if not re.match(NAME, t.name):
            raise UsageError(f"target {t.name!r}: farm target names are letters, digits, '.', '_' and '-'")
        out[t.name] = load_profile(t.profile).name
    return out


def _pdeathsig() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the children then outlive a killed supervisor
        pass


def serve(targets_file, names: list[str], broker: str, db: str, *, node: Optional[str] = None,
          visibility_s: float = DEFAULT_VISIBILITY_S, trust_new_host: bool = False,
          stop: Optional[threading.Event] = None) -> int:
    own = inventory(targets_file, names)
    from ..profiles import load_profile
    from ..targets import load_target

    specs = {t: load_profile(load_target(t, targets_file).profile).model_dump(mode="json") for t in own}
    from ..results import ResultsStore

    with ResultsStore(db, retry_s=30):                 # reachable and migrated before any child starts
        pass
    r = redis_client(broker)
    host = socket.gethostname()
    node = node or f"{host}-{os.getpid()}"
    stop = stop or threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:                             # not the main thread (tests)
            pass
    children: dict[str, subprocess.Popen] = {}
    from ..results import resolve

    masked_db = resolve(db)[1]                         # never a password on a command line

    spawned: dict[str, float] = {}

    def spawn(target: str) -> subprocess.Popen:
        spawned[target] = time.monotonic()
        argv = [sys.executable, "-m", "edgecompress.farm.worker", "--target", target, "--targets",
                str(targets_file), "--broker", broker, "--db", masked_db, "--node", f"{node}.{target}",
                "--visibility", str(visibility_s), "--profile", own[target]]
        if trust_new_host:
            argv.append("--trust-new-host")
        env = dict(os.environ, EDGECOMPRESS_FARM_SECRET_DB=db)
        return subprocess.Popen(argv, preexec_fn=_pdeathsig, env=env)

    for t in own:
        children[t] = spawn(t)
    print(f"edgecompress farm worker {node}: serving {', '.join(f'{t} ({p})' for t, p in own.items())}",
          file=sys.stderr, flush=True)
    started = time.time()
    try:
        while not stop.is_set():
            for t, p in list(children.items()):
                if p.poll() is not None and time.monotonic() - spawned.get(t, 0) > 2:
                    log.warning("worker process for %s exited (%s); starting a new one", t, p.returncode)
                    children[t] = spawn(t)
            beat = {"node": node, "host": host, "pid": os.getpid(), "started": started, "beat": time.time(),
                    "targets": {t: {"profile": own[t], "spec": specs[t], "pid": children[t].pid} for t in own}}
            try:
                r.set(WORKER_KEY + node, json.dumps(beat), ex=BEAT_TTL_S)
            except Exception as e:  # noqa: BLE001 - the broker is away for a while; the children reconnect
                log.warning("broker unreachable for the worker beat: %s", e)
            stop.wait(BEAT_S)
    finally:
        for p in children.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)          # Celery's warm shutdown: the running job finishes
        for p in children.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            r.delete(WORKER_KEY + node)
        except Exception:  # noqa: BLE001
            pass
    return 0


# -- one target's Celery worker process -------------------------------------------------------------
def child_main(argv=None) -> int:
    import argparse

    from ..results import ResultsStore
    from .execute import WorkerContext, execute
    from .jobs import JobRejected, parse_job

    ap = argparse.ArgumentParser(prog="edgecompress.farm.worker")
    for a in ("--target", "--targets", "--broker", "--db", "--node", "--profile"):
        ap.add_argument(a, required=True)
    ap.add_argument("--visibility", type=float, default=DEFAULT_VISIBILITY_S)
    ap.add_argument("--trust-new-host", action="store_true")
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", message=".*superuser privileges.*")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s {args.node} %(name)s: %(message)s")
    for noisy in ("celery", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = make_app(args.broker, visibility_s=args.visibility, backend=args.broker)
    ctx = WorkerContext(targets_file=args.targets, own={args.target: args.profile},
                        store=ResultsStore(os.environ.get("EDGECOMPRESS_FARM_SECRET_DB") or args.db, retry_s=600),
                        redis=redis_client(args.broker), node=args.node, trust_new_host=args.trust_new_host)
    limit_cap = max(5.0, args.visibility - 5)

    @app.task(name=BENCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def bench(self, payload):
        from celery.exceptions import Reject

        try:
            job = parse_job(payload, own_targets=ctx.own)
            if job.profile != ctx.own[job.target]:
                raise JobRejected(f"job built for profile {job.profile!r}, target {job.target!r} here is "
                                  f"{ctx.own[job.target]!r}")
        except JobRejected as e:
            log.error("REJECTED job %s (delivery %s): %s; nothing was run", self.request.id,
                      self.request.delivery_info.get("routing_key"), e)
            raise Reject(str(e), requeue=False) from None
        limit = min(job.time_limit_s, limit_cap)
        watchdog = threading.Timer(limit, _over_time, args=(ctx, job, limit))
        watchdog.daemon = True
        watchdog.start()
        try:
            log.info("job %s/%s: %d artifact(s), time limit %.0f s", job.run_id, job.target, len(job.artifacts),
                     limit)
            status = execute(job, ctx)
            log.info("job %s/%s: %s", job.run_id, job.target, status)
        finally:
            watchdog.cancel()

    @app.task(name=PING_TASK, acks_late=True, ignore_result=False)
    def ping(payload):
        if not isinstance(payload, dict) or set(payload) - {"i", "t"}:
            from celery.exceptions import Reject

            raise Reject("malformed ping", requeue=False)
        return {"i": payload.get("i"), "node": args.node}

    from celery.signals import setup_logging, worker_ready

    @setup_logging.connect
    def _keep_our_logging(**_):                        # Celery leaves logging as configured above
        pass

    @worker_ready.connect
    def _ready(**_):
        log.info("ready: consuming queue %s for target %s", queue_for(args.target), args.target)

    app.worker_main(["worker", "-Q", queue_for(args.target), "-P", "solo", "-c", "1", "--prefetch-multiplier", "1",
                     "-n", f"{args.node}@{socket.gethostname()}", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "-l", "WARNING"])
    return 0


def _over_time(ctx, job, limit: float) -> None:
    """A job past its time limit: the target fails with the reason, and this process ends."""
    msg = f"job time limit {limit:.0f} s exceeded on worker {ctx.node} (from the measure settings)"
    log.error("job %s/%s: %s", job.run_id, job.target, msg)
    try:
        ctx.store.set_target(job.run_id, job.target, status="failed", error=msg)
        ctx.redis.delete("edgecompress:farm:job:" + job.target)
    finally:
        os._exit(3)


if __name__ == "__main__":
    sys.exit(child_main())
