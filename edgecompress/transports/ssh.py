"""The ``ssh`` transport (paramiko): one connection per session, SFTP for files.

Where to connect, in order of precedence: the target's ``port``/``user``/``identity_file``
keys, then the ``host`` string (``user@host:port``, ``[v6addr]:port``), then the
``~/.ssh/config`` entry for that alias (``HostName``, ``User``, ``Port``, ``IdentityFile``;
another config file via ``$EDGECOMPRESS_SSH_CONFIG``), then defaults (this user, port 22).
Keys come from the ssh agent, ``~/.ssh/id_*`` and the identity files; an encrypted key file is
opened with the passphrase in ``$EDGECOMPRESS_SSH_PASSPHRASE`` (read when connecting, handed only to
paramiko, never logged or stored) — or load the key into ssh-agent instead.

Host keys are checked against the target's ``known_hosts`` file. An unknown key is refused
unless ``trust_new_host`` is set (then it is appended to that file); a CHANGED key is always
refused, naming the old and the new SHA256 fingerprints.

Every command is sent as ``exec sh -c '<script>'`` where the script prints its process
group id, runs the quoted argv and prints the exit status, so that a time-out kills the
whole remote process group and a process killed by a signal is reported as killed.

A connection that drops while a command runs raises :class:`~edgecompress.errors.ConnectionLost`
(the command's outcome is unknown); the command's process group is remembered and killed as
soon as the transport connects again, so nothing started by a lost connection keeps running.
An SFTP transfer that makes no progress for ``io_timeout_s`` fails; a transfer broken by a lost
connection raises :class:`~edgecompress.errors.TransportError` and the next call reconnects.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import re
import select
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConnectionLost, HostKeyError, TransportError
from .base import CommandResult, Process, TransferResult, Transport, quote_argv
from .local import signal_name

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "EDGECOMPRESS_SSH_PASSPHRASE"
CONNECT_ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0, 2.0)
_PGID = re.compile(r"\A__ec_pgid=(\d+)\n")
_EXIT = re.compile(r"\n__ec_exit=(\d+)\n\Z")


def fingerprint(key) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass
class SSHParams:
    """Where and as whom to connect, after merging target, host string and ~/.ssh/config."""

    alias: str
    hostname: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    identity_files: list[str] = field(default_factory=list)
    known_hosts: str = "~/.ssh/known_hosts"

    @property
    def host_key_name(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def parse_host(spec: str) -> tuple[Optional[str], str, Optional[int]]:
    """``user@host:port`` -> (user, host, port); IPv6 as ``[addr]:port``; parts optional."""
    user = None
    if "@" in spec:
        user, spec = spec.rsplit("@", 1)
    port = None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", spec)
    if m:
        host, port = m.group(1), m.group(2)
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host = spec
    if port is not None:
        if not str(port).isdigit() or not 0 < int(port) < 65536:
            raise TransportError(f"bad port {port!r} in host {spec!r}; expected user@host:PORT with 1-65535")
        port = int(port)
    if not host:
        raise TransportError(f"empty host name in {spec!r}; expected user@host:port or an ssh alias")
    return user or None, host, port


def resolve(target, ssh_config: Optional[str] = None) -> SSHParams:
    """Merge the target's keys, its host string and ``~/.ssh/config`` into :class:`SSHParams`."""
    import paramiko

    user, alias, port = parse_host(target.host)
    cfg_path = Path(os.path.expanduser(ssh_config or os.environ.get("EDGECOMPRESS_SSH_CONFIG")
                                       or "~/.ssh/config"))
    cfg: dict = {}
    if cfg_path.exists():
        try:
            cfg = paramiko.SSHConfig.from_path(str(cfg_path)).lookup(alias)
        except Exception as e:  # noqa: BLE001 - a broken config is the user's to fix
            raise TransportError(f"{cfg_path}: cannot read ssh config: {e}") from e
    params = SSHParams(alias=alias, hostname=cfg.get("hostname", alias),
                       known_hosts=target.known_hosts)
    params.port = target.port or port or int(cfg.get("port", 22))
    params.user = target.user or user or cfg.get("user") or getpass.getuser()
    files = [target.identity_file] if target.identity_file else []
    files += cfg.get("identityfile", [])
    params.identity_files = [os.path.expanduser(f) for f in files if os.path.exists(os.path.expanduser(f))]
    return params


