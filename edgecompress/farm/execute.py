"""What a farm worker does with one validated job: fetch, verify, measure, store (idempotently).

``execute(job, ctx)``: the run's row for this target says ``ok/partial/failed`` already (a job
delivered again after it ended, or given up by its submitter) -> nothing runs. Else the
artifacts, the held-out inputs (by input name) and reference outputs (by output name) are
fetched by sha256 (verified), one :class:`~edgecompress.deploy.DeviceSession` measures each artifact whose result key is not in the
database yet (fed the inputs with the artifact's ``__io__`` map from the job; ``ops``, ``delegate``,
``op_profiling`` and ``input_shapes`` as the job says), the device's
outputs are compared with the reference and judged by the job's quality floor (the same
fidelity and ``degraded`` verdict as a direct run), and each result is committed as it arrives.
"""
from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..results import result_key
from .artifacts import ArtifactStore
from .jobs import Job

log = logging.getLogger(__name__)
FINAL = ("ok", "partial", "failed")


@dataclass
class WorkerContext:
    targets_file: Optional[str]
    own: dict                        # target name -> profile name (this worker's inventory)
    store: object                    # ResultsStore on the shared database (retrying writes)
    redis: object = None
    node: str = ""
    cache: Optional[Path] = None
    trust_new_host: bool = False
    lock_timeout_s: float = 600
    seen: dict = field(default_factory=dict)


def load_arrays(data: bytes) -> dict:
    """The named arrays of an ``.npz`` written by :func:`dump_arrays` (dtypes as written)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def dump_arrays(named: dict) -> bytes:
    """An ``.npz`` of named arrays (inputs by input name, reference outputs by output name)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in named.items()})
    return buf.getvalue()


def _mark_job(ctx: WorkerContext, job: Job, state: Optional[dict]) -> None:
    if ctx.redis is None:
        return
    from .app import BEAT_TTL_S, JOB_KEY

    try:
        if state is None:
            ctx.redis.delete(JOB_KEY + job.target)
        else:
            ctx.redis.set(JOB_KEY + job.target, json.dumps(state), ex=max(BEAT_TTL_S * 10, 60))
    except Exception:  # noqa: BLE001 - liveness display only
        log.debug("could not write the job key", exc_info=True)


def execute(job: Job, ctx: WorkerContext) -> str:
    """Run ``job``; -> the target's final status (or ``skipped`` when it had ended already)."""
    store = ctx.store
    row = store.target(job.run_id, job.target)
    if row is not None and row["status"] in FINAL:
        log.info("job %s/%s: already %s, nothing to do", job.run_id, job.target, row["status"])
        return "skipped"
    store.run(job.run_id)                             # the submitter wrote it; ResultsError if not
    _mark_job(ctx, job, {"run_id": job.run_id, "since": time.time(), "node": ctx.node,
                         "artifacts": len(job.artifacts)})
    results: list[dict] = []
    error = None
    try:
        results = _measure(job, ctx)
    except Exception as e:  # noqa: BLE001 - the target fails with the reason; the job ends
        error = f"{type(e).__name__}: {e}"
        log.warning("job %s/%s failed: %s", job.run_id, job.target, error)
    finally:
        _mark_job(ctx, job, None)
    n_ok = sum(r.ok for r in results)
    status = "ok" if results and n_ok == len(results) and not error else ("partial" if n_ok else "failed")
    if error is None and status != "ok":
        error = "; ".join(f"{r.key}: {r.error}" for r in results if not r.ok)[:2000]
    now_row = store.target(job.run_id, job.target)
    if now_row is not None and now_row["status"] in FINAL:        # the submitter gave up on it meanwhile
        return now_row["status"]
    store.set_target(job.run_id, job.target, status=status, error=error)
    return status


