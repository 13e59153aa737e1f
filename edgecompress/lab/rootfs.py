"""A Debian arm64 root file system for the emulated aarch64 lab device, built once and cached.

``build()`` runs ``mmdebstrap --arch=arm64`` (foreign binaries run through qemu-user-static,
registered in binfmt_misc by :func:`ensure_binfmt`), then installs the runner's needs — numpy,
onnxruntime and ai-edge-litert at the host's pinned versions — from aarch64 wheels that the host's
pip downloads (``--platform manylinux_*_aarch64 --only-binary=:all:``) into a venv inside the root.
The root is built under a temporary name beside its final place and renamed when complete, so a
killed build never leaves a half root that looks finished. Only Debian's mirror and the package
index are contacted, and only while building.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from ..errors import EdgeCompressError

log = logging.getLogger(__name__)

SUITE = "bookworm"                      # Debian 12: python3.11, glibc 2.36
DEBIAN_PACKAGES = ("python3", "python3-venv", "openssh-server", "iproute2", "libblas3", "liblapack3",
                   "procps", "libgomp1")
QEMU = "/usr/bin/qemu-aarch64-static"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_NAME = "edgecompress-aarch64"
# ELF64, little-endian, e_machine 0xb7 (aarch64): the magic and mask Debian's qemu-user-binfmt uses
ELF_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
BINFMT_STATE = Path(os.environ.get("EDGECOMPRESS_BINFMT_STATE", "/run/edgecompress-lab"))
ELF_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
VENV = "/opt/edgecompress/venv"          # inside the root
DEVICE_PYTHON = f"{VENV}/bin/python"
STAMP = "etc/edgecompress-rootfs.json"   # inside the root: what was built, when, how long
WHEEL_PLATFORMS = [f"manylinux_2_{m}_aarch64" for m in (17, 24, 26, 27, 28, 31, 34, 35, 36)] + [
    "manylinux2014_aarch64", "linux_aarch64"]
INSTALL_HINT = "apt-get install qemu-user-static mmdebstrap arch-test (or run `make setup` as root)"


class RootfsError(EdgeCompressError):
    """The aarch64 root cannot be built or used here."""


def cache_dir() -> Path:
    env = os.environ.get("EDGECOMPRESS_LAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgecompress" / "lab"


def default_root() -> Path:
    return cache_dir() / "aarch64-rootfs"


def missing_tools() -> list[str]:
    """Debian packages the build needs and this host lacks."""
    need = []
    if not shutil.which("mmdebstrap"):
        need.append("mmdebstrap")
    if not os.path.exists(QEMU):
        need.append("qemu-user-static")
    if not shutil.which("arch-test"):  # mmdebstrap checks foreign-architecture support with it
        need.append("arch-test")
    return need


def why_not() -> Optional[str]:
    """None when the aarch64 device can be built and run here, else the reason."""
    if os.geteuid() != 0:
        return "the aarch64 lab device needs root (mmdebstrap --mode=root, binfmt_misc, chroot, namespaces)"
    need = missing_tools()
    if need:
        return f"missing host packages {', '.join(need)}: {INSTALL_HINT}"
    return None


def _run(argv, check=True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        msg = (res.stderr.strip() or res.stdout.strip())[-800:]
        raise RootfsError(f"`{' '.join(map(str, argv))[:300]}` failed ({res.returncode}): {msg}")
    return res


# -- binfmt_misc ----------------------------------------------------------------------
def _aarch64_handler() -> Optional[str]:
    """Name of an enabled binfmt_misc entry that runs aarch64 ELF binaries, if any."""
    if not BINFMT_DIR.is_dir():
        return None
    magic = ELF_MAGIC.replace(r"\x", "").replace("ELF", "454c46").lower()
    for entry in sorted(BINFMT_DIR.iterdir()):
        if entry.name in ("register", "status"):
            continue
        try:
            text = entry.read_text()
        except OSError:
            continue
        if "enabled" not in text.splitlines()[0:1]:
            continue
        interp = next((ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("interpreter ")), "")
        mline = next((ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("magic ")), "")
        if mline.replace(" ", "").lower().startswith(magic[:40]) and os.path.exists(interp):
            return entry.name
    return None


def _register() -> dict:
    """Make aarch64 binaries runnable now; returns what was changed:
    ``{"mounted": bool, "entry": name or None}`` — nothing is recorded for what existed before."""
    changed = {"mounted": False, "entry": None}
    if not (BINFMT_DIR / "register").exists():
        res = _run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR], check=False)
        if res.returncode != 0:
            raise RootfsError(f"cannot mount binfmt_misc at {BINFMT_DIR}: {res.stderr.strip()}")
        changed["mounted"] = True
    if _aarch64_handler():
        return changed
    err: Optional[Exception] = None
    # F: the kernel opens the interpreter now, so it works inside the chroot as well
    for flags in ("F", ""):
        try:
            (BINFMT_DIR / "register").write_text(f":{BINFMT_NAME}:M::{ELF_MAGIC}:{ELF_MASK}:{QEMU}:{flags}")
            changed["entry"] = BINFMT_NAME
            return changed
        except OSError as e:
            err = e
    _unregister(changed)
    raise RootfsError(f"cannot register qemu-aarch64 in binfmt_misc: {err}")


def _unregister(changed: Optional[dict]) -> None:
    """Remove the binfmt entry and mount that :func:`_register` added (and only those)."""
    if not changed:
        return
    if changed.get("entry"):
        f = BINFMT_DIR / changed["entry"]
        if f.exists():
            try:
                f.write_text("-1")
            except OSError as e:
                log.warning("could not remove binfmt entry %s: %s", f, e)
    if changed.get("mounted") and (BINFMT_DIR / "register").exists():
        _run(["umount", BINFMT_DIR], check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Locked:
    """An exclusive flock on ``BINFMT_STATE/lock`` (the users' record is shared by processes)."""

    def __enter__(self):
        import fcntl

        BINFMT_STATE.mkdir(parents=True, exist_ok=True)
        self.f = open(BINFMT_STATE / "lock", "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


def _read_record() -> dict:
    try:
        return json.loads((BINFMT_STATE / "binfmt.json").read_text())
    except (OSError, ValueError):
        return {"changed": None, "users": {}}


def _write_record(rec: dict) -> None:
    f = BINFMT_STATE / "binfmt.json"
    if not rec["users"]:
        f.unlink(missing_ok=True)
        return
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, f)


def acquire_binfmt(user: str, pid: Optional[int] = None) -> None:
    """Register qemu-aarch64 in binfmt_misc for ``user`` (a build or a device, alive while ``pid``
    is). What this adds (mount, entry) is recorded once and undone by the last user's
    :func:`release_binfmt`; what existed before is never touched."""
    with _Locked():
        rec = _read_record()
        rec["users"] = {u: p for u, p in rec["users"].items() if _alive(p)}
        if not rec["users"]:
            _unregister(rec.get("changed"))     # left by users that died without releasing
            rec["changed"] = None
        changed = _register()
        if rec.get("changed") is None:
            rec["changed"] = changed
        else:  # keep what earlier users added; add what this call had to make again
            rec["changed"] = {k: rec["changed"].get(k) or changed.get(k) for k in ("mounted", "entry")}
        rec["users"][user] = pid or os.getpid()
        _write_record(rec)


def set_binfmt_pid(user: str, pid: int) -> None:
    with _Locked():
        rec = _read_record()
        if user in rec["users"]:
            rec["users"][user] = pid
            _write_record(rec)


def release_binfmt(user: str) -> bool:
    """Drop ``user``; when no live user is left, undo what the lab added. True when it undid something."""
    with _Locked():
        rec = _read_record()
        rec["users"].pop(user, None)
        rec["users"] = {u: p for u, p in rec["users"].items() if _alive(p)}
        undone = False
        if not rec["users"]:
            changed = rec.get("changed") or {}
            undone = bool(changed.get("entry") or changed.get("mounted"))
            _unregister(changed)
            rec["changed"] = None
        _write_record(rec)
        return undone


def binfmt_record() -> dict:
    return _read_record()


# -- wheels ---------------------------------------------------------------------------
def pins() -> list[str]:
    from . import _pins

    return _pins()


def download_wheels(dest: Path, want: list[str], python_version: str = "3.11") -> list[Path]:
    """aarch64 wheels for ``want`` (and their dependencies), downloaded by the host's pip."""
    dest.mkdir(parents=True, exist_ok=True)
    plats = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    abi = "cp" + python_version.replace(".", "")
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-input",
          *plats, "--python-version", python_version, "--implementation", "cp", "--abi", abi,
          "--abi", "abi3", "--abi", "none", "--only-binary=:all:", "-d", dest, *want], timeout=1800)
    return sorted(dest.glob("*.whl"))