class _HostKeyPolicy:
    """Unknown key: refuse, or with ``trust`` record it in known_hosts."""

    def __init__(self, trust: bool, known_hosts: Path):
        self.trust = trust
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        fp = fingerprint(key)
        if not self.trust:
            raise HostKeyError(
                f"unknown host key for {hostname}: {key.get_name()} {fp} is not in {self.known_hosts}. "
                f"Check it on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and, if it matches, "
                f"pass --trust-new-host to trust it and record it in {self.known_hosts}")
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.warning("trusted new host key for %s: %s %s (written to %s)", hostname, key.get_name(), fp,
                    self.known_hosts)


class SSHProcess(Process):
    def __init__(self, channel):
        self.channel = channel
        self._buf = b""

    def readline(self, timeout: float) -> Optional[str]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.channel.recv_ready():
                chunk = self.channel.recv(65536)
                if not chunk:
                    break
                self._buf += chunk
            elif self.channel.eof_received:
                break
            else:
                select.select([self.channel], [], [], min(left, 0.2))
        if b"\n" not in self._buf:
            rest, self._buf = self._buf, b""
            return rest.decode(errors="replace") if rest else None
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def alive(self) -> bool:
        return not self.channel.closed and not self.channel.exit_status_ready()

    def close(self) -> None:
        try:
            self.channel.shutdown_write()
            deadline = time.monotonic() + 5
            while not self.channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.02)
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass
        self.channel.close()


