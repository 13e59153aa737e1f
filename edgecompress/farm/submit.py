"""``run MODEL --farm URL``: compress here, measure on the farm's workers, compare here.

:func:`run_on_farm` takes the same arguments as :func:`edgecompress.runs.run` plus the broker
URL; it returns the same :class:`~edgecompress.runs.RunResult`. The targets' profiles come from
the workers' beats (or ``targets_file`` when given); a target no worker serves fails after
``worker_wait_s`` with the reason. Artifacts, the held-out inputs (by input name), the reference
outputs (by output name, as :func:`edgecompress.runs.run` makes them) and the labels go into the
artifact store by sha256, one job per target goes to its queue (each artifact with its I/O map
and host verdict, the profile's quality floor), and the
run is followed in the shared database (progress events as in a local run) until every
target has ended or ``target_timeout_s`` has passed since the jobs were sent.

As in a direct run: ``ops`` goes in each job (per-operator profiles on the device); ``as_is`` (or a
``.tflite``) measures the given file as its one artifact (:func:`edgecompress.runs.load_for_run`,
:func:`~edgecompress.runs.build_manifests`); ``resume`` reopens the run (:func:`edgecompress.runs._resume`)
and each job's ``keep`` lists the artifacts already measured ok there, which the worker leaves. Only
``trust_new_host`` is refused (a worker keeps its own known hosts).
"""
from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError, UsageError
from .app import BENCH_TASK, make_app, queue_for, redis_client, running_jobs, served
from .execute import FINAL, dump_arrays

log = logging.getLogger(__name__)
POLL_S = 0.1
SETUP_S = 120.0                        # connect, lock, sync: added to each job's time limit


def _say(progress, target, event, **info):
    from ..runs import _say as say

    say(progress, target, event, **info)


def wait_for_workers(r, names: list[str], wait_s: float) -> dict[str, dict]:
    """{target: worker info} for the targets served within ``wait_s`` (all of them, or what there is)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            have = served(r)
        except Exception as e:  # noqa: BLE001 - broker away: keep waiting within the deadline
            log.warning("broker unreachable: %s", e)
            have = {}
        if all(n in have for n in names) or time.monotonic() >= deadline:
            return {n: have[n] for n in names if n in have}
        time.sleep(0.2)


def _profile(local, worker: dict):
    """The target's profile: from the local inventory when given, else as its worker described it."""
    from ..profiles import DeviceProfile, load_profile

    if local:
        return load_profile(local)
    if worker.get("spec"):
        return DeviceProfile.model_validate(worker["spec"])
    return load_profile(worker["profile"])


def job_time_limit(measure, n_artifacts: int) -> float:
    return SETUP_S + n_artifacts * (measure.timeout_s + measure.cooldown_s + 10)