# -- the root -------------------------------------------------------------------------
def stamp(root: Path) -> Optional[dict]:
    f = Path(root) / STAMP
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def chroot(root: Path, argv: list, **kw) -> subprocess.CompletedProcess:
    return _run(["chroot", root, *argv], **kw)


def _venv_key(want: list[str]) -> str:
    return hashlib.sha256(" ".join(sorted(want)).encode()).hexdigest()[:12]


def _install_venv(root: Path, want: list[str], wheels: Path) -> None:
    """The device Python inside ``root``: a venv with only the wheels for ``want``."""
    inside = root / "opt" / "edgecompress"
    shutil.rmtree(inside, ignore_errors=True)
    (inside / "wheels").mkdir(parents=True)
    for w in wheels.glob("*.whl"):
        shutil.copy2(w, inside / "wheels" / w.name)
    chroot(root, ["/usr/bin/python3", "-m", "venv", VENV], timeout=1800)
    chroot(root, [f"{VENV}/bin/python", "-m", "pip", "install", "-q", "--no-index", "--no-input",
                  "--disable-pip-version-check", "--no-compile", "--find-links", "/opt/edgecompress/wheels",
                  *want], timeout=3600, env={**os.environ, "PIP_CONFIG_FILE": "/dev/null"})
    shutil.rmtree(inside / "wheels", ignore_errors=True)
    probe = "import platform, numpy, onnxruntime, ai_edge_litert.interpreter; print(platform.machine())"
    out = chroot(root, [DEVICE_PYTHON, "-c", probe], timeout=900).stdout.strip()
    if out != "aarch64":
        raise RootfsError(f"the device Python in {root} reports machine {out!r}, not aarch64")


