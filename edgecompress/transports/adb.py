"""The ``adb`` transport: Android phones over USB or Wi-Fi debugging, no Python needed on the phone.

Why the ``adb`` command-line client and not a Python adb library
----------------------------------------------------------------
The client (Debian package ``adb``; Android SDK platform-tools elsewhere) is what Android developers
already run: it talks to the one adb *server* on the host, which owns USB access, Wi-Fi pairing
(``adb pair`` / ``adb connect``) and the RSA key the phone was told to trust. Python libraries either
speak to the device themselves (``adb-shell``: needs its own key, libusb access, and fights the
running server for the USB interface) or re-implement the server protocol (``pure-python-adb``: not
maintained since 2020, no shell-v2 exit codes). The client is also the interface a test can stand in
for without a phone: any executable that answers ``devices -l``, ``get-state``, ``push``, ``pull``
and ``shell`` (see ``edgecompress/testing/fake_adb.py``).

The client is found as ``$EDGECOMPRESS_ADB``, else ``adb`` on ``PATH``; a target picks its phone
with ``serial:`` (``adb devices -l`` lists them); with no serial, exactly one phone must be attached.

Contract (see :mod:`edgecompress.transports.base`)
--------------------------------------------------
* ``run(argv)`` runs ``adb -s SERIAL shell SCRIPT`` where SCRIPT quotes every argument, exports
  ``env``, feeds ``stdin`` from a file pushed first, and ends with ``printf '\\n__EC_RC=%s\\n' $?``:
  adb before Android 7 (no shell protocol v2) always exits 0, so the exit status is read from that
  sentinel, which is removed from ``stdout``. A status of 128+N is reported as killed by signal N.
* A time-out kills the local adb client and the remote process (its pid is written to a pid file
  before ``exec``) and returns ``timed_out=True``.
* ``put`` pushes to a temporary name next to the target and renames it (never a half-written file);
  ``get`` pulls to a temporary local name and renames it.
* Lost or unauthorised devices raise :class:`~edgecompress.errors.TransportError` naming the serial,
  its state and what to do; a phone that goes away mid-command raises its subclass
  :class:`~edgecompress.errors.ConnectionLost` (the session measures again once it is back).
* The adb shell's writable place is ``/data/local/tmp``: :meth:`AdbTransport.home` returns it, and
  the default work folder (``~/.cache/edgecompress``) means ``/data/local/tmp/edgecompress``.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal as _signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConnectionLost, TransportError
from .base import CommandResult, TransferResult, Transport, quote_argv

ENV_ADB = "EDGECOMPRESS_ADB"
DEVICE_HOME = "/data/local/tmp"
DEVICE_ROOT = "/data/local/tmp/edgecompress"
DEFAULT_WORKDIR = "~/.cache/edgecompress"
_SENTINEL = "__EC_RC="
_RC_RE = re.compile(r"\r?\n" + _SENTINEL + r"(\d+)\r?\n?\Z")
_GONE = ("not found", "offline", "unauthorized", "no devices", "device still authorizing",
         "closed", "more than one device", "protocol fault", "cannot connect", "failed to connect")
_ABI_PROPS = ("ro.product.cpu.abi", "ro.build.version.release", "ro.build.version.sdk",
              "ro.product.model", "ro.product.manufacturer", "ro.soc.model", "ro.hardware")


def adb_executable(adb: Optional[str] = None) -> str:
    """The adb client to run: ``adb`` argument, ``$EDGECOMPRESS_ADB``, or ``adb`` on PATH."""
    exe = adb or os.environ.get(ENV_ADB) or shutil.which("adb")
    if not exe:
        raise TransportError("the adb client was not found: install it (Debian/Ubuntu: `apt-get install adb`, "
                             "or Android SDK platform-tools) or set $EDGECOMPRESS_ADB to its path")
    return exe


def _hint(state: str) -> str:
    if "unauthorized" in state:
        return "unlock the phone and accept the 'Allow USB debugging?' prompt (RSA key)"
    if "offline" in state:
        return "reconnect the cable or run `adb reconnect`; for Wi-Fi run `adb connect HOST:PORT` again"
    if "more than one" in state:
        return "set `serial:` in the target (see `adb devices -l`)"
    return ("check the cable / Wi-Fi debugging, that USB debugging is on in Developer options, "
            "and `adb devices -l`")


def list_devices(adb: Optional[str] = None, timeout: float = 15.0) -> list[dict]:
    """Attached devices from ``adb devices -l``: ``[{serial, state, model, product, device, usb, ...}]``."""
    exe = adb_executable(adb)
    try:
        p = subprocess.run([exe, "devices", "-l"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TransportError(f"`{exe} devices -l` failed: {e}") from e
    if p.returncode != 0:
        raise TransportError(f"`{exe} devices -l` exited {p.returncode}: {p.stderr.strip()[-300:]}")
    devices = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        info = {"serial": parts[0], "state": parts[1]}
        for kv in parts[2:]:
            k, _, v = kv.partition(":")
            if v:
                info[k] = v
        devices.append(info)
    return devices


class AdbTransport(Transport):
    name = "adb"

    def __init__(self, serial: Optional[str] = None, *, adb: Optional[str] = None,
                 connect_timeout_s: float = 15.0):
        self.adb = adb_executable(adb)
        self.serial = serial
        self.connect_timeout_s = connect_timeout_s
        self._checked = False

    @classmethod
    def from_target(cls, target, **options) -> "AdbTransport":
        """Options understood: ``adb`` (client path). SSH-only options (``trust_new_host`` ...) are ignored."""
        return cls(target.serial, adb=options.get("adb"), connect_timeout_s=target.connect_timeout_s)

    # -- plumbing -------------------------------------------------------------------------------
    def _argv(self, *args: str) -> list[str]:
        return [self.adb] + (["-s", self.serial] if self.serial else []) + list(args)

    @property
    def where(self) -> str:
        return f"adb device {self.serial!r}" if self.serial else "the adb device"

    def _raise_gone(self, detail: str, extra: str = "", *, lost: bool = False) -> None:
        cls = ConnectionLost if lost else TransportError
        raise cls(f"{self.where}: {detail.strip()[-300:] or 'no answer'}{extra}; {_hint(detail)}")

    def connect(self) -> None:
        """Check once that the device is attached and authorised (``adb get-state``)."""
        if self._checked:
            return
        try:
            p = subprocess.run(self._argv("get-state"), capture_output=True, text=True,
                               timeout=self.connect_timeout_s)
        except subprocess.TimeoutExpired as e:
            raise TransportError(f"{self.where}: `adb get-state` did not answer in "
                                 f"{self.connect_timeout_s:.0f} s; {_hint('')}") from e
        except OSError as e:
            raise TransportError(f"cannot run the adb client {self.adb!r}: {e}") from e
        state = (p.stdout.strip() or p.stderr.strip())
        if p.returncode != 0 or state != "device":
            attached = ""
            try:
                devs = list_devices(self.adb, self.connect_timeout_s)
                attached = "; attached: " + (", ".join(f"{d['serial']} ({d['state']})" for d in devs) or "none")
            except TransportError:
                pass
            self._raise_gone(f"state {state!r}", attached)
        self._checked = True

    def _adb(self, *args: str, timeout: Optional[float] = None) -> subprocess.CompletedProcess:
        """Run the client in its own process group; on time-out kill the whole group, then raise."""
        proc = subprocess.Popen(self._argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            try:
                os.killpg(proc.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(e.cmd, e.timeout, output=out, stderr=err) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # -- Transport ------------------------------------------------------------------------------
    def home(self) -> str:
        return DEVICE_HOME

    def expand(self, path: str) -> str:
        if path == DEFAULT_WORKDIR or path.startswith(DEFAULT_WORKDIR + "/"):
            return DEVICE_ROOT + path[len(DEFAULT_WORKDIR):]
        return super().expand(path)

    def run(self, argv: Sequence[str], *, timeout: Optional[float] = None,
            stdin: Optional[bytes] = None, env: Optional[dict[str, str]] = None) -> CommandResult:
        self.connect()
        argv = [str(a) for a in argv]
        token = uuid.uuid4().hex[:12]
        pidfile = f"{DEVICE_ROOT}/.run-{token}.pid"
        stdin_file = None
        if stdin is not None:
            stdin_file = f"{DEVICE_ROOT}/.run-{token}.stdin"
            self._push_bytes(stdin, stdin_file)
        exports = "".join(f"export {k}={shlex.quote(str(v))}; " for k, v in (env or {}).items()
                          if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k))
        inner = f"echo $$ > {pidfile}; {exports}exec {quote_argv(argv)}"
        if stdin_file:
            inner += f" < {stdin_file}"
        script = (f"export HOME={DEVICE_HOME}; mkdir -p {DEVICE_ROOT} 2>/dev/null; "
                  f"sh -c {shlex.quote(inner)}; printf '\\n{_SENTINEL}%s\\n' \"$?\"; "
                  f"rm -f {pidfile}" + (f" {stdin_file}" if stdin_file else ""))
        t0 = time.monotonic()
        try:
            p = self._adb("shell", script, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self._kill_remote(pidfile, stdin_file)
            return CommandResult(argv, None, _text(e.stdout), _text(e.stderr), time.monotonic() - t0,
                                 timed_out=True)
        except OSError as e:
            raise TransportError(f"cannot run the adb client {self.adb!r}: {e}") from e
        dt = time.monotonic() - t0
        out, err = _text(p.stdout), _text(p.stderr)
        m = _RC_RE.search(out)
        if not m:
            if p.returncode != 0 and (not out.strip() or any(g in err.lower() for g in _GONE)):
                self._checked = False           # the phone went away mid-command (cable, reboot, Wi-Fi)
                self._raise_gone(err or out, lost=True)
            # the shell itself died (e.g. the device rebooted mid-command): report what adb said
            return CommandResult(argv, p.returncode if p.returncode else None, out, err, dt,
                                 signal=None if p.returncode else "SIGHUP")
        rc = int(m.group(1))
        out = out[:m.start()]
        if m.group(0).startswith("\r"):          # pre-v2 adb runs the shell on a pty: CRLF line ends
            out, err = out.replace("\r\n", "\n"), err.replace("\r\n", "\n")
        if rc > 128:
            try:
                name = _signal.Signals(rc - 128).name
            except ValueError:
                name = None
            if name:
                return CommandResult(argv, None, out, err, dt, signal=name)
        return CommandResult(argv, rc, out, err, dt)

    def spawn(self, argv: Sequence[str]):
        """Start ``argv`` on the phone (``adb shell``, stdin forwarded) and return at once.

        Closing the returned process closes its stdin; with adb's shell protocol v2 (Android 7+)
        the phone-side process then reads end-of-input. Older phones only see the end when the
        adb client is killed (``close`` does that after a few seconds).
        """
        from .local import LocalProcess

        self.connect()
        script = f"export HOME={DEVICE_HOME}; exec {quote_argv([str(a) for a in argv])}"
        try:
            proc = subprocess.Popen(self._argv("shell", script), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            raise TransportError(f"cannot run the adb client {self.adb!r}: {e}") from e
        return LocalProcess(proc)

    def _kill_remote(self, pidfile: str, stdin_file: Optional[str]) -> None:
        script = (f"p=$(cat {pidfile} 2>/dev/null); [ -n \"$p\" ] && kill -9 $p 2>/dev/null; "
                  f"rm -f {pidfile}" + (f" {stdin_file}" if stdin_file else ""))
        try:
            self._adb("shell", script, timeout=self.connect_timeout_s)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def _push_bytes(self, data: bytes, remote: str) -> None:
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="ec-adb-", delete=False) as f:
            f.write(data)
        try:
            self.put(Path(f.name), remote)
        finally:
            os.unlink(f.name)

    def put(self, local: Path, remote: str) -> TransferResult:
        self.connect()
        local = Path(local)
        if not local.is_file():
            raise TransportError(f"cannot push {local}: not a file")
        remote = self.expand(remote)
        parent = remote.rsplit("/", 1)[0] or "/"
        tmp = f"{remote}.part-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        self._shell_ok(["mkdir", "-p", parent], f"create {parent}")
        p = self._adb("push", str(local), tmp, timeout=None)
        if p.returncode != 0:
            self._shell_ok(["rm", "-f", tmp], "clean up")
            err = _text(p.stderr) + _text(p.stdout)
            if any(g in err.lower() for g in _GONE):
                self._raise_gone(err)
            raise TransportError(f"{self.where}: `adb push {local} {tmp}` failed: {err.strip()[-300:]}")
        self._shell_ok(["mv", "-f", tmp, remote], f"rename {tmp} to {remote}")
        return TransferResult(str(local), remote, local.stat().st_size, time.monotonic() - t0)

    def get(self, remote: str, local: Path) -> TransferResult:
        self.connect()
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        remote = self.expand(remote)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.part")
        t0 = time.monotonic()
        p = self._adb("pull", remote, str(tmp), timeout=None)
        if p.returncode != 0 or not tmp.exists():
            tmp.unlink(missing_ok=True)
            err = _text(p.stderr) + _text(p.stdout)
            if any(g in err.lower() for g in _GONE) and "no such file" not in err.lower():
                self._raise_gone(err)
            raise TransportError(f"{self.where}: `adb pull {remote}` failed: {err.strip()[-300:]}")
        os.replace(tmp, local)
        return TransferResult(str(local), remote, local.stat().st_size, time.monotonic() - t0)

    def _shell_ok(self, argv: list[str], what: str) -> CommandResult:
        res = self.run(argv, timeout=max(self.connect_timeout_s, 30.0))
        if not res.ok:
            raise TransportError(f"{self.where}: could not {what}: {res.describe()}")
        return res

    # -- facts for `targets check` --------------------------------------------------------------
    def properties(self) -> dict[str, str]:
        """A few ``getprop`` values: ABI, Android version and API level, model, maker, SoC."""
        script = "; ".join(f"printf '%s=%s\\n' {p} \"$(getprop {p})\"" for p in _ABI_PROPS)
        res = self.run(["sh", "-c", script], timeout=self.connect_timeout_s)
        props = {}
        for line in res.stdout.splitlines():
            k, sep, v = line.partition("=")
            if sep and v.strip():
                props[k.strip()] = v.strip()
        return props


def _text(b) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


# -- `targets check` ------------------------------------------------------------------------------
_ELF_MACHINES = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}


def binary_abi(path: Path) -> Optional[str]:
    """The Android ABI an ELF executable is built for (``None`` if it is not ELF)."""
    try:
        head = Path(path).read_bytes()[:20]
    except OSError:
        return None
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    order = "little" if head[5] == 1 else "big"
    return _ELF_MACHINES.get(int.from_bytes(head[18:20], order), f"ELF machine {int.from_bytes(head[18:20], order)}")


def describe_attached(adb: Optional[str] = None) -> list[dict]:
    """Every attached device with its ABI, Android version and model (for ``targets check``)."""
    out = []
    for dev in list_devices(adb):
        row = {"serial": dev["serial"], "state": dev["state"], "model": dev.get("model")}
        if dev["state"] == "device":
            try:
                props = AdbTransport(dev["serial"], adb=adb).properties()
                row.update(abi=props.get("ro.product.cpu.abi"), android=props.get("ro.build.version.release"),
                           sdk=props.get("ro.build.version.sdk"),
                           model=props.get("ro.product.model") or dev.get("model"))
            except TransportError as e:
                row["error"] = str(e)
        else:
            row["error"] = _hint(dev["state"])
        out.append(row)
    return out
