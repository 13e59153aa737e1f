"""Fixtures for the fault-injection suite: fresh lab devices (real sshd) we may break, a link
through :class:`~edgecompress.lab.proxy.FaultProxy`, small real artifacts, and checks that look
at the device side (its processes and its files).

Every device here is our own (started and stopped by the test), so killing its sshd, filling
its disk or cutting its link never disturbs the shared ``lab_sshd`` other tests use.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .models import dense_onnx, digits_onnx, hang_onnx, oom_onnx, train_softmax

CANARY_DIR = Path("/tmp")


@pytest.fixture(scope="session")
def fault_artifacts(tmp_path_factory, mnist):
    """Real artifacts: a digits classifier trained here on real MNIST digits (softmax regression in
    numpy, < 1 s, ~90 % held-out accuracy; no torch, so the fault suite stays cheap) as ONNX, with
    20 held-out digits and the host onnxruntime's outputs for them; a 2 MB and a 0.25 MB dense
    model (upload payloads); a model that never returns; one that needs 2 GiB to run."""
    import onnxruntime as ort

    out = tmp_path_factory.mktemp("fault_artifacts")
    x_train, y_train, x_test, y_test = mnist
    w, b = train_softmax(x_train, y_train)
    digits = digits_onnx(out / "digits.fp32.onnx", w, b)
    x = np.ascontiguousarray(x_test[:20], dtype=np.float32)
    sess = ort.InferenceSession(str(digits), providers=["CPUExecutionProvider"])
    reference = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    accuracy = float((np.concatenate([sess.run(None, {"x": x_test[i:i + 1]})[0] for i in range(200)]).argmax(1)
                      == y_test[:200]).mean())
    assert accuracy > 0.8, accuracy
    return {"digits": digits, "x": x, "y": y_test[:20], "reference": reference, "accuracy": accuracy,
            "w": w, "b": b, "big": dense_onnx(out / "big.fp32.onnx", mb=2.0, seed=1),
            "small": dense_onnx(out / "small.fp32.onnx", mb=0.25, seed=2),
            "hang": hang_onnx(out / "hang.fp32.onnx"), "oom": oom_onnx(out / "oom.fp32.onnx", gb=2.0)}


@pytest.fixture
def make_device(tmp_path):
    """``make_device(name, **start_device_kwargs)`` -> a running LabDevice, stopped at teardown."""
    from edgecompress import lab

    reason = lab.why_not()
    if reason:
        pytest.skip(f"lab device unavailable: {reason}")
    made = []

    def make(name: str = "flt", **kw):
        dev = lab.start_device(name, tmp_path / f"state-{name}-{len(made)}", **kw)
        made.append(dev)
        return dev

    yield make
    for dev in made:
        lab.stop_device(dev)


def restart_sshd(dev) -> None:
    """Start the device's sshd again (same config, port and host key) after it was killed."""
    from edgecompress import lab

    prefix = ["ip", "netns", "exec", dev.netns["name"]] if dev.netns else []
    mark = dev.log_file.read_text(errors="replace").count("Server listening on")
    proc = subprocess.Popen([*prefix, lab.SSHD, "-D", "-E", str(dev.log_file), "-f", f"{dev.root}/sshd_config"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    dev.pid = proc.pid
    deadline = time.monotonic() + 10
    while dev.log_file.read_text(errors="replace").count("Server listening on") <= mark:
        assert proc.poll() is None and time.monotonic() < deadline, "sshd did not restart"
        time.sleep(0.05)


def kill_sshd(dev) -> list[int]:
    """SIGKILL every sshd process of this device — the listener and each connection's privileged
    and unprivileged sshd — leaving the commands those connections started to fend for themselves."""
    import psutil

    listener = psutil.Process(dev.pid)
    victims = [listener] + [p for p in listener.children(recursive=True) if p.name() == "sshd"]
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.waitpid(dev.pid, 0)
    except ChildProcessError:
        pass
    return [p.pid for p in victims]


def device_host_key(dev) -> str:
    """``keytype base64`` of the device's host key, from the known_hosts the lab wrote."""
    name = dev.host if dev.port == 22 else f"[{dev.host}]:{dev.port}"
    for line in Path(dev.known_hosts).read_text().splitlines():
        if line.split(" ", 1)[0] == name:
            return line.split(" ", 1)[1]
    raise AssertionError(f"{name} not in {dev.known_hosts}")


def proxied_target(dev, proxy, tmp_path: Path, **over):
    """The device's Target, reached through ``proxy`` (known_hosts names the proxy's port)."""
    from edgecompress.targets import Target

    host_key = device_host_key(dev)
    known = tmp_path / f"known_hosts_proxy_{proxy.port}"
    known.write_text(f"[127.0.0.1]:{proxy.port} {host_key}\n")
    d = dev.target_dict()
    d.update(host=f"{dev.user}@127.0.0.1:{proxy.port}", known_hosts=str(known), **over)
    return Target(**d)


def device_processes(dev, pattern: str = "") -> list[str]:
    """``pid args`` of the device user's processes that run from this device's folder, as seen ON the
    device (``ps`` over its own sshd, not from the host)."""
    from edgecompress.transports import open_transport

    with open_transport(dev.target) as t:
        res = t.run(["ps", "-u", dev.user, "-o", "pid=,args="])
    assert res.ok, res.describe()
    return [ln.strip() for ln in res.stdout.splitlines()
            if dev.root in ln and pattern in ln and "ps -u" not in ln and "__ec_pgid" not in ln]


def device_files(dev, sub: str = "") -> list[str]:
    root = Path(dev.workdir) / sub
    return sorted(str(p.relative_to(dev.workdir)) for p in root.rglob("*") if p.is_file())


def canaries(tag: str) -> list[Path]:
    """Canary files anywhere an injected ``touch`` could land: /tmp, the current folder, the homes of
    this user and of the lab's device user (the cwd of commands run over SSH)."""
    dirs = {CANARY_DIR, Path.cwd(), Path.home(), Path(os.path.expanduser("~ecdev"))}
    return sorted(p for d in dirs for p in d.glob(f"EC_CANARY_{tag}*"))


@pytest.fixture
def canary_tag(request):
    """A unique canary name; asserts at teardown that no file by that name was ever created."""
    tag = f"{os.getpid()}_{request.node.name[:20]}".replace("[", "_").replace("]", "_")
    for p in canaries(tag):
        p.unlink()
    yield tag
    found = canaries(tag)
    for p in found:
        p.unlink()
    assert not found, f"injected command ran: {found}"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpfs(path: Path, size: str, owner: str) -> Path:
    """Mount a size-limited tmpfs at ``path`` owned by ``owner`` (the device's disk)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    shutil.chown(path, owner, owner)
    return path


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def outcome(record_property):
    """``outcome(expected=..., observed=..., data_lost=...)``: what this fault case saw, kept in the
    JUnit XML for tools/bench/bench_faults.py's table."""

    def record(*, expected: str, observed: str, data_lost: str = "none") -> None:
        record_property("expected", expected)
        record_property("observed", observed)
        record_property("data_lost", data_lost)

    return record


def tiny_measure(**over):
    from edgecompress.profiles import Measure

    return Measure(**{"warmup": 1, "runs": 5, "min_seconds": 0, "threads": 1, "timeout_s": 60, **over})


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