class SSHTransport(Transport):
    """A device reached over SSH. Connects on first use; ``close()`` ends the connection."""

    name = "ssh"

    def __init__(self, params: SSHParams, *, trust_new_host: bool = False, connect_timeout_s: float = 15.0,
                 io_timeout_s: Optional[float] = None):
        self.params = params
        self.trust_new_host = trust_new_host
        self.connect_timeout_s = connect_timeout_s
        self.io_timeout_s = io_timeout_s or 2 * connect_timeout_s   # no SFTP progress this long: fail
        self._orphans: list[int] = []  # process groups of commands whose connection dropped
        self._client = None
        self._sftp = None
        self._home: Optional[str] = None
        self.connections = 0          # how many times this transport connected (one per session)

    @classmethod
    def from_target(cls, target, *, trust_new_host: bool = False, **_options) -> "SSHTransport":
        return cls(resolve(target), trust_new_host=trust_new_host, connect_timeout_s=target.connect_timeout_s)

    # -- connection -------------------------------------------------------------------
    def connect(self):
        if self._client is not None and self._client.get_transport() is not None \
                and self._client.get_transport().is_active():
            return self._client
        import paramiko

        p = self.params
        known = Path(os.path.expanduser(p.known_hosts))
        last: Optional[BaseException] = None
        for attempt in range(CONNECT_ATTEMPTS):
            client = paramiko.SSHClient()
            if known.exists():
                try:
                    client.load_host_keys(str(known))
                except Exception as e:  # noqa: BLE001
                    raise HostKeyError(f"{known}: cannot read known_hosts: {e}") from e
            client.set_missing_host_key_policy(_HostKeyPolicy(self.trust_new_host, known))
            try:
                client.connect(p.hostname, port=p.port, username=p.user,
                               key_filename=p.identity_files or None, allow_agent=True, look_for_keys=True,
                               passphrase=os.environ.get(PASSPHRASE_ENV) or None,
                               timeout=self.connect_timeout_s, banner_timeout=self.connect_timeout_s,
                               auth_timeout=self.connect_timeout_s)
                self._client = client
                self.connections += 1
                self._kill_orphans()
                return client
            except HostKeyError:
                client.close()
                raise
            except paramiko.BadHostKeyException as e:
                client.close()
                raise HostKeyError(
                    f"host key for {p.host_key_name} has CHANGED: {known} has {e.expected_key.get_name()} "
                    f"{fingerprint(e.expected_key)}, the device offered {e.key.get_name()} {fingerprint(e.key)}. "
                    f"This may be a reinstalled device or someone intercepting the connection; nothing was sent. "
                    f"If the change is expected, remove the old key (ssh-keygen -R '{p.host_key_name}' -f {known}) "
                    f"and connect again with --trust-new-host (the flag never overrides a changed key)") from e
            except paramiko.AuthenticationException as e:
                client.close()
                keys = ", ".join(p.identity_files) or "none given"
                hint = (f"the key file is encrypted: add it to ssh-agent or put its passphrase in ${PASSPHRASE_ENV}"
                        if isinstance(e, paramiko.PasswordRequiredException)
                        else "Set identity_file in the target or add the key to ssh-agent")
                raise TransportError(
                    f"authentication to {p} failed ({e}); tried the ssh agent, ~/.ssh/id_* and identity files "
                    f"({keys}). {hint}") from e
            except (OSError, EOFError, paramiko.SSHException) as e:
                client.close()
                last = e
                if attempt + 1 < CONNECT_ATTEMPTS:
                    log.info("connect to %s failed (%s); retrying in %.1f s", p, e, BACKOFF_S[attempt])
                    time.sleep(BACKOFF_S[attempt])
        raise TransportError(f"cannot connect to {p} after {CONNECT_ATTEMPTS} attempts: {last}") from last

    def close(self) -> None:
        for obj in (self._sftp, self._client):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001
                    pass
        self._sftp = self._client = None

    def _lost(self) -> bool:
        t = self._client.get_transport() if self._client is not None else None
        return t is None or not t.is_active()

    def _kill_orphans(self) -> None:
        while self._orphans:
            pgid = self._orphans.pop()
            log.info("%s: killing process group %s left running by a lost connection", self.params, pgid)
            self._kill_group(pgid)

    def _open_channel(self, argv: Sequence[str], env: Optional[dict[str, str]]):
        client = self.connect()
        cmd = quote_argv(argv)
        if env:
            cmd = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + cmd
        script = (f'printf "__ec_pgid=%s\\n" "$$" >&2; {cmd}; s=$?; '
                  f'printf "\\n__ec_exit=%s\\n" "$s" >&2; exit "$s"')
        try:
            chan = client.get_transport().open_session(timeout=self.connect_timeout_s)
            chan.exec_command("exec sh -c " + shlex.quote(script))
        except Exception as e:  # noqa: BLE001 - paramiko raises several kinds
            self.close()
            raise TransportError(f"{self.params}: cannot start a command: {e}") from e
        return chan

    # -- commands ---------------------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: Optional[float] = None,
            stdin: Optional[bytes] = None, env: Optional[dict[str, str]] = None) -> CommandResult:
        start = time.perf_counter()
        chan = self._open_channel(argv, env)
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        while True:
            got = False
            while chan.recv_ready():
                out += chan.recv(1 << 16)
                got = True
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(1 << 16)
                got = True
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if chan.closed and self._lost():
                break
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                break
            if not got:
                wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
                select.select([chan], [], [], wait)
        err_s = err.decode(errors="replace")
        m = _PGID.match(err_s)
        pgid = int(m.group(1)) if m else None
        if m:
            err_s = err_s[m.end():]
        if not timed_out and not _EXIT.search(err_s) and self._lost():
            if pgid:
                self._orphans.append(pgid)
            self.close()
            raise ConnectionLost(f"connection to {self.params} lost after {time.perf_counter() - start:.1f} s "
                                 f"while running `{shlex.join(map(str, argv))[:120]}`; its outcome is unknown")
        if timed_out:
            if pgid:
                self._kill_group(pgid)
            chan.close()
            return CommandResult(list(argv), None, out.decode(errors="replace"), err_s,
                                 time.perf_counter() - start, timed_out=True)
        status = chan.recv_exit_status()
        chan.close()
        code: Optional[int] = status
        sig = None
        m = _EXIT.search(err_s)
        if m:
            err_s = err_s[:m.start()]
            code = int(m.group(1))
            if code > 128 and code - 128 < 65:
                sig, code = signal_name(code - 128), None
        elif status == -1 or status > 128:
            sig, code = (signal_name(status - 128) if status > 128 else "killed (signal unknown)"), None
        return CommandResult(list(argv), code, out.decode(errors="replace"), err_s,
                             time.perf_counter() - start, signal=sig)

    def _kill_group(self, pgid: int) -> None:
        kill = f"kill -TERM -{pgid} 2>/dev/null || exit 0; sleep 0.5; kill -KILL -{pgid} 2>/dev/null; exit 0"
        try:
            self.run(["sh", "-c", kill], timeout=10)
        except TransportError as e:
            log.warning("could not kill remote process group %s: %s", pgid, e)

    def spawn(self, argv: Sequence[str]) -> SSHProcess:
        return SSHProcess(self._open_channel(argv, None))

    # -- files ------------------------------------------------------------------------
    def sftp(self):
        if self._sftp is not None and (self._sftp.sock.closed or self._lost()):
            stale, self._sftp = self._sftp, None    # reopened below; connect() reconnects if the link died
            try:
                stale.close()
            except Exception:  # noqa: BLE001
                pass
        if self._sftp is None:
            try:
                self._sftp = self.connect().open_sftp()
                self._sftp.get_channel().settimeout(self.io_timeout_s)
            except TransportError:
                raise
            except Exception as e:  # noqa: BLE001
                raise TransportError(f"{self.params}: cannot open SFTP (is the sftp subsystem enabled?): {e}") from e
        return self._sftp

    def _transfer_failed(self, what: str, e: BaseException) -> TransportError:
        if isinstance(e, socket.timeout):
            why = f"no progress for {self.io_timeout_s:.0f} s (stalled link)"
        else:
            why = str(e) or type(e).__name__
        sftp, self._sftp = self._sftp, None   # a broken SFTP session is never reused
        if sftp is not None:
            try:
                sftp.close()
            except Exception:  # noqa: BLE001
                pass
        if self._lost():
            return ConnectionLost(f"{what} failed: connection lost ({why})")
        return TransportError(f"{what} failed: {why}")

    def home(self) -> str:
        if self._home is None:
            self._home = self.sftp().normalize(".")
        return self._home

    def put(self, local: Path, remote: str) -> TransferResult:
        start = time.perf_counter()
        remote = self.expand(remote)
        import paramiko

        try:
            attrs = self.sftp().put(str(local), remote, confirm=True)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise self._transfer_failed(f"upload {local} -> {self.params}:{remote}", e) from e
        return TransferResult(str(local), remote, int(attrs.st_size or 0), time.perf_counter() - start)

    def get(self, remote: str, local: Path) -> TransferResult:
        import paramiko

        start = time.perf_counter()
        remote = self.expand(remote)
        local = Path(local)
        tmp = local.with_name(f".{local.name}.part")
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            self.sftp().get(remote, str(tmp))
            os.replace(tmp, local)
        except (OSError, EOFError, paramiko.SSHException) as e:
            tmp.unlink(missing_ok=True)
            raise self._transfer_failed(f"download {self.params}:{remote} -> {local}", e) from e
        return TransferResult(str(local), remote, local.stat().st_size, time.perf_counter() - start)
