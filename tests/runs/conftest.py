"""Fixtures for `edgecompress run` tests: the trained digits model as MODEL + --weights, a tiny
profile (tests/runs/tiny-x86.yaml), and a targets file with `local`, the real-sshd lab device
(`lab_sshd`) and a dead device (ssh to a closed loopback port), all using the tiny profile."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny-x86.yaml"
DIGITS = Path(__file__).resolve().parents[2] / "edgecompress" / "examples" / "digits.py"


@pytest.fixture(scope="session")
def digits_model(torch_digits, tmp_path_factory):
    """(MODEL spec, weights path) for the session's trained digits CNN."""
    import torch

    weights = tmp_path_factory.mktemp("model") / "digits.weights.pt"
    torch.save(torch_digits[0].state_dict(), weights)
    return f"{DIGITS}:factory", weights


@pytest.fixture(scope="session")
def tiny_profile() -> Path:
    return TINY


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def run_targets(lab_sshd, tmp_path_factory):
    """A targets file: `local` and `lab` (real sshd) and `dead` (closed port), profile tiny-x86."""
    lab = dict(lab_sshd.target_dict(), name="lab", profile=str(TINY))
    dead = dict(lab, name="dead", host=f"{lab_sshd.user}@127.0.0.1:{closed_port()}", connect_timeout_s=3)
    local = {"name": "local", "profile": str(TINY), "transport": "local",
             "workdir": str(tmp_path_factory.mktemp("localdev"))}
    path = tmp_path_factory.mktemp("targets") / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": [local, lab, dead]}, sort_keys=False))
    return path


@pytest.fixture(scope="module", autouse=True)
def shared_compress_cache(tmp_path_factory):
    """One compressor cache per test module (each test has its own --out): later runs reuse steps.
    Module scope, so the variable is gone again before other folders' tests run."""
    import os

    old = os.environ.get("EDGECOMPRESS_CACHE_DIR")
    os.environ["EDGECOMPRESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("compress-cache"))
    yield
    if old is None:
        os.environ.pop("EDGECOMPRESS_CACHE_DIR", None)
    else:
        os.environ["EDGECOMPRESS_CACHE_DIR"] = old
