"""The emulated aarch64 lab device: a Debian arm64 root (:mod:`.rootfs`) whose own sshd runs
chrooted, under qemu-user-static, in a network namespace — an ordinary SSH target.

What a start does (``start_device``), all undone by ``stop``:

- registers qemu-aarch64 in binfmt_misc when no handler exists (shared, reference-counted by
  :func:`.rootfs.acquire_binfmt`: the last lab user removes only what the lab added);
- makes a namespace with a veth pair (10.213.N.1 host, .2 device; :class:`.limits.Netns`);
- makes the device folder ``ROOT/var/lib/edgecompress-lab/<name>-<hex>`` (host key, sshd
  config, authorized key, log, the workdir);
- runs ``ip netns exec NS unshare --mount --propagation private sh -c 'mount proc and /dev
  into ROOT; exec chroot ROOT /usr/sbin/sshd -D'`` — the mounts live in the device's own mount
  namespace and go when its last process ends. Its ``/proc/cpuinfo`` is an ARMv8 one (bind
  mounted from the device folder): under qemu-user it would be the host's x86 file, on which
  onnxruntime's cpuinfo library crashes (SIGSEGV at import). The host's ``/sys`` is NOT mounted:
  with the x86 CPU topology there, LiteRT's INT8 kernels computed wrong outputs under qemu
  (2.5 % instead of 92.5 % digits right, measured here); without it they match the host's.

Its target (written into the lab's targets file like the x86 devices) says ``emulated: true``:
results measured there are marked emulated (timings mean nothing for a real board; outputs do).
"""
from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import LabDevice
from . import rootfs as rootfs_mod
from .limits import Netns, netns_support

log = logging.getLogger(__name__)

NAME = "lab-arm64"
PROFILE = "raspberry-pi-4"
INSIDE = "/var/lib/edgecompress-lab"     # device folders, inside the root


def why_not() -> Optional[str]:
    from . import why_not as lab_why_not

    return lab_why_not() or rootfs_mod.why_not() or netns_support()


