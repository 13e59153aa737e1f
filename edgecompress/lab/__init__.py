"""Virtual devices for trying and testing without hardware: a real OpenSSH server per device.

Each lab device is ``/usr/sbin/sshd`` with its own host key, config and log, logging in a
dedicated user (``ecdev``) with a generated client key, and a device Python that has only
numpy, onnxruntime and ai-edge-litert (a venv built from the system Python, no torch or
TensorFlow) — so the runner meets what it meets on a real board. Optionally a device
lives in its own network namespace (veth pair, addresses 10.213.N.1 host / .2 device —
our own namespace, no other traffic), in a cgroup with a CPU quota and a memory limit
(cgroup v1 ``cpu.cfs_quota_us``/``memory.limit_in_bytes`` or v2 ``cpu.max``/``memory.max``),
and behind a ``tc tbf`` bandwidth limit. Children of sshd inherit the cgroup, so the
benchmark runs under the limits.

``up()`` writes ``STATE/targets.yaml`` and ``STATE/known_hosts`` (the host keys we made, so
no trust-on-first-use is needed) and ``STATE/lab.json``; ``down()`` undoes everything
recorded there. Needs root (user, namespaces, cgroups) and ``/usr/sbin/sshd``.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError, UsageError
from .limits import CgroupLimits, Netns, cgroup_support, netns_support

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
LAB_USER = "ecdev"
DEVICES_BASE = Path("/var/tmp/edgecompress-lab")
PYTHON_CACHE = Path("/var/cache/edgecompress")
DEVICE_PACKAGES = ("numpy", "onnxruntime", "ai-edge-litert")


class LabError(EdgeCompressError):
    """The lab cannot start (not root, no sshd, a limit that cannot be applied)."""


def default_state_dir() -> Path:
    env = os.environ.get("EDGECOMPRESS_LAB_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "edgecompress" / "lab"


def why_not() -> Optional[str]:
    """None when the lab can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the lab needs root (it creates a device user, namespaces and cgroups)"
    if not os.path.exists(SSHD):
        return f"{SSHD} not found: install openssh-server (make setup does)"
    if not any(Path(p).exists() for p in ("/usr/bin/python3", "/usr/local/bin/python3")):
        return "no system python3 to build the device Python from"
    return None


