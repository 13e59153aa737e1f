"""Bad links between host and device: sshd killed mid-upload, a link cut mid-benchmark, a 20 mbit/s
link (tc tbf in a network namespace), a lossy high-latency link and a stalled one (the userspace
FaultProxy: this kernel has no netem). Every device is a real sshd; every number is checked
against the host's own onnxruntime on the same inputs, so a wrong number cannot pass."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgecompress.deploy import DeviceSession, file_sha256
from edgecompress.errors import BenchmarkError, TransportError
from edgecompress.lab.proxy import FaultProxy, LinkProfile
from edgecompress.manifest import sha256_file

from .conftest import (device_files, device_processes, kill_sshd, proxied_target, restart_sshd, tiny_measure,
                       wait_for)

pytestmark = pytest.mark.lab


def dense_reference(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_sshd_killed_mid_upload_is_retried_and_the_partial_file_never_used(make_device, fault_artifacts, tmp_path,
                                                                           outcome):
    """sshd (listener and session processes) is SIGKILLed while a 2 MB artifact is on the wire, and
    comes back 1 s later: the upload is retried on a new connection, the blob on the device has the
    right sha256, no partial file remains, and the model's outputs equal the host's."""
    dev = make_device("kup")
    big = fault_artifacts["big"]
    x = np.random.default_rng(3).standard_normal((1, 256)).astype(np.float32)
    killed = []

    def chaos():
        wait_for(lambda: any(f.endswith(".part") for f in device_files(dev, "tmp")), 20, "upload to start")
        killed.extend(kill_sshd(dev))
        time.sleep(1.0)
        restart_sshd(dev)

    with FaultProxy((dev.host, dev.port), LinkProfile(rate_bps=8e6)) as proxy:   # 2 MB take ~2 s
        target = proxied_target(dev, proxy, tmp_path)
        with DeviceSession(target, step_timeout_s=15) as s:
            th = threading.Thread(target=chaos, daemon=True)
            th.start()
            res = s.bench(big, measure=tiny_measure(), inputs=x)
            th.join(30)
            connections = s.transport.connections
    assert killed, "sshd was never killed: the upload finished first"
    assert res.status == "ok", res.error
    np.testing.assert_allclose(res.outputs, dense_reference(big, x), rtol=1e-5, atol=1e-6)
    assert res.runs >= 5 and res.latency_ms.p50 > 0
    blob = dev.workdir + f"/blobs/{file_sha256(big)}.onnx"
    assert sha256_file(blob) == file_sha256(big)
    assert device_files(dev, "tmp") == [] and device_files(dev, "io") == []
    assert connections >= 2
    outcome(expected="upload retried after reconnect; verified blob; no partial file",
            observed=f"ok after {connections} connections; blob sha256 verified; tmp/ empty")


def test_link_cut_mid_benchmark_measures_again_and_leaves_nothing_running(make_device, fault_artifacts, tmp_path,
                                                                          outcome):
    """The proxy closes every connection while the runner is measuring: the session reconnects, kills
    the runner the lost connection left behind, takes the device lock again and measures the artifact
    again from the start; outputs equal the host's; no runner is left on the device."""
    dev = make_device("kcut")
    art = fault_artifacts["digits"]
    cuts = []

    def chaos():
        wait_for(lambda: device_processes(dev, "bench --model"), 30, "the runner to start", interval=0.1)
        time.sleep(0.8)
        cuts.append(proxy.cut())

    with FaultProxy((dev.host, dev.port)) as proxy:
        target = proxied_target(dev, proxy, tmp_path)
        with DeviceSession(target, step_timeout_s=15) as s:
            th = threading.Thread(target=chaos, daemon=True)
            th.start()
            res = s.bench(art, measure=tiny_measure(min_seconds=2.5), inputs=fault_artifacts["x"])
            th.join(30)
            lock_alive = s._lock is not None and s._lock.alive()
    assert cuts and cuts[0] >= 1
    assert res.status == "ok", res.error
    assert any("connection was lost 1 time" in n for n in res.notes), res.notes
    np.testing.assert_allclose(res.outputs, fault_artifacts["reference"], rtol=1e-4, atol=1e-5)
    assert res.latency_ms.mean * res.runs / 1000 >= 2.5 * 0.95   # one whole measurement, not pieces
    assert lock_alive
    assert device_processes(dev, "bench --model") == []
    outcome(expected="re-measured on a new connection, orphan runner killed",
            observed=f"ok, {res.runs} runs, outputs match host; 0 runner processes left")


def test_link_dead_after_cut_is_a_clear_failure_not_a_number(make_device, fault_artifacts, tmp_path, outcome):
    """The link is cut mid-benchmark and then refuses every new connection: the artifact is marked
    failed with the reason and no latency is reported."""
    dev = make_device("kdead")

    def chaos():
        wait_for(lambda: device_processes(dev, "bench --model"), 30, "the runner to start", interval=0.1)
        proxy.refuse = True
        proxy.cut()

    with FaultProxy((dev.host, dev.port)) as proxy:
        target = proxied_target(dev, proxy, tmp_path, connect_timeout_s=2)
        with DeviceSession(target, step_timeout_s=10) as s:
            threading.Thread(target=chaos, daemon=True).start()
            t0 = time.monotonic()
            res = s.bench(fault_artifacts["digits"], measure=tiny_measure(min_seconds=3))
            took = time.monotonic() - t0
    assert res.status == "failed" and res.latency_ms is None and res.runs == 0
    assert "lost" in res.error and "cannot connect" in res.error, res.error
    assert took < 30
    outcome(expected="clear failure, no number", observed=f"failed in {took:.0f} s: {res.error[:60]}...")


