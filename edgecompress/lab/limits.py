"""Limits for lab devices: network namespaces with a bandwidth limit, and cgroup CPU/memory limits.

Namespaces: ``ip netns add``, a veth pair with 10.213.N.1/30 on the host side and 10.213.N.2/30
inside (only our own namespace's addresses), ``tc qdisc ... tbf`` on both ends for a rate.

cgroups: v1 (``cpu.cfs_period_us``/``cpu.cfs_quota_us``, ``memory.limit_in_bytes``) where the
``cpu`` controller is mounted as v1, else v2 (``cpu.max``, ``memory.max``, after enabling the
controllers in the parent's ``cgroup.subtree_control``). New groups are made below the
current process's group, so any limit the caller lives under still applies.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError

log = logging.getLogger(__name__)
SUBNET = "10.213"


class LimitError(EdgeCompressError):
    """A lab limit (namespace, cgroup, tc) cannot be applied here."""


def _sh(argv, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check and res.returncode != 0:
        raise LimitError(f"`{' '.join(map(str, argv))}` failed: {res.stderr.strip()[-300:]}")
    return res


# -- network namespaces ---------------------------------------------------------------
def netns_support() -> Optional[str]:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "`ip` (iproute2) is not installed"
    return None


@dataclass
class Netns:
    name: str
    index: int
    host_if: str
    dev_if: str
    rate: Optional[str] = None

    @property
    def host_addr(self) -> str:
        return f"{SUBNET}.{self.index}.1"

    @property
    def device_addr(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    def to_dict(self) -> dict:
        return {"name": self.name, "index": self.index, "host_if": self.host_if, "dev_if": self.dev_if,
                "rate": self.rate}

    @classmethod
    def from_dict(cls, d: dict) -> "Netns":
        return cls(**d)

    @classmethod
    def create(cls, label: str, rate: Optional[str] = None) -> "Netns":
        reason = netns_support()
        if reason:
            raise LimitError(reason)
        used_addrs = _sh(["ip", "-o", "-4", "addr", "show"]).stdout
        used = {int(m) for m in re.findall(rf"{re.escape(SUBNET)}\.(\d+)\.", used_addrs)}
        index = next((i for i in range(1, 251) if i not in used), None)
        if index is None:
            raise LimitError(f"no free {SUBNET}.N.0/30 subnet left for a lab namespace")
        tag = secrets.token_hex(2)
        ns = cls(name=f"ec-{label}-{tag}", index=index, host_if=f"ec{index}h{tag}"[:15],
                 dev_if=f"ec{index}d{tag}"[:15], rate=rate)
        try:
            _sh(["ip", "netns", "add", ns.name])
            _sh(["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.dev_if, "netns", ns.name])
            _sh(["ip", "addr", "add", f"{ns.host_addr}/30", "dev", ns.host_if])
            _sh(["ip", "link", "set", ns.host_if, "up"])
            _sh(["ip", "-n", ns.name, "addr", "add", f"{ns.device_addr}/30", "dev", ns.dev_if])
            _sh(["ip", "-n", ns.name, "link", "set", ns.dev_if, "up"])
            _sh(["ip", "-n", ns.name, "link", "set", "lo", "up"])
            if rate:
                tbf = ["root", "tbf", "rate", rate, "burst", "32kb", "latency", "50ms"]
                _sh(["tc", "qdisc", "add", "dev", ns.host_if, *tbf])
                _sh(["ip", "netns", "exec", ns.name, "tc", "qdisc", "add", "dev", ns.dev_if, *tbf])
        except BaseException:
            ns.delete()
            raise
        return ns

    def delete(self) -> None:
        _sh(["ip", "link", "del", self.host_if], check=False)
        _sh(["ip", "netns", "del", self.name], check=False)


# -- cgroups --------------------------------------------------------------------------
def _mounts() -> list[tuple[str, str, list[str]]]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1], parts[2], parts[3].split(",")))
    return out


def _own_path(controller: Optional[str]) -> str:
    """This process's cgroup path for a v1 controller (or v2 when ``controller`` is None)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        if controller is None and hid == "0" and ctrls == "":
            return path
        if controller is not None and controller in ctrls.split(","):
            return path
    return "/"


