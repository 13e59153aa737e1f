"""A team's device farm on Celery (Redis broker) and the shared results store.

Roles (README "Team device farm"): the **database** (PostgreSQL, :mod:`edgecompress.results`),
the **broker** (Redis, with its append-only file), one **farm worker** on each machine that can
reach some devices (:mod:`.worker`), and **submitters** (``run --farm``, :mod:`.submit`).

Protocol, written down (TVM-RPC style):

- Queue ``edgecompress.t.<target>`` per target (:func:`.app.queue_for`); a worker consumes only
  the queues of the targets in its own inventory, with one Celery worker process per target
  (solo pool, prefetch 1): one job per device at a time, and the device lock still guards it.
- Task ``edgecompress.bench`` with one argument, the job payload (:class:`.jobs.Job`, JSON):
  run id, target, profile name, the artifacts by sha256, the sha256 of the held-out inputs, the
  reference outputs and labels, the measure settings, the artifact store (``db`` or a folder
  URL) and the job's time limit. A worker validates it (schema, sha256 format, target is its
  own) before anything runs; a bad or foreign job is rejected (dropped, logged) untouched.
- Messages are acknowledged late (``acks_late``, ``task_reject_on_worker_lost``): a job whose
  worker dies is delivered again (after the broker's visibility time-out) to a worker of that
  target. Each result has a key (run × target × artifact, :func:`~edgecompress.results.result_key`),
  stored at most once; a job delivered again measures only what is not stored yet.
- Workers write results straight to the shared database as each one arrives (retried while the
  database is unreachable). The submitter follows the run in the database (live progress) and
  ends with the usual comparison and report.
- Liveness: each worker writes ``edgecompress:farm:worker:<node>`` (JSON: host, targets with
  their profiles, pids, beat time; expires after :data:`.app.BEAT_TTL_S`) and, while a job runs,
  ``edgecompress:farm:job:<target>`` (run id, since). ``farm status`` reads these and the queue lengths.
"""