def run_on_farm(model, targets: list, *, farm: str, targets_file=None, data=None, out="out", db=None,
                input_shape=None, weights=None, passes=None, allow_random_calibration=False, measure=None,
                eval_samples: int = 200, target_timeout_s: Optional[float] = None, html=True, cache_dir=None,
                progress=None, artifact_store: str = "db", worker_wait_s: float = 10.0, **rest):
    from ..profiles import Measure
    from ..results import ResultsStore, mask_text
    from ..runs import RunResult, TargetOutcome, _held_out, _resume, build_manifests, load_for_run

    if rest.get("trust_new_host"):
        raise UsageError("--trust-new-host cannot be used with --farm: a farm worker keeps its own known hosts; "
                         "start it with `edgecompress farm worker --trust-new-host` instead")
    out = Path(out)
    r = redis_client(farm)
    names = [getattr(t, "name", t) for t in (targets or [])]
    if len(set(names)) != len(names):
        raise UsageError(f"a target is named twice: {', '.join(names)}")
    inv_profiles = {}
    if targets_file:
        from ..targets import load_target

        inv_profiles = {n: load_target(n, targets_file).profile for n in names}
    _say(progress, "*", "compress_step", text=f"looking for farm workers on {mask_text(farm)}")
    unknown = [n for n in names if n not in inv_profiles]     # profile known only from a worker's beat
    have = wait_for_workers(r, unknown, worker_wait_s) if unknown else {}
    if not names:
        have = served(r)
    else:
        try:
            have = {**served(r), **have}
        except Exception:  # noqa: BLE001 - broker away: the jobs are sent with retries below
            pass
    if not names:
        names = sorted(have)
        if not names:
            raise UsageError(f"no farm worker is serving any target on {mask_text(farm)}; start one with "
                             "`edgecompress farm worker --targets FILE --broker URL --db URL`, or name --target")
    overrides = {k: v for k, v in (measure or {}).items() if v is not None}
    bad = set(overrides) - set(Measure.model_fields)
    if bad:
        raise UsageError(f"unknown measure setting(s) {sorted(bad)}; valid: {', '.join(Measure.model_fields)}")
    profile_of = {n: _profile(inv_profiles.get(n), have.get(n) or {}) for n in names
                  if n in have or n in inv_profiles}
    loaded = load_for_run(model, out, as_is=bool(rest.get("as_is")), weights=weights, input_shape=input_shape)
    feedback, calib, held, reference = _held_out(loaded, data, eval_samples, allow_random_calibration,
                                                 rest.get("feedback"))
    store = ResultsStore(db, retry_s=60)
    outcomes = {n: TargetOutcome(n, profile_of[n].name if n in profile_of else "?") for n in names}
    kept: dict = {}                      # --resume: (target, artifact sha256) -> its ok result, not measured again
    try:
        if rest.get("resume"):
            run_id, kept = _resume(store, rest["resume"], loaded, overrides)
        else:
            run_id = store.start_run(
                model_source=loaded.source, model_sha256=loaded.sha256, targets=names,
                options={"profiles": {n: p.name for n, p in profile_of.items()},
                         "data": None if data is None else str(getattr(data, "source", data)),
                         "eval_samples": len(held), "labels": held.y is not None, "measure": overrides,
                         "out": str(out), "passes": passes or [], "farm": mask_text(farm),
                         "artifact_store": artifact_store, "ops": bool(rest.get("ops"))})
        result = RunResult(run_id=run_id, db=str(store.path), out=str(out), targets=outcomes)
        for n in names:
            if n not in profile_of:
                o = outcomes[n]
                o.status = "failed"
                o.error = (f"no farm worker serves target {n!r} (waited {worker_wait_s:g} s); targets served now: "
                           f"{', '.join(sorted(served(r))) or 'none'}")
                store.set_target(run_id, n, status="failed", error=o.error, transport="farm")
                _say(progress, n, "failed", error=o.error)
        profiles = {p.name: p for p in profile_of.values()}
        _say(progress, "*", "compress", profiles=sorted(profiles))
        compress_error = None
        manifests = {}
        if profiles:
            try:
                manifests = build_manifests(loaded, list(profiles.values()), held, feedback,
                                            lambda msg: _say(progress, "*", "compress_step", text=msg),
                                            data=calib, out=out, passes=passes, cache_dir=cache_dir,
                                            allow_random_calibration=allow_random_calibration,
                                            metric=rest.get("metric"), quality=rest.get("quality"))
                for pname, m in manifests.items():
                    store.add_artifacts(run_id, pname, m.artifacts, folder=m.folder)
                result.manifests = manifests
                _say(progress, "*", "compressed", manifests=manifests)
            except EdgeCompressError as e:
                compress_error = f"{type(e).__name__}: {e}"
                if e.exit_code == 2:
                    store.finish_run(run_id, "failed", {"error": compress_error})
                    raise
                _say(progress, "*", "compress_failed", error=compress_error)
        sent, n_arts = _send_jobs(store, r, farm, run_id, profile_of, manifests, held, reference, loaded, overrides,
                                  artifact_store, outcomes, compress_error, progress,
                                  extra={"ops": bool(rest.get("ops"))}, kept=kept)
        _follow(store, r, run_id, sent, n_arts, outcomes, progress, target_timeout_s, worker_wait_s)
        ok = [o for o in outcomes.values() if o.status == "ok"]
        result.status = "ok" if len(ok) == len(outcomes) and not compress_error and not any(
            a.status != "ok" for m in manifests.values() for a in m.artifacts) else (
            "failed" if not any(o.status in ("ok", "partial") for o in outcomes.values()) else "partial")
        store.finish_run(run_id, result.status, {"succeeded": result.succeeded, "failed": result.failed,
                                                 "compress_error": compress_error, "farm": mask_text(farm)})
        if html:
            from ..report import compare, write_html

            path = out / f"report-{run_id}.html" if html is True else Path(html)
            result.report = str(write_html(compare([run_id], store), path))
        return result
    finally:
        store.close()
        try:
            r.close()
        except Exception:  # noqa: BLE001
            pass


