"""The Celery application both sides share, queue names, and the liveness keys in Redis."""
from __future__ import annotations

import json
import re
import time

BENCH_TASK = "edgecompress.bench"
PING_TASK = "edgecompress.ping"
QUEUE_PREFIX = "edgecompress.t."
WORKER_KEY = "edgecompress:farm:worker:"
JOB_KEY = "edgecompress:farm:job:"
BEAT_S = 1.0
BEAT_TTL_S = 6
DEFAULT_VISIBILITY_S = 3600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def queue_for(target: str) -> str:
    return QUEUE_PREFIX + target


def check_broker_url(url: str) -> str:
    from ..errors import UsageError

    if not url or not str(url).startswith(("redis://", "rediss://", "unix://")):
        from ..results import mask_text

        raise UsageError(f"--broker {mask_text(url)!r}: not a Redis URL; valid: redis://HOST[:PORT][/DB], "
                         f"rediss://... (TLS) — the farm's broker is Redis")
    return url


def make_app(broker: str, *, visibility_s: float = DEFAULT_VISIBILITY_S, backend: str | None = None):
    """A Celery app on ``broker`` (Redis) configured for the farm (late acks, prefetch 1, JSON only)."""
    from celery import Celery

    app = Celery("edgecompress", broker=check_broker_url(broker), backend=backend, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_ignore_result=backend is None, task_default_queue=QUEUE_PREFIX + "default",
        broker_connection_retry_on_startup=True, broker_connection_max_retries=None,
        broker_transport_options={"visibility_timeout": visibility_s, "unacked_restore_interval": 1,
                                  "unacked_restore_throttle": 1, "socket_connect_timeout": 5,
                                  "socket_timeout": 30, "health_check_interval": 10},
        worker_hijack_root_logger=False, worker_send_task_events=False, task_send_sent_event=False,
        worker_cancel_long_running_tasks_on_connection_loss=False, worker_enable_remote_control=False,
        broker_pool_limit=4, task_create_missing_queues=True,
    )
    return app


def redis_client(broker: str):
    import redis

    return redis.Redis.from_url(check_broker_url(broker), socket_connect_timeout=5, socket_timeout=10,
                                decode_responses=True)


def workers(r) -> list[dict]:
    """The live farm workers (their beats), newest first."""
    out = []
    for key in r.scan_iter(WORKER_KEY + "*"):
        raw = r.get(key)
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return sorted(out, key=lambda w: -w.get("beat", 0))


def served(r) -> dict[str, dict]:
    """target -> {"node", "profile", "host"} of a live worker serving it."""
    out = {}
    for w in workers(r):
        for name, info in (w.get("targets") or {}).items():
            out.setdefault(name, {"node": w.get("node"), "host": w.get("host"), **info})
    return out


def running_jobs(r) -> dict[str, dict]:
    out = {}
    for key in r.scan_iter(JOB_KEY + "*"):
        raw = r.get(key)
        if raw:
            try:
                out[key[len(JOB_KEY):]] = json.loads(raw)
            except ValueError:
                continue
    return out


def queue_depth(r, target: str) -> int:
    """Jobs waiting in a target's queue (Redis list; Celery's priority sub-queues included)."""
    q = queue_for(target)
    n = r.llen(q)
    for key in r.scan_iter(q + "\x06\x16*"):
        n += r.llen(key)
    return int(n)


def now() -> float:
    return time.time()