def _run(argv, check=True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise LabError(f"`{' '.join(map(str, argv))}` failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return res


# -- the device Python ----------------------------------------------------------------
def _pins() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in DEVICE_PACKAGES:
        try:
            pins.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            pins.append(pkg)
    return pins


def device_python(base_python: str = "/usr/bin/python3", cache: Optional[Path] = None) -> str:
    """A venv (no system site-packages) with only numpy + onnxruntime + ai-edge-litert; built once.

    Returns its ``bin/python``. It is world-readable so the lab user can run it. pip resolves
    the pinned versions from the configured index or local wheel cache (nothing else).
    """
    import hashlib

    if cache is None:
        cache = PYTHON_CACHE if os.geteuid() == 0 else Path.home() / ".cache" / "edgecompress"
    pins = _pins()
    ver = _run([base_python, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    key = hashlib.sha256(f"{base_python} {ver} {' '.join(pins)}".encode()).hexdigest()[:12]
    final = cache / f"device-python-{key}"
    if (final / "bin" / "python").exists():
        return str(final / "bin" / "python")
    cache.mkdir(parents=True, exist_ok=True)
    os.chmod(cache, 0o755)
    tmp = cache / f".device-python-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _run([base_python, "-m", "venv", tmp])
        _run([tmp / "bin" / "python", "-m", "pip", "install", "-q", "--no-input",
              "--disable-pip-version-check", *pins], timeout=900)
        probe = ("import importlib.util as u, numpy, onnxruntime, ai_edge_litert; "
                 "bad=[m for m in ('torch','tensorflow','paramiko','yaml','pydantic') if u.find_spec(m)]; "
                 "assert not bad, bad")
        _run([tmp / "bin" / "python", "-c", probe])
        _run(["chmod", "-R", "a+rX", tmp])
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(final / "bin" / "python")


# -- one device -----------------------------------------------------------------------
@dataclass
class LabDevice:
    name: str
    host: str
    port: int
    user: str
    identity_file: str
    known_hosts: str
    root: str                           # the device's folder (config, keys, log, workdir)
    python: str
    profile: str = "x86-64-host"
    pid: Optional[int] = None
    netns: Optional[dict] = None        # Netns.to_dict()
    cgroups: list[str] = field(default_factory=list)
    limits: dict = field(default_factory=dict)
    targets_file: Optional[str] = None  # a YAML inventory holding this device (write_targets)

    @property
    def workdir(self) -> str:
        return f"{self.root}/work"

    @property
    def log_file(self) -> Path:
        return Path(self.root) / "sshd.log"

    def target_dict(self) -> dict:
        return {"name": self.name, "profile": self.profile, "transport": "ssh",
                "host": f"{self.user}@{self.host}:{self.port}", "identity_file": self.identity_file,
                "known_hosts": self.known_hosts, "python": self.python, "workdir": self.workdir}

    @property
    def target(self):
        from ..targets import Target

        return Target(**self.target_dict())

    def alive(self) -> bool:
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def accepted_logins(self) -> int:
        """How many SSH logins this device accepted (from its sshd log)."""
        try:
            return self.log_file.read_text(errors="replace").count("Accepted publickey")
        except OSError:
            return 0


def ensure_user(user: str = LAB_USER) -> None:
    if _run(["id", "-u", user], check=False).returncode != 0:
        res = _run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=False)
        if res.returncode not in (0, 9):  # 9: created meanwhile by another process
            raise LabError(f"useradd {user} failed: {res.stderr.strip()}")
    # with UsePAM no a password-less account is "locked" until it has a non-! password field
    _run(["usermod", "-p", "*", user])


def _free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def _keygen(path: Path, comment: str) -> str:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    return (path.with_suffix(".pub") if path.suffix else Path(f"{path}.pub")).read_text().strip()


def _sshd_config(dev: LabDevice, listen: str) -> str:
    r = dev.root
    return "\n".join([
        f"Port {dev.port}", f"ListenAddress {listen}", f"HostKey {r}/ssh_host_ed25519_key",
        f"PidFile {r}/sshd.pid", f"AuthorizedKeysFile {r}/authorized_keys",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "StrictModes no", "UsePAM no", "PermitRootLogin no", f"AllowUsers {dev.user}",
        "Subsystem sftp internal-sftp", "LogLevel INFO", "MaxStartups 64", "MaxSessions 64",
        "ClientAliveInterval 15", "ClientAliveCountMax 4", "PrintMotd no", "",
    ])


def start_device(name: str, state_dir: Path, *, netns: bool = False, cpu_quota: Optional[float] = None,
                 memory_mb: Optional[int] = None, rate: Optional[str] = None,
                 cfs_period_us: int = 10000, python: Optional[str] = None) -> LabDevice:
    """Start one virtual device; raise :class:`LabError` (cleaning up) when a part cannot be made."""
    reason = why_not()
    if reason:
        raise LabError(reason)
    if rate and not netns:
        raise UsageError("a bandwidth limit (rate) needs a network namespace (netns=True)")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ensure_user()
    python = python or device_python()
    DEVICES_BASE.mkdir(parents=True, exist_ok=True)
    os.chmod(DEVICES_BASE, 0o755)
    root = DEVICES_BASE / f"{name}-{secrets.token_hex(4)}"
    root.mkdir(mode=0o755)
    (root / "work").mkdir()
    shutil.chown(root / "work", LAB_USER, LAB_USER)
    client_key = state_dir / f"{name}_id_ed25519"
    for p in (client_key, Path(f"{client_key}.pub")):
        p.unlink(missing_ok=True)
    pub = _keygen(client_key, f"edgecompress-lab-{name}")
    (root / "authorized_keys").write_text(pub + "\n")
    os.chmod(root / "authorized_keys", 0o644)
    host_pub = _keygen(root / "ssh_host_ed25519_key", f"{name}-host").split()
    dev = LabDevice(name=name, host="127.0.0.1", port=0, user=LAB_USER, identity_file=str(client_key),
                    known_hosts=str(state_dir / "known_hosts"), root=str(root), python=python)
    ns = None
    try:
        if netns:
            ns = Netns.create(name, rate=rate)
            dev.netns = ns.to_dict()
            dev.host, dev.port = ns.device_addr, 22
        else:
            dev.port = _free_port()
        cfg = root / "sshd_config"
        cfg.write_text(_sshd_config(dev, dev.host))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd exits 255 without it
        _run([SSHD, "-t", "-f", cfg])
        prefix = ["ip", "netns", "exec", ns.name] if ns else []
        proc = subprocess.Popen([*prefix, SSHD, "-D", "-E", str(dev.log_file), "-f", str(cfg)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        dev.pid = proc.pid
        limits = CgroupLimits.create(name, cpu_quota=cpu_quota, memory_mb=memory_mb,
                                     cfs_period_us=cfs_period_us) if (cpu_quota or memory_mb) else None
        if limits:
            limits.add(proc.pid)
            dev.cgroups = limits.paths
            dev.limits = {"cpu_quota": cpu_quota, "memory_mb": memory_mb, "cfs_period_us": limits.cfs_period_us,
                          "cgroup": limits.version}
        if rate:
            dev.limits["rate"] = rate
        _wait_listening(dev, proc)
        _add_known_host(Path(dev.known_hosts), dev, host_pub)
        return dev
    except BaseException:
        stop_device(dev)
        raise


def _wait_listening(dev: LabDevice, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = dev.log_file.read_text(errors="replace") if dev.log_file.exists() else ""
            raise LabError(f"sshd for {dev.name} exited with {proc.returncode}: {text.strip()[-400:]}")
        if dev.log_file.exists() and "Server listening on" in dev.log_file.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise LabError(f"sshd for {dev.name} did not start listening within {timeout} s (log: {dev.log_file})")


def _add_known_host(path: Path, dev: LabDevice, host_pub: list[str]) -> None:
    name = dev.host if dev.port == 22 else f"[{dev.host}]:{dev.port}"
    lines = [ln for ln in (path.read_text().splitlines() if path.exists() else [])
             if ln.split(" ", 1)[0] != name]
    lines.append(f"{name} {host_pub[0]} {host_pub[1]}")
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def stop_device(dev: LabDevice) -> None:
    """Stop sshd (and its sessions), remove namespace, cgroups and the device folder."""
    if dev.pid:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(dev.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            for _ in range(40):
                if not dev.alive():
                    break
                try:
                    os.waitpid(dev.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            else:
                continue
            break
    for path in dev.cgroups:
        CgroupLimits.remove(path)
    if dev.netns:
        Netns.from_dict(dev.netns).delete()
    if dev.root and Path(dev.root).parent == DEVICES_BASE:
        shutil.rmtree(dev.root, ignore_errors=True)
    if hasattr(dev, "cleanup"):  # the emulated aarch64 device (lab/aarch64.py): its folder, binfmt
        dev.cleanup()


# -- the whole lab --------------------------------------------------------------------
def _load_state(state_dir: Path) -> list[LabDevice]:
    f = state_dir / "lab.json"
    if not f.exists():
        return []
    docs = json.loads(f.read_text()).get("devices", [])
    if any(d.get("arch") == "aarch64" for d in docs):
        from .aarch64 import Aarch64Device
    return [Aarch64Device(**d) if d.get("arch") == "aarch64" else LabDevice(**d) for d in docs]


def write_targets(devices: list[LabDevice], path: Path) -> Path:
    """Write a targets YAML holding ``devices`` (atomically); sets their ``targets_file``."""
    import yaml

    from ..manifest import atomic_write_bytes

    doc = {"targets": [d.target_dict() for d in devices]}
    atomic_write_bytes(path, ("# written by edgecompress lab; removed by `lab down`\n"
                              + yaml.safe_dump(doc, sort_keys=False)).encode())
    for d in devices:
        d.targets_file = str(path)
    return Path(path)


def _save_state(state_dir: Path, devices: list[LabDevice]) -> None:
    from ..manifest import atomic_write_json

    write_targets(devices, state_dir / "targets.yaml")
    atomic_write_json(state_dir / "lab.json", {"devices": [asdict(d) for d in devices]})


def up(state_dir: Optional[Path] = None, *, slow: Optional[bool] = None, cpu_quota: float = 0.25,
       memory_mb: int = 512, rate: str = "20mbit", arch: str = "x86_64", progress=None) -> Path:
    """Start the lab: ``lab-x86`` (loopback) and, where namespaces and cgroups work, ``lab-slow``
    (own namespace, ``cpu_quota`` of one CPU, ``memory_mb``, ``rate``); with ``arch="aarch64"``
    instead the emulated ``lab-arm64`` (lab/aarch64.py; its root is built once and cached).
    Returns the targets file. Running devices of an earlier ``up`` are kept."""
    state_dir = Path(state_dir or default_state_dir())
    devices = [d for d in _load_state(state_dir) if d.alive()]
    names = {d.name for d in devices}
    if arch not in ("x86_64", "aarch64"):
        raise UsageError(f"unknown lab architecture {arch!r}; valid: x86_64, aarch64")
    if arch == "aarch64":
        from . import aarch64

        if aarch64.NAME not in names:
            devices.append(aarch64.start_device(aarch64.NAME, state_dir, progress=progress))
        _save_state(state_dir, devices)
        return state_dir / "targets.yaml"
    if "lab-x86" not in names:
        devices.append(start_device("lab-x86", state_dir))
        _save_state(state_dir, devices)
    can_slow = netns_support() is None and cgroup_support() is None
    if slow is None:
        slow = can_slow
    if slow and "lab-slow" not in names:
        if not can_slow:
            raise LabError(f"lab-slow cannot start: {netns_support() or cgroup_support()}")
        devices.append(start_device("lab-slow", state_dir, netns=True, cpu_quota=cpu_quota,
                                    memory_mb=memory_mb, rate=rate))
    _save_state(state_dir, devices)
    return state_dir / "targets.yaml"


def down(state_dir: Optional[Path] = None) -> list[str]:
    """Stop every device recorded in the state folder; returns their names."""
    state_dir = Path(state_dir or default_state_dir())
    devices = _load_state(state_dir)
    for d in devices:
        stop_device(d)
    for f in ("lab.json", "targets.yaml", "known_hosts"):
        (state_dir / f).unlink(missing_ok=True)
    for d in devices:
        for p in (Path(d.identity_file), Path(f"{d.identity_file}.pub")):
            p.unlink(missing_ok=True)
    return [d.name for d in devices]


def status(state_dir: Optional[Path] = None) -> list[dict]:
    state_dir = Path(state_dir or default_state_dir())
    out = []
    for d in _load_state(state_dir):
        out.append({"name": d.name, "running": d.alive(), "host": f"{d.user}@{d.host}:{d.port}",
                    "netns": (d.netns or {}).get("name"), "limits": d.limits, "pid": d.pid,
                    "arch": getattr(d, "arch", "x86_64"), "emulated": getattr(d, "emulated", False)})
    return out


def try_up(state_dir: Optional[Path] = None, **kw) -> Optional[Path]:
    """``up()`` where the lab can run here; None (with the reason logged) where it cannot."""
    reason = why_not()
    if reason:
        log.warning("lab not started: %s; use the built-in 'local' target", reason)
        return None
    try:
        return up(state_dir, **kw)
    except EdgeCompressError as e:
        log.warning("lab not started: %s", e)
        print(f"edgecompress lab: not started: {e}", file=sys.stderr)
        return None