def _send_jobs(store, r, farm, run_id, profile_of, manifests, held, reference, loaded, overrides, where,
               outcomes, compress_error, progress, extra=None, kept=None) -> tuple[dict, dict]:
    """Put the blobs in the artifact store and one job per target on its queue -> ({target: time limit},
    {target: number of artifacts}). ``extra``: more job fields (``ops``); ``kept``: the results of the
    run being resumed, by (target, sha256): those artifacts are listed in the job's ``keep``."""
    from ..device.execute import io_spec
    from ..profiles import Measure
    from .artifacts import ArtifactStore

    blobs = ArtifactStore(where, db=store)
    inputs = blobs.put(dump_arrays(held.samples(loaded)))         # by input name, dtypes kept
    ref = blobs.put(dump_arrays(reference))                         # by output name
    labels = blobs.put(dump_arrays({"y": held.y})) if held.y is not None else None
    app = make_app(farm)
    sent = {}
    n_arts = {}
    for name, profile in profile_of.items():
        o = outcomes[name]
        m = manifests.get(profile.name)
        arts = m.ok_artifacts() if m else []
        if not arts:
            o.status = "failed"
            o.error = (f"nothing to deploy: compress failed: {compress_error}" if compress_error else
                       f"nothing to deploy: every artifact for profile {profile.name} failed to build")
            store.set_target(run_id, name, status="failed", error=o.error, profile=profile.name, transport="farm")
            _say(progress, name, "failed", error=o.error)
            continue
        measure = Measure(**{**profile.measure.model_dump(), **overrides})
        job_arts = []
        for a in arts:
            sha = blobs.put(Path(m.folder) / a.path)
            job_arts.append({"sha256": sha, "format": a.format, "precision": a.precision, "layout": a.layout,
                             "size_bytes": a.size_bytes, "io": io_spec(m.model, a),
                             "host": {"status": a.status, "cosine": a.fidelity.cosine,
                                      "reasons": list(a.fidelity.reasons or [])}})
        limit = job_time_limit(measure, len(arts))
        payload = {"v": 1, "run_id": run_id, "target": name, "profile": profile.name, "artifacts": job_arts,
                   "inputs": inputs, "reference": ref, "labels": labels, "input_layout": loaded.layout,
                   "quality": profile.quality.model_dump(), **(extra or {}),
                   "keep": sorted({a["sha256"] for a in job_arts} & {sha for t, sha in (kept or {}) if t == name}),
                   "measure": measure.model_dump(), "store": where, "time_limit_s": limit,
                   "submitted_at": time.time(), "submitter": socket.gethostname()}
        store.set_target(run_id, name, status="queued", profile=profile.name, transport="farm")
        app.send_task(BENCH_TASK, args=[payload], queue=queue_for(name), retry=True,
                      retry_policy={"max_retries": 30, "interval_start": 0.5, "interval_step": 0.5,
                                    "interval_max": 2})
        o.status = "running"
        sent[name] = limit
        n_arts[name] = len(arts)
        _say(progress, name, "connect", transport=f"farm queue {queue_for(name)}")
    return sent, n_arts


def _follow(store, r, run_id, sent: dict, n_arts: dict, outcomes, progress, target_timeout_s, worker_wait_s) -> None:
    """Follow the jobs in the database until each target ends, fails to find a worker, or times out."""
    t0 = time.monotonic()
    seen_results: set = set()
    connected: set = set()
    taken: set = set()
    lost_note: set = set()
    unserved_since: dict = {}
    pending = set(sent)
    while pending:
        rows = {t["target"]: t for t in store.targets(run_id)}
        for res in store.results(run_id):
            if res["id"] in seen_results:
                continue
            seen_results.add(res["id"])
            o = outcomes.get(res["target"])
            if o is not None:
                o.results.append(res["result"])
                _say(progress, o.name, "result", artifact=res["artifact_key"], i=len(o.results), n=n_arts.get(o.name),
                     result=res["result"])
        try:
            have, jobs = served(r), running_jobs(r)
        except Exception:  # noqa: BLE001 - broker restarting: the database still tells the story
            have, jobs = None, {}
        now = time.monotonic()
        for name in sorted(pending):
            o, row = outcomes[name], rows.get(name) or {}
            if row.get("status") == "running" or name in jobs:
                taken.add(name)
            if row.get("device") and name not in connected:
                connected.add(name)
                o.device = row["device"]
                _say(progress, name, "connected", device=o.device)
            if row.get("status") in FINAL:
                o.status, o.error = row["status"], row.get("error")
                pending.discard(name)
                if o.status == "failed":
                    _say(progress, name, "failed", error=o.error)
                else:
                    _say(progress, name, "done", status=o.status, error=o.error,
                         ok=sum(x.ok for x in o.results), total=len(o.results))
                continue
            gone = have is not None and name not in have
            if gone:
                unserved_since.setdefault(name, now)
            else:
                unserved_since.pop(name, None)
            limit = target_timeout_s if target_timeout_s is not None else sent[name] + 60
            why = None
            if gone and name not in taken and now - unserved_since[name] > worker_wait_s:
                why = (f"no farm worker serves target {name!r} (waited {worker_wait_s:g} s); targets served now: "
                       f"{', '.join(sorted(have)) or 'none'}")
            elif gone and name in taken and name not in lost_note and now - unserved_since[name] > 2:
                lost_note.add(name)
                _say(progress, name, "waiting", text="its farm worker was lost mid-job; the job is delivered again "
                                                     "when a worker for this target returns")
            if why is None and now - t0 > limit:
                why = (f"timed out: not finished {limit:g} s after the job was sent"
                       + ("; its worker was lost mid-job and none came back" if name in lost_note else ""))
            if why:
                o.status, o.error = ("partial" if any(x.ok for x in o.results) else "failed"), why
                store.set_target(run_id, name, status=o.status, error=why)
                pending.discard(name)
                _say(progress, name, "failed", error=why)
        if pending:
            time.sleep(POLL_S)