def _layout() -> tuple[str, dict[str, Path]]:
    """("v1", {"cpu": dir, "memory": dir}) or ("v2", {"unified": dir}) — our own groups' folders."""
    v1 = {}
    v2_root = None
    for mnt, kind, opts in _mounts():
        if kind == "cgroup":
            for c in ("cpu", "memory"):
                if c in opts:
                    v1[c] = Path(mnt) / _own_path(c).lstrip("/")
        elif kind == "cgroup2":
            v2_root = Path(mnt)
    if "cpu" in v1:
        return "v1", v1
    if v2_root is not None:
        ctrl = (v2_root / "cgroup.controllers")
        if ctrl.exists() and "cpu" in ctrl.read_text().split():
            return "v2", {"unified": v2_root / _own_path(None).lstrip("/")}
    return "none", {}


def cgroup_support() -> Optional[str]:
    """None when a CPU-limited cgroup can be made here, else why not."""
    if os.geteuid() != 0:
        return "cgroups need root"
    version, dirs = _layout()
    if version == "none":
        return "no cgroup v1 'cpu' controller and no cgroup v2 with 'cpu' enabled"
    probe = next(iter(dirs.values())) / f"edgecompress-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"cgroup folder {probe.parent} is not writable ({e.strerror})"
    return None


@dataclass
class CgroupLimits:
    version: str
    paths: list[str] = field(default_factory=list)
    cfs_period_us: int = 1000

    @classmethod
    def create(cls, label: str, *, cpu_quota: Optional[float] = None, memory_mb: Optional[int] = None,
               cfs_period_us: int = 1000) -> "CgroupLimits":
        """A new group limited to ``cpu_quota`` CPUs (0.25 = a quarter of one) and ``memory_mb``."""
        reason = cgroup_support()
        if reason:
            raise LimitError(reason)
        if cpu_quota is not None and not 0.01 <= cpu_quota <= 64:
            raise LimitError(f"cpu_quota {cpu_quota} out of range; valid: 0.01..64 CPUs")
        if cpu_quota is not None and cpu_quota * cfs_period_us < 1000:
            # the kernel's smallest quota is 1 ms: lengthen the period to keep the share
            cfs_period_us = int(-(-1000 // cpu_quota))
        version, dirs = _layout()
        name = f"edgecompress-{label}-{secrets.token_hex(3)}"
        lim = cls(version, cfs_period_us=cfs_period_us)
        try:
            if version == "v1":
                if cpu_quota is not None:
                    d = dirs["cpu"] / name
                    d.mkdir()
                    lim.paths.append(str(d))
                    (d / "cpu.cfs_period_us").write_text(str(cfs_period_us))
                    (d / "cpu.cfs_quota_us").write_text(str(int(cpu_quota * cfs_period_us)))
                if memory_mb is not None:
                    if "memory" not in dirs:
                        raise LimitError("no cgroup v1 'memory' controller mounted")
                    d = dirs["memory"] / name
                    d.mkdir()
                    lim.paths.append(str(d))
                    (d / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
            else:
                parent = dirs["unified"]
                want = [c for c, on in (("cpu", cpu_quota), ("memory", memory_mb)) if on is not None]
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in want))
                d = parent / name
                d.mkdir()
                lim.paths.append(str(d))
                if cpu_quota is not None:
                    (d / "cpu.max").write_text(f"{int(cpu_quota * cfs_period_us)} {cfs_period_us}")
                if memory_mb is not None:
                    (d / "memory.max").write_text(str(memory_mb << 20))
        except OSError as e:
            for p in lim.paths:
                cls.remove(p)
            raise LimitError(f"cannot set cgroup {version} limits: {e}") from e
        return lim

    def add(self, pid: int) -> None:
        for p in self.paths:
            (Path(p) / "cgroup.procs").write_text(str(pid))

    @staticmethod
    def remove(path: str) -> None:
        d = Path(path)
        for _ in range(20):
            if not d.exists():
                return
            try:
                d.rmdir()
                return
            except OSError:
                # move any survivor to the parent group, then retry
                try:
                    for pid in (d / "cgroup.procs").read_text().split():
                        (d.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
                time.sleep(0.05)
        log.warning("could not remove cgroup %s", path)