def _measure(job: Job, ctx: WorkerContext) -> list[dict]:
    from ..deploy import DeviceSession
    from ..device.result import ArtifactInfo, BenchmarkResult
    from ..manifest import ArtifactRecord, Fidelity
    from ..profiles import Measure, Quality
    from ..runs import _fidelity, _mark_degraded

    store = ctx.store
    blobs = ArtifactStore(job.store, db=store)
    paths = {a.sha256: blobs.fetch(a.sha256, "." + a.format, ctx.cache) for a in job.artifacts}

    def arrays(sha):
        return load_arrays(blobs.fetch(sha, ".npz", ctx.cache).read_bytes()) if sha else None

    held, reference, labels = arrays(job.inputs), arrays(job.reference), arrays(job.labels)
    labels = None if labels is None else labels["y"]
    quality = None if job.quality is None else Quality(**job.quality)
    done = store.result_keys(job.run_id, job.target)
    measure = Measure(**job.measure)
    store.set_target(job.run_id, job.target, status="running", profile=job.profile, transport="farm")
    out: list[dict] = []
    with DeviceSession(job.target, targets_file=ctx.targets_file, trust_new_host=ctx.trust_new_host,
                       lock_timeout_s=ctx.lock_timeout_s) as s:
        facts = dict(s.facts(), farm_worker=ctx.node)
        store.set_target(job.run_id, job.target, status="running", device=facts)
        done |= {result_key(job.run_id, job.target, sha) for sha in job.keep}     # kept by --resume
        todo = [a for a in job.artifacts if result_key(job.run_id, job.target, a.sha256) not in done]
        log.info("job %s/%s: %d artifact(s) to measure, %d kept", job.run_id, job.target, len(todo),
                 len(job.artifacts) - len(todo))
        s.sync([paths[a.sha256] for a in todo])
        s.input_shapes = list(job.input_shapes)            # bench --input-shape: a raw file's dynamic dims
        for a in job.artifacts:
            key = result_key(job.run_id, job.target, a.sha256)
            if key in done:                     # measured by an earlier delivery of this job, or kept
                out.append(BenchmarkResult(target=job.target, status="ok",
                                           artifact=ArtifactInfo(sha256=a.sha256, format=a.format,
                                                                 precision=a.precision)))
                continue
            row = store.target(job.run_id, job.target)
            if row is not None and row["status"] in FINAL:
                raise RuntimeError(f"the submitter gave up on this target ({row['error']})")
            rec = ArtifactRecord(path=str(paths[a.sha256]), format=a.format, precision=a.precision,
                                 layout=a.layout, size_bytes=a.size_bytes, sha256=a.sha256, status=a.host.status,
                                 fidelity=Fidelity(cosine=a.host.cosine, reasons=list(a.host.reasons)))
            from .artifacts import sha256_of

            if sha256_of(Path(rec.path)) != a.sha256:          # checked again right before the device
                raise RuntimeError(f"cached artifact {a.sha256[:12]} changed on disk; refused")
            t0 = time.time()
            inputs = None if held is None else {**held, "__io__": a.io.model_dump()}
            res = s.bench(rec, measure=measure, inputs=inputs, power=s.profile.power, input_layout=job.input_layout,
                          ops=job.ops, delegate=job.delegate, op_profiling=job.op_profiling)
            res.target = res.target or job.target
            res.extra["farm"] = {"worker": ctx.node, "started_at": t0, "finished_at": time.time()}
            outputs, res.outputs = res.outputs, None
            if res.ok and outputs is not None and reference is not None:      # as runs._Runner does
                try:
                    res.fidelity = _fidelity(outputs, reference, labels, quality)
                except Exception as e:  # noqa: BLE001 - kept as a failed check on this result
                    res.fidelity = {"error": f"{type(e).__name__}: {e}"}
            if reference is not None:
                _mark_degraded(res, rec, res.fidelity)
            store.add_result(job.run_id, res, profile=job.profile, size_bytes=a.size_bytes, key=key)
            out.append(res)
    return out