def _inside_uid(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == user:
            return int(parts[2]), int(parts[3])
    from . import LabError

    raise LabError(f"user {user} not found in {root}/etc/passwd (rebuild the root: remove {root})")


@dataclass
class Aarch64Device(LabDevice):
    """A lab device whose sshd and runner are aarch64 binaries (emulated)."""

    arch: str = "aarch64"
    rootfs: str = ""                    # the cached root it runs in (host path)
    emulated: bool = True
    binfmt_user: str = ""

    @property
    def inside_root(self) -> str:
        """The device folder as seen inside the chroot."""
        return "/" + str(Path(self.root).relative_to(self.rootfs))

    @property
    def workdir(self) -> str:
        return f"{self.inside_root}/work"

    def target_dict(self) -> dict:
        return {**super().target_dict(), "emulated": True}

    def cleanup(self) -> None:
        """After sshd is stopped: the device folder inside the root, then the binfmt entry."""
        base = Path(self.rootfs) / INSIDE.lstrip("/")
        if self.root and Path(self.root).parent == base:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.binfmt_user:
            rootfs_mod.release_binfmt(self.binfmt_user)


def start_device(name: str, state_dir: Path, *, root: Optional[Path] = None, profile: str = PROFILE,
                 build: bool = True, progress=None) -> Aarch64Device:
    """Start the emulated aarch64 device (building the cached root first when ``build``)."""
    from . import LAB_USER, LabError, _add_known_host, _keygen, _sshd_config, _wait_listening, stop_device

    reason = why_not()
    if reason:
        raise LabError(reason)
    root = Path(root or rootfs_mod.default_root())
    if rootfs_mod.stamp(root) is None or build:
        if not build:
            raise LabError(f"no aarch64 root at {root}: run `edgecompress lab up --arch aarch64` to build it")
        try:
            rootfs_mod.build(root, progress=progress)
        except rootfs_mod.RootfsError as e:
            raise LabError(str(e)) from e
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    base = root / INSIDE.lstrip("/")
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    dev_root = base / f"{name}-{secrets.token_hex(4)}"
    dev_root.mkdir(mode=0o755)
    uid, gid = _inside_uid(root, LAB_USER)
    (dev_root / "work").mkdir()
    os.chown(dev_root / "work", uid, gid)
    client_key = state_dir / f"{name}_id_ed25519"
    for p in (client_key, Path(f"{client_key}.pub")):
        p.unlink(missing_ok=True)
    pub = _keygen(client_key, f"edgecompress-lab-{name}")
    (dev_root / "authorized_keys").write_text(pub + "\n")
    os.chmod(dev_root / "authorized_keys", 0o644)
    host_pub = _keygen(dev_root / "ssh_host_ed25519_key", f"{name}-host").split()
    dev = Aarch64Device(name=name, host="127.0.0.1", port=22, user=LAB_USER, identity_file=str(client_key),
                        known_hosts=str(state_dir / "known_hosts"), root=str(dev_root),
                        python=rootfs_mod.DEVICE_PYTHON, profile=profile, rootfs=str(root),
                        binfmt_user=f"{name}-{dev_root.name}")
    try:
        rootfs_mod.acquire_binfmt(dev.binfmt_user)
        ns = Netns.create(name.replace("lab-", ""))
        dev.netns = ns.to_dict()
        dev.host = ns.device_addr
        inside = _inside_view(dev)
        (dev_root / "sshd_config").write_text(_sshd_config(inside, dev.host))
        (root / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # sshd exits 255 without it
        cfg = f"{dev.inside_root}/sshd_config"
        res = subprocess.run(["chroot", str(root), "/usr/sbin/sshd", "-t", "-f", cfg], capture_output=True,
                             text=True, timeout=120)
        if res.returncode != 0:
            raise LabError(f"sshd -t in {root} failed ({res.returncode}): {res.stderr.strip()[-400:]}")
        (dev_root / "cpuinfo").write_text(cpuinfo_text(os.cpu_count() or 1))
        argv = _launch_argv(root, ns.name, cfg, f"{dev.inside_root}/sshd.log", dev_root / "cpuinfo")
        proc = subprocess.Popen(argv,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        dev.pid = proc.pid
        rootfs_mod.set_binfmt_pid(dev.binfmt_user, proc.pid)
        _wait_listening(dev, proc, timeout=120.0)   # sshd starts in ~2-5 s under emulation
        _add_known_host(Path(dev.known_hosts), dev, host_pub)
        return dev
    except BaseException:
        stop_device(dev)
        raise


def _inside_view(dev: Aarch64Device):
    """The device as its chrooted sshd sees it (paths inside the root) — for its config."""
    import dataclasses

    return dataclasses.replace(dev, root=dev.inside_root)


def cpuinfo_text(n: int) -> str:
    """``/proc/cpuinfo`` as the device shows it: ``n`` ARMv8 cores. The host's x86 file (what
    qemu-user shows otherwise) crashes onnxruntime's cpuinfo library on aarch64 at import."""
    core = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
            "CPU revision\t: 3\n")
    return ("\n".join(core.format(i=i) for i in range(n))
            + "\nHardware\t: emulated aarch64 (qemu-user, edgecompress lab)\n")


def _launch_argv(root: Path, netns: str, cfg: str, log_file: str, cpuinfo: Path) -> list[str]:
    r = shlex.quote(str(root))
    script = (f"set -e; mount -t proc proc {r}/proc; mount --bind {shlex.quote(str(cpuinfo))} {r}/proc/cpuinfo; "
              f"mount --rbind /dev {r}/dev; "
              f"exec chroot {r} /usr/sbin/sshd -D -E {shlex.quote(log_file)} -f {shlex.quote(cfg)}")
    return ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def running_in(state_devices) -> Optional[Aarch64Device]:
    return next((d for d in state_devices if isinstance(d, Aarch64Device) and d.alive()), None)
