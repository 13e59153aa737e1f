"""The ssh transport against a real OpenSSH server on loopback (the ``lab_sshd`` fixture)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from edgecompress.errors import HostKeyError, TransportError
from edgecompress.targets import Target
from edgecompress.transports import open_transport
from edgecompress.transports.ssh import SSHTransport, parse_host, resolve

pytestmark = pytest.mark.lab


def _target(dev, **over) -> Target:
    d = dev.target_dict()
    d.update(over)
    return Target(**d)


def _pubkey_fingerprint(pub_line: str) -> str:
    import base64
    import hashlib

    blob = base64.b64decode(pub_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def test_parse_host_forms():
    assert parse_host("pi@raspberrypi.local:2222") == ("pi", "raspberrypi.local", 2222)
    assert parse_host("u0_a123@pixel7") == ("u0_a123", "pixel7", None)
    assert parse_host("[::1]:22") == (None, "::1", 22)
    assert parse_host("myalias") == (None, "myalias", None)
    with pytest.raises(TransportError, match="bad port"):
        parse_host("pi@host:99999")


def test_ssh_config_alias_supplies_hostname_user_port_and_key(lab_sshd, tmp_path, monkeypatch):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host mypi\n  HostName {lab_sshd.host}\n  User {lab_sshd.user}\n"
                   f"  Port {lab_sshd.port}\n  IdentityFile {lab_sshd.identity_file}\n")
    monkeypatch.setenv("EDGECOMPRESS_SSH_CONFIG", str(cfg))
    target = Target(name="mypi", profile="x86-64-host", host="mypi", known_hosts=lab_sshd.known_hosts)
    params = resolve(target)
    assert (params.hostname, params.user, params.port) == (lab_sshd.host, lab_sshd.user, lab_sshd.port)
    assert params.identity_files == [lab_sshd.identity_file]
    with open_transport(target) as t:
        assert t.run(["id", "-un"]).stdout.strip() == lab_sshd.user


def test_arguments_are_quoted_and_exit_status_collected(lab_sshd):
    weird = "a b; echo injected $HOME `id` 'q' \"d\" \\ *"
    with open_transport(lab_sshd.target) as t:
        res = t.run(["printf", "%s|", weird, "--", "$(id)"])
        assert res.stdout == f"{weird}|--|$(id)|" and res.ok
        res = t.run(["sh", "-c", "echo oops >&2; exit 7"])
        assert (res.exit_code, res.stderr, res.signal) == (7, "oops\n", None)
        res = t.run(["sh", "-c", "kill -KILL $$"])
        assert res.exit_code is None and res.signal == "SIGKILL" and not res.ok
        res = t.run(["cat"], stdin=b"to the device")
        assert res.stdout == "to the device"
        res = t.run(["sh", "-c", 'printf %s "$EC_X"'], env={"EC_X": "v a l'ue"})
        assert res.stdout == "v a l'ue"


def test_timeout_kills_remote_process_group(lab_sshd):
    with open_transport(lab_sshd.target) as t:
        start = time.monotonic()
        res = t.run(["sh", "-c", "sleep 60 & echo $! > /tmp/ec_ssh_bg.$$; sleep 60"], timeout=1)
        assert res.timed_out and res.exit_code is None and time.monotonic() - start < 6
        # the background child lived in the same remote process group: it must be gone
        check = t.run(["sh", "-c", "for f in /tmp/ec_ssh_bg.*; do p=$(cat $f); rm -f $f; "
                                   "ps -o stat= -p $p | grep -qv Z && echo alive $p; done; true"])
        assert "alive" not in check.stdout


def test_one_connection_serves_many_commands_and_files(lab_sshd, tmp_path):
    before = lab_sshd.accepted_logins()
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(200_000))
    with open_transport(lab_sshd.target) as t:
        for i in range(5):
            assert t.run(["echo", str(i)]).stdout == f"{i}\n"
        remote = f"{lab_sshd.workdir}/blob.bin"
        assert t.put(src, remote).bytes == 200_000
        assert t.get(remote, tmp_path / "back.bin").bytes == 200_000
        t.run(["rm", "-f", remote])
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert lab_sshd.accepted_logins() - before == 1


def test_unknown_host_key_refused_then_trusted_with_flag(lab_sshd, tmp_path):
    known = tmp_path / "known_hosts"
    target = _target(lab_sshd, known_hosts=str(known))
    with pytest.raises(HostKeyError, match="--trust-new-host") as e:
        open_transport(target).run(["true"])
    host_pub = (open(lab_sshd.known_hosts).read().split("\n")[0]).split(" ", 1)[1]
    assert _pubkey_fingerprint(host_pub) in str(e.value)
    assert not known.exists()
    with open_transport(target, trust_new_host=True) as t:
        assert t.run(["true"]).ok
    assert f"[{lab_sshd.host}]:{lab_sshd.port} ssh-ed25519 " in known.read_text()
    with open_transport(target) as t:  # now known: no flag needed
        assert t.run(["true"]).ok


def test_changed_host_key_refused_even_with_trust_flag(lab_sshd, tmp_path):
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    other = key.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{lab_sshd.host}]:{lab_sshd.port} {other[0]} {other[1]}\n")
    target = _target(lab_sshd, known_hosts=str(known))
    real = open(lab_sshd.known_hosts).read().split("\n")[0].split(" ", 1)[1]
    before = known.read_text()
    with pytest.raises(HostKeyError, match="CHANGED") as e:
        open_transport(target, trust_new_host=True).run(["true"])
    msg = str(e.value)
    assert _pubkey_fingerprint(" ".join(other)) in msg and _pubkey_fingerprint(real) in msg
    assert known.read_text() == before


def test_unreachable_host_retries_then_names_the_host(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target(name="gone", profile="x86-64-host", host=f"nobody@127.0.0.1:{port}",
                    known_hosts=str(tmp_path / "kh"), connect_timeout_s=2)
    start = time.monotonic()
    with pytest.raises(TransportError, match=f"nobody@127.0.0.1:{port} after 3 attempts"):
        SSHTransport.from_target(target).run(["true"])
    assert 1.0 < time.monotonic() - start < 20
