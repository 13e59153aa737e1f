"""Real servers for the team set-up tests: one PostgreSQL and one Redis per test session, on loopback."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from services import Redis, why_not_redis

def _report_fixtures():
    """tests/report/conftest.py (real measured results and a run writer), shared here."""
    path = Path(__file__).resolve().parents[1] / "report" / "conftest.py"
    spec = importlib.util.spec_from_file_location("report_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_rf = _report_fixtures()
measured, store_run = _rf.measured, _rf.store_run


@pytest.fixture(scope="session")
def redis_session():
    reason = why_not_redis()
    if reason:
        pytest.skip(reason)
    r = Redis().start()
    yield r
    r.destroy()


@pytest.fixture
def redis_server(redis_session):
    """The session's Redis, emptied first: no job left queued by an earlier test (e.g. one whose worker
    was killed on purpose) reaches this one."""
    from edgecompress.farm.app import redis_client

    c = redis_client(redis_session.url)
    c.flushall()
    c.close()
    return redis_session


# -- the farm: lab devices, farm workers --------------------------------------------------------------
HERE = Path(__file__).resolve().parent
TINY = HERE.parent / "runs" / "tiny-x86.yaml"
DIGITS = HERE.parents[1] / "edgecompress" / "examples" / "digits.py"


@pytest.fixture(scope="session")
def farm_devices(tmp_path_factory):
    """Two lab devices (real sshd on loopback, each its own user-visible device) -> [LabDevice, LabDevice]."""
    from edgecompress import lab

    reason = lab.why_not()
    if reason:
        pytest.skip(f"lab device unavailable: {reason}")
    state = tmp_path_factory.mktemp("farmlab")
    devs = []
    try:
        for name in ("farm-a", "farm-b"):
            devs.append(lab.start_device(name, state))
        yield devs
    finally:
        for d in devs:
            lab.stop_device(d)


@pytest.fixture(scope="session")
def farm_targets(farm_devices, tmp_path_factory):
    """An inventory with the two lab devices (tiny-x86 profile) and a third name no worker serves."""
    import yaml

    ts = [dict(d.target_dict(), profile=str(TINY)) for d in farm_devices]
    ghost = dict(ts[0], name="farm-ghost")
    path = tmp_path_factory.mktemp("farmtargets") / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": ts + [ghost]}, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def farm_model(torch_digits, tmp_path_factory):
    """(MODEL spec, weights path) of the session's trained digits CNN."""
    import torch

    weights = tmp_path_factory.mktemp("farmmodel") / "digits.weights.pt"
    torch.save(torch_digits[0].state_dict(), weights)
    return f"{DIGITS}:factory", weights


@pytest.fixture(scope="session")
def farm_data(mnist, tmp_path_factory):
    """--data: 120 real MNIST digits with labels (60 calibrate, 60 held out)."""
    import numpy as np

    path = tmp_path_factory.mktemp("farmdata") / "digits.npz"
    np.savez(path, x=mnist[2][:120], y=mnist[3][:120])
    return path


@pytest.fixture(scope="module", autouse=True)
def _compress_cache(tmp_path_factory):
    import os

    old = os.environ.get("EDGECOMPRESS_CACHE_DIR")
    os.environ["EDGECOMPRESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("farm-compress-cache"))
    yield
    if old is None:
        os.environ.pop("EDGECOMPRESS_CACHE_DIR", None)
    else:
        os.environ["EDGECOMPRESS_CACHE_DIR"] = old


class FarmWorker:
    """One ``edgecompress farm worker`` process (its own log file)."""

    def __init__(self, targets_file, names, broker, db, log_dir, name, visibility_s=40.0, cache=None):
        import os
        import subprocess
        import sys

        self.log = Path(log_dir) / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
        if cache:
            env["XDG_CACHE_HOME"] = str(cache)
        argv = [sys.executable, "-m", "edgecompress", "farm", "worker", "--targets", str(targets_file),
                "--broker", broker, "--db", db, "--name", name, "--visibility-timeout", str(visibility_s)]
        for n in names:
            argv += ["--target", n]
        self.proc = subprocess.Popen(argv, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.name, self.names, self.broker = name, names, broker

    def wait_ready(self, timeout=60.0):
        """Until its beat is in Redis and each target's Celery worker consumes its queue."""
        import time

        from edgecompress.farm.app import redis_client, served

        r = redis_client(self.broker)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if all(served(r).get(n, {}).get("node") == self.name for n in self.names) and \
                    self.log.read_text(errors="replace").count("ready: consuming queue") >= len(self.names):
                return self
            time.sleep(0.2)
        raise AssertionError(f"farm worker {self.name} not ready: {self.log.read_text()[-3000:]}")

    def kill(self):
        import os
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except Exception:  # noqa: BLE001
                self.kill()


@pytest.fixture
def farm_worker(tmp_path):
    """farm_worker(targets_file, [names], broker, db, name=...) -> a started FarmWorker (stopped after)."""
    made = []

    def start(targets_file, names, broker, db, name, **kw):
        w = FarmWorker(targets_file, names, broker, db, tmp_path, name, **kw)
        made.append(w)
        return w

    yield start
    for w in made:
        w.stop()


class Submitter:
    """``edgecompress run MODEL --farm ...`` in its own process (stdout JSON, stderr progress in files)."""

    def __init__(self, model, data, targets, broker, db, workdir, name, *extra, targets_file=None):
        import os
        import subprocess
        import sys

        spec, weights = model
        self.out, self.err = Path(workdir) / f"{name}.json", Path(workdir) / f"{name}.err"
        argv = [sys.executable, "-m", "edgecompress", "run", spec, "--weights", str(weights), "--data", str(data),
                "--eval-samples", "60", "--farm", broker, "--db", db, "--out", str(Path(workdir) / name),
                "--json", *[str(a) for a in extra]]
        for t in targets:
            argv += ["--target", t]
        if targets_file:
            argv += ["--targets", str(targets_file)]
        env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]))
        self.proc = subprocess.Popen(argv, stdout=open(self.out, "wb"), stderr=open(self.err, "wb"), env=env)

    def wait(self, timeout=300):
        import json

        rc = self.proc.wait(timeout)
        text = self.out.read_text()
        assert text.strip(), f"exit {rc}, no JSON; stderr: {self.err.read_text()[-3000:]}"
        return rc, json.loads(text)


@pytest.fixture
def submit(tmp_path):
    made = []

    def start(*a, **kw):
        s = Submitter(*a, tmp_path, f"submit{len(made)}", *kw.pop("extra", ()), **kw)
        made.append(s)
        return s

    yield start
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()


def wait_for(cond, timeout=120.0, what="condition", every=0.2):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
