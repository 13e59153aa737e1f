"""``edgecompress lab up|down|status``: virtual devices (real sshd) for trying without hardware."""
from __future__ import annotations

from .common import print_json, table


def add(sub) -> None:
    p = sub.add_parser("lab", help="start/stop virtual devices (sshd, namespace, CPU/memory/bandwidth limits)")
    p.add_argument("--state", metavar="DIR", help="state folder (default $EDGECOMPRESS_LAB_DIR or "
                                                 "~/.local/state/edgecompress/lab)")
    psub = p.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    up = psub.add_parser("up", help="start lab-x86 (loopback) and lab-slow (namespace + limits, when possible)")
    up.add_argument("--no-slow", action="store_true", help="only the loopback device")
    up.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"],
                    help="aarch64: the emulated lab-arm64 (qemu; a Debian arm64 root built once, ~10 min, "
                         "cached under ~/.cache/edgecompress/lab) instead of the x86 devices")
    up.add_argument("--cpu-quota", type=float, default=0.25, help="lab-slow CPU share of one core (0.25)")
    up.add_argument("--memory-mb", type=int, default=512, help="lab-slow memory limit (512)")
    up.add_argument("--rate", default="20mbit", help="lab-slow bandwidth, tc tbf rate (20mbit)")
    up.set_defaults(func=_up)
    down = psub.add_parser("down", help="stop every lab device and remove what the lab made")
    down.set_defaults(func=_down)
    st = psub.add_parser("status", help="lab devices and whether they run")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)


def _limits(lim: dict) -> str:
    parts = []
    if lim.get("cpu_quota"):
        parts.append(f"{lim['cpu_quota']:g} CPU (cgroup {lim.get('cgroup')})")
    if lim.get("memory_mb"):
        parts.append(f"{lim['memory_mb']} MB")
    if lim.get("rate"):
        parts.append(lim["rate"])
    return ", ".join(parts)


def _up(args) -> int:
    from .. import lab

    reason = lab.why_not()
    if not reason and args.arch == "aarch64":
        from ..lab import aarch64

        reason = aarch64.why_not()
    if reason:
        raise lab.LabError(f"{reason}; the built-in 'local' target works without the lab")
    path = lab.up(args.state, slow=False if args.no_slow else None, cpu_quota=args.cpu_quota,
                  memory_mb=args.memory_mb, rate=args.rate, arch=args.arch,
                  progress=lambda msg: print(f"lab: {msg}", flush=True))
    for d in lab.status(args.state):
        print(f"{d['name']}: {'running' if d['running'] else 'STOPPED'} at {d['host']}"
              + (f" ({d['arch']}, emulated)" if d.get("emulated") else "")
              + (f" (netns {d['netns']}" + (f"; {_limits(d['limits'])}" if d["limits"] else "") + ")"
                 if d["netns"] else ""))
    name = "lab-arm64" if args.arch == "aarch64" else "lab-x86"
    print(f"targets file: {path}\ntry: edgecompress targets check {name} --targets {path}")
    return 0


def _down(args) -> int:
    from .. import lab

    names = lab.down(args.state)
    print(f"stopped: {', '.join(names) or '(nothing was running)'}")
    return 0


def _status(args) -> int:
    from .. import lab

    devices = lab.status(args.state)
    if args.json:
        print_json(devices)
        return 0
    if not devices:
        print("no lab devices (start them with: edgecompress lab up)")
        return 0
    print(table(["name", "running", "arch", "host", "netns", "limits"],
                [(d["name"], "yes" if d["running"] else "no",
                  d.get("arch", "x86_64") + (" (emulated)" if d.get("emulated") else ""), d["host"],
                  d["netns"] or "", _limits(d["limits"] or {})) for d in devices]))
    return 0