def test_20mbit_link_in_a_namespace_completes_at_the_link_rate(make_device, fault_artifacts, outcome):
    """A device in its own network namespace behind tc tbf 20 mbit/s: a 2 MB upload takes at least the
    time the rate allows, and the benchmark completes with the right outputs."""
    from edgecompress.lab.limits import netns_support

    if netns_support():
        pytest.skip(f"network namespaces unavailable: {netns_support()}")
    dev = make_device("k20m", netns=True, rate="20mbit")
    big = fault_artifacts["big"]
    x = np.ones((1, 256), np.float32)
    with DeviceSession(dev.target) as s:
        t0 = time.perf_counter()
        stats = s.sync([big])
        upload_s = time.perf_counter() - t0
        res = s.bench(big, measure=tiny_measure(), inputs=x)
    mbit_s = stats["bytes_sent"] * 8 / upload_s / 1e6
    assert stats["bytes_sent"] == big.stat().st_size
    assert mbit_s < 21, f"{mbit_s:.1f} mbit/s through a 20 mbit/s link"
    assert res.status == "ok", res.error
    np.testing.assert_allclose(res.outputs, dense_reference(big, x), rtol=1e-5, atol=1e-6)
    outcome(expected="completes; upload at <= 20 mbit/s", observed=f"ok; upload {upload_s:.2f} s = {mbit_s:.1f} mbit/s")


def test_lossy_high_latency_link_completes(make_device, fault_artifacts, tmp_path, outcome):
    """60 ms ± 20 ms each way, 5 % of chunks stalled 300 ms (a lost segment's retransmission):
    session, upload and benchmark complete, outputs equal the host's."""
    dev = make_device("klossy")
    link = LinkProfile(delay_ms=60, jitter_ms=20, loss=0.05, stall_ms=300, seed=7)
    with FaultProxy((dev.host, dev.port), link) as proxy:
        target = proxied_target(dev, proxy, tmp_path)
        t0 = time.monotonic()
        with DeviceSession(target) as s:
            res = s.bench(fault_artifacts["digits"], measure=tiny_measure(), inputs=fault_artifacts["x"])
        took = time.monotonic() - t0
        stalls = proxy.stats.stalls
    assert res.status == "ok", res.error
    np.testing.assert_allclose(res.outputs, fault_artifacts["reference"], rtol=1e-4, atol=1e-5)
    assert stalls >= 1
    outcome(expected="completes", observed=f"ok in {took:.1f} s with {stalls} stalls")


def test_time_outs_are_per_step_and_named(make_device, fault_artifacts, tmp_path, outcome):
    """A link that goes silent: a command step times out naming the step ('facts'), an SFTP transfer
    fails after io_timeout_s without progress, saying so; a runner that never returns times out
    naming its step ('bench/first') — each within its own limit, not a global one."""
    from edgecompress.transports.ssh import SSHTransport, resolve

    dev = make_device("kstall")
    with FaultProxy((dev.host, dev.port)) as proxy:
        target = proxied_target(dev, proxy, tmp_path, connect_timeout_s=2)
        with DeviceSession(target, step_timeout_s=1.5) as s:
            res = s.bench(fault_artifacts["hang"], measure=tiny_measure(timeout_s=2))
            assert res.status == "failed"
            assert "step 'bench/first' timed out after 2 s" in res.error, res.error
            proxy.link.delay_ms = 5000                      # the link goes silent
            t0 = time.monotonic()
            with pytest.raises((BenchmarkError, TransportError), match=r"step 'facts' failed: .*(timed out|Timeout)"):
                s.facts()
            assert time.monotonic() - t0 < 8
        t = SSHTransport(resolve(target), connect_timeout_s=2, io_timeout_s=1.5)
        proxy.link.delay_ms = 0
        t.sftp()                                            # connected, SFTP session open
        proxy.link.delay_ms = 5000
        t0 = time.monotonic()
        with pytest.raises(TransportError, match=r"no progress for 2 s \(stalled link\)"):
            t.put(fault_artifacts["big"], f"{dev.workdir}/stalled.bin")
        put_s = time.monotonic() - t0
        t.close()
    assert put_s < 10
    outcome(expected="each step times out on its own limit, named",
            observed=f"bench/first after 2 s, facts after 1.5 s, upload stalled after {put_s:.1f} s")


def test_a_partial_or_corrupt_upload_is_never_installed(make_device, fault_artifacts, tmp_path, outcome):
    """What the install step does with a temporary file whose sha256 is not the artifact's (a
    truncated upload): it deletes it and refuses; the blob is not created, so nothing can run it."""
    dev = make_device("kpart")
    big = fault_artifacts["big"]
    truncated = tmp_path / "truncated.part"
    truncated.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    with DeviceSession(dev.target) as s:
        part = f"{s.workdir}/tmp/{file_sha256(big)}.onnx.test.part"
        final = f"{s.workdir}/blobs/{file_sha256(big)}.onnx"
        s.transport.put(truncated, part)
        with pytest.raises(BenchmarkError, match=r"(?s)step .verify upload. failed: .*exit status 1: bad .*expected .*partial or corrupt; removed"):
            s.step("verify upload", s.agent.files_argv("install", part, file_sha256(big), final))
    assert device_files(dev, "tmp") == []
    assert not any(f.endswith(f"{file_sha256(big)}.onnx") for f in device_files(dev, "blobs"))
    outcome(expected="partial upload refused and deleted", observed="hash mismatch refused; no blob, no .part left")
