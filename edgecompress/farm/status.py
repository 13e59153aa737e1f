"""``farm status``: the live workers, the targets each serves, queue depths, running jobs and their age."""
from __future__ import annotations

import time

from .app import queue_depth, redis_client, running_jobs, workers


def status(broker: str) -> dict:
    import redis

    from ..errors import EdgeCompressError
    from ..results import mask_text

    r = redis_client(broker)
    try:
        try:
            ws = workers(r)
        except redis.RedisError as e:
            raise EdgeCompressError(f"farm broker {mask_text(broker)} unreachable: {e}") from None
        jobs = running_jobs(r)
        now = time.time()
        targets = sorted({t for w in ws for t in (w.get("targets") or {})} | set(jobs))
        return {
            "workers": [{"node": w.get("node"), "host": w.get("host"), "pid": w.get("pid"),
                         "up_s": round(now - w.get("started", now), 1), "beat_age_s": round(now - w.get("beat", now), 1),
                         "targets": {t: i.get("profile") for t, i in (w.get("targets") or {}).items()}} for w in ws],
            "queues": {t: queue_depth(r, t) for t in targets},
            "running": [{"target": t, "run_id": j.get("run_id"), "node": j.get("node"),
                         "age_s": round(now - j.get("since", now), 1)} for t, j in sorted(jobs.items())],
        }
    finally:
        r.close()