def _add_user(root: Path, user: str = "ecdev") -> None:
    chroot(root, ["useradd", "--create-home", "--shell", "/bin/sh", user], timeout=300)
    # with UsePAM no a password-less account is "locked" until it has a non-! password field
    chroot(root, ["usermod", "-p", "*", user], timeout=300)


def _mirror() -> str:
    return os.environ.get("EDGECOMPRESS_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def build(root: Optional[Path] = None, *, want: Optional[list[str]] = None, progress=None) -> Path:
    """The cached root (built when missing, venv refreshed when the pins changed). Returns it.

    One build at a time per root: a second caller waits on ``ROOT.lock`` (flock) and then finds the
    root built. Leftover temporary roots of killed builds are removed first."""
    import fcntl

    reason = why_not()
    if reason:
        raise RootfsError(reason)
    root = Path(root or default_root())
    want = want or pins()
    key = _venv_key(want)
    info = stamp(root)
    if info and info.get("venv_key") == key:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        say = progress or (lambda msg: log.info("%s", msg))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process building {root}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        info = stamp(root)
        if info and info.get("venv_key") == key:
            return root
        for old in root.parent.glob(f".{root.name}.tmp-*"):   # killed builds (we hold the lock)
            shutil.rmtree(old, ignore_errors=True)
        user = f"build-{os.getpid()}"
        acquire_binfmt(user)
        try:
            _build_locked(root, want, key, info, say)
        finally:
            release_binfmt(user)
    return root


def _build_locked(root: Path, want: list[str], key: str, info: Optional[dict], say) -> None:
    wheels = root.parent / "aarch64-wheels" / key
    t0 = time.monotonic()
    if info:  # the pins changed: only the venv is rebuilt
        say("refreshing the aarch64 device Python for " + " ".join(want))
        download_wheels(wheels, want)
        _install_venv(root, want, wheels)
        _write_stamp(root, want, key, t0, info.get("debootstrap_s"))
        return
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    try:
        say(f"building a Debian {SUITE} arm64 root in {tmp} (takes ~10 min the first time)")
        _run(["mmdebstrap", "--mode=root", "--arch=arm64", "--variant=apt", "--quiet",
              f"--include={','.join(DEBIAN_PACKAGES)}", "--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*",
              SUITE, tmp, _mirror()], timeout=3600)
        deb_s = time.monotonic() - t0
        shutil.copy2(QEMU, tmp / "usr" / "bin" / "qemu-aarch64-static")  # for binfmt without F
        _add_user(tmp)
        say("downloading aarch64 wheels: " + " ".join(want))
        download_wheels(wheels, want)
        say("installing them into the root's device Python (under emulation)")
        _install_venv(tmp, want, wheels)
        _write_stamp(tmp, want, key, t0, deb_s)
        os.rename(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_stamp(root: Path, want: list[str], key: str, t0: float, deb_s) -> None:
    du = _run(["du", "-sm", root], check=False).stdout.split()
    doc = {"suite": SUITE, "arch": "arm64", "packages": list(DEBIAN_PACKAGES), "pins": want, "venv_key": key,
           "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "build_s": round(time.monotonic() - t0, 1), "debootstrap_s": deb_s and round(deb_s, 1),
           "size_mb": int(du[0]) if du else None}
    (root / STAMP).write_text(json.dumps(doc, indent=2) + "\n")


def main(argv=None) -> int:  # python -m edgecompress.lab.rootfs [ROOT]: build (used by make)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = build(Path(argv[0]) if argv else None, progress=print)
    print(json.dumps(stamp(root)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
