"""edgecompress.quiet: native stderr lines that are framework noise are dropped, the rest kept."""
from __future__ import annotations

import os
import threading

import pytest

from edgecompress import quiet

ABSL = "I0000 00:00:1796177703.699626   32024 cudart_stub.cc:31] Could not find cuda drivers on your machine"


@pytest.fixture
def on(monkeypatch):
    monkeypatch.setitem(quiet._state, "quiet", True)


def test_noise_is_dropped_and_other_native_lines_are_written_back(on, capfd):
    with quiet.native_stderr():
        os.write(2, (ABSL + "\nWARNING: All log messages before absl::InitializeLog() is called are written to "
                     "STDERR\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nfully_quantize: 0, "
                     "inference_type: 6\nreal problem: file not found\n").encode())
        with quiet.native_stderr():                      # nested: one capture
            os.write(2, b"W0000 00:00:1.2 77 port.cc:153] oneDNN custom operations are on\n")
    err = capfd.readouterr().err
    assert err.strip() == "real problem: file not found"


def test_concurrent_blocks_share_one_capture_and_restore_fd2(on, capfd):
    before = os.fstat(2).st_ino
    barrier = threading.Barrier(4)

    def work(i):
        with quiet.native_stderr():
            barrier.wait()
            os.write(2, f"{ABSL}\nline {i}\n".encode())
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert os.fstat(2).st_ino == before
    assert sorted(capfd.readouterr().err.splitlines()) == [f"line {i}" for i in range(4)]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_off_without_quiet_frameworks(monkeypatch, capfd):
    monkeypatch.setitem(quiet._state, "quiet", False)
    with quiet.native_stderr():
        os.write(2, (ABSL + "\n").encode())
    assert capfd.readouterr().err == ABSL + "\n"


def test_verbose_changes_nothing(monkeypatch):
    monkeypatch.setitem(quiet._state, "quiet", False)
    for k in quiet.ENV:
        monkeypatch.delenv(k, raising=False)
    quiet.quiet_frameworks(verbose=True)
    assert not quiet.is_quiet() and not any(k in os.environ for k in quiet.ENV)
    quiet.quiet_frameworks()
    assert quiet.is_quiet() and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
