"""The emulated aarch64 lab device: a Debian arm64 root under qemu-user-static, its own sshd
chrooted in a network namespace, reached over real SSH; the runner there is aarch64 Python
with the aarch64 wheels of numpy, onnxruntime and ai-edge-litert.

The root is built once per machine (~10 min, cached under ~/.cache/edgecompress/lab); a test
that needs it waits for that build (a second process building waits on its lock).
"""
from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from edgecompress import lab
from edgecompress.deploy import DeviceSession
from edgecompress.lab import aarch64, rootfs
from edgecompress.profiles import Measure

from cli_helpers import cli

pytestmark = pytest.mark.lab
N = 40          # held-out digits sent to the emulated device (each inference is ~20x slower there)


def _reason():
    return aarch64.why_not()


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    """The running emulated device (its root built first if this machine has none yet)."""
    reason = _reason()
    if reason:
        pytest.skip(f"emulated aarch64 device unavailable: {reason}")
    state = tmp_path_factory.mktemp("arm-lab")
    dev = aarch64.start_device("lab-arm-test", state, progress=print)
    lab.write_targets([dev], state / "targets.yaml")
    yield dev
    lab.stop_device(dev)


def _host_onnx(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Each output of the ONNX model for every sample, on this x86 host (onnxruntime)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    per_sample = [sess.run(None, {name: xi[None]}) for xi in x]
    return [np.concatenate([s[k] for s in per_sample]) for k in range(len(per_sample[0]))]


def _host_tflite(path: Path, x_nchw: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Each output (dequantized) of the INT8 TFLite model on this host (LiteRT), and each output's scale."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, outs = it.get_input_details()[0], it.get_output_details()
    s_in, z_in = inp["quantization"]
    results = [[] for _ in outs]
    for xi in np.transpose(x_nchw, (0, 2, 3, 1)):
        q = np.clip(np.round(xi[None] / s_in + z_in), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q)
        it.invoke()
        for k, o in enumerate(outs):
            s, z = o["quantization"]
            results[k].append((it.get_tensor(o["index"]).astype(np.float32) - z) * s)
    return [np.concatenate(r) for r in results], [o["quantization"][0] for o in outs]


def _per_output(device_out) -> list[np.ndarray]:
    if isinstance(device_out, dict):
        return [np.asarray(v) for v in device_out.values()]
    if isinstance(device_out, (list, tuple)):
        return [np.asarray(v) for v in device_out]
    return [np.asarray(device_out)]


@pytest.mark.slow
def test_onnx_and_tflite_run_on_emulated_aarch64_with_the_hosts_outputs(arm, digits_artifacts):
    x, y = digits_artifacts["x"][:N], digits_artifacts["y"][:N]
    m = Measure(runs=3, warmup=1, min_seconds=0, threads=1, timeout_s=600)
    with DeviceSession(arm.target) as s:
        facts = s.facts()
        uname = s.transport.run(["uname", "-m"]).stdout.strip()
        onnx = s.bench(digits_artifacts["onnx"], measure=m, inputs=x)
        tfl = s.bench(digits_artifacts["tflite"], measure=m, inputs=x)
    # the device really is aarch64 binaries: its shell, its Python, its wheels at the host's pins
    assert uname == "aarch64" and facts["arch"] == "aarch64" and facts["emulated"] is True
    assert "are the host's" in facts["resources_note"] and facts["cpu_count"] == os.cpu_count()
    assert facts["runtimes"]["onnxruntime"] == version("onnxruntime")
    assert facts["runtimes"]["ai-edge-litert"] == version("ai-edge-litert")
    assert facts["numpy"] == version("numpy")
    for res in (onnx, tfl):
        assert res.status == "ok", res.error
        assert res.emulated is True and res.device.arch == "aarch64" and res.device.get("emulated") is True
        assert res.energy.method == "unavailable" and res.energy.get("reason") == "emulated"
        assert res.energy.mj_per_inference is None
        assert res.latency_ms.p50 > 0 and res.runs >= 3
        doc = res.to_dict()
        assert doc["emulated"] is True and doc["energy"]["reason"] == "emulated"

    # ONNX FP32: every output equals the host's (onnxruntime x86) to float rounding
    host = _host_onnx(digits_artifacts["onnx"], x)
    dev = _per_output(onnx.outputs)
    assert len(dev) == len(host) == 1
    for d, h in zip(dev, host):
        assert d.shape == h.shape == (N, 10)
        np.testing.assert_allclose(d, h, rtol=1e-4, atol=1e-4)
        assert (d.argmax(1) == h.argmax(1)).all()
    assert (dev[0].argmax(1) == y).mean() >= 0.9

    # TFLite full INT8: every output within one quantization step of the host's (LiteRT x86)
    host, scales = _host_tflite(digits_artifacts["tflite"], x)
    dev = _per_output(tfl.outputs)
    assert len(dev) == len(host) == 1
    for d, h, scale in zip(dev, host, scales):
        assert d.shape == h.shape == (N, 10)
        assert np.abs(d - h).max() <= scale * 1.01, f"max diff {np.abs(d - h).max()} > one step {scale}"
        assert (d.argmax(1) == h.argmax(1)).mean() >= 0.95
    assert (dev[0].argmax(1) == y).mean() >= 0.85


@pytest.mark.slow
def test_run_local_and_emulated_aarch64_end_to_end(arm, digits_npz, torch_digits, tmp_path):
    import torch

    from edgecompress.report import compare, render_markdown
    from edgecompress.report.html import render_html
    from edgecompress.results import ResultsStore

    weights = tmp_path / "digits.pt"
    torch.save(torch_digits[0].state_dict(), weights)
    db = tmp_path / "results.db"
    example = Path(__file__).resolve().parents[2] / "edgecompress" / "examples" / "digits.py"
    rc, out, err = cli("run", f"{example}:factory", "--weights", weights, "--data", digits_npz,
                       "--out", tmp_path / "out", "--db", db, "--target", "local", "--target", arm.name,
                       "--targets", arm.targets_file, "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                       "--eval-samples", N, "--html", tmp_path / "report.html")
    assert rc == 0, out + err
    with ResultsStore(db) as store:
        comp = compare(db=store, fail_on=["p50:+1%"], baseline=store.latest_run().id)
        targets = {t["target"]: t for t in comp.targets}
        html = render_html(comp)
    assert targets[arm.name]["device"]["arch"] == "aarch64" and targets[arm.name]["device"]["emulated"] is True
    local = {r.artifact: r for r in comp.rows if r.target == "local"}
    armr = {r.artifact: r for r in comp.rows if r.target == arm.name}
    assert armr and all(r.ok and r.emulated for r in armr.values())
    assert not any(r.emulated for r in local.values())
    # fidelity on the emulated device is real: per artifact the same quality as on this host
    for key in set(armr) & set(local):
        assert armr[key].fidelity_samples == local[key].fidelity_samples == N
        assert abs(armr[key].quality - local[key].quality) <= 1.0 / N + 1e-9, key
    assert all(r.quality >= 0.85 for r in armr.values())
    # never an energy figure, never Pareto-ranked, never regression-checked
    assert all(r.energy_mj is None for r in armr.values()) and not any(r.pareto for r in armr.values())
    assert comp.checks and not any(c.target == arm.name for c in comp.checks)
    assert any(arm.name in n and "not checked" in n for n in comp.notes)
    md = render_markdown(comp)
    arm_lines = [ln for ln in md.splitlines() if ln.startswith(f"| {arm.name} ")]
    assert arm_lines and all(" emu |" in ln and "(emulated)" in ln for ln in arm_lines)
    assert not any(" emu |" in ln for ln in md.splitlines() if ln.startswith("| local "))
    assert "emulated CPU" in html and (tmp_path / "report.html").exists()


def test_binfmt_entry_is_shared_and_only_what_the_lab_added_is_removed():
    """Two lab users of qemu-aarch64 in binfmt_misc: the entry stays until the last one leaves,
    and then exactly the state before (entry and mount) is back."""
    reason = _reason()
    if reason:
        pytest.skip(reason)

    def snapshot():
        mounted = (rootfs.BINFMT_DIR / "register").exists()
        return mounted, sorted(p.name for p in rootfs.BINFMT_DIR.iterdir()) if mounted else []

    before = snapshot()
    rootfs.acquire_binfmt("test-a")
    rootfs.acquire_binfmt("test-b")
    try:
        handler = rootfs._aarch64_handler()
        assert handler is not None
        assert {"test-a", "test-b"} <= set(rootfs.binfmt_record()["users"])
        root = rootfs.default_root()
        if rootfs.stamp(root):   # an aarch64 binary runs on this x86 host
            out = subprocess.run(["chroot", str(root), "/usr/bin/uname", "-m"], capture_output=True, text=True)
            assert out.stdout.strip() == "aarch64"
        rootfs.release_binfmt("test-a")
        assert rootfs._aarch64_handler() == handler      # still used by test-b
    finally:
        rootfs.release_binfmt("test-a")
        rootfs.release_binfmt("test-b")
    others = {u for u, p in rootfs.binfmt_record()["users"].items() if rootfs._alive(p)}
    if not others:    # no other lab user (a running device, a build) keeps it
        assert snapshot() == before


def test_lab_up_arch_aarch64_status_and_down(tmp_path):
    """`lab up --arch aarch64` starts lab-arm64 into the targets file; `lab status` shows it as an
    emulated aarch64 device; `lab down` stops it and leaves nothing of it behind."""
    reason = _reason()
    if reason:
        pytest.skip(reason)
    if rootfs.stamp(rootfs.default_root()) is None:
        pytest.skip("no aarch64 root built yet (the slow tests above build it)")
    state = tmp_path / "state"
    try:
        rc, out, err = cli("lab", "--state", state, "up", "--arch", "aarch64")
        assert rc == 0, out + err
        assert "lab-arm64: running at ecdev@10.213." in out and "(aarch64, emulated)" in out
        rc, out, _ = cli("lab", "--state", state, "status")
        line = next(ln for ln in out.splitlines() if ln.startswith("lab-arm64"))
        assert "yes" in line and "aarch64 (emulated)" in line
        from edgecompress.targets import load_targets

        t = load_targets(state / "targets.yaml")["lab-arm64"]
        assert t.emulated is True and t.python == rootfs.DEVICE_PYTHON
        dev = next(d for d in lab._load_state(state) if d.name == "lab-arm64")
        rc, out, err = cli("targets", "check", "lab-arm64", "--targets", state / "targets.yaml")
        assert rc == 0, out + err
        assert "aarch64" in out
    finally:
        rc, out, _ = cli("lab", "--state", state, "down")
    assert rc == 0 and "lab-arm64" in out
    assert not dev.alive() and not Path(dev.root).exists()
    assert dev.netns["name"] not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not (state / "targets.yaml").exists()
    assert os.path.isdir(dev.rootfs)       # the cached root stays for the next `lab up`