def bench_on_farm(target: str, artifacts, *, farm: str, targets_file=None, db=None, measure: Optional[dict] = None,
                  artifact_store: str = "db", worker_wait_s: float = 10.0, target_timeout_s=None, progress=None,
                  delegate: Optional[str] = None, op_profiling: bool = False, ops: bool = False,
                  input_shapes: Optional[list] = None):
    """``bench ARTIFACT... --target NAME --farm URL``: one job measuring the given artifacts (the runner's
    own inputs, no fidelity) on a farm worker; stored as a run like ``bench`` -> ``BenchResults``.
    ``delegate`` (checked against the target's profile), ``op_profiling``, ``ops`` and ``input_shapes``
    as :func:`edgecompress.deploy.benchmark` takes them; they travel in the job."""
    from ..deploy.artifacts import expand_artifacts
    from ..deploy.bench import BenchResults, check_delegate, measure_with
    from ..models import parse_shapes
    from ..results import ResultsStore, mask_text
    from ..runs import TargetOutcome
    from .artifacts import ArtifactStore

    parse_shapes(input_shapes)                  # a bad --input-shape is exit 2 before anything is sent
    records = expand_artifacts(artifacts)
    if not records:
        raise UsageError(f"nothing to benchmark: {artifacts!r} holds no ok artifact")
    r = redis_client(farm)
    local = None
    if targets_file:
        from ..targets import load_target

        local = load_target(target, targets_file).profile
    have = {} if local else wait_for_workers(r, [target], worker_wait_s)
    if not local and target not in have:
        raise EdgeCompressError(f"no farm worker serves target {target!r} (waited {worker_wait_s:g} s); targets "
                                f"served now: {', '.join(sorted(served(r))) or 'none'}")
    profile = _profile(local, have.get(target) or {})
    m = measure_with(profile.measure, measure)
    check_delegate(profile, delegate)
    out = BenchResults()
    with ResultsStore(db, retry_s=60) as store:
        run_id = store.start_run(targets=[target], options={"verb": "benchmark", "measure": m.model_dump(),
                                                            "farm": mask_text(farm)})
        store.add_artifacts(run_id, profile.name, records)
        blobs = ArtifactStore(artifact_store, db=store)
        arts = [{"sha256": blobs.put(Path(a.path)), "format": a.format, "precision": a.precision,
                 "layout": a.layout or "NCHW", "size_bytes": a.size_bytes} for a in records]
        limit = job_time_limit(m, len(arts))
        payload = {"v": 1, "run_id": run_id, "target": target, "profile": profile.name, "artifacts": arts,
                   "measure": m.model_dump(), "store": artifact_store, "time_limit_s": limit,
                   "ops": bool(ops), "delegate": delegate, "op_profiling": bool(op_profiling),
                   "input_shapes": list(input_shapes or []),
                   "submitted_at": time.time(), "submitter": socket.gethostname()}
        store.set_target(run_id, target, status="queued", profile=profile.name, transport="farm")
        make_app(farm).send_task(BENCH_TASK, args=[payload], queue=queue_for(target), retry=True)
        outcomes = {target: TargetOutcome(target, profile.name)}
        _follow(store, r, run_id, {target: limit}, {target: len(arts)}, outcomes, progress, target_timeout_s,
                worker_wait_s)
        o = outcomes[target]
        store.finish_run(run_id, o.status, {"succeeded": [target] if o.status in ("ok", "partial") else [],
                                            "failed": [] if o.status == "ok" else [target]})
        out += [row["result"] for row in store.results(run_id)]
        if not out:
            from ..device.result import BenchmarkResult

            out.append(BenchmarkResult.failed(target, None, o.error or "no result"))
        out.run_id, out.db = run_id, str(store.path)
    r.close()
    return out
