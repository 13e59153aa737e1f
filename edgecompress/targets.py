"""Targets: concrete devices and how to reach them.

Inventories are YAML (``targets: [{name, profile, transport, ...}]``) loaded from, in
order: an explicit ``--targets FILE``, ``$EDGECOMPRESS_TARGETS``, or
``$XDG_CONFIG_HOME/edgecompress/targets.yaml``. A target named ``local`` (this machine,
no SSH) always exists unless an inventory defines its own ``local``.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator

from .errors import TargetError
from .profiles import Meter, load_profile
from .registry import AGENTS, suggest
from .transports import TRANSPORTS
from .schema import Strict, load_yaml, validate

ENV_TARGETS = "EDGECOMPRESS_TARGETS"


class Target(Strict):
    name: str = Field(min_length=1)
    profile: str = Field(min_length=1)
    transport: Literal[tuple(TRANSPORTS.names())] = "ssh"
    host: Optional[str] = Field(None, description="user@host:port or an alias from ~/.ssh/config")
    port: Optional[int] = Field(None, gt=0, lt=65536)
    user: Optional[str] = None
    identity_file: Optional[str] = None
    known_hosts: str = "~/.ssh/known_hosts"
    serial: Optional[str] = Field(None, description="adb device serial")
    python: str = "python3"
    workdir: str = "~/.cache/edgecompress"
    energy: Optional[Meter] = None
    energy_command: Optional[str] = None
    sysfs_root: str = Field("/", description="where the device's /sys and /proc live (tests point it elsewhere)")
    mode: Literal[tuple(AGENTS.names())] = "python"
    benchmark_model: Optional[str] = Field(None, description="native mode: LiteRT benchmark_model binary on this host")
    connect_timeout_s: float = Field(15.0, gt=0)
    emulated: bool = Field(False, description="the device's CPU is emulated (the lab's qemu aarch64 device): its "
                                              "results are marked emulated; timings and energy are not used")

    @model_validator(mode="after")
    def _reachable(self):
        if self.transport == "ssh" and not self.host:
            raise ValueError(f"target {self.name!r}: transport 'ssh' needs 'host' (user@host:port or an ssh alias)")
        if self.mode == "native" and not self.benchmark_model:
            raise ValueError(f"target {self.name!r}: mode 'native' needs 'benchmark_model' (path to the binary)")
        return self


class Inventory(Strict):
    targets: list[Target] = []


def local_target() -> Target:
    machine = platform.machine().lower()
    profile = "x86-64-host" if machine in ("x86_64", "amd64") else "raspberry-pi-5"
    return Target(name="local", profile=profile, transport="local",
                  workdir=str(Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "edgecompress" / "local"))


def default_targets_file() -> Optional[Path]:
    env = os.environ.get(ENV_TARGETS)
    if env:
        return Path(env)
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgecompress" / "targets.yaml"
    return config if config.exists() else None


def load_targets(path: str | Path | None = None) -> dict[str, Target]:
    """All targets: ``local`` plus those of the inventory file (validated, profiles checked)."""
    path = Path(path) if path else default_targets_file()
    targets: dict[str, Target] = {"local": local_target()}
    if path is None:
        return targets
    data = load_yaml(path, TargetError)
    if data is None:
        data = {}
    inventory = validate(Inventory, data, str(path), TargetError)
    seen: set[str] = set()
    for i, t in enumerate(inventory.targets):
        if t.name in seen:
            raise TargetError(f"{path}: targets[{i}].name: target {t.name!r} is defined twice")
        seen.add(t.name)
        try:
            load_profile(t.profile)
        except Exception as e:  # noqa: BLE001 - re-raised with the target's place
            raise TargetError(f"{path}: targets[{i}].profile: {e}") from e
        targets[t.name] = t
    return targets


def load_target(name: str | Target, path: str | Path | None = None) -> Target:
    if isinstance(name, Target):
        return name
    targets = load_targets(path)
    if name not in targets:
        where = f" in {path or default_targets_file() or '(no inventory file)'}"
        raise TargetError(f"unknown target {name!r}{where}{suggest(name, targets)}; "
                          f"valid: {', '.join(sorted(targets))}")
    return targets[name]
